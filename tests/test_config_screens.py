from odoo.exceptions import AccessError, ValidationError
from odoo.tests import Form, tagged

from .common import BjApiSyncCase

# The original's FAQ ("How do I handle different date formats?"), as written.
FAQ_DATE_SNIPPET = """from datetime import datetime

def convert_date(date_string):
    # Parse MM/DD/YYYY format
    dt = datetime.strptime(date_string, '%m/%d/%Y')
    # Return Odoo format YYYY-MM-DD
    return dt.strftime('%Y-%m-%d')
"""


@tagged("post_install", "-at_install")
class TestConfigScreenDefaults(BjApiSyncCase):
    """A safe, clear form: a new In endpoint is not open, and says so when it is."""

    def new_in_values(self, **values):
        return {
            "name": "Documented setup",
            "request_type": "in",
            "model_id": self.partner_model.id,
            "endpoint": "documented-setup",
            "run_as_user_id": self.integration_user.id,
            **values,
        }

    def test_new_in_defaults_to_a_generated_bearer_token(self):
        config = self.env["bj.api.sync.config"].create(self.new_in_values())
        self.assertEqual(config.authorization_type, "bearer_token")
        self.assertGreaterEqual(len(config.bearer_token), 40)
        other = self.env["bj.api.sync.config"].create(
            self.new_in_values(endpoint="documented-setup-2"))
        self.assertNotEqual(other.bearer_token, config.bearer_token)

    def test_explicit_authorization_is_kept(self):
        config = self.env["bj.api.sync.config"].create(
            self.new_in_values(authorization_type="no_auth"))
        self.assertEqual(config.authorization_type, "no_auth")
        self.assertFalse(config.bearer_token)
        given = self.env["bj.api.sync.config"].create(self.new_in_values(
            endpoint="given-token", authorization_type="bearer_token", bearer_token="abc"))
        self.assertEqual(given.bearer_token, "abc")

    def test_out_defaults_to_no_auth(self):
        config = self.make_config(request_type="out")
        self.assertEqual(config.authorization_type, "no_auth")
        self.assertFalse(config.bearer_token)

    def test_form_token_shown_until_saved(self):
        with Form(self.env["bj.api.sync.config"]) as form:
            form.name = "Contacts in"
            form.request_type = "in"
            self.assertEqual(form.authorization_type, "bearer_token")
            token = form.bearer_token
            self.assertGreaterEqual(len(token), 40)
            form.request_type = "out"
            self.assertEqual(form.authorization_type, "no_auth")
            self.assertFalse(form.bearer_token)
            form.request_type = "in"
            form.model_id = self.partner_model
            form.endpoint = "contacts-form"
            form.run_as_user_id = self.integration_user
            token = form.bearer_token
        self.assertEqual(form.record.bearer_token, token)
        # Saved tokens are masked: the second Bearer Token node of the form.
        arch = self.env["bj.api.sync.config"].get_views([(False, "form")])["views"]["form"]["arch"]
        self.assertIn('name="bearer_token" password="True" invisible="authorization_type != '
                      "'bearer_token' or not id\"", arch)

    def test_generate_token_shows_the_new_token_once(self):
        config = self.make_config()
        action = config.action_generate_bearer_token()
        self.assertEqual(config.authorization_type, "bearer_token")
        self.assertIn(config.bearer_token, action["params"]["message"])
        self.assertTrue(action["params"]["sticky"])

    def test_no_auth_warning_for_write_methods(self):
        config = self.make_config(http_method_ids=[(6, 0, self.method_get.ids)])
        self.assertFalse(config.open_to_writes)
        for method in (self.method_post, self.method_put, self.method_delete):
            config.http_method_ids = self.method_get | method
            self.assertTrue(config.open_to_writes, method.name)
        config.authorization_type = "basic_auth"
        self.assertFalse(config.open_to_writes)
        out = self.make_config(request_type="out")
        self.assertFalse(out.open_to_writes)


