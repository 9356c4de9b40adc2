from odoo import Command
from odoo.tests import tagged

from .common import BjApiHttpCase


@tagged("post_install", "-at_install")
class TestInboundLists(BjApiHttpCase):
    """limit, offset, page, Parameters rows, equality filters and order on GET lists."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.belgium = cls.env.ref("base.be")
        country_config = cls.make_country_config()
        cls.config = cls.make_config(
            endpoint="list-partners",
            filter_domain="[('ref', '=like', 'LST-%')]",
            limit=5,
            lines=[
                ("id", "res_id", {"is_identifier": True}),
                ("name", "name", None),
                ("ref", "code", None),
                ("color", "color", None),
                ("is_company", "is_company", None),
                ("country_id", "country", {"value_type": "relational_mapping",
                                           "mapping_config_id": country_config.id}),
                ("comment", "shout", {"value_type": "python_plain",
                                      "python_script": "record.name.upper()"}),
            ],
            param_ids=[
                Command.create({"key": "min_color", "field_id": cls.partner_field("color").id,
                                "domain_operator": ">="}),
                Command.create({"key": "q", "field_id": cls.partner_field("name").id,
                                "domain_operator": "ilike"}),
                Command.create({"key": "codes", "field_id": cls.partner_field("ref").id,
                                "domain_operator": "in"}),
            ],
        )
        cls.partners = cls.env["res.partner"].create([{
            "name": f"Lister {index:02d}",
            "ref": f"LST-{index:02d}",
            "color": index % 4,
            "is_company": index % 2 == 0,
            "country_id": cls.belgium.id if index < 4 else False,
        } for index in range(1, 13)])

    def get_list(self, **params):
        response = self.api("GET", "list-partners", params=params)
        self.assertEqual(response.status_code, 200, response.text)
        return response.json()

    def codes(self, body):
        return [row["code"] for row in body["data"]]

    def test_limit_defaults_to_and_is_capped_by_the_configuration(self):
        body = self.get_list()
        self.assertEqual((body["count"], body["limit"], body["total"]), (5, 5, 12))
        self.assertEqual(self.get_list(limit=3)["count"], 3)
        self.assertEqual(self.get_list(limit=500)["limit"], 5)
        for value in ("0", "-1", "abc", "1.5"):
            with self.subTest(limit=value):
                self.assertApiError(self.api("GET", "list-partners", params={"limit": value}),
                                    400, "limit")

    def test_offset(self):
        body = self.get_list(offset=10, order="code")
        self.assertEqual(self.codes(body), ["LST-11", "LST-12"])
        self.assertEqual((body["offset"], body["count"], body["total"]), (10, 2, 12))
        self.assertEqual(self.get_list(offset=50)["total"], 12)
        self.assertApiError(self.api("GET", "list-partners", params={"offset": -1}), 400)

    def test_pages_when_paginated(self):
        self.config.write({"is_paginated": True, "page_size": 4})
        body = self.get_list(page=2, order="code")
        self.assertEqual(self.codes(body), ["LST-05", "LST-06", "LST-07", "LST-08"])
        self.assertEqual((body["page"], body["page_size"], body["offset"]), (2, 4, 4))
        self.assertEqual(self.codes(self.get_list(page=3, order="code"))[-1], "LST-12")
        self.assertEqual(self.get_list(page=4)["data"], [])
        self.assertEqual(self.get_list(limit=2, page=2, order="code")["page_size"], 2)
        self.assertApiError(self.api("GET", "list-partners", params={"page": 0}), 400)

    def test_parameters_rows_become_domain_terms(self):
        body = self.get_list(min_color=3, order="code")
        self.assertEqual(self.codes(body), ["LST-03", "LST-07", "LST-11"])
        self.assertEqual(self.codes(self.get_list(q="lister 1", order="code")),
                         ["LST-10", "LST-11", "LST-12"])
        self.assertEqual(self.codes(self.get_list(codes="LST-02,LST-09", order="code")),
                         ["LST-02", "LST-09"])
        self.assertApiError(self.api("GET", "list-partners", params={"min_color": "x"}),
                            400, "min_color")

    def test_equality_filters_on_mapped_keys(self):
        self.assertEqual(self.codes(self.get_list(color=1, order="code")),
                         ["LST-01", "LST-05", "LST-09"])
        self.assertEqual(self.get_list(is_company="true", limit=5)["total"], 6)
        self.assertEqual(self.get_list(country="BE")["total"], 3, "through the Mapping Model")
        self.assertApiError(self.api("GET", "list-partners", params={"color": "blue"}),
                            400, "color")
        body = self.assertApiError(self.api("GET", "list-partners", params={"shout": "X"}), 400)
        self.assertEqual(body["line_id"], self.config.line_ids.filtered(
            lambda line: line.external_key == "shout").id)

    def test_unknown_query_keys_are_refused_with_the_accepted_ones(self):
        accepted = ("accepted: limit, offset, order, min_color, q, codes, res_id, name, code, "
                    "color, is_company, country.")
        body = self.assertApiError(
            self.api("GET", "list-partners", params={"is_compny": "true"}), 400,
            "Unknown query parameter 'is_compny'; ")
        self.assertTrue(body["message"].endswith(accepted), body["message"])
        self.assertApiError(
            self.api("GET", "list-partners", params={"a": "1", "b": "2", "limit": "2"}), 400,
            "Unknown query parameters 'a', 'b'; accepted: ")
        self.assertApiError(self.api("GET", "list-partners", params={"page": "2"}), 400,
                            "not paginated; use limit and offset")
        self.config.write({"is_paginated": True})
        self.assertApiError(self.api("GET", "list-partners", params={"x": "1"}), 400,
                            "accepted: limit, offset, page, order, min_color, ")
        self.assertEqual(self.get_list(page=1, q="lister", color=1, order="code")["count"], 3)

    def test_order_on_mapped_keys(self):
        body = self.get_list(order="color desc, code asc", limit=5)
        self.assertEqual(self.codes(body), ["LST-03", "LST-07", "LST-11", "LST-02", "LST-06"])
        self.assertEqual(self.codes(self.get_list(order="res_id desc", limit=1)), ["LST-12"])
        for order in ("nope", "name sideways", "name; DROP TABLE res_partner", "shout"):
            with self.subTest(order=order):
                self.assertApiError(
                    self.api("GET", "list-partners", params={"order": order}), 400
                )

    def count_queries(self, **params):
        before = self.cr.sql_log_count
        self.get_list(**params)
        return self.cr.sql_log_count - before

    def test_one_query_per_page_whatever_its_size(self):
        for _warm_up in range(2):  # fill the registry's and the log's caches
            self.count_queries(limit=1)
        small, large = self.count_queries(limit=2), self.count_queries(limit=5)
        self.assertEqual(small, large, "no query per record, nested country included")
