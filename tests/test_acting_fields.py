"""Fields that name something that runs or acts (scheduled actions, server
actions, automation rules, users): a non-administrator names only what the
addon created for that configuration, or themselves; and the addon's own
superuser code only touches the scheduled action it created."""

from odoo import Command
from odoo.exceptions import AccessError, ValidationError
from odoo.tests import new_test_user, tagged

from .common import BjApiSyncCase


@tagged("post_install", "-at_install")
class TestActingFields(BjApiSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = new_test_user(cls.env, login="bj_acting_admin", groups="base.group_system")
        # An administrator's dormant scheduled action, and Odoo's own.
        cls.dormant = cls.env["ir.cron"].create({
            "name": "Admin's dormant job", "model_id": cls.env["ir.model"]._get_id("res.partner"),
            "state": "code", "code": "model.browse()", "active": False,
            "user_id": cls.env.ref("base.user_admin").id,
        })
        cls.autovacuum = cls.env.ref("base.autovacuum_job")
        cls.server_action = cls.env["ir.actions.server"].create({
            "name": "Admin's action", "model_id": cls.partner_model.id, "state": "code",
            "code": "records.write({'comment': 'acted'})",
        })
        cls.config = cls.make_partner_config(
            request_type="out", run_as_user_id=cls.sync_manager.id,
            user_id=cls.sync_manager.id,
            trigger_action_model_id=cls.env["ir.model"]._get_id("ir.actions.server"))
        cls.managed = cls.config.with_user(cls.sync_manager)
        cls.new_values = {"name": "Acting", "request_type": "out",
                          "model_id": cls.partner_model.id, "request_url": "http://127.0.0.1:9/a",
                          "http_method_ids": [Command.set(cls.method_post.ids)]}

    def vectors(self, name, value):
        """Every ORM path a manager's RPC call can take to write ``name``."""
        configs = self.env["bj.api.sync.config"].with_user(self.sync_manager)
        relational = self.env["bj.api.sync.config"]._fields[name].type == "many2one"
        column = f"{name}/.id" if relational else name
        return {
            "write": lambda: self.managed.write({name: value}),
            "web_save": lambda: self.managed.web_save({name: value}, specification={}),
            "create": lambda: configs.create({**self.new_values, name: value}),
            "create, context default": lambda: configs.with_context(
                **{f"default_{name}": value}).create(self.new_values),
            "copy with a default": lambda: self.managed.copy({name: value}),
            "load, update": lambda: self.load_error(configs.load(
                [".id", column], [[str(self.config.id), str(value)]])),
            "load, create": lambda: self.load_error(configs.load(
                ["name", "request_type", "model_id/.id", "request_url", column],
                [["Loaded", "out", str(self.partner_model.id), "http://127.0.0.1:9/l",
                  str(value)]])),
        }

    @staticmethod
    def load_error(result):
        errors = [message["message"] for message in result["messages"]
                  if message["type"] == "error"]
        if errors:
            raise AccessError("\n".join(errors))

    def assertRefused(self, name, value):
        for path, call in self.vectors(name, value).items():
            with self.subTest(field=name, path=path), self.assertRaisesRegex(
                    AccessError, rf"\({name}\)"), self.env.cr.savepoint():
                call()

    def test_manager_cannot_hijack_a_scheduled_action(self):
        for cron in (self.dormant, self.autovacuum):
            self.assertRefused("schedule_cron_id", cron.id)
        self.assertFalse(self.config.schedule_cron_id)
        self.assertFalse(self.dormant.active)
        self.assertEqual(self.dormant.name, "Admin's dormant job")
        self.assertTrue(self.autovacuum.active)

    def test_addon_touches_only_the_scheduled_action_it_created(self):
        """Even when schedule_cron_id names another cron (written as superuser):
        nothing activates, renames or deletes it."""
        for cron in (self.dormant, self.autovacuum):
            with self.subTest(cron=cron.name):
                config = self.make_partner_config(request_type="out", name=f"Hijack {cron.id}")
                config.schedule_cron_id = cron
                config.write({"trigger_on_schedule": True, "schedule_interval_type": "minutes"})
                own = config.schedule_cron_id
                self.assertNotEqual(own, cron)
                self.assertTrue(own.active)
                self.assertEqual(own.code, f"model._cron_send_scheduled({config.id})")
                config.schedule_cron_id = cron
                config.write({"trigger_on_schedule": False, "name": "Renamed"})
                self.assertFalse(config.schedule_cron_id)
                config.schedule_cron_id = cron
                config.unlink()
                self.assertTrue(cron.exists())
                self.assertTrue(own.exists())  # no longer named: left for the administrator
        self.assertEqual((self.dormant.active, self.dormant.name),
                         (False, "Admin's dormant job"))
        self.assertTrue(self.autovacuum.active)
        self.assertNotIn("BJET", self.autovacuum.name)

    def test_own_scheduled_action_follows_and_goes_with_its_configuration(self):
        self.managed.write({"trigger_on_schedule": True})
        cron = self.config.schedule_cron_id
        self.assertTrue(cron.active)
        self.managed.write({"trigger_on_schedule": False})
        self.assertEqual(self.config.schedule_cron_id, cron)
        self.assertFalse(cron.active)
        self.managed.unlink()
        self.assertFalse(cron.exists())

    def test_manager_cannot_name_an_automation(self):
        self.assertRefused("trigger_action_id", self.server_action.id)
        self.assertFalse(self.config.trigger_action_id)
        # What an administrator's Create Trigger Action made makes the whole
        # configuration administrators' (TestScriptLock): not kept, cleared or
        # re-typed by a manager.
        action = self.config.with_user(self.admin).action_create_trigger_action()
        for values in ({"trigger_action_id": action["res_id"], "limit": 5},
                       {"trigger_action_id": False},
                       {"trigger_action_model_id": self.env["ir.model"]._get_id("ir.cron")}):
            with self.subTest(values=values), self.assertRaisesRegex(
                    AccessError, "has a Trigger Action"), self.env.cr.savepoint():
                self.managed.write(values)
        self.assertEqual(self.config.trigger_action_id, action["res_id"])
        # Not even an administrator names an automation without its kind.
        with self.assertRaisesRegex(AccessError, r"\(trigger_action_id\)"):
            self.config.with_user(self.admin).write({"trigger_action_model_id": False,
                                                     "trigger_action_id": 7})
        copy = self.config.with_user(self.admin).copy()
        self.assertFalse(copy.trigger_action_id)

    def test_trigger_action_keeps_to_its_model(self):
        """Changing the Trigger Action Model over RPC clears the Trigger Action (the
        same id would name a record of the other model), and the model is one of
        the three kinds, whoever writes it."""
        action = self.config.with_user(self.admin).action_create_trigger_action()
        self.assertEqual(self.config.trigger_action_id, action["res_id"])
        self.config.with_user(self.admin).write(
            {"trigger_action_model_id": self.env["ir.model"]._get_id("ir.cron")})
        self.assertFalse(self.config.trigger_action_id)
        self.assertTrue(self.server_action.exists())
        for user in (self.admin, self.sync_manager):
            for model in ("res.users", "ir.actions.act_window", "res.partner"):
                with self.subTest(user=user.login, model=model), self.assertRaisesRegex(
                        ValidationError, "must be a scheduled action, an automation rule or "
                                         "a server action"), self.env.cr.savepoint():
                    self.config.with_user(user).write(
                        {"trigger_action_model_id": self.env["ir.model"]._get_id(model)})

    def test_manager_names_only_themselves_as_a_user(self):
        for name in ("run_as_user_id", "user_id"):
            self.assertRefused(name, self.admin.id)
            self.assertEqual(self.config[name], self.sync_manager)
        created = self.env["bj.api.sync.config"].with_user(self.sync_manager).create(
            {**self.new_values, "run_as_user_id": self.sync_manager.id,
             "user_id": self.sync_manager.id})
        self.assertEqual(created.run_as_user_id, self.sync_manager)

    def test_administrators_name_anything(self):
        admin_config = self.config.with_user(self.admin)
        admin_config.write({"run_as_user_id": self.integration_user.id,
                            "user_id": self.sync_user.id,
                            "trigger_action_id": self.server_action.id})
        self.assertEqual((self.config.run_as_user_id, self.config.user_id),
                         (self.integration_user, self.sync_user))
        self.assertEqual(self.config.trigger_action_id, self.server_action.id)
        # The scheduled action stays the addon's, administrators included.
        with self.assertRaisesRegex(AccessError, r"\(schedule_cron_id\)"):
            admin_config.write({"schedule_cron_id": self.dormant.id})
