"""Nothing an API Sync Manager does on a form vanishes: every field of the
configuration and line models that the field table (core/field_access.py)
refuses them is, in every form that shows it, hidden from them or read-only for
them before they can change it; values only Settings administrators may choose
are not offered to them; and the one field still refused on Save is refused
with its name, in the error the form shows."""

import ast

from lxml import etree

from odoo import Command
from odoo.exceptions import AccessError
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools.safe_eval import safe_eval

from ..core import field_access
from ..core.field_access import MANAGER_LEVEL, needed_level
from ..core.plan import SCRIPT_TYPES
from ..models.bj_api_access import ADMIN_VALUES_WIDGET, field_nodes
from .common import BjApiSyncCase, BjApiSyncTestMixin

CONFIG, LINE = "bj.api.sync.config", "bj.api.sync.config.line"
FORMS = ("bjet_api_sync.bj_api_sync_config_view_form",
         "bjet_api_sync.bj_api_sync_config_line_view_form")
# Editable for a manager once its Trigger Action Model is chosen, and refused on
# Save with the field named: a readonly condition of the web client sees the
# record, not the user's groups, and the configuration has no field that tells
# a Settings administrator (admin_only is about the record, for everyone else).
REFUSED_ON_SAVE = {(CONFIG, "trigger_action_id")}
# Computed from the saved record (``_origin``), whatever its dependencies: an
# edit on screen does not change it.
SAVED_STATE = {(CONFIG, "admin_only")}


def value_of(record, name):
    value = record[name]
    if record._fields[name].relational:
        return value.id if record._fields[name].type == "many2one" else value.ids
    return value


def evaluate(expression, record):
    """A view's condition on ``record``, as the web client evaluates it."""
    if expression in (None, ""):
        return False
    names = {node.id for node in ast.walk(ast.parse(expression.strip(), mode="eval"))
             if isinstance(node, ast.Name)}
    context = {name: value_of(record, name) for name in names if name in record._fields}
    context.update(id=record._origin.id or False, uid=record.env.uid, context={})
    return bool(safe_eval(expression, context))


