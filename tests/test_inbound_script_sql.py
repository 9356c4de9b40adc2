"""Inbound requests whose script's SQL would end the request's transaction or
leave state on its connection: a JSON 400 naming the line, nothing written
(not even what the script wrote before), the connection as it was."""

import logging

from odoo.tests import tagged

from .common import BjApiHttpCase

REFUSED = r"failed at line 2: UnsafeStatement: statement \d+: "
VOLATILE = r"{}\(\) is VOLATILE in PostgreSQL's catalog"
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
     REFUSED + VOLATILE.format("set_config")),
    ("qualified set_config in FROM",
     "SELECT * FROM pg_catalog.set_config('work_mem', '9MB', false)",
     REFUSED + VOLATILE.format("set_config")),
    ("settings through pg_settings", "UPDATE pg_settings SET setting = 'bj' "
                                     "WHERE name = 'application_name'",
     REFUSED + "pg_settings is a relation of PostgreSQL's catalogs"),
    ("catalog locked", "LOCK pg_catalog.pg_authid IN ACCESS EXCLUSIVE MODE",
     REFUSED + "pg_catalog.pg_authid is a relation of PostgreSQL's catalogs"),
    ("catalog rows locked", "SELECT 1 FROM pg_class FOR UPDATE", REFUSED + "pg_class is a "),
    ("server files through a catalog view", "SELECT * FROM pg_hba_file_rules",
     REFUSED + "pg_hba_file_rules is a "),
    ("random seed left on the connection", "SELECT setseed(0.42)",
     REFUSED + VOLATILE.format("setseed")),
    ("backup mode left on the connection", "SELECT pg_backup_start('bj', true)",
     REFUSED + VOLATILE.format("pg_backup_start")),
    ("sequence moved outside the transaction", "SELECT setval('res_partner_id_seq', 1)",
     REFUSED + VOLATILE.format("setval")),
    ("an extension's setting", "SELECT set_limit(0.1)", REFUSED + VOLATILE.format("set_limit")),
    ("more operators than the bound", "SELECT " + "+".join(["1"] * 2_500),
     REFUSED + "has more than 2000 operators and keywords"),
    ("DO block", "DO $$BEGIN PERFORM pg_advisory_lock(4711); END$$", REFUSED + "DoStmt"),
    ("session advisory lock", "SELECT pg_advisory_lock(4711)",
     REFUSED + VOLATILE.format("pg_advisory_lock")),
    ("SQL given as text", "SELECT query_to_xml('SELECT pg_advisory_lock(4711)', true, true, '')",
     REFUSED + VOLATILE.format("query_to_xml")),
    # Not installed: PostgreSQL does not know it.
    ("dblink", "SELECT dblink_exec('dbname=postgres', 'SELECT 1')",
     r"failed at line 2: UndefinedFunction: function dblink_exec"),
    ("prepared statement", "PREPARE bj_q AS SELECT 1", REFUSED + "PrepareStmt"),
    ("LISTEN", "LISTEN bj_channel", REFUSED + "ListenStmt"),
    ("cursor held past the transaction", "DECLARE bj_c CURSOR WITH HOLD FOR SELECT 1",
     REFUSED + "DeclareCursorStmt"),
    ("temporary table", "CREATE TEMP TABLE bj_t (a int)", REFUSED + "CreateStmt"),
    ("temporary table through SELECT INTO", "SELECT 1 INTO TEMP bj_t", REFUSED + "SELECT INTO"),
    ("SET LOCAL", "SET LOCAL application_name = 'bj'", REFUSED + "VariableSetStmt"),
    ("does not parse", "SELECT 'unterminated", r"failed at line 2: UnsafeStatement: the SQL "
                                               "does not parse"),
    # Functions of the database that say they change nothing (STABLE) and do:
    # the check after the script.
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
            CREATE FUNCTION bj_take_session_lock() RETURNS void LANGUAGE plpgsql STABLE
                AS $$BEGIN PERFORM pg_advisory_lock(4711); END$$;
            CREATE FUNCTION bj_change_setting() RETURNS void LANGUAGE plpgsql STABLE
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

    def test_failed_sql_is_the_scripts_error(self):
        """A statement that fails, caught by the script or of a kind Odoo does not
        retry (a sequence never used on this connection), is the script's error: a
        JSON 400 naming the line, nothing written, no ERROR line."""
        self.env.cr.execute("CREATE SEQUENCE bj_never_used_seq")
        records = self.capture_server_log()
        for name, code in (
            ("caught", "try:\n    env.cr.execute('SELECT 1 / 0')\nexcept Exception:\n    pass"),
            ("caught in the ORM", "try:\n    env['res.partner'].search([('id', '=', 'x')])\n"
                                  "except Exception:\n    pass"),
            ("not retried", "env.cr.execute(\"SELECT currval('bj_never_used_seq')\")"),
        ):
            with self.subTest(script=name):
                self.line.python_script = (
                    f"env['res.partner'].create({{'name': 'bj written first'}})\n{code}")
                response = self.api("POST", "script-sql", body={"name": name, "code": "x"})
                self.assertApiError(response, 400, "Script of line 'code'", line_id=self.line.id)
                self.assertFalse(self.env["res.partner"].search(
                    [("name", "in", ["bj written first", name])]))
        self.assertFalse([record for record in records if record.levelno >= logging.ERROR])

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

    def test_orm_calls_of_a_script_pass_the_check(self):
        """What scripts commonly ask of the ORM runs on the checked cursor: no
        catalog relation, no volatile function outside the reviewed ones."""
        sequences = self.env["ir.sequence"].create([
            {"name": "bj standard", "code": "bj.standard", "implementation": "standard"},
            {"name": "bj no gap", "code": "bj.no_gap", "implementation": "no_gap"},
        ])
        self.line.python_script = "\n".join([
            "Partner = env['res.partner']",
            "partner = Partner.create({'name': 'bj orm', 'email': 'bj@example.com'})",
            "found = Partner.search([('name', '=', 'bj orm'), ('email', 'ilike', 'example')])",
            "if found != partner or not found.read(['name', 'email', 'display_name']):",
            "    raise UserError('not found')",
            "found.write({'email': 'bj2@example.com', 'ref': 'bj-ref'})",
            "Partner.create([{'name': 'bj gone ' + str(n)} for n in range(3)]).unlink()",
            "Partner.search_count([('id', 'in', list(range(1, 20000)))])",
            "Partner.read_group([('name', 'like', 'bj')], ['email'], ['email'])",
            "Sequence = env['ir.sequence'].sudo()",
            "found.write({'ref': Sequence.next_by_code('bj.standard')",
            "             + Sequence.next_by_code('bj.no_gap')})",
            "found.message_post(body='bj note')",
            "found.message_subscribe(partner_ids=env.user.partner_id.ids)",
        ])
        response = self.api("POST", "script-sql", body={"name": "ORM", "code": "x"})
        self.assertApiSuccess(response, 201)
        partner = self.env["res.partner"].search([("name", "=", "bj orm")])
        self.assertEqual(partner.ref, "11")
        self.assertEqual(partner.email, "bj2@example.com")
        self.assertIn("bj note", partner.message_ids.mapped("body")[0])
        self.assertEqual(sequences.mapped("number_next_actual"), [2, 2])
