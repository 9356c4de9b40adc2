"""Shared test kit: users per group, configuration factories, a scriptable
local HTTP server and log assertions."""

import json
import secrets
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from odoo import Command
from odoo.tests.common import TransactionCase, new_test_user

USER_GROUP = "bjet_api_sync.group_api_sync_user"
MANAGER_GROUP = "bjet_api_sync.group_api_sync_manager"


def generated_secret(prefix="test"):
    """A fresh random credential: tests never embed real secrets."""
    return f"{prefix}-{secrets.token_urlsafe(24)}"


class BjApiSyncTestMixin:
    """Fixtures shared by TransactionCase and HttpCase tests."""

    @classmethod
    def setup_bj_fixtures(cls):
        cls.env = cls.env(context=dict(cls.env.context, tracking_disable=True))
        cls.method_get = cls.env.ref("bjet_api_sync.bj_http_method_get")
        cls.method_post = cls.env.ref("bjet_api_sync.bj_http_method_post")
        cls.method_put = cls.env.ref("bjet_api_sync.bj_http_method_put")
        cls.method_delete = cls.env.ref("bjet_api_sync.bj_http_method_delete")
        cls.all_methods = cls.method_get | cls.method_post | cls.method_put | cls.method_delete
        cls.partner_model = cls.env["ir.model"]._get("res.partner")
        cls.sync_user = new_test_user(cls.env, login="bj_sync_user", groups=USER_GROUP)
        cls.sync_manager = new_test_user(cls.env, login="bj_sync_manager", groups=MANAGER_GROUP)
        cls.integration_user = new_test_user(
            cls.env,
            login="bj_integration",
            groups="base.group_user,base.group_partner_manager",
        )

    @classmethod
    def partner_field(cls, name):
        return cls.env["ir.model.fields"]._get("res.partner", name)

    @classmethod
    def make_config(cls, lines=(), **values):
        """Create a configuration; ``lines`` are (field name, external key, extra vals)."""
        request_type = values.setdefault("request_type", "in")
        model_name = values.pop("model", "res.partner")
        values.setdefault("name", f"Test {request_type} {model_name}")
        values.setdefault("model_id", cls.env["ir.model"]._get_id(model_name))
        if request_type == "in":
            values.setdefault("endpoint", f"test-{secrets.token_hex(4)}")
            values.setdefault("http_method_ids", [Command.set(cls.all_methods.ids)])
            values.setdefault("run_as_user_id", cls.integration_user.id)
        else:
            values.setdefault("request_url", "http://127.0.0.1:9/sink")
            values.setdefault("http_method_ids", [Command.set(cls.method_post.ids)])
        line_commands = []
        for index, (field_name, external_key, extra) in enumerate(lines):
            line_values = {
                "sequence": index,
                "field_id": cls.env["ir.model.fields"]._get(model_name, field_name).id,
                "external_key": external_key,
                "value_type": "plain",
            }
            line_values.update(extra or {})
            line_commands.append(Command.create(line_values))
        if line_commands:
            values["line_ids"] = line_commands
        return cls.env["bj.api.sync.config"].create(values)

    @classmethod
    def make_partner_config(cls, **values):
        """A configuration on Contacts with id (identifier), name, email and phone."""
        lines = [
            ("id", "res_id", {"is_identifier": True}),
            ("name", "name", None),
            ("email", "email", None),
            ("phone", "phone", None),
        ]
        return cls.make_config(lines=lines, **values)

    # -- log assertions ----------------------------------------------------

    def get_logs(self, config=None, **domain_values):
        domain = [(key, "=", value) for key, value in domain_values.items()]
        if config is not None:
            domain.append(("config_id", "=", config.id))
        return self.env["bj.api.log"].sudo().search(domain, order="id")

    def assertLogged(self, config=None, count=None, **values):
        """Assert that log rows matching ``values`` exist and return them."""
        logs = self.get_logs(config, **values)
        if count is None:
            self.assertTrue(logs, f"no bj.api.log row matches {values}")
        else:
            self.assertEqual(len(logs), count, f"expected {count} log rows matching {values}")
        return logs

    def assertNoSecretIn(self, text, *secret_values):
        for secret in secret_values:
            self.assertNotIn(secret, text or "", "a secret leaked")


class BjApiSyncCase(BjApiSyncTestMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_bj_fixtures()


# -- a scriptable HTTP server on 127.0.0.1 ------------------------------------


class RecordedRequest:
    def __init__(self, method, path, headers, body):
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body or b"null")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        server = self.server
        with server.lock:
            server.requests.append(
                RecordedRequest(self.command, self.path, dict(self.headers.items()), body)
            )
            response = server.responses.pop(0) if server.responses else server.default_response
        status, headers, payload, delay = response
        if delay:
            server.release.wait(delay)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

    def log_message(self, format, *args):  # keep test output quiet
        pass


class LocalHttpServer:
    """A real HTTP server on 127.0.0.1 whose answers the test scripts.

    ``queue(status, body, headers, delay)`` sets the next answers in order; once
    they are used up every request gets ``default``.  ``stop()``/``start()``
    simulate an external API that goes away and comes back on the same port.
    """

    def __init__(self, default=(200, None, {"ok": True}, 0)):
        self.default = default
        self.port = 0
        self._server = None
        self._thread = None
        self._requests = []
        self._responses = []
        self._lock = threading.Lock()
        self._release = threading.Event()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self):
        with self._lock:
            return list(self._requests)

    def queue(self, status=200, body=None, headers=None, delay=0):
        with self._lock:
            self._responses.append((status, headers, {} if body is None else body, delay))

    def start(self):
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        self._server.daemon_threads = True
        self._server.requests = self._requests
        self._server.responses = self._responses
        self._server.lock = self._lock
        self._server.release = self._release
        status, headers, body, delay = self.default
        self._server.default_response = (status, headers, body, delay)
        self.port = self._server.server_address[1]
        self._release.clear()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server:
            self._release.set()  # wake handlers sleeping on a delay
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def clear(self):
        with self._lock:
            self._requests.clear()
            self._responses.clear()

    @contextmanager
    def running(self):
        self.start()
        try:
            yield self
        finally:
            self.stop()
