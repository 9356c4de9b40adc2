import re
from unittest.mock import patch

from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import BjApiHttpCase, records_service


@tagged("post_install", "-at_install")
class TestInboundBatches(BjApiHttpCase):
    """Arrays are all or nothing; an existing identifier is updated, not duplicated."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.country_config = cls.make_country_config()
        cls.config = cls.make_config(endpoint="batch-partners", limit=5, lines=[
            ("ref", "code", {"is_identifier": True}),
            ("name", "name", None),
            ("email", "email", None),
            ("country_id", "country", {"value_type": "relational_mapping",
                                       "mapping_config_id": cls.country_config.id}),
        ])
        cls.existing = cls.env["res.partner"].create(
            {"name": "Batch Existing", "ref": "B-1", "email": "old@example.com"}
        )
        cls.email_line = cls.config.line_ids.filtered(lambda line: line.external_key == "email")

    def partners(self, *codes):
        return self.env["res.partner"].search([("ref", "in", codes)])

    def test_batch_create(self):
        data = self.assertApiSuccess(self.api("POST", "batch-partners", body=[
            {"code": "B-10", "name": "Ten", "country": "BE"},
            {"code": "B-11", "name": "Eleven"},
            {"code": "B-12", "name": "Twelve", "email": "t@example.com"},
        ]), 201)
        self.assertEqual([row["code"] for row in data], ["B-10", "B-11", "B-12"])
        self.assertEqual(len(self.partners("B-10", "B-11", "B-12")), 3)
        self.assertEqual(data[0]["country"]["code"], "BE")

    def test_one_bad_item_fails_the_batch_naming_index_and_line(self):
        response = self.api("POST", "batch-partners", body=[
            {"code": "B-20", "name": "Fine"},
            {"code": "B-21", "name": "Broken", "email": {"not": "a string"}},
            {"code": "B-22", "name": "Fine too"},
        ])
        body = self.assertApiError(response, 400, "email", line_id=self.email_line.id)
        self.assertEqual(body["index"], 1)
        self.assertFalse(self.partners("B-20", "B-21", "B-22"))

    def test_database_refusal_names_the_index_and_rolls_everything_back(self):
        # Updates run and records are created before the database refuses the
        # nameless contact: the rollback must undo all of it.
        with mute_logger("odoo.sql_db"):
            response = self.api("POST", "batch-partners", body=[
                {"code": "B-1", "name": "Renamed"},
                {"code": "B-30", "name": "Created"},
                {"code": "B-31", "email": "nameless@example.com"},
            ])
        body = self.assertApiError(response, 400)
        self.assertEqual(body["index"], 2)
        self.assertFalse(self.partners("B-30", "B-31"))
        self.assertEqual(self.existing.name, "Batch Existing")

    def test_batch_size_is_capped_by_the_limit(self):
        items = [{"code": f"B-4{index}", "name": "Too many"} for index in range(6)]
        self.assertApiError(self.api("POST", "batch-partners", body=items), 400, re.escape(
            "at most 5 records (the configuration's Limit); this one has 6. Split it, or raise "
            "the Limit"))
        self.assertFalse(self.partners(*[item["code"] for item in items]))
        self.assertApiError(self.api("POST", "batch-partners", body=[]), 400, "empty")
        self.assertApiError(self.api("POST", "batch-partners", body=[{"code": "B-50"}, 7]), 400)

    def test_post_of_an_existing_identifier_updates_it(self):
        data = self.assertApiSuccess(
            self.api("POST", "batch-partners", body={"code": "B-1", "email": "new@example.com"}),
            200,
        )
        self.assertEqual(data["code"], "B-1")
        self.assertEqual(self.existing.email, "new@example.com")
        self.assertEqual(len(self.partners("B-1")), 1, "no duplicate")
        self.assertApiSuccess(
            self.api("POST", "batch-partners", body={"code": "B-2", "name": "New"}), 201
        )

    def test_mixed_batch_is_created_and_keeps_the_order(self):
        data = self.assertApiSuccess(self.api("POST", "batch-partners", body=[
            {"code": "B-60", "name": "New one"},
            {"code": "B-1", "name": "Batch Existing Renamed"},
        ]), 201)
        self.assertEqual([row["code"] for row in data], ["B-60", "B-1"])
        self.assertEqual(self.existing.name, "Batch Existing Renamed")

    def test_same_identifier_twice_in_a_batch_is_refused(self):
        response = self.api("POST", "batch-partners", body=[
            {"code": "B-70", "name": "One"}, {"code": "B-70", "name": "Two"},
        ])
        self.assertEqual(self.assertApiError(response, 400, "same")["index"], 1)
        self.assertFalse(self.partners("B-70"))

    def test_put_without_identifier_in_the_url(self):
        data = self.assertApiSuccess(
            self.api("PUT", "batch-partners", body={"code": "B-1", "name": "Put Renamed"})
        )
        self.assertEqual(data["name"], "Put Renamed")
        other = self.env["res.partner"].create({"name": "Other", "ref": "B-80"})
        data = self.assertApiSuccess(self.api("PUT", "batch-partners", body=[
            {"code": "B-80", "email": "o@example.com"}, {"code": "B-1", "email": "e@example.com"},
        ]))
        self.assertEqual([row["email"] for row in data], ["o@example.com", "e@example.com"])
        self.assertEqual(other.email, "o@example.com")

        body = self.assertApiError(
            self.api("PUT", "batch-partners", body=[{"code": "B-1", "name": "X"}, {"name": "Y"}]),
            400, "identifier",
        )
        self.assertEqual(body["index"], 1)
        body = self.assertApiError(
            self.api("PUT", "batch-partners", body=[{"code": "B-1", "name": "X"},
                                                    {"code": "B-404", "name": "Y"}]),
            404,
        )
        self.assertEqual(body["index"], 1)
        self.assertEqual(self.existing.name, "Put Renamed", "nothing written by failed batches")

    def test_relational_lookups_of_a_batch_take_one_search(self):
        original = records_service.Relations.ids_by_identifier
        with patch.object(records_service.Relations, "ids_by_identifier", autospec=True,
                          side_effect=original) as lookups:
            self.assertApiSuccess(self.api("POST", "batch-partners", body=[
                {"code": f"B-9{index}", "name": "Lookup", "country": code}
                for index, code in enumerate(("BE", "FR", "DE", "BE", "NL"))
            ]), 201)
        self.assertEqual(lookups.call_count, 1)
