from odoo.tests import tagged

from .common import BjApiHttpCase


@tagged("post_install", "-at_install")
class TestInboundScope(BjApiHttpCase):
    """The Filter Domain and the company bound every operation."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.other_company = cls.env["res.company"].create({"name": "Elsewhere Co"})
        cls.config = cls.make_partner_config(
            endpoint="scope-companies",
            filter_domain="[('is_company', '=', True), ('name', 'like', 'Scope')]",
        )
        Partner = cls.env["res.partner"]
        cls.inside = Partner.create({"name": "Scope Inside", "is_company": True})
        cls.filtered_out = Partner.create({"name": "Scope Person", "is_company": False})
        cls.other_company_partner = Partner.create({
            "name": "Scope Elsewhere", "is_company": True, "company_id": cls.other_company.id,
        })
        cls.outside = cls.filtered_out | cls.other_company_partner

    def test_list_only_shows_records_in_scope(self):
        body = self.api("GET", "scope-companies").json()
        self.assertEqual([row["res_id"] for row in body["data"]], self.inside.ids)
        self.assertEqual(body["total"], 1)

    def test_single_record_operations_outside_scope_are_404(self):
        for partner in self.outside:
            with self.subTest(partner=partner.name):
                self.assertApiError(self.api("GET", "scope-companies", partner.id), 404)
                self.assertApiError(
                    self.api("PUT", "scope-companies", partner.id, body={"name": "Scope Hacked"}),
                    404,
                )
                self.assertApiError(self.api("DELETE", "scope-companies", partner.id), 404)
                self.assertTrue(partner.exists())
                self.assertNotEqual(partner.name, "Scope Hacked")

    def test_put_by_body_identifier_outside_scope_is_404(self):
        response = self.api(
            "PUT", "scope-companies",
            body=[{"res_id": self.inside.id, "phone": "1"},
                  {"res_id": self.filtered_out.id, "phone": "2"}],
        )
        body = self.assertApiError(response, 404)
        self.assertEqual(body["index"], 1)
        self.assertFalse(self.inside.phone, "nothing is written when one item fails")

    def test_upsert_never_touches_a_record_outside_scope(self):
        created = self.assertApiSuccess(
            self.api("POST", "scope-companies",
                     body={"res_id": self.filtered_out.id, "name": "Scope New Co"}),
            201,
        )
        self.assertNotEqual(created["res_id"], self.filtered_out.id)
        self.assertEqual(self.filtered_out.name, "Scope Person")

    def test_records_inside_scope_are_served(self):
        self.assertApiSuccess(self.api("GET", "scope-companies", self.inside.id))
        self.assertApiSuccess(
            self.api("PUT", "scope-companies", self.inside.id, body={"phone": "42"})
        )
        self.assertEqual(self.inside.phone, "42")
