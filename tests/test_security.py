from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from .common import MANAGER_GROUP, BjApiSyncCase, generated_secret


@tagged("post_install", "-at_install")
class TestAccessRights(BjApiSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.token = generated_secret()
        cls.config = cls.make_partner_config(
            authorization_type="bearer_token", bearer_token=cls.token
        )

    def test_user_reads_configuration_but_never_secrets(self):
        config = self.config.with_user(self.sync_user)
        self.assertEqual(config.name, self.config.name)
        self.assertEqual(len(config.line_ids), 4)
        with self.assertRaises(AccessError):
            config.read(["bearer_token"])
        with self.assertRaises(AccessError):
            config.read(["bearer_token_encrypted"])
        self.assertNotIn("bearer_token", config.fields_get())
        self.assertNotIn("password", config.fields_get())

    def test_user_cannot_modify(self):
        config = self.config.with_user(self.sync_user)
        with self.assertRaises(AccessError):
            config.write({"limit": 5})
        with self.assertRaises(AccessError):
            config.line_ids[1].write({"external_key": "x"})
        with self.assertRaises(AccessError):
            self.env["bj.api.sync.config"].with_user(self.sync_user).create({
                "name": "x", "request_type": "out", "model_id": self.partner_model.id,
                "request_url": "https://example.com", "http_method_ids": [(4, self.method_post.id)],
            })
        with self.assertRaises(AccessError):
            self.config.line_ids.with_user(self.sync_user).unlink()

    def test_user_reads_logs_but_cannot_write_them(self):
        log = self.env["bj.api.log"].create({
            "direction": "in", "state": "success", "config_id": self.config.id,
            "company_id": self.env.company.id,
        })
        self.assertEqual(log.with_user(self.sync_user).direction, "in")
        with self.assertRaises(AccessError):
            log.with_user(self.sync_user).unlink()

    def test_manager_has_full_access(self):
        config = self.config.with_user(self.sync_manager)
        self.assertEqual(config.bearer_token, self.token)
        config.write({"limit": 7, "password": "changed-secret"})
        self.assertEqual(config.password, "changed-secret")
        copy = config.copy({"endpoint": "copied"})
        self.assertEqual(len(copy.line_ids), 4)
        copy.unlink()

    def test_only_managers_write_scripts(self):
        line_values = {
            "config_id": self.config.id,
            "field_id": self.partner_field("comment").id,
            "value_type": "python_plain",
            "python_script": "'x'",
        }
        line = self.env["bj.api.sync.config.line"].with_user(self.sync_manager).create(line_values)
        self.assertEqual(line.python_script, "'x'")
        with self.assertRaises(AccessError):
            line.with_user(self.sync_user).write({"python_script": "'y'"})
        # Even where another module grants write access on lines, the script stays a
        # manager's privilege.
        with self.assertRaisesRegex(AccessError, "Only API Sync Managers"):
            line.with_user(self.sync_user)._check_script_author({"python_script": "'y'"})

    def test_settings_administrators_are_managers(self):
        admin = new_test_user(self.env, login="bj_settings_admin", groups="base.group_system")
        self.assertTrue(admin.has_group(MANAGER_GROUP))

    def test_managers_can_see_the_menus(self):
        menu = self.env.ref("bjet_api_sync.menu_bj_api_sync_config")
        self.assertEqual(menu.parent_id.parent_id, self.env.ref("base.menu_custom"))
        self.assertEqual(menu.parent_id.name, "BJET API")
        self.assertEqual(self.env.ref("bjet_api_sync.menu_bj_api_log").name, "Logs")


@tagged("post_install", "-at_install")
class TestMultiCompany(BjApiSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company_a = cls.env.company
        cls.company_b = cls.env["res.company"].create({"name": "BJET Company B"})
        cls.user_a = new_test_user(
            cls.env, login="bj_user_a", groups="bjet_api_sync.group_api_sync_user",
            company_id=cls.company_a.id, company_ids=[(6, 0, cls.company_a.ids)],
        )
        # A Run As User must be allowed in its configuration's company.
        cls.integration_user.company_ids = [(4, cls.company_b.id)]
        cls.config_a = cls.make_config(name="A", company_id=cls.company_a.id)
        cls.config_b = cls.make_config(name="B", company_id=cls.company_b.id)
        cls.config_shared = cls.make_config(name="Shared", company_id=False)
        log_model = cls.env["bj.api.log"]
        cls.log_a = log_model.create({"direction": "in", "state": "success",
                                      "company_id": cls.company_a.id})
        cls.log_b = log_model.create({"direction": "in", "state": "success",
                                      "company_id": cls.company_b.id})

    def test_configurations_are_isolated(self):
        visible = self.env["bj.api.sync.config"].with_user(self.user_a).search([])
        self.assertIn(self.config_a, visible)
        self.assertIn(self.config_shared, visible)
        self.assertNotIn(self.config_b, visible)
        with self.assertRaises(AccessError):
            self.config_b.with_user(self.user_a).read(["name"])

    def test_logs_are_isolated(self):
        visible = self.env["bj.api.log"].with_user(self.user_a).search([])
        self.assertIn(self.log_a, visible)
        self.assertNotIn(self.log_b, visible)
