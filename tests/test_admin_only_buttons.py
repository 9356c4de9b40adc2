"""The buttons of a configuration that only Settings administrators may change:
every ``action_*`` method of bj.api.sync.config that uses its credentials, runs
it or changes it is refused to an API Sync Manager as a write would be, with the
reason; the others are listed here as harmless, with why.  A new button fails
``test_every_button_is_decided`` until it is decided."""

from lxml import etree

from odoo.exceptions import AccessError
from odoo.tests import tagged

from .common import BjOutboundCase, generated_secret

# Allowed to a manager on any configuration they can read, and why that is harmless.
HARMLESS = {
    "action_view_logs": "opens the Logs list: bj.api.log's access rules decide what it "
                        "shows, as from the menu",
    "action_view_jobs": "opens the Queue list: bj.api.sync.job's access rules decide what "
                        "it shows, as from the menu",
    "action_rotate_encryption_key": "re-encrypts every configuration's secrets under a new "
                                    "key: reveals, changes and runs nothing of this one",
}
# Refused, with what the refusal names.
REFUSED = {
    "action_test_connection": "Test Connection uses the configuration's credentials",
    "action_generate_bearer_token": "Only Settings administrators may change configuration",
    "action_create_trigger_action": "This action is reserved for the group",
    "action_archive": "Only Settings administrators may change configuration",
    "action_unarchive": "Only Settings administrators may change configuration",
}


@tagged("post_install", "-at_install")
class TestAdminOnlyButtons(BjOutboundCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        token = generated_secret()
        # Administrators' as a whole: they run as another user than the manager.
        cls.configs = {
            "out": cls.make_out_config(
                name="Admin out", authorization_type="bearer_token", bearer_token=token,
                trigger_action_model_id=cls.env["ir.model"]._get_id("ir.actions.server")),
            "in": cls.make_partner_config(
                name="Admin in", authorization_type="bearer_token", bearer_token=token),
        }
        cls.env["ir.config_parameter"].set_param("web.base.url", cls.server.url)

    def buttons(self):
        model = type(self.env["bj.api.sync.config"])
        return {name for name in dir(model)
                if name.startswith("action_") and callable(getattr(model, name))}

    def test_every_button_is_decided(self):
        self.assertFalse(set(HARMLESS) & set(REFUSED))
        self.assertEqual(self.buttons(), set(HARMLESS) | set(REFUSED),
                         "decide each new button: refused on administrators' "
                         "configurations, or harmless (with why)")

    def test_the_form_hides_test_connection_from_them(self):
        arch = etree.fromstring(self.env["bj.api.sync.config"].get_view(view_type="form")["arch"])
        widget = arch.xpath("//widget[@name='bj_test_connection']")[0]
        self.assertEqual(widget.get("invisible"), "admin_only")

    def press(self, config, button):
        """``button`` of ``config`` as the manager, undone afterwards."""
        point = self.env.cr.savepoint()
        try:
            if button == "action_unarchive":
                config.active = False  # else it has nothing to do
            return getattr(config.with_user(self.sync_manager), button)()
        finally:
            point.close(rollback=True)

    def test_a_manager_is_refused_what_a_write_would_refuse(self):
        for kind, config in self.configs.items():
            self.assertTrue(config.with_user(self.sync_manager).admin_only)
            for button, reason in REFUSED.items():
                with self.subTest(kind=kind, button=button):
                    with self.assertRaisesRegex(AccessError, reason):
                        self.press(config, button)
            for button in HARMLESS:
                with self.subTest(kind=kind, button=button):
                    self.assertTrue(self.press(config, button))
        self.assertFalse(self.server.requests, "nothing was sent")
        self.assertFalse(self.get_logs(self.configs["out"]) | self.get_logs(self.configs["in"]))
        self.assertTrue(all(config.active for config in self.configs.values()))

    def test_a_manager_tests_their_own_configuration(self):
        """The same configuration, run as the manager, is theirs to test."""
        for config in self.configs.values():
            config.write({"run_as_user_id": self.sync_manager.id,
                          "trigger_action_model_id": False})
            params = config.with_user(self.sync_manager).action_test_connection()["params"]
            self.assertEqual(params["type"], "success", params["message"])
        self.assertEqual(len(self.server.requests), 2)

    def test_an_in_test_keeps_no_second_copy_of_the_answer(self):
        """The endpoint's own log row holds what it served; the test's row says
        whether and how it answered."""
        config = self.configs["in"]
        self.server.queue(200, {"data": [{"email": "kept-once@example.com"}]})
        self.assertEqual(config.action_test_connection()["params"]["type"], "success")
        log = self.assertLogged(config, count=1)
        self.assertEqual((log.direction, log.status_code, log.state), ("in", 200, "success"))
        self.assertFalse(log.response_body)
