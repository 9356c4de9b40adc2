"""The connection a script hands back: the same backend and transaction, no
session advisory lock and no setting left on it.

The SQL guard (:mod:`..core.sql_guard`) refuses what would change them before
it runs; this check catches what it cannot see (a database function that
takes a session lock or changes a setting).  It costs one query before the
script's first statement and one after the script, and nothing for a script
that runs no SQL through its cursor.
"""

import threading
from contextlib import contextmanager

from psycopg2.extensions import TRANSACTION_STATUS_IDLE, TRANSACTION_STATUS_INTRANS

from odoo.tools import SQL

from ..core.sql_guard import UnsafeStatement

# Backend, transaction (its start time), the settings that differ from what
# RESET would restore, and this backend's advisory locks.
_STATE = SQL("""
    SELECT pg_backend_pid(), now(),
           ARRAY(SELECT name || '=' || setting FROM pg_settings
                 WHERE setting IS DISTINCT FROM reset_val ORDER BY name),
           ARRAY(SELECT concat_ws(' ', classid, objid, objsubid, mode) FROM pg_locks
                 WHERE locktype = 'advisory' AND pid = pg_backend_pid() ORDER BY 1)
""")
# The post-check can query only a transaction that is neither failed nor gone.
_USABLE = (TRANSACTION_STATUS_IDLE, TRANSACTION_STATUS_INTRANS)
_watch = threading.local()


def _state(cursor):
    cursor.execute(_STATE)
    return cursor.fetchone()


def _signed(value, bits):
    """``value``, an unsigned number of ``bits`` bits, as PostgreSQL's signed integer."""
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def _session_held(cursor, locks):
    """The advisory locks among ``locks`` (rows of pg_locks) that the session
    held, released now; the others are the transaction's (pg_advisory_xact_lock),
    which pg_advisory_unlock does not release."""
    calls = []
    for lock in locks:
        classid, objid, objsubid, mode = lock.split(" ", 3)
        function = "pg_advisory_unlock_shared" if mode == "ShareLock" else "pg_advisory_unlock"
        if objsubid == "1":  # one bigint key: its high and low halves
            keys = SQL("%s", _signed(int(classid) << 32 | int(objid), 64))
        else:  # two integer keys
            keys = SQL("%s, %s", _signed(int(classid), 32), _signed(int(objid), 32))
        calls.append(SQL("%s(%s)", SQL.identifier(function), keys))
    cursor.execute(SQL("SELECT ARRAY[%s]", SQL(", ").join(calls)))
    return [lock for lock, released in zip(locks, cursor.fetchone()[0], strict=True) if released]


def _verify(cursor, before):
    """Raise UnsafeStatement when the connection differs from ``before`` in a
    way that outlives the script (releasing the session locks it took)."""
    pid, started, settings, locks = before
    after = _state(cursor)
    if after[:2] != (pid, started):
        raise UnsafeStatement("the script's SQL ended its request's transaction")
    changed = sorted(set(settings) ^ set(after[2]))
    if changed:
        names = sorted({setting.partition("=")[0] for setting in changed})
        raise UnsafeStatement(f"the script's SQL changed the setting(s) {', '.join(names)}")
    if set(locks) - set(after[3]):
        raise UnsafeStatement("the script's SQL released an advisory lock of the connection")
    new = sorted(set(after[3]) - set(locks))
    if new and _session_held(cursor, new):
        raise UnsafeStatement("the script's SQL left a session advisory lock on the "
                              "connection (released now)")


def note(cursor):
    """Before a script's statement on ``cursor``: the state before the first."""
    if getattr(_watch, "active", False) and _watch.before is None:
        _watch.before = (cursor, _state(cursor))


@contextmanager
def connection_kept():
    """Around a script run: after it, raise UnsafeStatement when its SQL left
    the connection otherwise than it found it.  A script run inside another
    is checked with it."""
    if getattr(_watch, "active", False):
        yield
        return
    _watch.active, _watch.before = True, None
    try:
        yield
    except BaseException:
        # The script failed: its request or job fails with it (and a failed
        # transaction is rolled back with it), unless the check finds worse.
        noted, _watch.active, _watch.before = _watch.before, False, None
        if noted and noted[0].connection.info.transaction_status in _USABLE:
            _verify(*noted)
        raise
    noted, _watch.active, _watch.before = _watch.before, False, None
    if not noted:
        return
    if noted[0].connection.info.transaction_status not in _USABLE:
        # The script caught the error of one of its statements: the transaction
        # can run nothing more, so the script has failed.
        raise UnsafeStatement("a statement of the script failed and the script went on: "
                              "the transaction can run nothing more")
    _verify(*noted)
