"""The pure mapping engine (core/engine.py): plans and rows as plain data, no
database.  Every value type, both directions, with and without a Mapping Model."""

import datetime

from odoo.tests import BaseCase, tagged

from ..core import engine
from ..core.engine import Row
from ..core.exceptions import MappingError
from ..core.plan import AuthPlan, ConfigPlan, LinePlan, Script

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def line(key, ttype, field=None, value_type="plain", comodel=None, child=None, selection=None,
         identifier=False, writable=True, script=None, line_id=None):
    return LinePlan(
        line_id=line_id or abs(hash((key, ttype))) % 10_000,
        model="x.model",
        key=key,
        label=key,
        field=field or key,
        ttype=ttype,
        value_type=value_type,
        store=True,
        writable=writable,
        searchable=True,
        comodel=comodel,
        selection=selection,
        is_identifier=identifier,
        script=script,
        child=child,
    )


def plan(*lines, model="x.model", name="Plan"):
    return ConfigPlan(
        config_id=1, name=name, request_type="in", model=model, company_id=None, run_as_uid=2,
        filter_template=None, company_domain=(), lines=tuple(lines),
        identifier=next((item for item in lines if item.is_identifier), None),
        auth=AuthPlan("no_auth", "", "", "", "", ()), methods=frozenset(), params=(), networks=(),
        rate_limit=0, limit=100, is_paginated=False, page_size=100, max_body_size=1,
        log_body_max_size=1, delivery=None, triggers=None,
        has_scripts=any(item.is_script for item in lines),
    )


class FakeRelations:
    """Records of the other models, as plain dictionaries."""

    def __init__(self, ids=None, identifiers=None):
        self.ids = ids or {}  # model -> set of ids
        self.identifiers = identifiers or {}  # model -> {identifier value: id}
        self.calls = []

    def existing_ids(self, model, ids):
        self.calls.append(("existing", model, tuple(ids)))
        return set(ids) & self.ids.get(model, set())

    def ids_by_identifier(self, plan, values):
        self.calls.append(("identifier", plan.model, tuple(values)))
        known = self.identifiers.get(plan.model, {})
        return {value: known[value] for value in values if value in known}


class FakeScripts:
    """Scripts as Python callables of (record, request_data)."""

    def __init__(self, functions):
        self.functions = functions  # line key -> function
        self.calls = []

    def __call__(self, line, handle, request_data, index):
        self.calls.append((line.key, index))
        return True, self.functions[line.key](handle, request_data)


SCRIPT = Script("evaluate", None, True)
COUNTRY = plan(line("code", "char", identifier=True), line("name", "char"), model="res.country")
TAG = plan(line("name", "char", identifier=True), model="res.partner.category")
CONTACT = plan(line("name", "char"), line("email", "char"), model="res.partner")
SELECTION = ("contact", "invoice")

# (line, stored value as read(), JSON)
PLAIN_EXPORTS = [
    (line("name", "char"), "Acme", "Acme"),
    (line("name", "char"), False, None),
    (line("notes", "text"), "a\nb", "a\nb"),
    (line("body", "html"), "<p>x</p>", "<p>x</p>"),
    (line("count", "integer"), 7, 7),
    (line("rate", "float"), 1.5, 1.5),
    (line("amount", "monetary"), 2.0, 2.0),
    (line("active", "boolean"), True, True),
    (line("active", "boolean"), False, False),
    (line("day", "date"), datetime.date(2024, 5, 1), "2024-05-01"),
    (line("day", "date"), False, None),
    (line("at", "datetime"), datetime.datetime(2024, 5, 1, 8, 30, 5, 123), "2024-05-01T08:30:05Z"),
    (line("image", "binary"), PNG.encode(), PNG),
    (line("type", "selection", selection=SELECTION), "invoice", "invoice"),
    (line("parent", "many2one", comodel="res.partner"), 42, 42),
    (line("parent", "many2one", comodel="res.partner"), False, None),
    (line("tags", "many2many", comodel="res.partner.category"), [3, 4], [3, 4]),
    (line("children", "one2many", comodel="res.partner"), [], []),
    (line("res_id", "many2one_reference"), 9, 9),
]

