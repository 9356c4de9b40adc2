import base64
import socket

import requests

from odoo.tests import BaseCase, tagged

from ..core import http_client
from .common import LocalHttpServer, LocalServerMixin, generated_secret


@tagged("post_install", "-at_install")
class TestHttpClientHelpers(BaseCase):
    def test_auth_headers(self):
        secret = generated_secret()
        basic = http_client.auth_headers("basic_auth", "alice", secret)["Authorization"]
        self.assertEqual(base64.b64decode(basic.split()[1]).decode(), f"alice:{secret}")
        for stored in (secret, f"Bearer {secret}", f"bearer  {secret}"):
            self.assertEqual(http_client.auth_headers("bearer_token", bearer_token=stored),
                             {"Authorization": f"Bearer {secret}"})
        self.assertEqual(http_client.auth_headers("no_auth", "alice", secret), {})

    def test_merge_headers_is_case_insensitive(self):
        merged = http_client.merge_headers({"Content-Type": "a", "X-A": "1"},
                                           {"content-type": "b"}, {"X-B": "2"})
        self.assertEqual(merged, {"X-A": "1", "content-type": "b", "X-B": "2"})

    def test_placeholders(self):
        url = "https://api.example.com/c/{external_id}?v={version}"
        self.assertEqual(
            http_client.fill_placeholders(url, {"external_id": "a/b c", "version": 2}),
            "https://api.example.com/c/a%2Fb%20c?v=2",
        )
        self.assertEqual(http_client.fill_placeholders("https://x/y", [1, 2]), "https://x/y")
        with self.assertRaisesRegex(http_client.PlaceholderError, "no value for 'version'"):
            http_client.fill_placeholders(url, {"external_id": 1})
        with self.assertRaisesRegex(http_client.PlaceholderError, "paginated"):
            http_client.fill_placeholders(url, [{"external_id": 1}])
        self.assertEqual(http_client.strip_placeholders(url), "https://api.example.com/c")
        self.assertEqual(http_client.strip_placeholders("http://h/{id}"), "http://h/")

    def test_classify_errors(self):
        def wrapped(cause):
            try:
                try:
                    raise cause
                except OSError as error:
                    raise requests.exceptions.ConnectionError("failed") from error
            except requests.exceptions.ConnectionError as error:
                return error

        self.assertEqual(http_client.classify_error(wrapped(socket.gaierror(-2, "unknown"))),
                         http_client.DNS)
        self.assertEqual(http_client.classify_error(wrapped(ConnectionRefusedError(111, "no"))),
                         http_client.REFUSED)
        self.assertEqual(http_client.classify_error(wrapped(ConnectionResetError(104, "rst"))),
                         http_client.CONNECTION)
        self.assertEqual(http_client.classify_error(requests.exceptions.SSLError("bad cert")),
                         http_client.TLS)
        self.assertEqual(http_client.classify_error(requests.exceptions.ConnectTimeout("slow")),
                         http_client.CONNECT_TIMEOUT)
        self.assertEqual(http_client.classify_error(requests.exceptions.MissingSchema("x")),
                         http_client.INVALID_URL)


@tagged("post_install", "-at_install")
class TestHttpClientSend(LocalServerMixin, BaseCase):
    def test_send_parses_json_and_measures(self):
        self.server.queue(201, {"id": 7})
        result = http_client.send("POST", self.server.url + "/x", body=b'{"a": 1}',
                                  headers={"Content-Type": "application/json"}, timeout=(2, 2))
        self.assertTrue(result.ok)
        self.assertEqual((result.status_code, result.data), (201, {"id": 7}))
        self.assertGreaterEqual(result.duration_ms, 0)
        self.assertEqual(self.server.requests[0].json(), {"a": 1})

    def test_cookies_set_by_an_api_are_never_sent_back(self):
        # One session per thread serves every configuration: a cookie kept
        # from one API's answer would go out with another's requests.
        self.server.queue(200, {}, headers={"Set-Cookie": "session=secret; Path=/"})
        self.server.queue(200, {})
        for _request in range(2):
            self.assertTrue(http_client.send("GET", self.server.url + "/x", timeout=(2, 2)).ok)
        self.assertNotIn("Cookie", self.server.requests[1].headers)
        self.assertFalse(http_client.session().cookies)

    def test_read_timeout_and_refused_never_raise(self):
        self.server.queue(200, {}, delay=2)
        result = http_client.send("GET", self.server.url, timeout=(1, 0.3))
        self.assertEqual(result.error_kind, http_client.READ_TIMEOUT)
        self.assertTrue(result.transient_error)
        self.assertIn("did not answer in time", result.error)
        closed = LocalHttpServer().start()
        closed.stop()
        result = http_client.send("GET", closed.url, timeout=1)
        self.assertEqual(result.error_kind, http_client.REFUSED)
        self.assertIsNone(result.status_code)
        self.assertFalse(result.ok)
        self.assertEqual(http_client.send("GET", "not a url").error_kind, http_client.INVALID_URL)
