"""The field table (core/field_access.py) against the registry and the views,
and every writable field of every model of the addon walked through create,
write, copy and load() as an API Sync User, an API Sync Manager and a plain
internal user."""

import logging
from datetime import datetime
from pathlib import Path

from lxml import etree

from odoo import Command
from odoo.exceptions import AccessError
from odoo.tests import BaseCase, Form, new_test_user, tagged
from odoo.tools import mute_logger

from ..core import field_access
from ..core.field_access import (
    ADMIN,
    ADMIN_LEVEL,
    MANAGER,
    MANAGER_LEVEL,
    NEVER,
    NOBODY,
    ON_CREATE,
    OWN_USER,
    Rule,
    needed_level,
)
from .common import BjApiSyncCase

_logger = logging.getLogger(__name__)

ADDON = "bjet_api_sync"
VIEWS = Path(__file__).resolve().parent.parent / "views"
# (case, rule, creating, names_self, level needed)
LEVEL_CASES = [
    ("manager field", MANAGER, False, False, MANAGER_LEVEL),
    ("administrator field", ADMIN, True, False, ADMIN_LEVEL),
    ("nobody, even on create", NOBODY, True, False, NEVER),
    ("set on create", ON_CREATE, True, False, MANAGER_LEVEL),
    ("never changed afterwards", ON_CREATE, False, False, NEVER),
    ("a user field naming oneself", OWN_USER, False, True, MANAGER_LEVEL),
    ("a user field naming another user", OWN_USER, True, False, ADMIN_LEVEL),
    ("an administrator's user field naming oneself", ADMIN, False, True, ADMIN_LEVEL),
    ("an automation named", Rule(ADMIN_LEVEL, requires=("trigger_action_model_id", None)),
     False, False, ADMIN_LEVEL),
]

# Each readonly attribute of the addon's views (model, field, condition), and the
# rule that makes it hold over RPC.
VIEW_READONLY = {
    ("bj.api.sync.config", "trigger_action_id", "not trigger_action_model_id"):
        "requires trigger_action_model_id",
    ("bj.api.sync.config", "run_as_user_id", "1"): "admin",
    ("bj.api.sync.config.line", "mapping_config_id", "value_type != 'relational_mapping'"):
        "requires value_type",
    ("bj.api.sync.config.line", "script_mode", "id and not can_edit_script"): "admin",
    ("bj.api.sync.config.line", "python_script", "id and not can_edit_script"): "admin",
    ("bj.api.sync.config.line", "script_mode", "not can_edit_script"): "admin",
    ("bj.api.sync.config.line", "python_script", "not can_edit_script"): "admin",
    ("bj.api.sync.config.line", "config_id", "id"): "create only",
}


class TestNeededLevel(BaseCase):
    def test_levels(self):
        for case, rule, creating, names_self, level in LEVEL_CASES:
            with self.subTest(case):
                self.assertEqual(needed_level(rule, creating=creating, names_self=names_self),
                                 level)


def writable_fields(model):
    """Fields a create or write can set: stored ones, and those with an inverse."""
    return {name: field for name, field in model._fields.items()
            if field.store or field.inverse}


def addon_models(env):
    return sorted(name for name in env.registry
                  if name.startswith("bj.") and not env[name]._abstract)


