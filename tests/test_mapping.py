import base64
import datetime

from odoo import Command
from odoo.exceptions import ValidationError
from odoo.tests import BaseCase, tagged

from ..core import convert
from ..core.exceptions import MappingError
from .common import BjApiSyncCase, records_service

ONE_PIXEL_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@tagged("post_install", "-at_install")
class TestConvert(BaseCase):
    def test_from_json_accepts(self):
        cases = [
            ("char", "abc", "abc"),
            ("char", 12, "12"),
            ("text", None, False),
            ("integer", 5, 5),
            ("integer", "7", 7),
            ("integer", 3.0, 3),
            ("float", "1.5", 1.5),
            ("monetary", 2, 2.0),
            ("boolean", True, True),
            ("boolean", "false", False),
            ("boolean", None, False),
            ("date", "2024-02-29", datetime.date(2024, 2, 29)),
            ("datetime", "2024-01-01T12:00:00+02:00", datetime.datetime(2024, 1, 1, 10, 0)),
            ("datetime", "2024-01-01T12:00:00Z", datetime.datetime(2024, 1, 1, 12, 0)),
            ("datetime", "2024-01-01 08:30:00", datetime.datetime(2024, 1, 1, 8, 30)),
            ("binary", base64.b64encode(b"hi").decode(), "aGk="),
            ("many2one", 4, 4),
            ("many2one", None, False),
            ("many2many", [1, 2], [1, 2]),
        ]
        for ttype, value, expected in cases:
            with self.subTest(ttype=ttype, value=value):
                self.assertEqual(convert.from_json(ttype, value), expected)
        self.assertEqual(convert.from_json("selection", "a", selection=("a",)), "a")

    def test_from_json_refuses(self):
        cases = [
            ("char", {"a": 1}, "expected a string"),
            ("char", True, "expected a string"),
            ("integer", "12abc", "expected an integer"),
            ("integer", True, "expected an integer"),
            ("integer", 1.5, "expected an integer"),
            ("integer", 2**40, "out of the integer range"),
            ("float", "abc", "expected a number"),
            ("float", float("nan"), "finite number"),
            ("boolean", "maybe", "expected true or false"),
            ("date", "29/02/2024", "not an ISO 8601 date"),
            ("date", 20240229, "expected an ISO 8601 date"),
            ("datetime", "yesterday", "not an ISO 8601 date-time"),
            ("binary", "not base64!", "not valid base64"),
            ("many2one", 0, "positive integer"),
            ("many2one", "x", "expected an integer"),
            ("many2many", 3, "list of record ids"),
            ("many2many", [1, "a"], "expected an integer"),
        ]
        for ttype, value, message in cases:
            with self.subTest(ttype=ttype, value=value):
                with self.assertRaisesRegex(ValueError, message):
                    convert.from_json(ttype, value)
        with self.assertRaisesRegex(ValueError, "not one of the allowed values: 'a'"):
            convert.from_json("selection", "b", selection=("a",))

    def test_to_json(self):
        self.assertEqual(convert.to_json("date", datetime.date(2024, 1, 2)), "2024-01-02")
        self.assertEqual(
            convert.to_json("datetime", datetime.datetime(2024, 1, 2, 3, 4, 5, 678)),
            "2024-01-02T03:04:05Z",
        )
        self.assertIsNone(convert.to_json("char", False))
        self.assertIs(convert.to_json("boolean", False), False)
        self.assertEqual(convert.to_json("binary", b"aGk="), "aGk=")


