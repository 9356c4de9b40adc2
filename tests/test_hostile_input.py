"""Hostile input over real HTTP: no request gets a 500 or a traceback.

The requests come from tables (deterministic): broken, deep and huge JSON, NUL
bytes and lone surrogates, wrong types for every field type the addon maps,
injection strings in every query parameter, path segment, idempotency header
and JSON field, wrong methods and media types.  Each answer is checked as it
comes: no 500, the documented JSON error body on every 4xx, exactly one log row,
and nothing written when refused.  The server log is watched throughout.
"""

import json
import logging
import socket
from collections import Counter
from urllib.parse import quote, urlsplit

from odoo import Command
from odoo.tests import tagged

from .common import BjApiHttpCase

_logger = logging.getLogger(__name__)

ENDPOINT = "hostile"
# A small body limit, so that huge bodies are cheap to send.
MAX_BODY = 64 * 1024

# JSON literals, as sent: some are not expressible through json.dumps.
INJECTIONS = [
    "' OR 1=1 --",
    "'; DROP TABLE res_partner; --",
    "1) OR (1=1",
    "[('id', '!=', 0)]",
    "|&!",
    "%s %(name)s %d %n",
    "{0.__class__.__mro__} {name!r:>{width}}",
    "${7*7} {{7*7}}",
    "../../../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "a\r\nSet-Cookie: injected=1",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "\u202e\ufeffzero\u200bwidth",
    "x" * 3000,
]
UNSTORABLE = ['"\\u0000"', '"a\\u0000b"', '"\\ud800"', '"a\\udfffb"', '"\\udc00\\ud800"']
# Wrong for most field types, sent to every key.
WRONG_VALUES = [
    "true", "-1", "1.5", "2147483648", "1" + "0" * 400, "1e308", "NaN", '"abc"', "{}",
    '{"a": 1}', '[1, "a"]', "[[6, 0, [1]]]", '"\\u0001\\u001f"', *UNSTORABLE[:3],
]
# More, by field type.
WRONG_BY_TYPE = {
    "number": ["-1e308", "1e309", "-1e309", "Infinity", "-Infinity", "-0", "-0.0", "5e-324",
               '"1e308"', "9223372036854775808", "-2147483649"],
    "date": ['"0000-01-01"', '"0001-01-01T00:00:00+05:00"', '"9999-12-31T23:59:59-05:00"',
             '"9999-12-31T23:59:59+14:00"', '"99999-01-01"', '"2024-13-45"', '"2024-02-30"',
             '"2024-02-29T25:61:61"', '"31/12/2024"', "20240501"],
    "list": ["[]", "[0]", "[-1]", "[2147483648]", "[null]", "[[]]", '"1,2"'],
}
TYPE_GROUPS = {"integer": "number", "float": "number", "monetary": "number", "date": "date",
               "datetime": "date", "one2many": "list", "many2many": "list"}
