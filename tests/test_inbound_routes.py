from unittest.mock import patch

from odoo import Command
from odoo.tests import tagged

from ..services.inbound_request import InboundRequest
from .common import BjApiHttpCase


@tagged("post_install", "-at_install")
class TestInboundRoutes(BjApiHttpCase):
    """The routes, status codes and bodies of SPEC §3."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.config = cls.make_partner_config(endpoint="route-partners")
        cls.partner = cls.env["res.partner"].create(
            {"name": "Route Partner", "email": "route@example.com"}
        )

    def test_crud_round_trip(self):
        created = self.assertApiSuccess(
            self.api("POST", "route-partners", body={"name": "Ada", "email": "ada@example.com"}),
            201,
        )
        partner = self.env["res.partner"].browse(created["res_id"])
        self.assertEqual((partner.name, partner.email), ("Ada", "ada@example.com"))
        self.assertEqual(created, {"res_id": partner.id, "name": "Ada",
                                   "email": "ada@example.com", "phone": None})

        fetched = self.assertApiSuccess(self.api("GET", "route-partners", partner.id))
        self.assertEqual(fetched, created)

        updated = self.assertApiSuccess(
            self.api("PUT", "route-partners", partner.id, body={"phone": "+32 2 555 00 00"})
        )
        self.assertEqual(updated["phone"], "+32 2 555 00 00")
        self.assertEqual(partner.phone, "+32 2 555 00 00")
        self.assertEqual(partner.name, "Ada", "keys absent from the body are left alone")

        deleted = self.assertApiSuccess(self.api("DELETE", "route-partners", partner.id))
        self.assertEqual(deleted["res_id"], partner.id)
        self.assertFalse(partner.exists())
        self.assertApiError(self.api("GET", "route-partners", partner.id), 404)

    def test_list_body_reports_pagination_facts(self):
        body = self.api("GET", "route-partners", params={"limit": 2}).json()
        self.assertEqual(body["status"], "success")
        self.assertEqual(body["limit"], 2)
        self.assertEqual(body["offset"], 0)
        self.assertEqual(body["count"], len(body["data"]))
        self.assertLessEqual(body["count"], 2)
        total = self.env["res.partner"].with_user(self.integration_user).search_count([])
        self.assertEqual(body["total"], total)
        self.assertNotIn("page", body, "page facts only when the configuration is paginated")

    def test_unknown_and_inactive_endpoints_are_404(self):
        self.assertApiError(self.api("GET", "no-such-endpoint"), 404, "no-such-endpoint")
        response = self.opener.get(self.base_url() + "/bj_api_sync/v1", timeout=30)
        self.assertApiError(response, 404, "endpoint")
        self.assertNotIn("Set-Cookie", response.headers)
        self.config.active = False
        self.assertApiError(self.api("GET", "route-partners"), 404)
        self.assertApiError(self.api("GET", "route-partners", self.partner.id), 404)

    def test_patch_and_disabled_methods_are_405_with_allow(self):
        response = self.api("PATCH", "route-partners", self.partner.id, body={"name": "x"})
        self.assertApiError(response, 405)
        self.assertEqual(response.headers["Allow"], "GET, PUT, DELETE")
        self.assertEqual(self.partner.name, "Route Partner")

        response = self.api("DELETE", "route-partners")
        self.assertApiError(response, 405, "DELETE")
        self.assertEqual(response.headers["Allow"], "GET, POST, PUT")
        self.assertApiError(self.api("POST", "route-partners", self.partner.id, body={}), 405)

        self.config.http_method_ids = [Command.set(self.method_get.ids)]
        response = self.api("POST", "route-partners", body={"name": "Nope"})
        self.assertApiError(response, 405)
        self.assertEqual(response.headers["Allow"], "GET")
        self.assertFalse(self.env["res.partner"].search([("name", "=", "Nope")]))

    def test_broken_json_is_400(self):
        response = self.api(
            "POST", "route-partners", data=b'{"name": "Broken",',
            headers={"Content-Type": "application/json"},
        )
        self.assertApiError(response, 400, "not valid JSON")
        empty = self.api("POST", "route-partners", data=b"",
                         headers={"Content-Type": "application/json"})
        self.assertApiError(empty, 400, "needs a JSON body")
        self.assertApiError(self.api("POST", "route-partners", body=["not an object"]), 400)
        self.assertApiError(self.api("POST", "route-partners", body="text"), 400)
        deep = self.api("POST", "route-partners", data=b"[" * 100_000 + b"]" * 100_000,
                        headers={"Content-Type": "application/json"})
        self.assertApiError(deep, 400, "deeply")

    def test_identifier_that_cannot_be_an_id_is_400(self):
        body = self.assertApiError(self.api("GET", "route-partners", "abc"), 400, "identifier")
        self.assertEqual(body["line_id"], self.config._bj_get_identifier_line().id)

    def test_unexpected_error_is_500_without_traceback(self):
        with patch.object(InboundRequest, "_find", side_effect=ZeroDivisionError("boom")), \
                self.assertLogs("bj.api.inbound", "ERROR") as logs:
            response = self.api("GET", "route-partners", self.partner.id)
        self.assertApiError(response, 500)
        self.assertNotIn("boom", response.text)
        self.assertNotIn("ZeroDivisionError", response.text)
        self.assertIn("ZeroDivisionError", "\n".join(logs.output), "the server log has it")
        log = self.get_logs(self.config)[-1]
        self.assertEqual(log.status_code, 500)
        self.assertIn("ZeroDivisionError: boom", log.error_message)
        self.assertNotIn("boom", log.response_body)

    def test_configuration_changes_apply_to_the_next_request(self):
        # The configuration is cached between requests: every kind of change,
        # even within one transaction, must be seen at once.
        self.assertIn("email", self.assertApiSuccess(self.api("GET", "route-partners",
                                                              self.partner.id)))
        email_line = self.config.line_ids.filtered(lambda line: line.external_key == "email")
        email_line.external_key = "mail"
        row = self.assertApiSuccess(self.api("GET", "route-partners", self.partner.id))
        self.assertEqual(row["mail"], "route@example.com")
        email_line.unlink()
        row = self.assertApiSuccess(self.api("GET", "route-partners", self.partner.id))
        self.assertNotIn("mail", row)
        self.config.param_ids = [Command.create({
            "key": "q", "field_id": self.partner_field("name").id, "domain_operator": "ilike",
        })]
        body = self.api("GET", "route-partners", params={"q": "route partner"}).json()
        self.assertEqual([row["res_id"] for row in body["data"]], self.partner.ids)
        self.config.authorization_type = "bearer_token"
        self.assertApiError(self.api("GET", "route-partners", self.partner.id), 401)

    def test_answers_are_json_without_cookie(self):
        for method, identifier in (("GET", None), ("GET", self.partner.id), ("PATCH", None),
                                   ("GET", 0)):
            response = self.api(method, "route-partners", identifier)
            self.assertTrue(response.headers["Content-Type"].startswith("application/json"))
            self.assertIsInstance(response.json(), dict)
            self.assertNotIn("session_id", self.opener.cookies)