@tagged("post_install", "-at_install")
class TestFieldAccessTable(BjApiSyncCase):
    def test_every_field_has_a_row(self):
        """A field added to a model of the addon fails here until it gets a row."""
        for name in addon_models(self.env):
            with self.subTest(model=name):
                if name in field_access.INTERNAL_MODELS:
                    self.assertNotIn(name, field_access.FIELD_ACCESS)
                    continue
                self.assertEqual(set(field_access.FIELD_ACCESS[name]),
                                 set(writable_fields(self.env[name])))
        # Fields the addon adds to Odoo's models (none today) need rows too.
        fields = self.env["ir.model.data"].search(
            [("module", "=", ADDON), ("model", "=", "ir.model.fields")])
        for field in self.env["ir.model.fields"].browse(fields.mapped("res_id")):
            if not field.model.startswith("bj."):
                model = self.env[field.model]
                if field.name in writable_fields(model):
                    self.assertIn(field.name, field_access.FIELD_ACCESS.get(field.model, {}))

    def test_views_read_only_fields_are_read_only_over_rpc(self):
        found = set()
        for path in VIEWS.glob("*.xml"):
            for record in etree.parse(str(path)).iter("record"):
                model = record.findtext("field[@name='model']")
                arch = record.find("field[@name='arch']")
                if arch is None:
                    continue
                for node in arch.iter("field"):
                    if node is arch:
                        continue
                    owner = self._owner_model(model, node, arch)
                    if node.get("readonly"):
                        found.add((owner, node.get("name"), node.get("readonly")))
                    elif (arch[0].get("edit") == "false" and owner == model
                          and node.get("name") in writable_fields(self.env[owner])):
                        # A form or list nobody edits: the addon's bookkeeping.
                        self.assertIn(owner, field_access.INTERNAL_MODELS)
        self.assertEqual(found, set(VIEW_READONLY))
        for (model, name, _condition), how in VIEW_READONLY.items():
            rule = field_access.rule_of(model, name)
            with self.subTest(field=f"{model}.{name}", how=how):
                if how == "admin":
                    self.assertEqual(rule, ADMIN)
                elif how == "create only":
                    self.assertTrue(rule.create_only)
                elif how == "names self":
                    self.assertTrue(rule.names_self)
                else:
                    self.assertEqual(rule.requires[0], how.removeprefix("requires "))

    def _owner_model(self, model, node, arch):
        """The model of a field node: that of the enclosing one2many's list, if any."""
        parent = node.getparent()
        while parent is not arch and parent.tag != "field":
            parent = parent.getparent()
        if parent is arch:
            return model
        owner = self.env[self._owner_model(model, parent, arch)]
        return owner._fields[parent.get("name")].comodel_name


