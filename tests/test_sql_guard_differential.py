"""The SQL guard and PostgreSQL agree on every statement of a corpus of
strings written to make a lexer and the server disagree.

Each string runs on a connection of its own, in a transaction that is rolled
back: whole, and statement by statement as the guard's parser split it.
PostgreSQL's verdict comes from what it did: the command tag of each statement
(a kind scripts run or not), and whether the string ended the transaction or
left state on the connection (a setting, a session advisory lock, a temporary
table, a prepared statement, a listened channel, a held cursor).
"""

import psycopg2
from pglast import parser

from odoo.sql_db import connection_info_for, db_connect
from odoo.tests import BaseCase, get_db_name, tagged

from ..core.sql_guard import UnsafeStatement
from ..services.script_sql import check_script_sql

# Command tags of the statement kinds scripts run.
SCRIPT_TAGS = ("SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "EXPLAIN", "SHOW", "LOCK TABLE")
# The command tags PostgreSQL answers for the statement kinds of the corpus.
TAGS = {
    "SelectStmt": ("SELECT",), "InsertStmt": ("INSERT",), "UpdateStmt": ("UPDATE",),
    "DeleteStmt": ("DELETE",), "MergeStmt": ("MERGE",), "ExplainStmt": ("EXPLAIN",),
    "VariableShowStmt": ("SHOW",), "LockStmt": ("LOCK TABLE",),
    "TransactionStmt": ("BEGIN", "START TRANSACTION", "COMMIT", "ROLLBACK", "SAVEPOINT",
                        "RELEASE"),
    "ConstraintsSetStmt": ("SET CONSTRAINTS",), "VariableSetStmt": ("SET", "RESET"),
    "DiscardStmt": ("DISCARD",), "PrepareStmt": ("PREPARE",), "ListenStmt": ("LISTEN",),
    "NotifyStmt": ("NOTIFY",), "DeclareCursorStmt": ("DECLARE CURSOR",), "DoStmt": ("DO",),
    "CreateStmt": ("CREATE TABLE",),
}
# Non-ASCII identifiers next to dollar quotes and E'' strings, named and
# non-ASCII dollar tags, nested comments hiding semicolons, quoted and
# qualified function names, typed literals, U&'' strings, several statements.
CORPUS = [
    "SELECT 1 AS é$$; COMMIT; SELECT 1 AS é$$",
    "SELECT 1 AS é$x$; ROLLBACK; SELECT 1 AS é$x$",
    "SELECT 1 AS ü$$, $$ ; SET application_name = 'bj' ; $$ AS x",
    "SELECT 1 AS x$y; COMMIT",
    'SELECT 1 AS "é$$"; COMMIT',
    "SELECT $$ ; COMMIT $$",
    "SELECT $é$ ; COMMIT $é$",
    "SELECT $bj_1$ $$ ; $bj_1$; SELECT $$;$$",
    "SELECT E'\\' ; COMMIT'",
    "SELECT e'\\\\'; COMMIT",
    "SELECT 'a\\'; COMMIT; SELECT '1'",
    "SELECT 'a'' ; COMMIT'",
    "SELECT U&'\\0041 ; COMMIT'",
    'SELECT U&"\\0041" FROM (SELECT 1) AS t(U&"\\0041"); COMMIT',
    "SELECT b'101', x'1F', n'é'; ROLLBACK",
    "/* outer /* inner */ ; COMMIT */ SELECT 1",
    "/* outer /* inner */ */ COMMIT",
    "-- ; COMMIT\nSELECT 1",
    "SELECT 1 -- $$\n; COMMIT",
    "SELECT date '2020-01-01', interval '1 day', '1'::int, int '1', 'x'::text; SELECT 2",
    "SELECT 1 AS é; SELECT 2 AS ü",
    "SELECT 1 AS é$$\n; START TRANSACTION; --$$",
    "SELECT 1; BEGIN",
    "SAVEPOINT bj; SELECT 1",
    "SELECT 1; SET CONSTRAINTS ALL DEFERRED",
    "RESET application_name",
    "DISCARD PLANS",
    "SELECT set_config('application_name', 'bj', false)",
    "SELECT \"set_config\"('application_name', 'bj', false)",
    "SELECT \"pg_catalog\".\"set_config\"('application_name', 'bj', false)",
    "SELECT * FROM pg_catalog.set_config('bj.setting', 'x', false)",
    "SELECT pg_advisory_lock(424242)",
    "SELECT pg_catalog.pg_try_advisory_lock(42, 42)",
    "SELECT pg_advisory_xact_lock(424242), pg_try_advisory_xact_lock_shared(42, 42)",
    "SELECT query_to_xml('SELECT pg_advisory_lock(4242)', true, true, '')",
    "EXPLAIN ANALYZE SELECT set_config('application_name', 'bj', false)",
    "WITH x AS (SELECT set_config('application_name', 'bj', false)) SELECT * FROM x",
    "UPDATE pg_settings SET setting = 'bj' WHERE name = 'application_name'",
    "DO $$BEGIN PERFORM 1; END$$",
    "DO $bj$BEGIN PERFORM pg_advisory_lock(7); END$bj$",
    "PREPARE bj_q AS SELECT 1",
    "LISTEN bj_channel",
    "NOTIFY bj_channel",
    "DECLARE bj_c CURSOR WITH HOLD FOR SELECT 1",
    "CREATE TEMP TABLE bj_t (a int)",
    "CREATE TEMP TABLE bj_t (a int) ON COMMIT DROP",
    "SELECT 1 INTO TEMP bj_t",
    "SHOW search_path; LOCK TABLE res_partner IN ACCESS SHARE MODE",
    "EXPLAIN SELECT 1; EXPLAIN ANALYZE SELECT 2",
    "UPDATE res_partner SET ref = ref WHERE id = -1 RETURNING id",
    "DELETE FROM res_partner WHERE id = -1; INSERT INTO res_partner_category (name) "
    "SELECT '{\"en_US\": \"é$$\"}'::jsonb WHERE false",
    "MERGE INTO res_partner p USING (SELECT -1 AS id) s ON p.id = s.id WHEN MATCHED THEN DELETE",
    "WITH gone AS (DELETE FROM res_partner WHERE id = -1 RETURNING id) SELECT * FROM gone",
    "SELECT current_setting('application_name'), txid_current_if_assigned()",
]

# What a string may change without ending the transaction or outliving it
# (pg_settings does not list custom settings: the corpus's one is read by name).
_STATE = """
    SELECT now(), pg_backend_pid(),
           ARRAY(SELECT name || '=' || setting FROM pg_settings
                 WHERE setting IS DISTINCT FROM reset_val ORDER BY name),
           current_setting('bj.setting', true),
           (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()),
           (SELECT count(*) FROM pg_prepared_statements),
           (SELECT count(*) FROM pg_listening_channels()),
           (SELECT count(*) FROM pg_cursors WHERE is_holdable)
"""
_SESSION_LOCKS = ("SELECT count(*) FROM pg_locks "
                  "WHERE locktype = 'advisory' AND pid = pg_backend_pid()")


def postgresql_runs(sql):
    """(command tag, whether running ``sql`` ended its transaction or left
    state on the connection), on a connection of its own that is closed after."""
    _db, info = connection_info_for(get_db_name())
    connection = psycopg2.connect(**info, options="-c statement_timeout=10000")
    try:
        with connection.cursor() as cursor:
            cursor.execute(_STATE)
            before = cursor.fetchone()
            cursor.execute(sql)
            tag = cursor.statusmessage
            cursor.execute(_STATE)
            changed = cursor.fetchone() != before
            connection.rollback()  # a session advisory lock outlives it
            cursor.execute(_SESSION_LOCKS)
            return tag, changed or bool(cursor.fetchone()[0])
    finally:
        connection.close()


def guard_refuses(cr, sql):
    """Whether scripts' check (the grammar, then the catalog on ``cr``) refuses ``sql``."""
    try:
        check_script_sql(cr, sql)
    except UnsafeStatement:
        return True
    return False


def statements(sql):
    """Each statement of ``sql`` as the guard's parser splits it: (kind, text)."""
    for raw in parser.parse_sql(sql):
        end = raw.stmt_location + raw.stmt_len if raw.stmt_len else len(sql)
        yield type(raw.stmt).__name__, sql[raw.stmt_location:end]


@tagged("post_install", "-at_install")
class TestSqlGuardDifferential(BaseCase):
    def test_postgresql_and_the_guard_agree(self):
        cr = db_connect(get_db_name()).cursor()
        self.addCleanup(cr.close)
        for sql in CORPUS:
            with self.subTest(sql=sql):
                pieces = list(statements(sql))
                unsafe = False
                for kind, piece in pieces:
                    tag, changed = postgresql_runs(piece)
                    # PostgreSQL ran the statement the parser saw, alone.
                    self.assertTrue(tag.startswith(TAGS[kind]), f"{piece!r}: {kind}, {tag}")
                    refused = not tag.startswith(SCRIPT_TAGS) or changed
                    self.assertEqual(guard_refuses(cr, piece), refused, f"statement {piece!r}")
                    unsafe = unsafe or refused
                # The whole string: the statements it ran were these.
                tag, changed = postgresql_runs(sql)
                self.assertTrue(tag.startswith(TAGS[pieces[-1][0]]), f"{tag} after {sql!r}")
                self.assertEqual(guard_refuses(cr, sql), unsafe or changed, "the whole string")
