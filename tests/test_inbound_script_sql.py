"""Inbound requests whose script's SQL would end the request's transaction or
leave state on its connection: a JSON 400 naming the line, nothing written
(not even what the script wrote before), the connection as it was."""

from odoo.tests import tagged

from .common import BjApiHttpCase

REFUSED = r"failed at line 2: UnsafeStatement: statement \d+: "
LEFT_BEHIND = r" failed: UnsafeStatement: the script's SQL "

# (vector, SQL the script runs after writing a contact, what the 400 says)
VECTORS = [
    ("non-ASCII identifier before a dollar sign", "SELECT 1 AS é$$; COMMIT; SELECT 1 AS é$$",
     REFUSED + "TransactionStmt controls the transaction"),
    ("named dollar tag in an identifier", "SELECT 1 AS é$bj$; ROLLBACK; SELECT 1 AS é$bj$",
     REFUSED + "TransactionStmt"),
    ("comment hiding the start of a string", "SELECT 1 -- '\n; COMMIT; SELECT '1'",
     REFUSED + "TransactionStmt"),
    ("quoted set_config", "SELECT \"set_config\"('application_name', 'bj', false)",
     REFUSED + r"set_config\(\) changes the session's settings"),
    ("qualified set_config in FROM",
     "SELECT * FROM pg_catalog.set_config('work_mem', '9MB', false)", REFUSED + r"set_config\(\)"),
    ("settings through pg_settings", "UPDATE pg_settings SET setting = 'bj' "
                                     "WHERE name = 'application_name'",
     REFUSED + "UpdateStmt on pg_settings"),
    ("DO block", "DO $$BEGIN PERFORM pg_advisory_lock(4711); END$$", REFUSED + "DoStmt"),
    ("session advisory lock", "SELECT pg_advisory_lock(4711)",
     REFUSED + r"pg_advisory_lock\(\) takes or releases an advisory lock held by the session"),
    ("SQL given as text", "SELECT query_to_xml('SELECT pg_advisory_lock(4711)', true, true, '')",
     REFUSED + r"query_to_xml\(\) runs SQL given as text"),
    ("dblink", "SELECT dblink_exec('dbname=postgres', 'SELECT 1')", REFUSED + r"dblink_exec\(\)"),
    ("prepared statement", "PREPARE bj_q AS SELECT 1", REFUSED + "PrepareStmt"),
    ("LISTEN", "LISTEN bj_channel", REFUSED + "ListenStmt"),
    ("cursor held past the transaction", "DECLARE bj_c CURSOR WITH HOLD FOR SELECT 1",
     REFUSED + "DeclareCursorStmt"),
    ("temporary table", "CREATE TEMP TABLE bj_t (a int)", REFUSED + "CreateStmt"),
    ("temporary table through SELECT INTO", "SELECT 1 INTO TEMP bj_t", REFUSED + "SELECT INTO"),
    ("SET LOCAL", "SET LOCAL application_name = 'bj'", REFUSED + "VariableSetStmt"),
    ("does not parse", "SELECT 'unterminated", r"failed at line 2: UnsafeStatement: the SQL "
                                               "does not parse"),
    # Functions of the database that the guard cannot see into: the check after the script.
    ("session lock in a database function", "SELECT bj_take_session_lock()",
     LEFT_BEHIND + r"left a session advisory lock on the connection \(released now\)"),
    ("setting in a database function", "SELECT bj_change_setting()",
     LEFT_BEHIND + r"changed the setting\(s\) application_name"),
]

# The state of the connection that must outlive no request.
CONNECTION = """
    SELECT current_setting('application_name'), current_setting('work_mem'),
           (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()),
           (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()),
           (SELECT count(*) FROM pg_prepared_statements),
           (SELECT count(*) FROM pg_listening_channels()),
           (SELECT count(*) FROM pg_cursors WHERE is_holdable),
           pg_current_xact_id()
"""


@tagged("post_install", "-at_install")
class TestInboundScriptSql(BjApiHttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.config = cls.make_config(endpoint="script-sql", lines=[
            ("id", "res_id", {"is_identifier": True}),
            ("name", "name", None),
            ("ref", "code", {"value_type": "python_plain", "script_mode": "execute",
                             "python_script": "pass"}),
        ])
        cls.line = cls.config.line_ids.filtered(lambda line: line.external_key == "code")
        # In the test's transaction, which the requests share.
        cls.env.cr.execute("""
            CREATE FUNCTION bj_take_session_lock() RETURNS void LANGUAGE plpgsql
                AS $$BEGIN PERFORM pg_advisory_lock(4711); END$$;
            CREATE FUNCTION bj_change_setting() RETURNS void LANGUAGE plpgsql
                AS $$BEGIN PERFORM set_config('application_name', 'bj', false); END$$;
        """)

    def connection(self):
        self.env.cr.execute(CONNECTION)
        return self.env.cr.fetchone()

    def post(self, name, sql):
        self.line.python_script = (
            "env['res.partner'].create({'name': 'bj written first'})\n"
            f"env.cr.execute({sql!r})"
        )
        return self.api("POST", "script-sql", body={"name": name, "code": "x"})

    def test_each_vector_answers_400_writes_nothing_and_leaves_the_connection(self):
        before = self.connection()
        for vector, sql, message in VECTORS:
            with self.subTest(vector=vector):
                response = self.post(f"Vector {vector}", sql)
                body = self.assertApiError(response, 400, message, line_id=self.line.id)
                self.assertIn("'code'", body["message"], "the message names the line")
                self.assertFalse(self.env["res.partner"].search(
                    [("name", "in", ["bj written first", f"Vector {vector}"])]))
                self.assertEqual(self.connection(), before)

    def test_transaction_scoped_sql_runs(self):
        """What lasts only as long as the request's transaction stays allowed."""
        before = self.connection()
        response = self.post("Kept", "SELECT pg_advisory_xact_lock(4711); "
                                     "LOCK TABLE res_partner IN ROW EXCLUSIVE MODE; "
                                     "SELECT * FROM res_partner WHERE id = -1 FOR UPDATE")
        self.assertApiSuccess(response, 201)
        self.assertEqual(self.env["res.partner"].search_count([("name", "=", "bj written first")]),
                         1)
        # The same transaction, holding the lock until it ends; nothing else.
        settings, locks, others, transaction = 2, 2, slice(3, -1), -1
        after = self.connection()
        self.assertEqual(after[:settings], before[:settings])
        self.assertEqual(after[locks], before[locks] + 1)
        self.assertEqual(after[others], before[others])
        self.assertEqual(after[transaction], before[transaction])