@tagged("post_install", "-at_install")
class TestConfigScreenLines(BjApiSyncCase):
    def test_new_line_is_plain(self):
        config = self.make_partner_config()
        line = self.env["bj.api.sync.config.line"].create({
            "config_id": config.id, "field_id": self.partner_field("website").id,
        })
        self.assertEqual(line.value_type, "plain")

    def test_duplicate_external_keys_refused(self):
        config = self.make_partner_config()
        with self.assertRaisesRegex(ValidationError, "share the External API Key 'email'"):
            self.env["bj.api.sync.config.line"].create({
                "config_id": config.id, "field_id": self.partner_field("website").id,
                "external_key": "email",
            })

    def test_a_line_without_key_exchanges_its_field_name(self):
        config = self.make_partner_config()
        config.line_ids.filtered(lambda line: line.external_key == "phone").external_key = False
        with self.assertRaisesRegex(ValidationError, "share the External API Key 'phone'"):
            self.env["bj.api.sync.config.line"].create({
                "config_id": config.id, "field_id": self.partner_field("mobile").id,
                "external_key": "phone",
            })

    def test_execute_scripts_exchange_no_key(self):
        config = self.make_partner_config()
        self.env["bj.api.sync.config.line"].create({
            "config_id": config.id, "field_id": self.partner_field("comment").id,
            "external_key": "email", "value_type": "python_plain", "script_mode": "execute",
            "python_script": "request_data.pop('unused', None)",
        })
        self.assertEqual(len(config.line_ids), 5)

    def test_script_dialog_check(self):
        lines = self.env["bj.api.sync.config.line"]

        def error(script, mode):
            return lines.check_python_script(script, mode)["error"]

        self.assertFalse(error("(request_data.get('a') or '').strip()", "evaluate"))
        self.assertFalse(error("value = 1\nresult = value + 1", "evaluate"))
        self.assertIn("SyntaxError", error("def (", "evaluate"))
        self.assertIn("SyntaxError", error("result = ", "execute"))
        # Texts that would exhaust the parser or the checker are answered, not raised.
        self.assertIn("nests too deeply", error("1+" * 30_000 + "1", "evaluate"))
        self.assertIn("nests too deeply", error("-" * 60_000 + "1", "evaluate"))
        self.assertIn("at most 65536 characters", error("x = 1\n" * 20_000, "execute"))

    def test_script_dialog_warns_of_an_evaluate_script_without_result(self):
        """The original's FAQ date snippet, pasted as written, sets no result."""
        lines = self.env["bj.api.sync.config.line"]
        for script, mode, warned in (
            (FAQ_DATE_SNIPPET, "evaluate", True),
            (FAQ_DATE_SNIPPET, "execute", False),
            (FAQ_DATE_SNIPPET + "\nresult = convert_date(request_data['date'])", "evaluate",
             False),
            ("record.name", "evaluate", False),
            ("value = record.name.upper()", "evaluate", True),
            ("def (", "evaluate", False),  # an error, not a warning
        ):
            with self.subTest(script=script[-40:], mode=mode):
                answer = lines.check_python_script(script, mode)
                self.assertEqual(bool(answer["warning"]), warned, answer)
                if warned:
                    self.assertFalse(answer["error"])
                    self.assertIn("never set 'result'", answer["warning"])

    def test_script_dialog_check_is_for_script_authors(self):
        """Compiling costs the server time: only those who write scripts ask."""
        for user in (self.sync_manager, self.sync_user, self.integration_user):
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                self.env["bj.api.sync.config.line"].with_user(user).check_python_script(
                    "result = 1", "evaluate")


@tagged("post_install", "-at_install")
class TestConfigDuplicate(BjApiSyncCase):
    def test_copy_in_gets_a_free_endpoint_and_a_new_token(self):
        config = self.make_partner_config(endpoint="contacts", authorization_type="bearer_token",
                                          bearer_token="original")
        first = config.copy()
        second = config.copy()
        self.assertEqual((first.endpoint, second.endpoint), ("contacts-copy", "contacts-copy-2"))
        self.assertEqual(first.name, f"{config.name} (copy)")
        self.assertEqual(len(first.line_ids), 4)
        self.assertNotIn(first.bearer_token, (False, "original", second.bearer_token))
        self.assertEqual(config.copy({"endpoint": "chosen"}).endpoint, "chosen")

    def test_copy_out(self):
        config = self.make_partner_config(request_type="out")
        copy = config.copy()
        self.assertEqual(copy.request_url, config.request_url)
        self.assertEqual(copy.request_type, "out")


@tagged("post_install", "-at_install")
class TestScreenWording(BjApiSyncCase):
    """Logs and jobs: no summed codes, model names, plurals, clear dialog buttons."""

    def test_codes_and_attempts_are_not_summed(self):
        for model, names in (("bj.api.log", ("status_code", "attempt")),
                             ("bj.api.sync.job", ("attempt", "last_status_code"))):
            fields = self.env[model].fields_get(list(names), ["aggregator"])
            for name in names:
                self.assertNotIn("aggregator", fields[name], f"{model}.{name}")
        duration = self.env["bj.api.log"].fields_get(["duration_ms"], ["aggregator"])
        self.assertEqual(duration["duration_ms"]["aggregator"], "avg")

    def test_model_names(self):
        log = self.env["bj.api.log"].new({"res_model": "res.partner"})
        self.assertEqual(log.res_model_name, "Contact")
        job = self.env["bj.api.sync.job"].new({"res_model": "res.country"})
        self.assertEqual(job.res_model_name, "Country")
        gone = self.env["bj.api.log"].new({"res_model": "x_gone.model"})
        self.assertEqual(gone.res_model_name, "x_gone.model")

    def test_dead_summary_plurals(self):
        jobs = self.env["bj.api.sync.job"]
        one = jobs.new({"last_error": "503"})
        self.assertIn("1 outbound delivery failed for good and waits", one._bj_dead_summary())
        two = one | jobs.new({"last_error": "503"})
        self.assertIn("2 outbound deliveries failed for good and wait", two._bj_dead_summary())

    def test_confirmations_name_their_action(self):
        job_form = self.env["bj.api.sync.job"].get_views([(False, "form")])["views"]["form"]
        self.assertIn('confirm-label="Cancel Delivery" cancel-label="Keep It"', job_form["arch"])
        config_list = self.env["bj.api.sync.config"].get_views([(False, "list")])["views"]["list"]
        self.assertIn('name="action_rotate_encryption_key"', config_list["arch"])
        self.assertIn('confirm="Every password, token and secret', config_list["arch"])
