"""The SQL guard of scripts as a plain function (no database): every statement
kind PostgreSQL's parser knows is decided, a table of statements gets the
verdict it must, the names left for the catalog to judge are the ones called,
and text whose tree would overflow the parser's stack is refused before it is
parsed (proven in a child process, which such a text would kill)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from pglast import ast

from odoo.tests import BaseCase, tagged

from ..core import sql_guard
from ..core.sql_guard import (
    ALLOWED,
    MAX_NESTING,
    MAX_OPERATORS,
    STATEMENTS,
    UnsafeStatement,
    check_query,
    check_statement,
)

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
    ("UPDATE pg_settings SET setting = 'x' WHERE name = 'work_mem'",
     "statement 1: pg_settings is a relation of PostgreSQL's catalogs"),
    ("WITH u AS (UPDATE pg_catalog.pg_settings SET setting = 'x' RETURNING 1) SELECT 1",
     "statement 1: pg_catalog.pg_settings is a relation"),
    ("LOCK pg_catalog.pg_authid IN ACCESS EXCLUSIVE MODE", "statement 1: pg_catalog.pg_authid"),
    ("LOCK TABLE res_partner, pg_class", "statement 1: pg_class is a relation"),
    ("SELECT * FROM pg_authid FOR UPDATE", "statement 1: pg_authid is a relation"),
    ("SELECT * FROM pg_hba_file_rules", "statement 1: pg_hba_file_rules is a relation"),
    ("TABLE pg_file_settings", "statement 1: pg_file_settings"),
    ("SELECT 1 FROM res_partner p JOIN information_schema.tables t ON true",
     "statement 1: information_schema.tables"),
    ("SELECT * FROM pg_toast.pg_toast_2618", "statement 1: pg_toast.pg_toast_2618"),
    ("EXPLAIN SELECT 1 WHERE EXISTS (SELECT FROM pg_config)", "statement 1: pg_config"),
    ("SELECT 1; DELETE FROM res_partner USING pg_locks", "statement 2: pg_locks"),
    ("MERGE INTO t USING pg_class c ON false WHEN NOT MATCHED THEN DO NOTHING",
     "statement 1: pg_class"),
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

    def test_names_left_to_the_catalog(self):
        """Every function called and every field selected (``t.f`` calls
        ``f(t)``), outside the allowed volatile functions, with the number of
        the first statement naming it."""
        called = check_statement(
            "SELECT pg_catalog.set_config('a', 'b', true), \"Quoted\"(1), nextval('s'), "
            "t.row_to_json, (t).f FROM t; SELECT setseed(0.5), pg_advisory_xact_lock(1), "
            "count(*), p.name FROM res_partner p WHERE set_config('a', 'b', true) IS NULL")
        self.assertEqual(called.functions,
                         {"set_config": 1, "Quoted": 1, "setseed": 2, "count": 2})
        self.assertEqual(called.fields, {"row_to_json": 1, "f": 1, "name": 2})
        self.assertEqual(check_statement("SELECT 1 WHERE 1 IN (1, 2)"), ({}, {}))

    def test_queries_with_parameters(self):
        for query, params, text, with_placeholders, refusal in QUERIES:
            with self.subTest(query=query):
                sent = []

                # Binds this iteration's text and list; pylint: disable-next=dangerous-default-value
                def send(text=text, sent=sent):
                    sent.append(text)
                    return text

                if refusal is None:
                    check_query(query, params, send)
                else:
                    with self.assertRaises(UnsafeStatement) as caught:
                        check_query(query, params, send)
                    self.assertTrue(str(caught.exception).startswith(refusal),
                                    str(caught.exception))
                self.assertEqual(not sent, with_placeholders)

    def test_size_bounds(self):
        """At the bounds the text is parsed; past them it is refused, per
        statement; flat lists count nothing."""
        for sql, refused in [
            ("SELECT " + "+".join(["1"] * MAX_OPERATORS), False),
            ("SELECT " + "+".join(["1"] * (MAX_OPERATORS + 1)), True),
            (("SELECT " + "+".join(["1"] * MAX_OPERATORS) + ";") * 3, False),
            ("SELECT " + "(" * MAX_NESTING + "1" + ")" * MAX_NESTING, False),
            ("SELECT " + "(" * (MAX_NESTING + 1) + "1" + ")" * (MAX_NESTING + 1), True),
            ("SELECT 1 WHERE 1 IN (" + ", ".join(map(str, range(200_000))) + ")", False),
            ("SELECT 1 WHERE 'a' IN (" + ", ".join(["'a'"] * 200_000) + ")", False),
            ("INSERT INTO t VALUES " + ", ".join(["(1, NULL, true, DEFAULT)"] * 50_000), False),
            ("SELECT " + ", ".join(["t.a[1][2]"] * 50_000) + " FROM t", False),
        ]:
            with self.subTest(sql=sql[:60], length=len(sql)):
                if refused:
                    with self.assertRaisesRegex(UnsafeStatement, "more than the check parses"):
                        check_statement(sql)
                else:
                    check_statement(sql)


# (query, parameters, the text psycopg2 sends, whether the query is judged with
# its placeholders, the start of the refusal or None).  The text is judged
# when a placeholder is not an expression of its own (a value there could end
# a string or a comment) or a value is not a literal.
QUERIES = [
    ("SELECT id FROM res_partner WHERE id IN %s AND name = %s", [tuple(range(200_000)), "x"],
     None, True, None),
    ("SELECT set_config(%s, %s, false), %s::regclass, 100 %% 7",
     ["a", "b", "pg_authid"], None, True, None),
    ("SELECT %s, %s, %s, %s, %s", [None, True, 1.5, [1, [2]], b"x"], None, True, None),
    ("SELECT 1 /* %s */", ["*/; COMMIT; /*"], "SELECT 1 /* '*/; COMMIT; /*' */", False,
     "statement 2: TransactionStmt"),
    ("SELECT '%s'", ["x"], "SELECT ''x''", False, "the SQL does not parse"),
    ("SELECT $1 -- %s\n", ["x\n; COMMIT; --"], "SELECT $1 -- 'x\n; COMMIT; --'\n", False,
     "statement 2: TransactionStmt"),
    ('SELECT "a%s"', [1], 'SELECT "a1"', False, None),
    ("SELECT %s", [type("Text", (str,), {})("x")], "SELECT 'x'", False, None),
    ("UPDATE pg_settings SET setting = %s", ["x"], "UPDATE pg_settings SET setting = 'x'", False,
     "statement 1: pg_settings is a relation"),
    ("SELECT 1 WHERE 1 IN %s", [tuple(range(MAX_OPERATORS * 2))], None, True, None),
]


# SQL whose parse tree overflowed pglast's stack and killed the process
# (measured on pglast 7.22 with an 8 MB stack: from about 16,000 UNION
# branches, 31,000 chained operators, 37,000 casts, 26,000 joins), then the
# worst text within the bounds.  Each runs in the main thread and in a thread
# with a 2 MB stack, the smallest an Odoo thread gets.
CRASHING = {
    "union": "SELECT count(*) FROM (" + " UNION ALL ".join(
        f"SELECT {i}" for i in range(20_000)) + ") t",
    "concatenation": "SELECT " + " || ".join(["'a'"] * 40_000),
    "addition": "SELECT " + "+".join(["1"] * 35_000),
    "casts": "SELECT 1" + "::int" * 40_000,
    "joins": "SELECT 1 FROM t" + " JOIN t ON true" * 30_000,
    "json path": "SELECT x" + "->'a'" * 40_000,
    "IS NULL": "SELECT 1" + " IS NULL" * 40_000,
    "subqueries": "SELECT " + "(SELECT " * 3_000 + "1" + ")" * 3_000,
    "calls": "SELECT " + "abs(" * 5_000 + "1" + ")" * 5_000,
    "arrays": "SELECT ARRAY" + "[" * 9_000 + "1" + "]" * 9_000,
    "bulk insert": "INSERT INTO res_partner_category (name) " + " UNION ALL ".join(
        ["SELECT '{\"en_US\": \"t0\"}'::jsonb"] * 17_000),
}
WITHIN = {
    "operators at the bound": "SELECT " + "+".join(["1"] * MAX_OPERATORS),
    "unions at the bound": " UNION ".join(["SELECT 1"] * (MAX_OPERATORS // 2)),
    "subqueries at the bound, operators inside": (
        "SELECT " + "(SELECT " * (MAX_NESTING - 1) + "+".join(["1"] * (MAX_OPERATORS - MAX_NESTING))
        + ")" * (MAX_NESTING - 1)),
}
_CHILD = textwrap.dedent("""
    import importlib.util, json, sys, threading
    spec = importlib.util.spec_from_file_location("sql_guard", sys.argv[1])
    guard = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(guard)
    texts = json.load(sys.stdin)
    verdicts = {}
    def judge(where):
        for name, sql in texts.items():
            try:
                guard.check_statement(sql)
                verdicts[f"{where}: {name}"] = None
            except guard.UnsafeStatement as error:
                verdicts[f"{where}: {name}"] = str(error)
    judge("main thread")
    threading.stack_size(2 * 1024 * 1024)
    thread = threading.Thread(target=judge, args=("2 MB thread",))
    thread.start()
    thread.join()
    print(json.dumps(verdicts))
""")


@tagged("post_install", "-at_install")
class TestSqlGuardDepth(BaseCase):
    def judge_in_a_child(self, texts):
        """The verdicts of a child process on ``texts``; it must survive them."""
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, str(Path(sql_guard.__file__))],
            input=json.dumps(texts), capture_output=True, text=True, timeout=600, check=False)
        self.assertEqual(child.returncode, 0, f"the parser crashed: {child.stderr[-500:]}")
        return json.loads(child.stdout)

    def test_trees_too_deep_are_refused_before_parsing(self):
        verdicts = self.judge_in_a_child(CRASHING)
        self.assertEqual(len(verdicts), 2 * len(CRASHING))
        for name, verdict in verdicts.items():
            with self.subTest(name):
                self.assertRegex(verdict or "", r"^statement 1: .* more than the check parses "
                                                 r"safely")

    def test_the_worst_text_within_the_bounds_parses(self):
        verdicts = self.judge_in_a_child(WITHIN)
        self.assertEqual(verdicts, dict.fromkeys(verdicts), "parsed and allowed")
        self.assertEqual(len(verdicts), 2 * len(WITHIN))
