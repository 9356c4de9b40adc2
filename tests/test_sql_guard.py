"""The SQL guard of scripts as a plain function (no database): every statement
kind PostgreSQL's parser knows is decided, and a table of statements and
function calls gets the verdict it must."""

from pglast import ast

from odoo.tests import BaseCase, tagged

from ..core.sql_guard import ALLOWED, STATEMENTS, UnsafeStatement, check_statement, function_refusal

# (SQL, the start of the refusal after "statement N: ", or None when allowed).
CASES = [
    ("SELECT 1", None),
    ("select 'COMMIT; ROLLBACK'", None),
    ("SELECT $x$ ; COMMIT $x$", None),
    ("SELECT $é$ ; COMMIT $é$", None),
    ("SELECT E'\\' ; COMMIT'", None),
    ("SELECT U&'\\0041 ; COMMIT'", None),
    ('SELECT "commit" FROM t', None),
    ("-- COMMIT\nSELECT 1", None),
    ("/* outer /* inner */ COMMIT */ SELECT 1", None),
    ("SELECT date '2020-01-01', interval '1 day', 'x'::text", None),
    ("SELECT 1 AS é; SELECT 2", None),
    ("UPDATE res_partner SET name = 'x' WHERE false", None),
    ("INSERT INTO t (a) VALUES (1) ON CONFLICT DO NOTHING RETURNING a", None),
    ("DELETE FROM t WHERE a IN (SELECT a FROM u FOR UPDATE)", None),
    ("MERGE INTO t USING u ON t.a = u.a WHEN MATCHED THEN DELETE", None),
    ("WITH moved AS (DELETE FROM t RETURNING a) INSERT INTO u SELECT a FROM moved", None),
    ("EXPLAIN ANALYZE SELECT 1", None),
    ("SHOW statement_timeout", None),
    ("LOCK TABLE t IN SHARE MODE", None),
    ("SELECT pg_advisory_xact_lock(1), pg_catalog.pg_try_advisory_xact_lock_shared(1, 2)", None),
    ("SELECT current_setting('application_name'), nextval('s')", None),
    ("SELECT 1 AS é$$; COMMIT; SELECT 1 AS é$$", "statement 2: TransactionStmt controls"),
    ("SELECT 1 AS x$y; COMMIT", "statement 2: TransactionStmt"),
    ("SELECT $$;$$; ROLLBACK", "statement 2: TransactionStmt"),
    ("/* a /* b */ ; */ COMMIT", "statement 1: TransactionStmt"),
    ("-- ; \n COMMIT", "statement 1: TransactionStmt"),
    ("commit;", "statement 1: TransactionStmt"),
    ("END", "statement 1: TransactionStmt"),
    ("ABORT", "statement 1: TransactionStmt"),
    ("BEGIN", "statement 1: TransactionStmt"),
    ("START TRANSACTION", "statement 1: TransactionStmt"),
    ("SAVEPOINT a", "statement 1: TransactionStmt"),
    ("RELEASE SAVEPOINT a", "statement 1: TransactionStmt"),
    ("ROLLBACK TO SAVEPOINT a", "statement 1: TransactionStmt"),
    ("PREPARE TRANSACTION 'x'", "statement 1: TransactionStmt"),
    ("COMMIT PREPARED 'x'", "statement 1: TransactionStmt"),
    ("SET CONSTRAINTS ALL DEFERRED", "statement 1: ConstraintsSetStmt"),
    ("SET SESSION AUTHORIZATION DEFAULT", "statement 1: VariableSetStmt leaves state"),
    ("SET ROLE NONE", "statement 1: VariableSetStmt"),
    ("SET LOCAL work_mem = '1MB'", "statement 1: VariableSetStmt"),
    ("RESET ALL", "statement 1: VariableSetStmt"),
    ("DISCARD ALL", "statement 1: DiscardStmt"),
    ("PREPARE q AS SELECT 1", "statement 1: PrepareStmt"),
    ("EXECUTE q", "statement 1: ExecuteStmt"),
    ("DEALLOCATE ALL", "statement 1: DeallocateStmt"),
    ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", "statement 1: DeclareCursorStmt"),
    ("LISTEN bj", "statement 1: ListenStmt"),
    ("UNLISTEN *", "statement 1: UnlistenStmt"),
    ("NOTIFY bj", "statement 1: NotifyStmt acts outside"),
    ("LOAD 'auto_explain'", "statement 1: LoadStmt"),
    ("DO $$BEGIN PERFORM 1; END$$", "statement 1: DoStmt runs code"),
    ("CALL p()", "statement 1: CallStmt"),
    ("COPY t TO '/tmp/x'", "statement 1: CopyStmt"),
    ("CHECKPOINT", "statement 1: CheckPointStmt"),
    ("CREATE TEMP TABLE t (a int)", "statement 1: CreateStmt changes the database's schema"),
    ("CREATE TEMP TABLE t (a int) ON COMMIT DROP", "statement 1: CreateStmt"),
    ("CREATE FUNCTION f() RETURNS int RETURN 1", "statement 1: CreateFunctionStmt"),
    ("SELECT 1 INTO TEMP t", "statement 1: SELECT INTO changes"),
    ("EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1", "statement 1: CreateTableAsStmt"),
    ("ALTER SYSTEM SET work_mem = '1MB'", "statement 1: AlterSystemStmt"),
    ("GRANT ALL ON t TO public", "statement 1: GrantStmt"),
    ("TRUNCATE t", "statement 1: TruncateStmt"),
    ("SELECT set_config('role', 'x', false)", "statement 1: set_config() changes the session"),
    ('SELECT "set_config"(\'role\', \'x\', false)', "statement 1: set_config()"),
    ('SELECT "pg_catalog"."set_config"(\'a.b\', \'x\', true)', "statement 1: set_config()"),
    ("SELECT * FROM set_config('a.b', 'x', false)", "statement 1: set_config()"),
    ("SELECT 1 WHERE set_config('a.b', 'x', false) IS NULL", "statement 1: set_config()"),
    ("SELECT pg_advisory_lock(1)", "statement 1: pg_advisory_lock() takes or releases"),
    ("SELECT pg_catalog.pg_try_advisory_lock_shared(1, 2)", "statement 1: pg_try_advisory_"),
    ("SELECT pg_advisory_unlock_all()", "statement 1: pg_advisory_unlock_all()"),
    ("SELECT dblink_exec('host=x', 'COMMIT')", "statement 1: dblink_exec() connects"),
    ("SELECT * FROM public.dblink('host=x', 'SELECT 1') AS t(a int)", "statement 1: dblink()"),
    ("SELECT pg_terminate_backend(1)", "statement 1: pg_terminate_backend()"),
    ("SELECT query_to_xml('SELECT pg_advisory_lock(1)', true, true, '')",
     "statement 1: query_to_xml() runs SQL given as text"),
    ("SELECT pg_notify('bj', 'x')", "statement 1: pg_notify()"),
    ("SELECT pg_cancel_backend(1)", "statement 1: pg_cancel_backend() acts on other"),
    ("SELECT pg_read_file('/etc/passwd')", "statement 1: pg_read_file() reaches the server's"),
    ("SELECT lo_import('/etc/passwd')", "statement 1: lo_import() reaches the server's files"),
    ("SELECT * FROM ts_stat('SELECT 1')", "statement 1: ts_stat() runs SQL given as text"),
    ("SELECT pg_advisory_unlock_shared(1)", "statement 1: pg_advisory_unlock_shared() takes"),
    ("EXPLAIN ANALYZE SELECT set_config('a.b', 'x', false)", "statement 1: set_config()"),
    ("WITH x AS (SELECT pg_advisory_lock(1)) SELECT * FROM x", "statement 1: pg_advisory_lock"),
    ("SELECT 1; SELECT (SELECT set_config('a.b', 'x', false))", "statement 2: set_config()"),
    ("UPDATE pg_settings SET setting = 'x' WHERE name = 'work_mem'",
     "statement 1: UpdateStmt on pg_settings writes to PostgreSQL's catalogs"),
    ("WITH u AS (UPDATE pg_catalog.pg_settings SET setting = 'x' RETURNING 1) SELECT 1",
     "statement 1: UpdateStmt on pg_settings"),
    ("SELECT %s", "the SQL does not parse"),
    ("SELECT 'unterminated", "the SQL does not parse"),
    ("SELECT $$unterminated", "the SQL does not parse"),
]