# (line, JSON, ORM value)
PLAIN_IMPORTS = [
    (line("name", "char"), "Acme", "Acme"),
    (line("name", "char"), 12, "12"),
    (line("name", "char"), None, False),
    (line("notes", "text"), "a\nb", "a\nb"),
    (line("body", "html"), "<p>x</p>", "<p>x</p>"),
    (line("count", "integer"), "7", 7),
    (line("rate", "float"), "1.5", 1.5),
    (line("amount", "monetary"), 2, 2.0),
    (line("active", "boolean"), "false", False),
    (line("active", "boolean"), None, False),
    (line("day", "date"), "2024-05-01", datetime.date(2024, 5, 1)),
    (line("at", "datetime"), "2024-05-01T10:30:05+02:00", datetime.datetime(2024, 5, 1, 8, 30, 5)),
    (line("image", "binary"), PNG, PNG),
    (line("type", "selection", selection=SELECTION), "invoice", "invoice"),
    (line("parent", "many2one", comodel="res.partner"), 42, 42),
    (line("parent", "many2one", comodel="res.partner"), None, False),
    (line("tags", "many2many", comodel="res.partner.category"), [3, 4], [(6, 0, [3, 4])]),
    (line("children", "one2many", comodel="res.partner"), None, [(6, 0, [])]),
    (line("res_id", "many2one_reference"), 9, 9),
    (line("at", "datetime"), "9999-12-31T23:59:59+00:00",
     datetime.datetime(9999, 12, 31, 23, 59, 59)),
    (line("rate", "float"), -0.0, -0.0),
    (line("rate", "float"), 1e308, 1e308),
]

# (line, JSON): refused with a MappingError naming the line
REFUSED_IMPORTS = [
    (line("count", "integer"), "seven"),
    (line("count", "integer"), 2**40),
    (line("rate", "float"), "NaN"),
    (line("active", "boolean"), "maybe"),
    (line("day", "date"), "01/05/2024"),
    (line("at", "datetime"), 20240501),
    (line("image", "binary"), "@@@"),
    (line("type", "selection", selection=SELECTION), "other"),
    (line("name", "char"), {"a": 1}),
    (line("parent", "many2one", comodel="res.partner"), 10**6),  # no such record
    (line("parent", "many2one", comodel="res.partner"), -1),
    (line("tags", "many2many", comodel="res.partner.category"), "3"),
    (line("tags", "many2many", comodel="res.partner.category"), [3, 999]),
    # Past year 9999, or before year 1, once in UTC.
    (line("at", "datetime"), "9999-12-31T23:59:59-05:00"),
    (line("at", "datetime"), "0001-01-01T00:00:00+05:00"),
    (line("day", "date"), "0000-01-01"),
    (line("day", "date"), "99999-01-01"),
    (line("rate", "float"), 10**400),
    (line("rate", "float"), float("inf")),
    (line("count", "integer"), -(2**31) - 1),
    # Text PostgreSQL cannot store.
    (line("name", "char"), "a\x00b"),
    (line("notes", "text"), "\ud800"),
    (line("tags", "many2many", comodel="res.partner.category"), [2**31]),
]

