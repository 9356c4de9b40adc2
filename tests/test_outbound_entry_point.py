import base64

from odoo import Command
from odoo.exceptions import UserError
from odoo.tests import tagged

from .common import BjOutboundCase, generated_secret


@tagged("post_install", "-at_install")
class TestOutboundEntryPoint(BjOutboundCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.config = cls.make_out_config(filter_domain="[('email', '!=', False)]")
        cls.partners = cls.env["res.partner"].create([
            {"name": f"Entry {index}", "email": f"entry{index}@example.com"} for index in range(5)
        ])
        cls.outside = cls.env["res.partner"].create({"name": "No email"})
        cls.env["ir.model.data"].create({
            "module": "bjet_api_sync_tests", "name": "out_contacts",
            "model": cls.config._name, "res_id": cls.config.id,
        })

    def send(self, *args, **kwargs):
        return self.env["bj.api.sync.config"]._make_outbound_http_request(*args, **kwargs)

    def test_each_argument_form(self):
        partner = self.partners[0]
        config = self.config
        calls = [
            ((partner, config.id), {}),
            ((partner.id, config), {}),
            (([partner.id], "bjet_api_sync_tests.out_contacts"), {}),
            (((partner.id,), str(config.id)), {}),
            ((), {"record_ids": partner, "config_id_ref": config.id, "timeout": 5}),
        ]
        for args, kwargs in calls:
            answer = self.send(*args, **kwargs)
            self.assertTrue(answer["success"], (args, kwargs, answer))
            self.assertEqual(answer["status_code"], 200)
            self.assertEqual(answer["data"], {"ok": True})
            self.assertIsNone(answer["error"])
            log = self.env["bj.api.log"].browse(answer["log_id"])
            self.assertEqual((log.direction, log.state, log.status_code, log.res_ids),
                             ("out", "success", 200, str(partner.id)))
        self.assertEqual(len(self.server.requests), len(calls))
        expected = {"res_id": partner.id, "name": "Entry 0", "email": "entry0@example.com",
                    "phone": None}
        self.assertEqual(self.bodies(), [expected] * len(calls))
        self.assertEqual({request.method for request in self.server.requests}, {"POST"})

    def test_bad_references_are_clear_errors(self):
        with self.assertRaisesRegex(UserError, "No API configuration matches"):
            self.send(self.partners[0], "bjet_api_sync_tests.nothing_here")
        with self.assertRaisesRegex(UserError, "No API configuration matches"):
            self.send(self.partners[0], 0)
        inbound = self.make_partner_config(request_type="in")
        with self.assertRaisesRegex(UserError, "not an active Out configuration"):
            self.send(self.partners[0], inbound)
        with self.assertRaisesRegex(UserError, "sends res.partner records, not res.users"):
            self.send(self.env.user, self.config)
        with self.assertRaisesRegex(UserError, "recordset, an id or a list of ids"):
            self.send("1,2", self.config)
        self.assertFalse(self.server.requests)

    def test_filter_domain_skips_and_reports(self):
        answer = self.send([self.partners[1].id, self.outside.id, 999999999], self.config)
        self.assertTrue(answer["success"])
        self.assertEqual(answer["skipped_ids"], [self.outside.id, 999999999])
        self.assertEqual([body["res_id"] for body in self.bodies()], [self.partners[1].id])
        answer = self.send(self.outside, self.config)
        self.assertFalse(answer["success"])
        self.assertIn("outside the Filter Domain", answer["error"])
        self.assertEqual(len(self.server.requests), 1)

    def test_paginated_arrays_of_page_size(self):
        config = self.make_out_config(is_paginated=True, page_size=2, name="Paged")
        self.server.queue(200, {"page": 1})
        self.server.queue(200, {"page": 2})
        self.server.queue(200, {"page": 3})
        answer = self.send(self.partners, config)
        self.assertTrue(answer["success"])
        self.assertEqual([len(body) for body in self.bodies()], [2, 2, 1])
        self.assertEqual([item["res_id"] for body in self.bodies() for item in body],
                         self.partners.ids)
        self.assertEqual(answer["data"], [{"page": 1}, {"page": 2}, {"page": 3}])
        self.assertEqual(len(answer["log_ids"]), 3)

    def test_stops_at_first_failure(self):
        self.server.queue(200, {})
        self.server.queue(503, {"error": "down"})
        answer = self.send(self.partners[:4], self.config)
        self.assertFalse(answer["success"])
        self.assertEqual(answer["status_code"], 503)
        self.assertEqual(answer["data"], [{}, {"error": "down"}])
        self.assertEqual(answer["unsent_ids"], self.partners[1:4].ids)
        self.assertEqual(len(self.server.requests), 2)
        self.assertEqual(self.env["bj.api.log"].browse(answer["log_id"]).state, "error")

    def test_placeholders_method_headers_and_basic_auth(self):
        password = generated_secret()
        config = self.make_out_config(
            path="/contacts/{res_id}?mail={email}", name="PUT one",
            http_method_ids=[Command.set(self.method_put.ids)],
            authorization_type="basic_auth", login="odoo", password=password,
            header_ids=[Command.create({"key": "X-Tenant", "value": "acme"})],
        )
        partner = self.partners[2]
        answer = self.send(partner, config)
        self.assertTrue(answer["success"], answer)
        request = self.server.requests[0]
        self.assertEqual(request.method, "PUT")
        self.assertEqual(request.path, f"/contacts/{partner.id}?mail=entry2%40example.com")
        self.assertEqual(request.headers["X-Tenant"], "acme")
        self.assertEqual(request.headers["Content-Type"], "application/json")
        self.assertEqual(base64.b64decode(request.headers["Authorization"][6:]).decode(),
                         f"odoo:{password}")
        log = self.env["bj.api.log"].browse(answer["log_id"])
        self.assertNoSecretIn(log.request_headers, password)
        self.assertIn("X-Tenant", log.request_headers)

    def test_missing_placeholder_is_not_sent(self):
        config = self.make_out_config(path="/contacts/{phone}", name="By phone")
        answer = self.send(self.partners[0], config)
        self.assertFalse(answer["success"])
        self.assertIn("no value for 'phone'", answer["error"])
        self.assertFalse(self.server.requests)
        self.assertEqual(self.env["bj.api.log"].browse(answer["log_id"]).state, "error")

    def test_bearer_token_with_or_without_prefix(self):
        token = generated_secret()
        for stored in (token, f"Bearer {token}"):
            config = self.make_out_config(authorization_type="bearer_token", bearer_token=stored,
                                          name=f"Bearer {len(stored)}")
            self.assertTrue(self.send(self.partners[0], config)["success"])
        self.assertEqual([r.headers["Authorization"] for r in self.server.requests],
                         [f"Bearer {token}"] * 2)

    def test_timeout_argument(self):
        self.server.queue(200, {}, delay=2)
        answer = self.send(self.partners[0], self.config, timeout=0.3)
        self.assertFalse(answer["success"])
        self.assertIsNone(answer["status_code"])
        self.assertIn("Timeout", answer["error"])
        log = self.env["bj.api.log"].browse(answer["log_id"])
        self.assertEqual(log.state, "error")
        self.assertIn("did not answer in time", log.error_message)

    def test_mapping_error_is_reported_and_logged(self):
        config = self.make_out_config(name="Broken script")
        config.line_ids[-1].write({"value_type": "python_plain", "python_script": "1 / 0"})
        answer = self.send(self.partners[0], config)
        self.assertFalse(answer["success"])
        self.assertIn("phone", answer["error"])
        self.assertFalse(self.server.requests)
        self.assertTrue(answer["log_id"])