@tagged("post_install", "-at_install")
class TestSqlGuard(BaseCase):
    def test_every_statement_kind_is_decided(self):
        """A kind of a newer pglast fails here until it is put in the table."""
        known = {name for name in dir(ast) if name.endswith("Stmt")}
        self.assertEqual(sorted(known - set(STATEMENTS)), [], "undecided statement kinds")
        self.assertEqual(sorted(set(STATEMENTS) - known), [], "kinds pglast does not know")
        self.assertLessEqual(ALLOWED, set(STATEMENTS))

    def test_statements(self):
        for sql, refusal in CASES:
            with self.subTest(sql=sql):
                if refusal is None:
                    check_statement(sql)
                else:
                    with self.assertRaises(UnsafeStatement) as caught:
                        check_statement(sql)
                    self.assertTrue(str(caught.exception).startswith(refusal),
                                    str(caught.exception))

    def test_refused_kinds_name_what_scripts_run(self):
        with self.assertRaisesRegex(UnsafeStatement, r"\(scripts run only SELECT, INSERT, "
                                                     r"UPDATE, DELETE, MERGE, EXPLAIN, SHOW "
                                                     r"and LOCK\)$"):
            check_statement("VACUUM")

    def test_function_names(self):
        for name, refused in [
            ("set_config", True), ("SET_CONFIG", True), ("dblink_connect_u", True),
            ("pg_advisory_lock", True), ("pg_advisory_unlock_shared", True),
            ("pg_try_advisory_lock", True), ("pg_advisory_xact_lock", False),
            ("pg_try_advisory_xact_lock_shared", False),
            ("pg_replication_origin_session_setup", True),
            ("current_setting", False), ("now", False), ("pg_sleep", False),
        ]:
            with self.subTest(name=name):
                self.assertEqual(bool(function_refusal(name)), refused)
