import re

from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from .common import MANAGER_GROUP, BjApiSyncCase, generated_secret


@tagged("post_install", "-at_install")
class TestAccessRights(BjApiSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.token = generated_secret()
        # The manager's own: a configuration running as another user is
        # administrators' (TestScriptLock).
        cls.config = cls.make_partner_config(
            authorization_type="bearer_token", bearer_token=cls.token,
            run_as_user_id=cls.sync_manager.id,
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
        out = self.make_partner_config(request_type="out")
        copy = out.with_user(self.sync_manager).copy()
        self.assertEqual(len(copy.line_ids), 4)
        copy.unlink()

    def test_only_settings_administrators_write_scripts(self):
        line_values = {
            "config_id": self.config.id,
            "field_id": self.partner_field("comment").id,
            "value_type": "python_plain",
            "python_script": "'x'",
        }
        lines = self.env["bj.api.sync.config.line"]
        manager_lines = lines.with_user(self.sync_manager)
        for values in (line_values, {**line_values, "python_script": False,
                                     "value_type": "plain", "script_mode": "execute"}):
            if values["value_type"] == "plain":
                # What the lines' list sends for a new plain line: allowed.
                manager_lines.create({**values, "script_mode": "evaluate"}).unlink()
                values = {**values, "python_script": "'x'"}
            with self.assertRaisesRegex(AccessError, "Only Settings administrators"):
                manager_lines.create(values)
        admin = new_test_user(self.env, login="bj_script_admin", groups="base.group_system")
        line = lines.with_user(admin).create(line_values)
        self.assertEqual(line.python_script, "'x'")
        self.assertTrue(line.with_user(admin).can_edit_script)
        self.assertFalse(line.with_user(self.sync_manager).can_edit_script)
        refused = [
            {"python_script": "'y'"}, {"script_mode": "execute"},
            {"config_id": self.make_partner_config(endpoint="other-config").id},
        ]
        for values in refused:
            with self.subTest(values=values), self.assertRaisesRegex(
                    AccessError, "Only Settings administrators"):
                line.with_user(self.sync_manager).write(values)
        plain = self.config.line_ids.filtered(lambda line: line.external_key == "email")
        with self.assertRaisesRegex(AccessError, "Only Settings administrators"):
            plain.with_user(self.sync_manager).write(
                {"value_type": "python_plain", "python_script": "'z'"})
        # A configuration with a script is the administrators' as a whole
        # (TestScriptLock): its other lines too, and turning the script off.
        for values in ({"external_key": "note"}, {"value_type": "plain"}):
            with self.subTest(values=values), self.assertRaisesRegex(
                    AccessError, "Only Settings administrators"):
                line.with_user(self.sync_manager).write(values)
        line.with_user(admin).write({"external_key": "note", "value_type": "plain"})
        self.assertEqual((line.external_key, line.value_type), ("note", "plain"))
        with self.assertRaises(AccessError):
            line.with_user(self.sync_user).write({"external_key": "y"})

    def test_only_settings_administrators_choose_the_run_as_user(self):
        config = self.config.with_user(self.sync_manager)
        other = new_test_user(self.env, login="bj_other_integration", groups="base.group_user")
        with self.assertRaisesRegex(AccessError, "Run As User"):
            config.write({"run_as_user_id": other.id})
        config.write({"run_as_user_id": self.sync_manager.id, "limit": 9})  # unchanged
        # A manager's duplicate runs as the manager, who chose nobody else.
        self.assertEqual(config.copy({"endpoint": "copied"}).run_as_user_id, self.sync_manager)
        configs = self.env["bj.api.sync.config"].with_user(self.sync_manager)
        values = {"name": "x", "request_type": "in", "model_id": self.partner_model.id,
                  "endpoint": "by-manager", "http_method_ids": [(4, self.method_get.id)]}
        with self.assertRaisesRegex(AccessError, "Run As User"):
            configs.create({**values, "run_as_user_id": other.id})
        self.assertEqual(configs.create(values).run_as_user_id, self.sync_manager)
        # An administrator's choice is theirs: not even kept by a manager.
        self.config.run_as_user_id = self.integration_user
        with self.assertRaisesRegex(AccessError, "runs as another user than you"):
            config.write({"run_as_user_id": self.integration_user.id, "limit": 10})
        copy = self.config.copy({"endpoint": "copied-by-admin"})
        self.assertEqual(copy.run_as_user_id, self.integration_user)

    def test_managers_cannot_duplicate_scripts(self):
        out = self.make_config(request_type="out", lines=[
            ("id", "id", {"is_identifier": True}),
            ("comment", "label", {"value_type": "python_plain", "python_script": "'x'"}),
        ])
        configs = self.env["bj.api.sync.config"].search_count([])
        # The savepoint stands for the transaction of the refused request.
        with self.assertRaisesRegex(AccessError, "Only Settings administrators"), \
                self.env.cr.savepoint():
            out.with_user(self.sync_manager).copy()
        self.assertEqual(self.env["bj.api.sync.config"].search_count([]), configs)

    def test_only_settings_administrators_create_trigger_actions(self):
        out = self.make_partner_config(
            request_type="out",
            trigger_action_model_id=self.env["ir.model"]._get_id("ir.actions.server"))
        with self.assertRaisesRegex(AccessError, "reserved for the group"):
            out.with_user(self.sync_manager).action_create_trigger_action()
        self.assertFalse(out.trigger_action_id)
        action = out.action_create_trigger_action()
        self.assertEqual(out.trigger_action_id, action["res_id"])

    def test_views_show_script_fields_read_only_to_managers(self):
        admin = new_test_user(self.env, login="bj_view_admin", groups="base.group_system")
        for user, editable in ((self.sync_manager, False), (admin, True)):
            configs = self.env["bj.api.sync.config"].with_user(user)
            arch = configs.get_views([(False, "form")])["views"]["form"]["arch"]
            run_as = re.findall(r'<field name="run_as_user_id"[^>]*>', arch)
            self.assertEqual(len(run_as), 1, arch)
            # admin_only: read-only for everyone but administrators (TestScriptLock).
            self.assertEqual("or (1)" in run_as[0], not editable, run_as[0])
            line = self.config.line_ids[:1].with_user(user)
            self.assertEqual(line.can_edit_script, editable)
        # The Script dialog is read-only where the lines' script fields are.
        for view in ("bjet_api_sync.bj_api_sync_config_view_form",
                     "bjet_api_sync.bj_api_sync_config_line_view_form"):
            arch = self.env.ref(view).arch
            for name in ("script_mode", "python_script"):
                self.assertRegex(arch, rf'name="{name}"[^>]*readonly="[^"]*not can_edit_script"')

    def test_settings_administrators_are_managers(self):
        admin = new_test_user(self.env, login="bj_settings_admin", groups="base.group_system")
        self.assertTrue(admin.has_group(MANAGER_GROUP))

    def test_managers_can_see_the_menus(self):
        menu = self.env.ref("bjet_api_sync.menu_bj_api_sync_config")
        self.assertEqual(menu.parent_id.parent_id, self.env.ref("base.menu_custom"))
        self.assertEqual(menu.parent_id.name, "BJET API")
        self.assertEqual(self.env.ref("bjet_api_sync.menu_bj_api_log").name, "Logs")
