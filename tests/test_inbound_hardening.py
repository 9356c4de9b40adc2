import ipaddress
import json
import time
from datetime import timedelta
from unittest.mock import patch

from odoo.tests import BaseCase, tagged
from odoo.tools import config as odoo_config

from ..core import inbound
from ..core.plan import strip_bearer
from ..models import bj_api_rate_limit
from .common import BjApiHttpCase, generated_secret


@tagged("post_install", "-at_install")
class TestInboundHardening(BjApiHttpCase):
    """IP allowlist, HMAC signature, rate limit, body size and media type."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.config = cls.make_partner_config(endpoint="hard-partners")
        cls.partner = cls.env["res.partner"].create({"name": "Hardened"})

    def named(self, name):
        return self.env["res.partner"].search([("name", "=", name)])

    # -- IP allowlist --------------------------------------------------------

    def test_ip_allowlist(self):
        self.config.ip_allowlist = "10.0.0.0/8\n2001:db8::/32"
        response = self.api("POST", "hard-partners", body={"name": "From afar"})
        self.assertApiError(response, 403, "127.0.0.1")
        self.assertFalse(self.named("From afar"))
        self.config.ip_allowlist = "10.0.0.0/8, 127.0.0.0/24"
        self.assertApiSuccess(self.api("GET", "hard-partners", self.partner.id))

    def test_forwarded_for_is_only_trusted_in_proxy_mode(self):
        self.config.ip_allowlist = "203.0.113.0/24\n2001:db8::/32"
        forwarded = {"X-Forwarded-For": "203.0.113.7"}
        with patch.dict(odoo_config.options, {"proxy_mode": False}):
            self.assertApiError(self.api("GET", "hard-partners", headers=forwarded), 403)
        with patch.dict(odoo_config.options, {"proxy_mode": True}):
            self.assertApiSuccess(self.api("GET", "hard-partners", headers=forwarded))
            self.assertApiSuccess(self.api("GET", "hard-partners",
                                           headers={"X-Forwarded-For": "2001:db8::5"}))
            # Only the entry our proxy appended counts; the caller wrote the others.
            spoofed = {"X-Forwarded-For": "203.0.113.7, 198.51.100.1"}
            self.assertApiError(self.api("GET", "hard-partners", headers=spoofed), 403)

    # -- signature -------------------------------------------------------------

    def signed(self, body, secret, timestamp=None):
        raw = json.dumps(body).encode()
        target = "/bj_api_sync/v1/hard-partners"
        header = inbound.signature_header(secret, "POST", target, raw, timestamp or time.time())
        return raw, {"Content-Type": "application/json", inbound.SIGNATURE_HEADER: header}

    def test_signature(self):
        secret = generated_secret("sig")
        self.config.signature_secret = secret
        raw, headers = self.signed({"name": "Signed"}, secret)
        self.assertApiSuccess(self.api("POST", "hard-partners", data=raw, headers=headers), 201)
        refused = {
            "missing": (raw, {"Content-Type": "application/json"}),
            "wrong secret": self.signed({"name": "Signed"}, "other-secret"),
            "stale": self.signed({"name": "Signed"}, secret, time.time() - 400),
            "future": self.signed({"name": "Signed"}, secret, time.time() + 400),
            "tampered": (raw.replace(b"Signed", b"Forged"), headers),
            "garbled": (raw, {**headers, inbound.SIGNATURE_HEADER: "v1=abc"}),
        }
        for case, (data, case_headers) in refused.items():
            with self.subTest(case=case):
                response = self.api("POST", "hard-partners", data=data, headers=case_headers)
                self.assertApiError(response, 401, inbound.SIGNATURE_HEADER)
                self.assertIn("WWW-Authenticate", response.headers)
        self.assertEqual(len(self.named("Signed")), 1)
        self.assertFalse(self.named("Forged"))
        # Reads are signed too, over their empty body.
        header = inbound.signature_header(
            secret, "GET", f"/bj_api_sync/v1/hard-partners/{self.partner.id}", b"", time.time()
        )
        self.assertApiSuccess(self.api("GET", "hard-partners", self.partner.id,
                                       headers={inbound.SIGNATURE_HEADER: header}))

    # -- rate limit --------------------------------------------------------------

    def test_rate_limit_answers_429_with_retry_after(self):
        self.config.rate_limit_per_minute = 3
        clock = time.time() // 60 * 60 + 15  # 15 s into a minute
        with patch.object(bj_api_rate_limit, "time", **{"time.return_value": clock}):
            for _call in range(3):
                self.assertApiSuccess(self.api("GET", "hard-partners", self.partner.id))
            response = self.api("GET", "hard-partners", self.partner.id)
            self.assertApiError(response, 429, "3 calls per minute")
            self.assertEqual(response.headers["Retry-After"], "45")
            response = self.api("POST", "hard-partners", body={"name": "Throttled"})
            self.assertApiError(response, 429)
        self.assertFalse(self.named("Throttled"))
        counter = self.env["bj.api.rate.limit"].search([("config_id", "=", self.config.id)])
        self.assertEqual(counter.hits, 5, "refused calls count too")
        with patch.object(bj_api_rate_limit, "time", **{"time.return_value": clock + 60}):
            self.assertApiSuccess(self.api("GET", "hard-partners", self.partner.id))
        counters = self.env["bj.api.rate.limit"].search([("config_id", "=", self.config.id)])
        self.assertEqual(len(counters), 2, "one counter per minute")
        counter.window_start -= timedelta(hours=1)
        self.env["bj.api.rate.limit"]._gc_expired()
        self.assertEqual(counters.exists(), counters - counter, "past minutes are deleted")

    # -- body size and media type -------------------------------------------------

    def test_body_size_cap(self):
        self.env["ir.config_parameter"].set_param("bjet_api_sync.inbound_max_body_size", "200")
        response = self.api("POST", "hard-partners", body={"name": "Big", "email": "x" * 300})
        self.assertApiError(response, 413, "200 bytes")
        self.assertFalse(self.named("Big"))
        self.assertApiSuccess(self.api("POST", "hard-partners", body={"name": "Small"}), 201)

    def test_body_that_is_not_json_is_415(self):
        for content_type, data in (
            ("application/x-www-form-urlencoded", b"name=Form"),
            ("text/xml", b"<partner><name>Xml</name></partner>"),
        ):
            with self.subTest(content_type=content_type):
                response = self.api("POST", "hard-partners", data=data,
                                    headers={"Content-Type": content_type})
                self.assertApiError(response, 415, "application/json")
        self.assertFalse(self.named("Form") | self.named("Xml"))
        response = self.api("POST", "hard-partners", data=b'{"name": "Vendor json"}',
                            headers={"Content-Type": "application/vnd.api+json; charset=utf-8"})
        self.assertApiSuccess(response, 201)


@tagged("post_install", "-at_install")
class TestInboundHelpers(BaseCase):
    """The plain-Python checks behind the hardening."""

    def test_client_address(self):
        self.assertEqual(inbound.client_address("10.0.0.1", "1.2.3.4", False), "10.0.0.1")
        self.assertEqual(inbound.client_address("10.0.0.1", "1.2.3.4, 5.6.7.8", True), "5.6.7.8")
        self.assertEqual(inbound.client_address("10.0.0.1", "", True), "10.0.0.1")

    def test_address_allowed(self):
        networks = [ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8::/32")]
        self.assertTrue(inbound.address_allowed("192.0.2.9", networks))
        self.assertTrue(inbound.address_allowed("::ffff:192.0.2.9", networks), "IPv4-mapped")
        self.assertTrue(inbound.address_allowed("2001:db8::1", networks))
        self.assertFalse(inbound.address_allowed("198.51.100.1", networks))
        self.assertFalse(inbound.address_allowed("not an address", networks))
        self.assertTrue(inbound.address_allowed("198.51.100.1", []), "no allowlist")

    def test_verify_signature(self):
        body, now, target = b'{"a": 1}', 1_700_000_000, "/bj_api_sync/v1/x/7?a=1&b=2"
        good = inbound.signature_header("s3cret", "PUT", target, body, now)
        expected = inbound.compute_signature("s3cret", now, "PUT", target, body)
        self.assertEqual(inbound.verify_signature("s3cret", good, "PUT", target, body, now + 299),
                         (now, expected))
        rotated = f"{good},v1={'0' * 64}"
        self.assertEqual(inbound.verify_signature("s3cret", rotated, "PUT", target, body, now),
                         (now, expected), "the signature that matched is the one returned")
        fraction = f"{now}.25"
        precise_v1 = inbound.compute_signature("s3cret", fraction, "PUT", target, body)
        precise = f"t={fraction},v1={precise_v1}"
        self.assertEqual(inbound.verify_signature("s3cret", precise, "PUT", target, body, now),
                         (now + 0.25, precise_v1))
        self.assertNotEqual(precise, good, "requests signed within one second still differ")
        refused = [
            ("window", "s3cret", good, "PUT", target, body, now + 301),
            ("look like", "s3cret", f"t={now}.,v1={expected}", "PUT", target, body, now),
            ("look like", "s3cret", f"t=-{now},v1={expected}", "PUT", target, body, now),
            ("does not match", "other", good, "PUT", target, body, now),
            ("does not match", "s3cret", good, "DELETE", target, body, now),
            ("does not match", "s3cret", good, "PUT", "/bj_api_sync/v1/x/8?a=1&b=2", body, now),
            ("does not match", "s3cret", good, "PUT", "/bj_api_sync/v1/x/7?b=2&a=1", body, now),
            ("does not match", "s3cret", good, "PUT", target, b'{"a": 2}', now),
            ("missing", "s3cret", "", "PUT", target, body, now),
            ("look like", "s3cret", "t=x,v1=y", "PUT", target, body, now),
        ]
        for reason, secret, header, method, path, data, at in refused:
            with self.subTest(reason=reason, method=method, path=path, data=data):
                with self.assertRaisesRegex(inbound.InboundError, reason) as caught:
                    inbound.verify_signature(secret, header, method, path, data, at)
                self.assertEqual(caught.exception.status, 401)

    def test_signed_message(self):
        self.assertEqual(
            inbound.signed_message(1700000000, "post", "/bj_api_sync/v1/x?a=1", b'{"a": 1}'),
            b'1700000000.POST./bj_api_sync/v1/x?a=1.{"a": 1}',
        )

    def test_check_credentials(self):
        basic = "Basic " + "dXNlcjpwYTpzcw=="  # user:pa:ss, a colon in the password
        self.assertTrue(inbound.check_credentials("basic_auth", basic, "user", "pa:ss"))
        self.assertFalse(inbound.check_credentials("basic_auth", basic, "user", ""))
        self.assertFalse(inbound.check_credentials("bearer_token", "Bearer ", token=""))
        self.assertTrue(inbound.check_credentials("no_auth", None))
        self.assertTrue(inbound.check_credentials("bearer_token", "Bearer abc", token="abc"))
        self.assertFalse(inbound.check_credentials("bearer_token", "Bearer abc", token="abd"))
        self.assertEqual(strip_bearer(" Bearer  abc "), "abc")
        self.assertEqual(strip_bearer("abc"), "abc")