# (line, what the line's script returned, ORM value)
SCRIPT_VALUES = [
    (line("name", "char"), "x", "x"),
    (line("name", "char"), False, False),
    (line("count", "integer"), "7", 7),
    (line("day", "date"), datetime.date(2024, 5, 1), datetime.date(2024, 5, 1)),
    (line("day", "date"), datetime.datetime(2024, 5, 1, 23, 0), datetime.date(2024, 5, 1)),
    (line("at", "datetime"), datetime.datetime(2024, 5, 1, 10, 0, 0, 5),
     datetime.datetime(2024, 5, 1, 10, 0, 0, 5)),
    (line("at", "datetime"),
     datetime.datetime(2024, 5, 1, 10, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
     datetime.datetime(2024, 5, 1, 8, 0)),
    (line("at", "datetime"), "2024-05-01T10:00:00", datetime.datetime(2024, 5, 1, 10, 0)),
    (line("image", "binary"), PNG.encode(), PNG),
    (line("type", "selection", selection=SELECTION), "invoice", "invoice"),
    (line("parent", "many2one", comodel="res.partner"), 9, 9),
    (line("parent", "many2one", comodel="res.partner"), None, False),
    (line("tags", "many2many", comodel="res.partner.category"), (3, 4), [(6, 0, [3, 4])]),
    (line("tags", "many2many", comodel="res.partner.category"), [(4, 3), (3, 4)],
     [(4, 3), (3, 4)]),
    (line("tags", "many2many", comodel="res.partner.category"), [], [(6, 0, [])]),
    (line("ref", "reference"), "res.partner,1", "res.partner,1"),
]

# (line, what the line's script returned): refused, naming the line and item
REFUSED_SCRIPT_VALUES = [
    (line("tags", "many2many", comodel="res.partner.category"), "abc"),
    (line("tags", "many2many", comodel="res.partner.category"), [3, "a"]),
    (line("tags", "many2many", comodel="res.partner.category"), [(7, 0, 0)]),
    (line("tags", "many2many", comodel="res.partner.category"), {"a": 1}),
    (line("parent", "many2one", comodel="res.partner"), "abc"),
    (line("parent", "many2one", comodel="res.partner"), {"a": 1}),
    (line("parent", "many2one", comodel="res.partner"), [(6, 0, [1])]),
    (line("count", "integer"), "abc"),
    (line("count", "integer"), 10**20),
    (line("rate", "float"), float("inf")),
    (line("at", "datetime"), "31/12/2024"),
    (line("day", "date"), [1]),
    (line("name", "char"), {"a": 1}),
    (line("name", "char"), "a\x00"),
    (line("type", "selection", selection=SELECTION), "other"),
    (line("image", "binary"), "@@@"),
]

EXISTING = {"res.partner": {42}, "res.partner.category": {3, 4}}


@tagged("post_install", "-at_install")
class TestEngine(BaseCase):
    def test_plain_exports(self):
        for item, stored, expected in PLAIN_EXPORTS:
            with self.subTest(ttype=item.ttype, stored=stored):
                rows = [Row({item.field: stored})]
                self.assertEqual(engine.export_rows(plan(item), rows), [{item.key: expected}])

    def test_plain_imports(self):
        for item, sent, expected in PLAIN_IMPORTS:
            with self.subTest(ttype=item.ttype, sent=sent):
                vals = engine.import_items(plan(item), [{item.key: sent}],
                                           FakeRelations(EXISTING), FakeScripts({}))
                self.assertEqual(vals, [{item.field: expected}])

    def test_refused_imports_name_line_and_item(self):
        for item, sent in REFUSED_IMPORTS:
            with self.subTest(ttype=item.ttype, sent=sent):
                items = [{}, {item.key: sent}]
                with self.assertRaises(MappingError) as caught:
                    engine.import_items(plan(item), items, FakeRelations(EXISTING),
                                        FakeScripts({}))
                self.assertEqual(caught.exception.line_id, item.line_id)
                self.assertEqual(caught.exception.index, 1)
                self.assertIn(item.key, str(caught.exception))

    def test_absent_keys_and_read_only_lines_write_nothing(self):
        lines = (line("name", "char"), line("id", "integer", writable=False))
        vals = engine.import_items(plan(*lines), [{"id": 5, "other": 1}], FakeRelations(),
                                   FakeScripts({}))
        self.assertEqual(vals, [{}])

    def test_mapping_model_exports(self):
        cases = [
            (line("country", "many2one", field="country_id", value_type="relational_mapping",
                  comodel="res.country", child=COUNTRY),
             Row({"code": "BE", "name": "Belgium"}), {"code": "BE", "name": "Belgium"}),
            (line("country", "many2one", field="country_id", value_type="relational_mapping",
                  comodel="res.country", child=COUNTRY), None, None),
            (line("tags", "many2many", field="category_id", value_type="relational_mapping",
                  comodel="res.partner.category", child=TAG),
             [Row({"name": "VIP"}), Row({"name": "B2B"})], [{"name": "VIP"}, {"name": "B2B"}]),
            (line("contacts", "one2many", field="child_ids", value_type="relational_mapping",
                  comodel="res.partner", child=CONTACT),
             [Row({"name": "Jane", "email": "j@x.org"})], [{"name": "Jane", "email": "j@x.org"}]),
        ]
        for item, related, expected in cases:
            with self.subTest(key=item.key, related=related):
                rows = [Row({item.field: related})]
                self.assertEqual(engine.export_rows(plan(item), rows), [{item.key: expected}])

    def test_mapping_model_imports_look_up_in_one_question(self):
        relations = FakeRelations(identifiers={"res.country": {"BE": 21},
                                               "res.partner.category": {"VIP": 3, "B2B": 4}})
        lines = (
            line("country", "many2one", field="country_id", value_type="relational_mapping",
                 comodel="res.country", child=COUNTRY),
            line("tags", "many2many", field="category_id", value_type="relational_mapping",
                 comodel="res.partner.category", child=TAG),
            line("contacts", "one2many", field="child_ids", value_type="relational_mapping",
                 comodel="res.partner", child=CONTACT),
        )
        items = [
            {"country": "BE", "tags": ["VIP", {"name": "B2B"}],
             "contacts": [{"name": "Jane", "email": "j@x.org"}]},
            {"country": {"code": "BE"}, "tags": []},
            {"country": None, "tags": None},
        ]
        vals = engine.import_items(plan(*lines), items, relations, FakeScripts({}))
        self.assertEqual(vals, [
            {"country_id": 21, "category_id": [(6, 0, [3, 4])],
             "child_ids": [(0, 0, {"name": "Jane", "email": "j@x.org"})]},
            {"country_id": 21, "category_id": [(6, 0, [])]},
            {"country_id": False, "category_id": [(6, 0, [])]},
        ])
        # One look-up per line for the whole batch.
        self.assertEqual(relations.calls, [
            ("identifier", "res.country", ("BE", "BE")),
            ("identifier", "res.partner.category", ("VIP", "B2B")),
        ])

    def test_mapping_model_refusals(self):
        relations = FakeRelations(identifiers={"res.country": {"BE": 21}})
        country = line("country", "many2one", field="country_id",
                       value_type="relational_mapping", comodel="res.country", child=COUNTRY)
        tags = line("tags", "many2many", field="category_id", value_type="relational_mapping",
                    comodel="res.partner.category", child=TAG)
        contacts = line("contacts", "one2many", field="child_ids",
                        value_type="relational_mapping", comodel="res.partner", child=CONTACT)
        no_identifier = line("other", "many2one", field="parent_id",
                             value_type="relational_mapping", comodel="res.partner",
                             child=CONTACT)
        cases = [
            (country, {"country": "XX"}, "no res.country record with code = 'XX'"),
            (tags, {"tags": "VIP"}, "expected a list"),
            (tags, {"tags": ["VIP"]}, "no res.partner.category record"),
            (contacts, {"contacts": ["x"]}, "expected a list of objects"),
            (no_identifier, {"other": 1}, "has no Record Identifier"),
        ]
        for item, data, message in cases:
            with self.subTest(data=data), self.assertRaises(MappingError) as caught:
                engine.import_items(plan(item), [{}, data], relations, FakeScripts({}))
            self.assertIn(message, str(caught.exception))
            self.assertEqual(caught.exception.line_id, item.line_id)

    def test_nested_errors_name_the_parent_item(self):
        contacts = line("contacts", "one2many", field="child_ids",
                        value_type="relational_mapping", comodel="res.partner",
                        child=plan(line("age", "integer"), model="res.partner"))
        with self.assertRaises(MappingError) as caught:
            engine.import_items(plan(contacts), [{}, {"contacts": [{"age": "old"}]}],
                                FakeRelations(), FakeScripts({}))
        self.assertEqual(caught.exception.index, 1)

    def test_scripts_run_in_their_direction_once_per_item(self):
        notes = line("notes", "text", field="comment", value_type="python_plain", script=SCRIPT)
        config = plan(line("name", "char"), notes)
        scripts = FakeScripts({"notes": lambda record, data: data["name"].upper()})
        # Import: the script turns the payload into the field's value.
        vals = engine.import_items(config, [{"name": "a"}, {"name": "b"}], FakeRelations(),
                                   scripts)
        self.assertEqual(vals, [{"name": "a", "comment": "A"}, {"name": "b", "comment": "B"}])
        self.assertEqual(scripts.calls, [("notes", 0), ("notes", 1)])
        # An update runs an Evaluate script only for a key that was sent.
        scripts.calls.clear()
        vals = engine.import_items(config, [{"name": "c"}, {"name": "d", "notes": "x"}],
                                   FakeRelations(), scripts, handles=["rec1", "rec2"])
        self.assertEqual(vals, [{"name": "c"}, {"name": "d", "comment": "D"}])
        self.assertEqual(scripts.calls, [("notes", 1)])
        # An answer shows the stored value; no script runs.
        scripts.calls.clear()
        rows = [Row({"name": "a", "comment": "stored"})]
        self.assertEqual(engine.export_rows(config, rows), [{"name": "a", "notes": "stored"}])
        self.assertEqual(scripts.calls, [])
        # An outbound payload computes it from the record, seeing earlier keys.
        out = FakeScripts({"notes": lambda record, data: f"{record}:{data['name']}"})
        rows = [Row({"name": "a"}, handle="rec1")]
        self.assertEqual(engine.export_rows(config, rows, out), [{"name": "a", "notes": "rec1:a"}])

    def test_execute_lines_exchange_no_key(self):
        """An Execute line rewrites ``request_data`` and fills nothing: it is in no
        answer, no column read, no query key; in an outbound payload it runs."""
        normalise = line("email", "char", field="comment", value_type="python_plain",
                         script=Script("execute", None, False))
        config = plan(normalise, line("email", "char"))
        self.assertFalse(normalise.exchanges)
        self.assertIs(config.line("email"), config.lines[1])
        self.assertEqual(config.stored_fields(), ["email"])
        rows = [Row({"email": "a@x", "comment": "stored"}, handle="rec1")]
        self.assertEqual(engine.export_rows(config, rows), [{"email": "a@x"}])

        def execute(_line, handle, request_data, _index):
            request_data["seen"] = handle
            return False, None

        self.assertEqual(engine.export_rows(plan(normalise), rows, execute), [{"seen": "rec1"}])

    def test_relational_script_values(self):
        class Records:  # a recordset, as far as the engine can tell
            _name = "res.partner.category"

            def __init__(self, ids):
                self.ids = ids
                self.id = ids[0] if ids else False

            def __len__(self):
                return len(self.ids)

            def __getitem__(self, key):
                return Records(self.ids[key])

        tags = line("tags", "many2many", field="category_id", value_type="relational_python",
                    comodel="res.partner.category", script=SCRIPT)
        parent = line("parent", "many2one", field="parent_id", value_type="relational_python",
                      comodel="res.partner", script=SCRIPT)
        cases = [
            (tags, Records([3, 4]), [(6, 0, [3, 4])]),
            (tags, [3, 4], [(6, 0, [3, 4])]),
            (parent, Records([7, 8]), 7),
            (parent, 9, 9),
        ]
        for item, returned, expected in cases:
            with self.subTest(key=item.key, returned=returned):
                scripts = FakeScripts({item.key: lambda record, data, value=returned: value})
                vals = engine.import_items(plan(item), [{}], FakeRelations(), scripts)
                self.assertEqual(vals, [{item.field: expected}])
        out = FakeScripts({"tags": lambda record, data: Records([3, 4])})
        self.assertEqual(engine.export_rows(plan(tags), [Row({})], out), [{"tags": [3, 4]}])

    def test_script_values_are_checked(self):
        for item, returned, expected in SCRIPT_VALUES:
            with self.subTest(ttype=item.ttype, returned=returned):
                self.assertEqual(engine.script_value_to_orm(item, returned), expected)
        for item, returned in REFUSED_SCRIPT_VALUES:
            with self.subTest(ttype=item.ttype, returned=returned):
                scripted = line(item.key, item.ttype, comodel=item.comodel, script=SCRIPT,
                                selection=item.selection, value_type="python_plain")
                scripts = FakeScripts({item.key: lambda record, data, value=returned: value})
                with self.assertRaises(MappingError) as caught:
                    engine.import_items(plan(scripted), [{}, {}], FakeRelations(), scripts)
                self.assertEqual(caught.exception.line_id, scripted.line_id)
                self.assertEqual(caught.exception.index, 0)
                self.assertIn("returned a value", str(caught.exception))

    def test_python_to_json(self):
        cases = [
            (datetime.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05Z"),
            (datetime.date(2024, 1, 2), "2024-01-02"),
            (b"abc", "abc"),
            ((1, [datetime.date(2024, 1, 2)]), [1, ["2024-01-02"]]),
            ({"a": b"x"}, {"a": "x"}),
            (None, None),
        ]
        for value, expected in cases:
            with self.subTest(value=value):
                self.assertEqual(engine.python_to_json(value), expected)
