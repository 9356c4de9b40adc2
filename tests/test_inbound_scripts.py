from odoo.exceptions import ValidationError
from odoo.tests import tagged

from .common import BjApiHttpCase


def script(mode, code, value_type="python_plain"):
    return {"value_type": value_type, "script_mode": mode, "python_script": code}


@tagged("post_install", "-at_install")
class TestInboundScripts(BjApiHttpCase):
    """Python Script lines (Evaluate and Execute) and their sandbox, through the API."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.vip = cls.env["res.partner.category"].create({"name": "Script VIP"})
        cls.config = cls.make_config(endpoint="script-partners", lines=[
            ("id", "res_id", {"is_identifier": True}),
            # Execute runs first and normalises the payload for the lines after it.
            ("function", "normalise", script(
                "execute",
                "if 'email' in request_data:\n"
                "    request_data['email'] = (request_data['email'] or '').strip().lower()\n"
                "if not record:\n"
                "    request_data.setdefault('tag_names', [])",
            )),
            ("email", "email", None),
            ("name", "name", None),
            ("ref", "code", script("evaluate", "(request_data.get('code') or '').upper()")),
            ("comment", "notes", script(
                "evaluate",
                "words = (request_data.get('name') or '').split()\n"
                "result = ' / '.join(words)",
            )),
            ("category_id", "tag_names", script(
                "evaluate",
                "env['res.partner.category'].search([('name', 'in', request_data['tag_names'])])",
                value_type="relational_python",
            )),
            ("street", "who", script(
                "evaluate",
                "'%s@%s su=%s' % (env.uid, env.company.id, env.su) if not record "
                "else record.street",
            )),
        ])

    def test_a_partial_put_changes_only_what_it_sends_whatever_the_scripts(self):
        """The issue's unguarded Execute normaliser, and a script that makes up a
        key: a PUT of another key changes neither field; a PUT of the key
        changes it, normalised."""
        self.make_config(endpoint="unguarded-partners", lines=[
            ("id", "res_id", {"is_identifier": True}),
            ("function", "normalise", script(
                "execute",
                "request_data['email'] = (request_data.get('email') or '').strip().lower()\n"
                "request_data['name'] = request_data.get('name') or ''",
            )),
            ("email", "email", None),
            ("name", "name", None),
            ("phone", "phone", None),
        ])
        created = self.assertApiSuccess(self.api("POST", "unguarded-partners", body={
            "name": "Ada Lovelace", "email": "ADA@Example.COM"}), 201)
        partner = self.env["res.partner"].browse(created["res_id"])
        answer = self.assertApiSuccess(self.api(
            "PUT", "unguarded-partners", partner.id, body={"phone": "+1 555 0100"}))
        self.assertEqual((answer["email"], answer["name"], answer["phone"]),
                         ("ada@example.com", "Ada Lovelace", "+1 555 0100"))
        answer = self.assertApiSuccess(self.api(
            "PUT", "unguarded-partners", partner.id, body={"email": " GRACE@Example.COM "}))
        self.assertEqual((answer["email"], answer["name"]), ("grace@example.com", "Ada Lovelace"))

    def line(self, key):
        return self.config.line_ids.filtered(lambda line: line.external_key == key)

    def test_scripts_transform_the_payload(self):
        created = self.assertApiSuccess(self.api("POST", "script-partners", body={
            "name": "Ada Lovelace", "email": "  ADA@Example.COM ", "code": "ab-12",
            "tag_names": ["Script VIP"],
        }), 201)
        partner = self.env["res.partner"].browse(created["res_id"])
        self.assertEqual(partner.email, "ada@example.com", "Execute changed request_data")
        self.assertEqual(partner.ref, "AB-12", "Evaluate of an expression")
        self.assertIn("Ada / Lovelace", str(partner.comment), "Evaluate with result")
        self.assertEqual(partner.category_id, self.vip, "Relational with Python Script")
        self.assertFalse(partner.function, "Execute assigns nothing")
        # Scripts run as the Run As User in the configuration's company, without
        # superuser rights.
        self.assertEqual(partner.street,
                         f"{self.integration_user.id}@{self.config.company_id.id} su=False")

    def test_scripts_obey_the_run_as_users_access_rights(self):
        self.line("code").python_script = "env['ir.config_parameter'].get_param('web.base.url')"
        response = self.api("POST", "script-partners", body={"name": "Snooper", "code": "x"})
        self.assertApiError(response, 400, "ir.config_parameter",
                            line_id=self.line("code").id)
        self.assertFalse(self.env["res.partner"].search([("name", "=", "Snooper")]))

    def test_answers_show_the_stored_values(self):
        partner = self.env["res.partner"].create(
            {"name": "Grace Hopper", "ref": "gh", "function": "Admiral"})
        row = self.assertApiSuccess(self.api("GET", "script-partners", partner.id))
        self.assertEqual(row["notes"], None, "the field, not the import script's value")
        self.assertEqual(row["code"], "gh")
        self.assertNotIn("normalise", row, "an Execute line exchanges no key")

    def assertScriptRefused(self, code, message, mode="evaluate"):
        self.line("code").python_script = code
        self.line("code").script_mode = mode
        response = self.api("POST", "script-partners", body={"name": "Sandboxed", "code": "x"})
        self.assertApiError(response, 400, message, line_id=self.line("code").id)
        self.assertFalse(self.env["res.partner"].search([("name", "=", "Sandboxed")]))
        log = self.get_logs(self.config)[-1:]
        self.assertEqual(log.status_code, 400)
        self.assertIn("code", log.error_message)

    def test_script_error_is_400_naming_the_line_and_logged(self):
        self.assertScriptRefused("1 / 0", "division by zero")
        self.assertScriptRefused("request_data['missing']", "missing")
        self.assertScriptRefused("raise UserError('bad code')", "bad code", mode="execute")

    def test_sandbox_escapes_are_refused(self):
        # Refused on save, in the Script dialog (tests/test_script_sandbox.py has more).
        for code, message in (("import os\nresult = os.getcwd()",
                               "'os' is not allowed: scripts may import only base64, datetime"),
                              ("().__class__.__bases__[0].__subclasses__()", "dunder"),
                              ("'{0.env}'.format(record)", "f-strings")):
            with self.subTest(code=code), self.assertRaisesRegex(ValidationError, message):
                self.line("code").python_script = code
        # Refused when run.
        self.assertScriptRefused("open('/etc/passwd').read()", "open")
        self.assertScriptRefused("eval('1')", "eval")
