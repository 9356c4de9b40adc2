"""Every inbound request leaves exactly one log row, whatever it carries."""

import logging
import socket
from unittest.mock import patch
from urllib.parse import urlsplit

from odoo.service.model import MAX_TRIES_ON_CONCURRENCY_FAILURE
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..services.inbound_request import InboundRequest
from .common import BjApiHttpCase

PREFIX = b"/bj_api_sync/v1/rows-partners"


@tagged("post_install", "-at_install")
class TestEveryRequestIsLogged(BjApiHttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.config = cls.make_partner_config(endpoint="rows-partners")

    def raw(self, method, target, headers=(), body=b"", length=None):
        """Send bytes as they are (clients refuse to send NUL bytes in headers);
        return ``(status, content type, body)``.  A ``length`` beyond the body's
        is a client that stops sending mid-body."""
        url = urlsplit(self.base_url())
        length = len(body) if length is None else length
        head = [b"%s %s HTTP/1.1" % (method, target), b"Host: %s" % url.netloc.encode(),
                b"Connection: close", b"Content-Length: %d" % length, *headers]
        with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
            sock.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
            if length > len(body):
                sock.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head, _sep, content = answer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        content_type = next((line.split(b":", 1)[1].strip() for line in lines[1:]
                             if line.lower().startswith(b"content-type:")), b"")
        return status, content_type, content

    def count_logs(self):
        self.env.invalidate_all()
        return self.env["bj.api.log"].sudo().search_count([])

    def test_unstorable_text_anywhere_is_a_logged_400(self):
        json_type = [b"Content-Type: application/json"]
        cases = [
            ("NUL in the identifier", b"GET", PREFIX + b"/%00", [], b""),
            ("NUL in the endpoint", b"GET", b"/bj_api_sync/v1/rows%00partners", [], b""),
            ("NUL in a query value", b"GET", PREFIX + b"?name=%00", [], b""),
            ("NUL in a query key", b"GET", PREFIX + b"?na%00me=x", [], b""),
            ("NUL in a header", b"GET", PREFIX, [b"X-Custom: a\x00b"], b""),
            ("NUL in X-Request-ID", b"GET", PREFIX, [b"X-Request-ID: id\x00"], b""),
            ("invalid UTF-8 in the body", b"POST", PREFIX, json_type, b'{"name": "\xff"}'),
            ("NUL in a JSON string", b"POST", PREFIX, json_type, b'{"name": "a\\u0000b"}'),
            ("NUL in a JSON key", b"POST", PREFIX, json_type, b'{"na\\u0000me": "a"}'),
            ("unpaired surrogate", b"POST", PREFIX, json_type, b'{"name": "\\ud800"}'),
        ]
        for name, method, target, headers, body in cases:
            with self.subTest(name):
                before = self.count_logs()
                status, content_type, content = self.raw(method, target, headers, body)
                self.assertEqual(status, 400, content)
                self.assertIn(b"application/json", content_type)
                self.assertEqual(self.count_logs(), before + 1, "exactly one log row")
                log = self.get_logs()[-1]
                self.assertEqual(log.status_code, 400)

    def test_odd_but_storable_text_is_served_and_logged(self):
        cases = [
            ("invalid UTF-8 in the path", PREFIX + b"/%FF", [], 400),
            ("invalid UTF-8 in a header", PREFIX, [b"X-Custom: \xff\xfe"], 200),
            ("invalid UTF-8 in a query value", PREFIX + b"?name=%FF", [], 200),
        ]
        for name, target, headers, expected in cases:
            with self.subTest(name):
                before = self.count_logs()
                status, content_type, content = self.raw(b"GET", target, headers)
                self.assertEqual(status, expected, content)
                self.assertIn(b"application/json", content_type)
                self.assertEqual(self.count_logs(), before + 1)

    def test_body_cut_short_is_a_logged_400(self):
        before = self.count_logs()
        with self.assertNoLogs(level=logging.ERROR):
            status, content_type, content = self.raw(
                b"POST", PREFIX, [b"Content-Type: application/json"], b'{"name": "Cut', 1000
            )
        self.assertEqual(status, 400, content)
        self.assertIn(b"before sending the whole body", content)
        self.assertEqual(self.count_logs(), before + 1)
        self.assertFalse(self.env["res.partner"].search([("name", "=like", "Cut%")]))

    @mute_logger("odoo.service.model")
    def test_concurrency_retries_that_run_out_are_a_logged_503(self):
        """Odoo replays a request that hit a concurrency failure; on its last try
        the failure is answered and logged, once."""
        calls = []

        def conflict(request, payload):
            calls.append(request.last_try)
            # A real one, as PostgreSQL reports it (Odoo reads its code).
            request.env.cr.execute(
                "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure';"
                " END $$", log_exceptions=False,
            )

        before = self.count_logs()
        with patch.object(InboundRequest, "_execute", conflict), \
                patch("odoo.service.model.random.uniform", return_value=0):
            response = self.api("GET", "rows-partners")
        self.assertApiError(response, 503)
        self.assertEqual(response.headers.get("Retry-After"), "1")
        self.assertEqual(len(calls), MAX_TRIES_ON_CONCURRENCY_FAILURE)
        self.assertEqual(calls[-1], True)
        self.assertEqual(self.count_logs(), before + 1)
        self.assertEqual(self.get_logs(self.config)[-1].status_code, 503)