@tagged("post_install", "-at_install")
class TestFieldAccessWalk(BjApiSyncCase):
    """Each writable field, with a value different from the current one."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.internal = new_test_user(cls.env, login="bj_walk_internal", groups="base.group_user")
        # Another company, so that company fields get a value of their own.
        cls.env["res.company"].create({"name": "BJET Walk B"})
        cls.roles = {"user": cls.sync_user, "manager": cls.sync_manager,
                     "internal": cls.internal}
        manager_env = cls.env(user=cls.sync_manager)
        # The manager's own chain: a configuration running as another user is
        # administrators' with its whole chain (TestScriptLock).
        country = cls.make_country_config(endpoint="walk-countries",
                                          run_as_user_id=cls.sync_manager.id)
        cls.config = cls.make_config(
            request_type="out", name="Walk",
            run_as_user_id=cls.sync_manager.id, user_id=cls.sync_manager.id,
            trigger_action_model_id=cls.env["ir.model"]._get_id("ir.cron"),
            lines=[("id", "id", {"is_identifier": True}),
                   ("country_id", "country", {"value_type": "relational_mapping",
                                              "mapping_config_id": country.id})],
            header_ids=[Command.create({"key": "X-Walk", "value": "1"})],
        ).with_env(manager_env)
        cls.in_config = cls.make_partner_config(
            endpoint="walk-in", run_as_user_id=cls.sync_manager.id,
            user_id=cls.sync_manager.id,
            param_ids=[Command.create({"key": "q", "field_id": cls.partner_field("name").id})],
        )
        job = cls.env["bj.api.sync.job"].create({"config_id": cls.config.id, "event": "manual"})
        # Records for one2many fields to take from elsewhere.
        cls.env["bj.api.sync.job"].create({"config_id": cls.in_config.id, "event": "manual"})
        partner = cls.env["res.partner"].create({"name": "Walk elsewhere"})
        partner.activity_schedule("mail.mail_activity_data_todo", user_id=cls.sync_manager.id)
        partner.message_subscribe(partner_ids=cls.sync_user.partner_id.ids)
        cls.samples = {
            "bj.api.sync.config": cls.config,
            "bj.api.sync.config.line": cls.config.line_ids.sorted("sequence")[1],
            "bj.api.sync.header": cls.config.header_ids,
            "bj.api.sync.param": cls.in_config.param_ids,
            "bj.http.method": cls.method_get,
            "bj.api.sync.job": job,
            "bj.api.log": cls.env["bj.api.log"].create(
                {"direction": "out", "state": "error", "config_id": cls.config.id}),
            "bj.api.idempotency": cls.env["bj.api.idempotency"].create(
                {"config_id": cls.in_config.id, "key": "k", "request_target": "t",
                 "body_hash": "h"}),
            "bj.api.rate.limit": cls.env["bj.api.rate.limit"].create(
                {"config_id": cls.in_config.id, "window_start": datetime(2026, 1, 1)}),
            "bj.api.auth.failure": cls.env["bj.api.auth.failure"].create(
                {"address": "192.0.2.1", "window_start": datetime(2026, 1, 1)}),
            "bj.api.signature": cls.env["bj.api.signature"].create(
                {"config_id": cls.in_config.id, "signature": "s",
                 "expires_at": datetime(2030, 1, 1)}),
            "bj.api.identifier.lock": cls.identifier_lock_row(),
        }
        cls.base_values = {
            "bj.api.sync.config": {"name": "Walk new", "request_type": "out",
                                   "model_id": cls.partner_model.id,
                                   "request_url": "http://127.0.0.1:9/walk",
                                   "http_method_ids": [Command.set(cls.method_post.ids)]},
            "bj.api.sync.config.line": {"config_id": cls.config.id,
                                        "field_id": cls.partner_field("comment").id},
            "bj.api.sync.header": {"config_id": cls.config.id, "key": "X-New"},
            "bj.api.sync.param": {"config_id": cls.in_config.id, "key": "new",
                                  "field_id": cls.partner_field("email").id},
        }

    @classmethod
    def identifier_lock_row(cls):
        """A key row, as only SQL writes them."""
        locks = cls.env["bj.api.identifier.lock"]
        locks._bj_touch([7])
        return locks.browse(7)

    def test_walk(self):
        """Every field × create, write, copy, load × user, manager, internal user."""
        self.assertEqual(set(self.samples), set(addon_models(self.env)))
        cells = refused = 0
        for model_name, sample in self.samples.items():
            for name, field in writable_fields(self.env[model_name]).items():
                value = self.probe_value(sample, field)
                rule = field_access.rule_of(model_name, name)
                # load()'s "id" column is the external id, not the field.
                operations = ("create", "write", "copy", "load") if name != "id" else (
                    "create", "write", "copy")
                for operation in operations:
                    creating = operation in ("create", "copy")
                    # An empty value on create is no choice (the ORM's own default).
                    manager_may = (creating and not value) or needed_level(
                        rule, creating=creating, names_self=False) <= MANAGER_LEVEL
                    for role, user in self.roles.items():
                        cells += 1
                        error = self.attempt(operation, sample.with_user(user), field, value)
                        with self.subTest(field=f"{model_name}.{name}", op=operation, role=role):
                            if role != "manager":
                                self.assertTrue(error, "an API Sync User or internal user "
                                                "wrote a field")
                            elif manager_may:
                                self.assertNotIn(f"({name})", error or "")
                            elif (operation == "copy"
                                  and model_name in field_access.INTERNAL_MODELS):
                                self.assertTrue(error)  # refused on the first field copied
                            else:
                                self.assertIn(f"({name})", error or "no error")
                        refused += bool(error)
        _logger.info("Field walk: %s cells (%s refused).", cells, refused)

    @mute_logger("odoo.sql_db")  # values missing on purpose: NOT NULL refusals
    def attempt(self, operation, sample, field, value):
        """Run one operation in a savepoint; the refusal's text, or None."""
        savepoint = self.env.cr.savepoint()
        try:
            if operation == "write":
                sample.write({field.name: value})
            elif operation == "create":
                values = dict(self.base_values.get(sample._name, {}))
                if field.name in field_access.FIELD_ACCESS.get(sample._name, {}):
                    requires = field_access.rule_of(sample._name, field.name).requires
                    if requires:
                        values[requires[0]] = self.requirement(sample, requires)
                sample.browse().create({**values, field.name: value})
            elif operation == "copy":
                sample.copy({field.name: value})
            else:
                result = sample.load([".id", *self.load_column(field)],
                                     [[str(sample.id), self.load_text(sample, field, value)]])
                errors = [m["message"] for m in result["messages"] if m["type"] == "error"]
                return "\n".join(errors) or None
        except AccessError as error:
            return str(error)
        except Exception:  # noqa: BLE001 - constraints and the like: not the table's concern
            return None
        finally:
            savepoint.close(rollback=True)
        return None

    def requirement(self, sample, requires):
        name, wanted = requires
        return wanted or self.probe_value(sample, sample._fields[name])

    def probe_value(self, record, field):
        """A value of ``field`` other than the record's."""
        current = record.sudo()[field.name]
        if field.type == "boolean":
            return not current
        if field.type in ("integer", "many2one_reference"):
            return (current or 0) + 1
        if field.type == "float":
            return (current or 0) + 1.5
        if field.type in ("char", "text", "html"):
            return f"probe {field.name}"
        if field.type == "selection":
            keys = [key for key, _label in field._description_selection(self.env)]
            return next(key for key in keys if key != current)
        if field.type == "datetime":
            return datetime(2020, 1, 2, 3, 4, 5)
        if field.type == "date":
            return datetime(2020, 1, 2).date()
        others = self.env[field.comodel_name].sudo().search([("id", "not in", current.ids)],
                                                               limit=1)
        if field.type == "many2one":
            return others.id
        if field.type == "many2many":
            return [Command.set(others.ids)]
        return [Command.link(record_id) for record_id in others.ids]  # one2many

    @staticmethod
    def load_column(field):
        if field.type in ("many2one", "many2many", "one2many"):
            return [f"{field.name}/.id"]
        return [field.name]

    @staticmethod
    def load_text(record, field, value):
        if field.type == "many2one":
            return str(value)
        if field.type == "many2many":
            return ",".join(str(record_id) for record_id in value[0][2])
        if field.type == "one2many":
            return ",".join(str(command[1]) for command in value)
        if field.type == "boolean":
            return "1" if value else "0"
        if field.type == "datetime":
            return value.strftime("%Y-%m-%d %H:%M:%S")
        return str(value)