# One body per line, each breaking JSON its own way.
BROKEN_BODIES = [
    b"{", b"[", b"}", b'{"name":}', b'{"name": "x"', b"nul", b"tru", b"'single'",
    b'{"name": "x",}', b'{name: "x"}', b'{"name": "x"} trailing', b'"just a string"',
    b"123", b"null", b"true", b"[]", b"[1, 2]", b"[[]]", b'[{"name": "ok"}, 3]',
    b"\xff\xfe{\x00}\x00", b"\xef\xbb\xbf{}", b'{"name": "\xc3\x28"}', b"\x00",
    b'{"name": "x", "name": "\\u0000"}', b'{"\\ud800": 1}', b'{"name": NaN}',
    b'{"name": Infinity}', b'{"name": -Infinity}', b'{"lat": 1e999999}',
    b'{"color": 1' + b"0" * 5000 + b"}", b'{"name": "\\x41"}', b'{"name": "\\u12"}',
    b"[" * 100_000, b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
    b"[" * 500 + b"]" * 500, b'{"name": ' + b"[" * 2000 + b"]" * 2000 + b"}",
    b" " * 1000, b"\t\r\n", b"/* comment */ {}", b"{}\x00",
]
# Body shapes for each method that takes a body, beyond the per-field tables.
CONTENT_TYPES = [
    "text/plain", "application/xml", "text/html", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz", "application/octet-stream", "*/*",
    "application/jsonx", "application/json-patch+json", "application/json; charset=latin-1",
    "json", "application/", ";;;", "application/json\tq=1",
]
METHODS = ["PATCH", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "FOO", "CONNECTX"]
# Sent as they are: a NUL, a lone surrogate in UTF-8, a byte that is not UTF-8.
PERCENT_ENCODED = ("%00", "%ED%A0%80", "%FF")
QUERY_KEYS = ["limit", "offset", "page", "order", "q", "codes", "min_color", "name", "color",
              "lat", "amount", "is_company", "date", "moment", "type", "parent", "country",
              "tags", "res_id", "unknown"]


@tagged("post_install", "-at_install")
class TestHostileInput(BjApiHttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        Fields = cls.env["ir.model.fields"]
        for name, ttype, extra in (
            ("x_bj_h_text", "text", {}),
            ("x_bj_h_ratio", "float", {}),
            ("x_bj_h_date", "date", {}),
            ("x_bj_h_moment", "datetime", {}),
            ("x_bj_h_currency_id", "many2one", {"relation": "res.currency"}),
            ("x_bj_h_amount", "monetary", {"currency_field": "x_bj_h_currency_id"}),
            ("x_bj_h_blob", "binary", {}),
            ("x_bj_h_count", "integer", {}),
            ("x_bj_h_when", "datetime", {}),
            ("x_bj_h_tag_ids", "many2many", {"relation": "res.partner.category"}),
        ):
            Fields.create({
                "model_id": cls.partner_model.id, "name": name, "ttype": ttype,
                "field_description": name, "state": "manual", **extra,
            })
        country_config = cls.make_country_config()
        tag_config = cls.make_config(
            model="res.partner.category", lines=[("name", "name", {"is_identifier": True})]
        )

        def script(code, value_type="python_plain"):
            return {"value_type": value_type, "script_mode": "evaluate", "python_script": code}

        cls.config = cls.make_config(
            endpoint=ENDPOINT,
            lines=[
                ("id", "res_id", {"is_identifier": True}),
                ("name", "name", None),
                ("ref", "ref", None),
                ("comment", "notes", None),
                ("x_bj_h_text", "text", None),
                ("color", "color", None),
                ("partner_latitude", "lat", None),
                ("x_bj_h_ratio", "ratio", None),
                ("x_bj_h_currency_id", "currency", None),
                ("x_bj_h_amount", "amount", None),
                ("is_company", "is_company", None),
                ("x_bj_h_date", "date", None),
                ("x_bj_h_moment", "moment", None),
                ("type", "type", None),
                ("parent_id", "parent", None),
                ("child_ids", "children", None),
                ("x_bj_h_blob", "blob", None),
                ("country_id", "country", {"value_type": "relational_mapping",
                                           "mapping_config_id": country_config.id}),
                ("category_id", "tags", {"value_type": "relational_mapping",
                                         "mapping_config_id": tag_config.id}),
                # Scripts hand back whatever the caller sent, wrong types included.
                ("function", "job", script("request_data.get('job')")),
                ("x_bj_h_count", "count", script("request_data.get('count')")),
                ("x_bj_h_when", "when", script("request_data.get('when')")),
                ("industry_id", "industry",
                 script("request_data.get('industry')", "relational_python")),
                ("x_bj_h_tag_ids", "script_tags",
                 script("request_data.get('script_tags')", "relational_python")),
            ],
            param_ids=[
                Command.create({"key": "q", "field_id": cls.partner_field("name").id,
                                "domain_operator": "ilike"}),
                Command.create({"key": "codes", "field_id": cls.partner_field("ref").id,
                                "domain_operator": "in"}),
                Command.create({"key": "min_color", "field_id": cls.partner_field("color").id,
                                "domain_operator": ">="}),
            ],
        )
        cls.env["ir.config_parameter"].set_param(
            "bjet_api_sync.inbound_max_body_size", str(MAX_BODY)
        )
        cls.partner = cls.env["res.partner"].create({"name": "Hostile target", "ref": "HT"})
        cls.keys = {line.external_key: line.field_type for line in cls.config.line_ids
                    if not line.is_identifier}

    def setUp(self):
        super().setUp()
        self.statuses = Counter()
        self.records = self.capture_server_log(logging.WARNING)
        self.problems = []

    # -- sending -----------------------------------------------------------------

    def counts(self):
        self.env.invalidate_all()
        return (self.env["res.partner"].with_context(active_test=False).search_count([]),
                self.env["res.partner.category"].search_count([]),
                self.env["bj.api.log"].sudo().search_count([]))

    def raw(self, method, target, headers=(), body=b"", content_length=None):
        """Send bytes as they are; ``(status, headers, body)`` of the answer."""
        url = urlsplit(self.base_url())
        length = len(body) if content_length is None else content_length
        head = [b"%s %s HTTP/1.1" % (method.encode(), target), b"Host: " + url.netloc.encode(),
                b"Connection: close", b"Content-Length: %d" % length, *headers]
        with socket.create_connection((url.hostname, url.port), timeout=60) as sock:
            sock.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
            if content_length is not None and content_length > len(body):
                sock.shutdown(socket.SHUT_WR)  # the client gives up mid-body
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head, _sep, content = answer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0]:
            return None, {}, b""
        answer_headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
        answer_headers = {name.strip().lower(): value.strip()
                          for name, value in answer_headers.items()}
        return int(lines[0].split()[1]), answer_headers, content

    def send(self, method, target, headers=(), body=b"", json_body=True, written_ok=True,
             routed=True, **raw_options):
        """One hostile request, checked; returns its status.  ``routed=False``:
        answered by a redirect before the API's route, so without a log row."""
        if json_body and body:
            headers = [b"Content-Type: application/json", *headers]
        before = self.counts()
        status, answer_headers, content = self.raw(method, target, headers, body, **raw_options)
        after = self.counts()
        label = f"{method} {target[:120]!r} {bytes(body[:120])!r}"
        self.statuses[status] += 1
        problems = []
        if status in (500, None):
            problems.append(f"answered {status}")
        if b"Traceback" in content:
            problems.append("a traceback in the body")
        if not routed and not 300 <= (status or 0) < 400:
            problems.append("not a redirect")
        if after[2] != before[2] + routed:
            problems.append(f"{after[2] - before[2]} log rows")
        if (status is None or status >= 400 or not written_ok) and after[:2] != before[:2]:
            problems.append("wrote records")
        if status is not None and status >= 400:
            problems += self.error_body_problems(method, answer_headers, content)
        if problems:
            self.problems.append(f"{label}: {', '.join(problems)}: {content[:300]!r}")
        return status

    @staticmethod
    def error_body_problems(method, headers, content):
        """What an error answer lacks of the documented JSON error body."""
        if "application/json" not in headers.get("content-type", ""):
            return [f"content type {headers.get('content-type')!r}"]
        if method == "HEAD":
            return []
        try:
            answer = json.loads(content)
        except ValueError:
            return ["a body that is not JSON"]
        if not isinstance(answer, dict) or not answer.get("error") or \
                answer.get("message") != answer["error"] or "line_id" not in answer or \
                "status_code" not in answer:
            return ["not the documented error body"]
        return []

    def path(self, identifier=None):
        path = f"/bj_api_sync/v1/{ENDPOINT}"
        if identifier is not None:
            path += "/" + quote(identifier, safe="")
        return path.encode()

    def post(self, key, literal, method="POST", identifier=None):
        body = b'{"name": "Hostile", "%s": %s}' % (key.encode(), literal.encode())
        return self.send(method, self.path(identifier), body=body)

    # -- the suite -----------------------------------------------------------------

    def test_hostile_input(self):
        target = str(self.partner.id)
        for key, ttype in self.keys.items():
            for literal in WRONG_VALUES + WRONG_BY_TYPE.get(TYPE_GROUPS.get(ttype), []):
                self.post(key, literal)
            self.post(key, json.dumps(INJECTIONS[1]), method="PUT", identifier=target)
        for text in INJECTIONS:
            self.post("name", json.dumps(text))
            # Injection strings as JSON keys, nested values and mapped objects.
            self.send("POST", self.path(), body=json.dumps({text: 1, "name": "K"}).encode())
            self.send("POST", self.path(), body=json.dumps(
                {"name": "N", "tags": [{"name": text}], "country": {"code": text}}).encode())
        for literal in UNSTORABLE:
            # In keys, in nested objects, in batches.
            self.send("POST", self.path(), body=b'{%s: "v", "name": "U"}' % literal.encode())
            self.send("POST", self.path(),
                      body=b'{"name": "U", "tags": [{"name": %s}]}' % literal.encode())
            self.send("POST", self.path(),
                      body=b'[{"name": "ok"}, {"name": %s}]' % literal.encode())
        for body in BROKEN_BODIES:
            for method, identifier in (("POST", None), ("PUT", target)):
                self.send(method, self.path(identifier), body=body)
        # Huge: over the limit is a 413, whether the length is announced or not.
        for size in (MAX_BODY + 1, MAX_BODY * 4):
            body = b'{"name": "' + b"x" * size + b'"}'
            self.send("POST", self.path(), body=body)
            self.send("PUT", self.path(target), body=body)
            self.send("POST", self.path(), body=b"[" * size)
        self.send("POST", self.path(), body=json.dumps(
            [{"name": f"Batch {i}"} for i in range(2000)]).encode())
        self.send("POST", self.path(), body=b'{"name": "' + b"y" * (MAX_BODY - 20) + b'"}')
        self.query_and_path_injections(target)
        self.header_injections()
        self.methods_and_media_types(target)
        self.disconnects()
        self.report()

    def query_and_path_injections(self, target):
        values = [*INJECTIONS[:3], INJECTIONS[5], INJECTIONS[8], INJECTIONS[10],
                  *PERCENT_ENCODED, "99999999999999999999", "1e308",
                  "9999-12-31T23:59:59-05:00", "name desc, id;drop", "a,,b"]
        encoded_values = [value if value in PERCENT_ENCODED else quote(value, safe="")
                          for value in values]
        for key in QUERY_KEYS:
            for encoded in encoded_values:
                self.send("GET", self.path() + f"?{key}={encoded}".encode(), written_ok=False)
        for encoded in encoded_values:
            self.send("GET", self.path() + b"/" + encoded.encode(), written_ok=False)
            self.send("DELETE", self.path() + b"/" + encoded.encode(), written_ok=False)
            self.send("GET", f"/bj_api_sync/v1/{encoded}".encode(), written_ok=False)
            self.send("GET", self.path() + f"?{encoded}=1".encode(), written_ok=False)
        for segment in (b"/a/b/c", b"/%2e%2e/%2e%2e/web", b"/..", b"/" + b"9" * 5000):
            self.send("GET", self.path() + segment, written_ok=False)
        for segment in (b"//", b"/%2F"):
            # An empty identifier: werkzeug redirects to the collection before routing.
            self.send("GET", self.path() + segment, written_ok=False, routed=False)
        self.send("DELETE", self.path(target) + b"?limit=%00", written_ok=False)

    def header_injections(self):
        body = b'{"name": "Headed"}'
        values = [*(text.replace("\r\n", " ") for text in INJECTIONS[:10]), "k" * 256,
                  "k" * 10_000, "\x00", "\xff\xfe", "   "]
        for name in ("Idempotency-Key", "X-Request-ID", "Authorization"):
            for value in values:
                header = name.encode() + b": " + value.encode("utf-8", "surrogateescape")
                self.send("POST", self.path(), headers=[header], body=body)

    def methods_and_media_types(self, target):
        for method in METHODS:
            self.send(method, self.path(), written_ok=False)
            self.send(method, self.path(target), written_ok=False)
        self.send("POST", self.path(target), body=b'{"name": "x"}')
        self.send("DELETE", self.path(), written_ok=False)
        for content_type in CONTENT_TYPES:
            for body in (b'{"name": "Typed"}', b"name=Typed", b"--xyz\r\n\r\nname\r\n--xyz--"):
                header = b"Content-Type: " + content_type.encode()
                self.send("POST", self.path(), headers=[header], body=body, json_body=False)

    def disconnects(self):
        for announced, sent in ((1000, b'{"name": "Cut'), (MAX_BODY, b"{"), (10, b"")):
            status, _headers, _content = self.raw(
                "POST", self.path(), [b"Content-Type: application/json"], sent,
                content_length=announced,
            )
            self.statuses[status] += 1
            if status not in (400, None):
                self.problems.append(f"a body cut short after {len(sent)} bytes: {status}")

    def report(self):
        total = sum(self.statuses.values())
        counts = " ".join(f"{status}×{count}" for status, count in sorted(
            self.statuses.items(), key=lambda item: (item[0] is None, item[0] or 0)))
        _logger.info("hostile input: %d requests: %s", total, counts)
        self.assertGreaterEqual(total, 500)
        self.assertEqual(self.statuses[500], 0)
        self.assertFalse(self.problems, "\n".join(self.problems[:80]))
        for record in self.records:
            message = record.getMessage()
            self.assertLess(record.levelno, logging.ERROR, message)
            self.assertIsNone(record.exc_info, message)
            self.assertNotIn("Traceback", message)