@tagged("post_install", "-at_install")
class TestManagerForm(BjApiSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        manager = cls.sync_manager
        cls.countries = cls.make_country_config(endpoint="mform-countries",
                                                run_as_user_id=manager.id, user_id=manager.id)
        cls.own_out = cls.make_partner_config(
            request_type="out", name="Manager's out", run_as_user_id=manager.id,
            user_id=manager.id,
            trigger_action_model_id=cls.env["ir.model"]._get_id("base.automation"))
        cls.own_in = cls.make_config(
            name="Manager's in", endpoint="mform-in", run_as_user_id=manager.id,
            user_id=manager.id, header_ids=[Command.create({"key": "X-Own", "value": "1"})],
            param_ids=[Command.create({"key": "q", "field_id": cls.partner_field("name").id})],
            lines=[("id", "id", {"is_identifier": True}), ("name", "name", None),
                   ("country_id", "country", {"value_type": "relational_mapping",
                                              "mapping_config_id": cls.countries.id})])

    def states(self, model_name):
        """The records a manager meets in the forms: saved ones (configurations, or
        their lines, headers, parameters), and a new one."""
        env = self.env(user=self.sync_manager)
        configs = (self.own_out | self.own_in).with_env(env)
        saved = configs if model_name == CONFIG else env[model_name].search(
            [("config_id", "in", configs.ids)])
        new = env[model_name].new(env[model_name].default_get(list(env[model_name]._fields)))
        return [*saved, new]

    def refused(self, model_name, name, record):
        """Whether the table refuses the manager a new value of the field here."""
        rule = field_access.rule_of(model_name, name)
        if rule.names_self or rule.admin_values:
            return False  # checked on their own: a domain, a widget
        if needed_level(rule, creating=not record._origin.id,
                        names_self=False) > MANAGER_LEVEL:
            return True
        if rule.requires:
            condition, wanted = rule.requires
            current = value_of(record, condition)
            return not current if wanted is None else current != wanted
        return False

    def test_every_refused_field_is_read_only_for_the_manager(self):
        editable_but_refused = set()
        checked = 0
        for xmlid in FORMS:
            view = self.env.ref(xmlid)
            model = self.env[view.model].with_user(self.sync_manager)
            arch = etree.fromstring(
                model.get_views([(view.id, "form")])["views"]["form"]["arch"])
            for owner, node in field_nodes(arch, model):
                model_name = owner._name
                name = node.get("name")
                if name not in field_access.FIELD_ACCESS.get(model_name, {}):
                    continue  # computed: read-only by definition
                for record in self.states(model_name):
                    if not self.refused(model_name, name, record):
                        continue
                    checked += 1
                    hidden = (evaluate(node.get("invisible"), record)
                              or evaluate(node.get("column_invisible"), record))
                    readonly = (evaluate(node.get("readonly"), record)
                                if node.get("readonly") else record._fields[name].readonly)
                    if not (hidden or readonly):
                        editable_but_refused.add((model_name, name))
        self.assertEqual(editable_but_refused, REFUSED_ON_SAVE)
        self.assertGreater(checked, 20)

    def test_no_field_locks_itself(self):
        """A change that makes its own field read-only would never be saved (the
        web client sends no read-only field): no readonly condition of the
        addon's forms reads the field, or a field computed from it."""
        depends = self.env.registry.field_depends
        conditions = 0
        for xmlid in FORMS:
            view = self.env.ref(xmlid)
            model = self.env[view.model]
            arch = etree.fromstring(model.get_views([(view.id, "form")])["views"]["form"]["arch"])
            for owner, node in field_nodes(arch, model):
                model_name = owner._name
                if not node.get("readonly"):
                    continue
                conditions += 1
                fields = self.env[model_name]._fields
                name = node.get("name")
                for used in {item.id for item in ast.walk(ast.parse(node.get("readonly").strip(),
                                                                    mode="eval"))
                             if isinstance(item, ast.Name) and item.id in fields
                             and (model_name, item.id) not in SAVED_STATE}:
                    with self.subTest(field=f"{model_name}.{name}", reads=used):
                        self.assertNotEqual(used, name)
                        self.assertNotIn(name, [path.split(".")[0] for path in
                                                depends.get(fields[used], ())])
        self.assertGreater(conditions, 10)

    def test_the_field_refused_on_save_is_named(self):
        """Save sends it, and the refusal the form shows names it."""
        config = self.own_out.with_user(self.sync_manager)
        for model_name, name in REFUSED_ON_SAVE:
            self.assertEqual(model_name, CONFIG)
            with self.subTest(name), self.assertRaisesRegex(
                    AccessError, rf"Only Settings administrators may change .*\({name}\)"), \
                    self.env.cr.savepoint():
                config.web_save({name: 1}, specification={})

    def test_values_only_administrators_choose_are_not_offered(self):
        """Every field with such values, in every form, has the widget that
        offers them to Settings administrators alone; the server refuses them."""
        widgets = 0
        for xmlid in FORMS:
            view = self.env.ref(xmlid)
            for user in (self.sync_manager, self.env.ref("base.user_admin")):
                model = self.env[view.model].with_user(user)
                arch = etree.fromstring(
                    model.get_views([(view.id, "form")])["views"]["form"]["arch"])
                for owner, node in field_nodes(arch, model):
                    values = field_access.rule_of(owner._name, node.get("name")).admin_values
                    if values:
                        widgets += 1
                        self.assertEqual(node.get("widget"), ADMIN_VALUES_WIDGET)
                        self.assertEqual(safe_eval(node.get("options"))["admin_values"],
                                         list(values))
        self.assertEqual(widgets, 4)  # value_type: in the configuration's lines and the line form
        self.assertEqual(field_access.rule_of(LINE, "value_type").admin_values, SCRIPT_TYPES)
        line = self.own_in.line_ids.filtered(lambda line: line.external_key == "name")
        for value_type, label in (("python_plain", "Python Script for Plain Value"),
                                  ("relational_python", "Relational with Python Script")):
            with self.subTest(value_type), self.assertRaisesRegex(
                    AccessError, f"Only Settings administrators may choose {label} as Value "
                                 r"Calculation Type \(value_type\)"), self.env.cr.savepoint():
                self.own_in.with_user(self.sync_manager).web_save({"line_ids": [
                    Command.update(line.id, {"value_type": value_type,
                                             "python_script": False})]}, specification={})
        admin = new_test_user(self.env, login="bj_mform_admin", groups="base.group_system")
        line.with_user(admin).write({"value_type": "python_plain", "python_script": "'x'"})


@tagged("post_install", "-at_install")
class TestManagerFormTour(BjApiSyncTestMixin, HttpCase):
    """In Chromium, as an API Sync Manager on their own configuration: a new
    line offers no script type."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_bj_fixtures()
        cls.config = cls.make_partner_config(
            name="Manager's own", endpoint="mform-tour", run_as_user_id=cls.sync_manager.id,
            user_id=cls.sync_manager.id)

    def test_no_script_type_is_offered(self):
        self.start_tour(f"/odoo/action-bjet_api_sync.action_bj_api_sync_config/{self.config.id}",
                        "bjet_api_sync_manager_line_tour", login=self.sync_manager.login)
        self.assertEqual(len(self.config.line_ids), 4)