@tagged("post_install", "-at_install")
class TestMappingEngine(BjApiSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.country_config = cls.make_config(
            model="res.country",
            lines=[("code", "code", {"is_identifier": True}), ("name", "name", None)],
        )
        cls.category_config = cls.make_config(
            model="res.partner.category",
            lines=[("name", "name", {"is_identifier": True})],
        )
        cls.child_config = cls.make_config(
            lines=[("id", "id", {"is_identifier": True}), ("name", "name", None),
                   ("email", "email", None)],
        )
        cls.config = cls.make_config(lines=[
            ("id", "res_id", {"is_identifier": True}),
            ("name", "name", None),
            ("is_company", "is_company", None),
            ("partner_latitude", "lat", None),
            ("color", "color", None),
            ("type", "type", None),
            ("comment", "notes", None),
            ("image_1920", "image", None),
            ("parent_id", "parent", None),
            ("country_id", "country", {"value_type": "relational_mapping",
                                       "mapping_config_id": cls.country_config.id}),
            ("category_id", "tags", {"value_type": "relational_mapping",
                                     "mapping_config_id": cls.category_config.id}),
            ("child_ids", "contacts", {"value_type": "relational_mapping",
                                       "mapping_config_id": cls.child_config.id}),
        ])
        cls.belgium = cls.env.ref("base.be")
        cls.tag_vip = cls.env["res.partner.category"].create({"name": "VIP"})
        cls.tag_b2b = cls.env["res.partner.category"].create({"name": "B2B"})

    def line(self, key):
        return self.config.line_ids.filtered(lambda line: line.external_key == key)

    def test_import_all_types(self):
        image = ONE_PIXEL_PNG
        parent = self.env["res.partner"].create({"name": "Parent Co", "is_company": True})
        vals = self.import_one(self.config, {
            "res_id": 999,  # the identifier ``id`` is never written
            "name": "Acme",
            "is_company": True,
            "lat": "50.5",
            "color": 3,
            "type": "invoice",
            "notes": "<p>hello</p>",
            "image": image,
            "parent": parent.id,
            "country": "BE",
            "tags": ["VIP", "B2B"],
            "contacts": [{"name": "Jane", "email": "jane@example.com"}],
            "unknown_key": "ignored",
        })
        self.assertNotIn("id", vals)
        self.assertEqual(vals["country_id"], self.belgium.id)
        self.assertEqual(vals["category_id"], [Command.set([self.tag_vip.id, self.tag_b2b.id])])
        self.assertEqual(vals["child_ids"],
                         [Command.create({"name": "Jane", "email": "jane@example.com"})])
        partner = self.env["res.partner"].create(vals)
        self.assertEqual(partner.partner_latitude, 50.5)
        self.assertEqual(partner.type, "invoice")
        self.assertEqual(partner.parent_id, parent)
        self.assertEqual(partner.child_ids.email, "jane@example.com")

        exported = self.export(self.config, partner)[0]
        self.assertEqual(exported["res_id"], partner.id)
        self.assertEqual(exported["country"], {"code": "BE", "name": self.belgium.name})
        self.assertEqual(exported["tags"], [{"name": "VIP"}, {"name": "B2B"}])
        self.assertEqual(exported["contacts"][0]["email"], "jane@example.com")
        self.assertEqual(exported["parent"], parent.id)
        self.assertIs(exported["is_company"], True)
        self.assertTrue(exported["image"])

    def test_invalid_values_name_the_line(self):
        cases = [
            ({"color": "red"}, "color"),
            ({"type": "nonsense"}, "type"),
            ({"parent": 10**8}, "parent"),
            ({"country": "XX"}, "country"),
            ({"tags": ["VIP", "No such tag"]}, "tags"),
            ({"tags": "VIP"}, "tags"),
            ({"contacts": ["not an object"]}, "contacts"),
            ({"image": "@@@"}, "image"),
        ]
        for data, key in cases:
            with self.subTest(data=data):
                with self.assertRaises(MappingError) as caught:
                    self.import_values(self.config, [{}, {}, data])
                self.assertEqual(caught.exception.line_id, self.line(key).id)
                self.assertEqual(caught.exception.index, 2)
                self.assertIn(key, str(caught.exception))

    def test_dates_both_ways(self):
        config = self.make_config(
            model="res.currency.rate",
            lines=[("id", "id", {"is_identifier": True}), ("name", "date", None),
                   ("rate", "rate", None), ("currency_id", "currency", None)],
        )
        currency = self.env.ref("base.EUR")
        vals = self.import_one(config, {"date": "2024-05-01", "rate": 1.25,
                                      "currency": currency.id})
        self.assertEqual(vals["name"], datetime.date(2024, 5, 1))
        rate = self.env["res.currency.rate"].create(vals)
        self.assertEqual(self.export(config, rate)[0]["date"], "2024-05-01")
        with self.assertRaises(MappingError) as caught:
            self.import_one(config, {"date": "01/05/2024"})
        self.assertEqual(caught.exception.line_id, config.line_ids[1].id)

    def test_batch_lookups_use_one_query_per_line(self):
        items = [{"name": f"P{i}", "country": "BE", "tags": ["VIP"]} for i in range(30)]
        self.env.invalidate_all()
        self.import_values(self.config, items[:1])  # warm caches of the configuration
        with self.assertQueryCount(2):  # one search for countries, one for tags
            vals_list = self.import_values(self.config, items)
        self.assertEqual(len(vals_list), 30)

    def test_export_prefetches(self):
        partners = self.env["res.partner"].create(
            [{"name": f"E{i}", "country_id": self.belgium.id} for i in range(20)]
        )
        self.export(self.config, partners[:1])
        self.env.invalidate_all()
        with self.assertQueryCount(11):
            rows = self.export(self.config, partners)
        self.assertEqual([row["name"] for row in rows], partners.mapped("name"))

    def lookup(self, config, values):
        return records_service.Relations(self.env).ids_by_identifier(config._bj_plan(), values)

    def test_identifier_lookup(self):
        partner = self.env["res.partner"].create({"name": "Lookup"})
        self.assertEqual(self.lookup(self.config, [partner.id]), {partner.id: partner.id})
        self.assertEqual(self.lookup(self.country_config, ["BE", "ZZ"]),
                         {"BE": self.belgium.id})

    def test_scope_limits_lookups(self):
        config = self.make_config(
            lines=[("id", "id", {"is_identifier": True})],
            filter_domain="[('is_company', '=', True)]",
        )
        company = self.env["res.partner"].create({"name": "Co", "is_company": True})
        person = self.env["res.partner"].create({"name": "Person"})
        self.assertEqual(self.lookup(config, [company.id, person.id]), {company.id: company.id})
        other_company = self.env["res.company"].create({"name": "Other"})
        company.company_id = other_company
        self.assertEqual(self.lookup(config, [company.id]), {})


@tagged("post_install", "-at_install")
class TestMappingScripts(BjApiSyncCase):
    def make_script_config(self, script, mode="evaluate", value_type="python_plain",
                           field="comment", key="notes"):
        return self.make_config(lines=[
            ("id", "id", {"is_identifier": True}),
            ("name", "name", None),
            (field, key, {"value_type": value_type, "script_mode": mode,
                          "python_script": script}),
        ])

    def test_evaluate_expression(self):
        config = self.make_script_config("request_data['name'].upper()")
        self.assertEqual(self.import_one(config, {"name": "acme"})["comment"], "ACME")

    def test_evaluate_statements_with_result(self):
        config = self.make_script_config(
            "parts = request_data['name'].split()\nresult = '-'.join(parts)"
        )
        self.assertEqual(self.import_one(config, {"name": "a b c"})["comment"], "a-b-c")

    def test_execute_changes_request_data_for_later_lines(self):
        config = self.make_config(lines=[
            ("id", "id", {"is_identifier": True}),
            ("comment", "notes", {"sequence": 0, "value_type": "python_plain",
                                  "script_mode": "execute",
                                  "python_script": "request_data['name'] = request_data['first']"
                                                   " + ' ' + request_data['last']"}),
            ("name", "name", {"sequence": 5}),
        ])
        vals = self.import_one(config, {"first": "Ada", "last": "Lovelace"})
        self.assertEqual(vals, {"name": "Ada Lovelace"})

    def test_script_context(self):
        config = self.make_script_config(
            "result = '%s|%s|%s|%s|%s|%s' % (model._name, len(records), "
            "b64decode(b64encode(b'x')).decode(), float_compare(1.0, 1.0, precision_digits=2), "
            "datetime.date(2024, 1, 1).isoformat(), timezone('UTC').zone)"
        )
        self.assertEqual(self.import_one(config, {})["comment"],
                         "res.partner|0|x|0|2024-01-01|UTC")

    def test_script_on_export_sees_record(self):
        config = self.make_script_config("record.name + '_code'")
        partner = self.env["res.partner"].create({"name": "Neo"})
        self.assertEqual(self.export(config, partner, with_scripts=True)[0]["notes"], "Neo_code")

    def test_relational_python(self):
        tag = self.env["res.partner.category"].create({"name": "Scripted"})
        config = self.make_script_config(
            "env['res.partner.category'].search([('name', '=', request_data['tag'])])",
            value_type="relational_python", field="category_id", key="tag",
        )
        self.assertEqual(self.import_one(config, {"tag": "Scripted"})["category_id"],
                         [Command.set(tag.ids)])
        partner = self.env["res.partner"].create({"name": "T", "category_id": [(4, tag.id)]})
        exported = self.export(self.make_script_config(
            "record.category_id", value_type="relational_python", field="category_id",
            key="tag",
        ), partner, with_scripts=True)[0]
        self.assertEqual(exported["tag"], tag.id)

    def test_script_errors_name_the_line(self):
        for script in ("import os", "().__class__.__bases__"):
            with self.subTest(script=script), self.assertRaisesRegex(
                    ValidationError, "is not allowed"):
                self.make_script_config(script)  # refused on save
        for script in (
            "1 / 0",
            "raise UserError('refused by script')",
            "open('/etc/passwd').read()",
        ):
            with self.subTest(script=script):
                config = self.make_script_config(script)
                with self.assertRaises(MappingError) as caught:
                    self.import_one(config, {"name": "x"})
                self.assertEqual(caught.exception.line_id, config.line_ids[-1].id)
                self.assertIn("notes", str(caught.exception))