@tagged("post_install", "-at_install")
class TestFieldAccessPaths(BjApiSyncCase):
    """RPC paths that end in create or write: web_save, onchange, copy with a
    default, load, one2many commands, and defaults the caller chooses."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = new_test_user(cls.env, login="bj_paths_admin", groups="base.group_system")
        cls.config = cls.make_partner_config(
            request_type="out", run_as_user_id=cls.sync_manager.id,
            user_id=cls.sync_manager.id,
            header_ids=[Command.create({"key": "X-A", "value": "a"})],
        )
        cls.managed = cls.config.with_user(cls.sync_manager)
        cls.company_b = cls.env["res.company"].create({"name": "BJET Paths B"})

    def test_web_save_and_one2many_commands(self):
        self.managed.web_save({"limit": 3, "line_ids": [
            Command.update(self.config.line_ids[1].id, {"external_key": "full_name"})]},
            specification={})
        self.assertEqual(self.config.line_ids[1].external_key, "full_name")
        vectors = {
            "company_id of a new header": {"header_ids": [Command.create(
                {"key": "X", "company_id": self.company_b.id})]},
            "a line moved to another configuration": {"line_ids": [Command.link(
                self.make_partner_config(endpoint="paths-other").line_ids[0].id)]},
            "a script through a line update": {"line_ids": [Command.update(
                self.config.line_ids[1].id, {"python_script": "'x'"})]},
            "an encrypted column through a header update": {"header_ids": [Command.update(
                self.config.header_ids.id, {"secret_value_encrypted": "forged"})]},
            "the scheduled action": {"schedule_cron_id": self.env.ref(
                "bjet_api_sync.ir_cron_bj_api_sync_deliver").id},
        }
        for case, values in vectors.items():
            with self.subTest(case), self.assertRaises(AccessError), \
                    self.env.cr.savepoint():
                self.managed.web_save(values, specification={})

    def test_onchange_writes_nothing(self):
        result = self.managed.onchange(
            {"schedule_cron_id": self.env.ref("base.autovacuum_job").id, "limit": 4},
            ["limit"], {"schedule_cron_id": {}, "limit": {}})
        self.assertIn("value", result)
        self.assertFalse(self.config.schedule_cron_id)
        self.assertNotEqual(self.config.limit, 4)

    def test_copy_with_a_default_and_load(self):
        with self.assertRaisesRegex(AccessError, r"\(python_script\)"):
            self.config.line_ids[1].with_user(self.sync_manager).copy(
                {"python_script": "'x'"})
        result = self.managed.load([".id", "run_as_user_id/.id"],
                                   [[str(self.config.id), str(self.admin.id)]])
        self.assertIn("(run_as_user_id)", result["messages"][0]["message"])
        self.assertEqual(self.config.run_as_user_id, self.sync_manager)
        result = self.env["bj.api.sync.config.line"].with_user(self.sync_manager).load(
            ["config_id/.id", "field_id/.id", "value_type", "python_script"],
            [[str(self.config.id), str(self.partner_field("comment").id), "python_plain",
              "'x'"]])
        self.assertFalse(result["ids"])

    def test_defaults_chosen_by_the_caller_are_checked(self):
        values = {"name": "Defaults", "request_type": "out", "model_id": self.partner_model.id,
                  "request_url": "http://127.0.0.1:9/d",
                  "http_method_ids": [Command.set(self.method_post.ids)]}
        configs = self.env["bj.api.sync.config"].with_user(self.sync_manager)
        for name, value in (("run_as_user_id", self.admin.id),
                            ("schedule_cron_id", self.env.ref("base.autovacuum_job").id)):
            with self.subTest(name), self.assertRaisesRegex(AccessError, rf"\({name}\)"):
                configs.with_context(**{f"default_{name}": value}).create(values)
        self.env["ir.default"].set("bj.api.sync.config", "run_as_user_id", self.admin.id,
                                   user_id=self.sync_manager.id)
        with self.assertRaisesRegex(AccessError, r"\(run_as_user_id\)"):
            configs.create(values)

    def test_a_manager_saves_new_forms(self):
        """What the form sends for a new configuration passes the table."""
        with Form(self.env["bj.api.sync.config"].with_user(self.sync_manager)) as form:
            form.name = "Form by a manager"
            form.request_type = "out"
            form.model_id = self.partner_model
            form.request_url = "https://api.example.com/form"
            form.http_method_ids.add(self.method_post)
            with form.line_ids.new() as line:
                line.field_id = self.partner_field("id")
                line.is_identifier = True
            with form.header_ids.new() as header:
                header.key = "X-Form"
        config = form.record
        self.assertEqual((config.run_as_user_id, config.user_id),
                         (self.sync_manager, self.sync_manager))
        self.assertEqual((len(config.line_ids), len(config.header_ids)), (1, 1))

    def test_read_only_conditions_of_the_views_hold(self):
        plain = self.config.line_ids[1].with_user(self.sync_manager)
        other = self.make_partner_config(endpoint="paths-mapping")
        with self.assertRaisesRegex(AccessError, r"\(mapping_config_id\).* when Value "
                                                 r"Calculation Type is Relational with"):
            plain.write({"mapping_config_id": other.id})
        plain.write({"mapping_config_id": False})  # no value: nothing to hold
        with self.assertRaisesRegex(AccessError, r"\(trigger_action_id\).* once Trigger "
                                                 r"Action Model is chosen"):
            self.config.with_user(self.admin).write({"trigger_action_id": 3})

    def test_managers_name_themselves_as_responsible_and_nobody_as_run_as_user(self):
        self.managed.write({"run_as_user_id": self.sync_manager.id,
                            "user_id": self.sync_manager.id})  # unchanged: no choice
        self.config.user_id = self.sync_user  # chosen by an administrator
        self.managed.write({"user_id": self.sync_user.id, "limit": 8})  # kept
        self.managed.write({"user_id": self.sync_manager.id})  # taken over
        with self.assertRaisesRegex(AccessError, r"another user than themselves as .*\(user_id\)"):
            self.managed.write({"user_id": self.sync_user.id})
        with self.assertRaisesRegex(AccessError, r"Only Settings administrators may change "
                                                 r"Run As User \(run_as_user_id\)"):
            self.managed.write({"run_as_user_id": self.sync_user.id})
        self.config.run_as_user_id = self.admin  # chosen by an administrator: not kept
        with self.assertRaisesRegex(AccessError, "runs as another user than you"):
            self.managed.write({"run_as_user_id": self.admin.id, "limit": 8})
        copy = self.managed.copy({"endpoint": False})
        self.assertEqual((copy.run_as_user_id, copy.user_id),
                         (self.sync_manager, self.sync_manager))

    def test_user_fields_of_the_form_agree_with_the_table(self):
        """As the form shows them to a manager: Run As User read-only, Responsible
        only the manager; to an administrator, both free."""
        for user, system in ((self.sync_manager, False), (self.admin, True)):
            arch = etree.fromstring(self.env["bj.api.sync.config"].with_user(user).get_views(
                [(False, "form")])["views"]["form"]["arch"])
            for name, field in self.env["bj.api.sync.config"]._fields.items():
                if field.type != "many2one" or field.comodel_name != "res.users":
                    continue
                rule = field_access.rule_of("bj.api.sync.config", name)
                for node in arch.iter("field"):
                    if node.get("name") != name:
                        continue
                    with self.subTest(user=user.login, field=name):
                        readonly, domain = node.get("readonly", ""), node.get("domain", "")
                        if system:
                            self.assertNotIn("1", readonly)
                            self.assertNotIn("uid", domain)
                        elif rule.level == ADMIN_LEVEL:
                            self.assertIn("1", readonly)
                        else:
                            self.assertTrue(rule.names_self)
                            self.assertEqual(domain, "[('id', '=', uid)]")
