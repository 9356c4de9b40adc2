import json

from odoo import Command
from odoo.tests import tagged

from .common import BjApiHttpCase, basic_auth, bearer_auth, generated_secret


@tagged("post_install", "-at_install")
class TestInboundLogging(BjApiHttpCase):
    """Every inbound request is exactly one bj.api.log row, secrets masked."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.token = generated_secret("tok")
        cls.config = cls.make_partner_config(
            endpoint="log-partners", authorization_type="bearer_token", bearer_token=cls.token,
        )
        cls.auth = bearer_auth(cls.token)

    def all_logs(self):
        return self.env["bj.api.log"].search([("direction", "=", "in")], order="id")

    def test_one_row_per_request_whatever_the_outcome(self):
        before = self.all_logs()
        partner = self.env["res.partner"].create({"name": "Logged"})
        calls = [
            ("GET", "log-partners", partner.id, None, self.auth, 200),
            ("POST", "log-partners", None, {"name": "Log New"}, self.auth, 201),
            ("POST", "log-partners", None, {"name": ["bad"]}, self.auth, 400),
            ("GET", "log-partners", None, None, bearer_auth("wrong"), 401),
            ("GET", "log-nowhere", None, None, self.auth, 404),
            ("PATCH", "log-partners", partner.id, {"name": "x"}, self.auth, 405),
        ]
        for method, endpoint, identifier, body, headers, status in calls:
            response = self.api(method, endpoint, identifier, body=body, headers=headers)
            self.assertEqual(response.status_code, status, response.text)
        logs = self.all_logs() - before
        self.assertEqual(logs.mapped("status_code"), [call[-1] for call in calls])
        self.assertEqual(logs.mapped("method"), [call[0] for call in calls])
        self.assertEqual(logs.mapped("state"), ["success"] * 2 + ["error"] * 4)
        self.assertEqual(logs[:4].config_id, self.config)
        self.assertFalse(logs[4].config_id, "unknown endpoint")
        self.assertEqual(logs[4].url, "/bj_api_sync/v1/log-nowhere")
        self.assertTrue(all(log.duration_ms >= 0 for log in logs))
        self.assertEqual(set(logs.mapped("direction")), {"in"})

    def test_row_details(self):
        response = self.api(
            "POST", "log-partners", body={"name": "Log Detail"},
            headers={**self.auth, "X-Request-ID": "trace-42"}, params={"lang": "en"},
        )
        created = response.json()["data"]
        log = self.get_logs(self.config, request_id="trace-42")
        self.assertEqual(len(log), 1)
        self.assertEqual(log.url, "/bj_api_sync/v1/log-partners?lang=en")
        self.assertEqual(log.res_model, "res.partner")
        self.assertEqual(log.res_ids, str(created["res_id"]))
        self.assertEqual(json.loads(log.request_body), {"name": "Log Detail"})
        self.assertEqual(json.loads(log.response_body)["data"], created)
        self.assertEqual(log.company_id, self.config.company_id)
        self.assertFalse(log.error_message)

    def test_error_rows_keep_the_message_while_the_data_rolls_back(self):
        response = self.api("POST", "log-partners", headers=self.auth,
                            body=[{"name": "Log Rolled Back"}, {"name": 42.5, "email": []}])
        self.assertEqual(response.status_code, 400)
        log = self.get_logs(self.config)[-1]
        self.assertEqual(log.error_message, response.json()["error"])
        self.assertFalse(self.env["res.partner"].search([("name", "=", "Log Rolled Back")]))

    def test_secrets_never_reach_the_log(self):
        password = generated_secret("pw")
        basic_config = self.make_partner_config(
            endpoint="log-basic", authorization_type="basic_auth", login="svc", password=password,
            header_ids=[Command.create({"key": "X-Api-Key", "value": "documented"})],
        )
        wrong_token = generated_secret("guess")
        self.api("GET", "log-partners", headers={**self.auth, "X-Api-Key": self.token})
        self.api("GET", "log-partners", headers=bearer_auth(wrong_token))
        self.api("GET", "log-basic", headers=basic_auth("svc", password))
        self.api("GET", "log-basic", headers=basic_auth("svc", wrong_token))
        # Echoed back in the answer's body too.
        self.api("POST", "log-partners", headers=self.auth, body={"name": self.token})
        self.assertNoSecretIn(repr(basic_config._bj_plan()), password)
        logs = self.get_logs(self.config) | self.get_logs(basic_config)
        self.assertEqual(len(logs), 5)
        for log in logs:
            text = " ".join(str(log[name] or "") for name in (
                "request_headers", "request_body", "response_body", "error_message", "url"))
            self.assertNoSecretIn(text, self.token, password, wrong_token)
            self.assertIn("Authorization", log.request_headers)

    def test_bodies_are_truncated(self):
        self.env["ir.config_parameter"].set_param("bjet_api_sync.log_body_max_size", "40")
        self.api("POST", "log-partners", headers=self.auth,
                 body={"name": "Long", "email": "e" * 200 + "@example.com"})
        log = self.get_logs(self.config)[-1]
        self.assertEqual(log.status_code, 201)
        self.assertIn("truncated", log.request_body)
        self.assertLess(len(log.request_body), 100)
