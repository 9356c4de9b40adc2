import base64

from odoo.tests import tagged

from .common import BjApiHttpCase

ONE_PIXEL_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@tagged("post_install", "-at_install")
class TestInboundMapping(BjApiHttpCase):
    """Every field type and both relational directions, through the REST API."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Contacts lack text, date, datetime and monetary fields: add them.
        Fields = cls.env["ir.model.fields"]
        for name, ttype, extra in (
            ("x_bj_text", "text", {}),
            ("x_bj_date", "date", {}),
            ("x_bj_moment", "datetime", {}),
            ("x_bj_currency_id", "many2one", {"relation": "res.currency"}),
            ("x_bj_amount", "monetary", {"currency_field": "x_bj_currency_id"}),
        ):
            Fields.create({
                "model_id": cls.partner_model.id, "name": name, "ttype": ttype,
                "field_description": name, "state": "manual", **extra,
            })
        cls.country_config = cls.make_country_config()
        cls.tag_config = cls.make_config(
            model="res.partner.category", lines=[("name", "name", {"is_identifier": True})]
        )
        cls.contact_config = cls.make_config(
            lines=[("id", "id", {"is_identifier": True}), ("name", "name", None),
                   ("email", "email", None)],
        )
        cls.config = cls.make_config(endpoint="map-partners", lines=[
            ("id", "res_id", {"is_identifier": True}),
            ("name", "name", None),
            ("comment", "notes", None),
            ("x_bj_text", "text", None),
            ("color", "color", None),
            ("partner_latitude", "lat", None),
            ("x_bj_currency_id", "currency", None),
            ("x_bj_amount", "amount", None),
            ("is_company", "is_company", None),
            ("x_bj_date", "date", None),
            ("x_bj_moment", "moment", None),
            ("type", "type", None),
            ("parent_id", "parent", None),
            ("image_1920", "image", None),
            ("country_id", "country", {"value_type": "relational_mapping",
                                       "mapping_config_id": cls.country_config.id}),
            ("category_id", "tags", {"value_type": "relational_mapping",
                                     "mapping_config_id": cls.tag_config.id}),
            ("child_ids", "contacts", {"value_type": "relational_mapping",
                                       "mapping_config_id": cls.contact_config.id}),
        ])
        cls.parent = cls.env["res.partner"].create({"name": "Map Parent", "is_company": True})
        cls.vip, cls.b2b = cls.env["res.partner.category"].create([{"name": "VIP"},
                                                                   {"name": "B2B"}])
        cls.eur = cls.env.ref("base.EUR")
        cls.eur.active = True

    def line(self, key):
        return self.config.line_ids.filtered(lambda line: line.external_key == key)

    def full_payload(self, **overrides):
        payload = {
            "name": "Mapped Co",
            "notes": "<p>Big <b>client</b></p>",
            "text": "line one\nline two",
            "color": 4,
            "lat": 50.8503,
            "currency": self.eur.id,
            "amount": 1234.5,
            "is_company": True,
            "date": "2024-02-29",
            "moment": "2024-03-01T10:00:00+02:00",
            "type": "invoice",
            "parent": self.parent.id,
            "image": ONE_PIXEL_PNG,
            "country": "BE",
            "tags": ["VIP", "B2B"],
            "contacts": [{"name": "Jane", "email": "jane@example.com"}],
        }
        payload.update(overrides)
        return payload

    def test_plain_values_both_ways(self):
        created = self.assertApiSuccess(
            self.api("POST", "map-partners", body=self.full_payload()), 201
        )
        partner = self.env["res.partner"].browse(created["res_id"])
        self.assertEqual(partner.name, "Mapped Co")
        self.assertIn("<b>client</b>", str(partner.comment))
        self.assertEqual(partner.x_bj_text, "line one\nline two")
        self.assertEqual(partner.color, 4)
        self.assertAlmostEqual(partner.partner_latitude, 50.8503)
        self.assertEqual(partner.x_bj_amount, 1234.5)
        self.assertTrue(partner.is_company)
        self.assertEqual(str(partner.x_bj_date), "2024-02-29")
        self.assertEqual(str(partner.x_bj_moment), "2024-03-01 08:00:00", "stored in UTC")
        self.assertEqual(partner.type, "invoice")
        self.assertEqual(partner.parent_id, self.parent)
        self.assertTrue(partner.image_1920)

        fetched = self.assertApiSuccess(self.api("GET", "map-partners", partner.id))
        self.assertEqual(fetched, created)
        self.assertEqual(fetched["moment"], "2024-03-01T08:00:00Z")
        self.assertEqual(fetched["date"], "2024-02-29")
        self.assertEqual(fetched["amount"], 1234.5)
        self.assertIs(fetched["is_company"], True)
        self.assertEqual(fetched["parent"], self.parent.id)
        self.assertEqual(base64.b64decode(fetched["image"])[:4], b"\x89PNG")

    def test_relational_mapping_both_ways(self):
        created = self.assertApiSuccess(
            self.api("POST", "map-partners", body=self.full_payload()), 201
        )
        partner = self.env["res.partner"].browse(created["res_id"])
        self.assertEqual(partner.country_id, self.env.ref("base.be"))
        self.assertEqual(partner.category_id, self.vip | self.b2b)
        self.assertEqual(partner.child_ids.mapped("email"), ["jane@example.com"])
        self.assertEqual(created["country"], {"code": "BE", "name": partner.country_id.name})
        self.assertEqual(created["tags"], [{"name": "B2B"}, {"name": "VIP"}], "as stored")
        self.assertEqual(created["contacts"], [{"id": partner.child_ids.id, "name": "Jane",
                                                "email": "jane@example.com"}])

        updated = self.assertApiSuccess(
            self.api("PUT", "map-partners", partner.id,
                     body={"tags": ["B2B"], "country": "FR", "parent": None}),
        )
        self.assertEqual(partner.category_id, self.b2b, "many2many is a set command")
        self.assertEqual(partner.country_id, self.env.ref("base.fr"))
        self.assertFalse(partner.parent_id)
        self.assertEqual(updated["tags"], [{"name": "B2B"}])
        self.assertIsNone(updated["parent"])

    def test_changes_of_a_mapping_model_apply_at_once(self):
        partner = self.env["res.partner"].create(
            {"name": "Mapped", "country_id": self.env.ref("base.be").id}
        )
        nested = self.assertApiSuccess(self.api("GET", "map-partners", partner.id))["country"]
        self.assertEqual(nested["code"], "BE")
        self.country_config.line_ids.filtered("is_identifier").external_key = "iso"
        nested = self.assertApiSuccess(self.api("GET", "map-partners", partner.id))["country"]
        self.assertEqual(nested["iso"], "BE")
        self.assertNotIn("code", nested)

    def test_invalid_values_are_400_naming_the_line(self):
        Partner = self.env["res.partner"]
        before = Partner.search_count([])
        cases = [
            ({"color": "red"}, "color"),
            ({"color": 2**40}, "color"),
            ({"lat": "north"}, "lat"),
            ({"amount": "a lot"}, "amount"),
            ({"is_company": "perhaps"}, "is_company"),
            ({"date": "29/02/2024"}, "date"),
            ({"moment": "tomorrow noon"}, "moment"),
            ({"type": "nonsense"}, "type"),
            ({"parent": 10**8}, "parent"),
            ({"image": "@@not base64@@"}, "image"),
            ({"name": {"nested": True}}, "name"),
            ({"country": "XX"}, "country"),
            ({"tags": ["VIP", "No such tag"]}, "tags"),
            ({"tags": "VIP"}, "tags"),
            ({"contacts": ["not an object"]}, "contacts"),
        ]
        for overrides, key in cases:
            with self.subTest(key=key, value=overrides[key]):
                response = self.api("POST", "map-partners", body=self.full_payload(**overrides))
                body = self.assertApiError(response, 400, key, line_id=self.line(key).id)
                self.assertIsNone(body.get("index"), "a single object has no index")
        self.assertEqual(Partner.search_count([]), before, "nothing was written")

    def test_invalid_value_on_update_leaves_the_record_alone(self):
        partner = self.env["res.partner"].create({"name": "Keep Me", "color": 1})
        response = self.api("PUT", "map-partners", partner.id,
                            body={"name": "Changed", "color": "red"})
        self.assertApiError(response, 400, line_id=self.line("color").id)
        self.assertEqual((partner.name, partner.color), ("Keep Me", 1))
