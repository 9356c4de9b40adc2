"""What a script's SQL may run: PostgreSQL's grammar (:mod:`..core.sql_guard`)
and PostgreSQL's catalog, asked on the script's own transaction before the
statement runs.

A function is judged by its volatility in pg_proc, by name in every schema and
overload: STABLE and IMMUTABLE functions cannot change anything by contract,
VOLATILE ones may (settings, files, other sessions, the server), so only the
reviewed :data:`..core.sql_guard.VOLATILE_ALLOWED` run.  The answer is not
kept between statements: a function created since (an extension installed)
is judged as it is now.  A name the catalog does not know fails in PostgreSQL.
"""

from odoo.tools import SQL

from ..core.sql_guard import check_query, refuse_volatile

# The volatile functions among the names a statement calls, and among the
# names it selects as a field that take one argument (``t.f`` is ``f(t)``).
_VOLATILE = """
    SELECT DISTINCT proname FROM pg_proc
    WHERE provolatile = 'v' AND (
        proname = ANY(%s) OR proname = ANY(%s) AND pronargs >= 1 AND pronargs - pronargdefaults <= 1
    )
"""


def check_script_sql(cursor, query, params=None, text=None):
    """Raise UnsafeStatement unless every statement that ``execute(query,
    params)`` sends (``text()``, by default ``query``) may run in a script;
    ``cursor``, the real cursor of the script's transaction, is asked only
    when the statements call or select names."""
    called = check_query(query, params, text or (lambda: query))
    if called.functions or called.fields:
        cursor.execute(SQL(_VOLATILE, list(called.functions), list(called.fields)))
        refuse_volatile(called, {name for (name,) in cursor.fetchall()})
