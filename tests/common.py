"""Shared test kit: users per group, configuration factories, a scriptable
local HTTP server and log assertions."""

import base64
import json
import logging
import os
import re
import secrets
import socket
import sys
import threading
import time
from contextlib import contextmanager, suppress
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import patch
from urllib.parse import urlsplit

from psycopg2 import errors

from odoo import SUPERUSER_ID, Command, api, fields, sql_db
from odoo.modules.registry import DummyRLock, Registry
from odoo.tests import common as odoo_test_common
from odoo.tests.common import HttpCase, TransactionCase, get_db_name, new_test_user
from odoo.tools import mute_logger
from odoo.tools.misc import Callbacks

from ..services import cron_clock, delivery_worker
from ..services import records as records_service

USER_GROUP = "bjet_api_sync.group_api_sync_user"
MANAGER_GROUP = "bjet_api_sync.group_api_sync_manager"


def generated_secret(prefix="test"):
    """A fresh random credential: tests never embed real secrets."""
    return f"{prefix}-{secrets.token_urlsafe(24)}"


def line_commands(env, model_name, lines):
    """Commands creating configuration lines on ``model_name`` in this order:
    ``lines`` are (field name, external key, extra values), plain unless the
    extra values say otherwise."""
    field = env["ir.model.fields"]._get
    return [
        Command.create({
            "sequence": index,
            "field_id": field(model_name, field_name).id,
            "external_key": external_key,
            "value_type": "plain",
            **(extra or {}),
        })
        for index, (field_name, external_key, extra) in enumerate(lines)
    ]


# The documentation files whose text tests read (their examples run, their quotes hold).
ADDON_ROOT = Path(__file__).resolve().parent.parent
README = ADDON_ROOT / "README.md"
CONFIGURE = ADDON_ROOT / "readme" / "CONFIGURE.md"
USAGE = ADDON_ROOT / "readme" / "USAGE.md"
API_REFERENCE = ADDON_ROOT / "docs" / "API.md"
SECURITY = ADDON_ROOT / "docs" / "SECURITY.md"
MARKDOWN_FILES = (README, *sorted((ADDON_ROOT / "readme").glob("*.md")),
                  *sorted((ADDON_ROOT / "docs").glob("*.md")))
MARKDOWN_HEADING = re.compile(r"(#+) (.*)")


def markdown_headings(text):
    """``(line index, level, title)`` of each heading of ``text``, code blocks aside."""
    headings, fenced = [], False
    for index, line in enumerate(text.split("\n")):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (match := MARKDOWN_HEADING.fullmatch(line)):
            headings.append((index, len(match[1]), match[2].strip()))
    return headings


def doc_section(path, title):
    """The section of the Markdown file ``path`` headed ``title``, up to the next
    heading of its level or above."""
    text = path.read_text()
    lines = text.split("\n")
    headings = markdown_headings(text)
    start, level = next((index, level) for index, level, name in headings if name == title)
    end = next((index for index, other, _name in headings if index > start and other <= level),
               len(lines))
    return "\n".join(lines[start:end])


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

    def import_values(self, config, items, records=None):
        """ORM values of ``items`` through ``config``'s plan (the mapping engine)."""
        model = self.env[config.model_name]
        return records_service.import_values(config._bj_plan(), model, items, records)

    def import_one(self, config, data, record=None):
        return self.import_values(config, [data], [record])[0]

    def export(self, config, records, with_scripts=False):
        """JSON objects of ``records`` through ``config``'s plan."""
        return records_service.export_records(config._bj_plan(), records, with_scripts)

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
        values.setdefault("run_as_user_id", cls.integration_user.id)
        if request_type == "in":
            values.setdefault("endpoint", f"test-{secrets.token_hex(4)}")
            values.setdefault("http_method_ids", [Command.set(cls.all_methods.ids)])
            # Open unless a test says otherwise (a new In configuration defaults to a token).
            values.setdefault("authorization_type", "no_auth")
        else:
            values.setdefault("request_url", "http://127.0.0.1:9/sink")
            values.setdefault("http_method_ids", [Command.set(cls.method_post.ids)])
        if lines:
            values["line_ids"] = line_commands(cls.env, model_name, lines)
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

    @classmethod
    def make_country_config(cls, **values):
        """A configuration on Countries identified by their code, for Mapping Models."""
        lines = [("code", "code", {"is_identifier": True}), ("name", "name", None)]
        return cls.make_config(model="res.country", lines=lines, **values)

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

    # -- the server log ----------------------------------------------------

    def capture_server_log(self, level=logging.NOTSET, logger=None):
        """The list of every record ``logger`` (the root logger) handles at
        ``level`` or above, from now to the end of the test (the HTTP server's
        threads too)."""
        records = []
        handler = logging.Handler(level)
        handler.emit = records.append
        logger = logger or logging.getLogger()
        logger.addHandler(handler)
        self.addCleanup(logger.removeHandler, handler)
        return records

    @staticmethod
    def logged_text(record):
        """A log record as the server log shows it: message and traceback."""
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        return text


class BjApiSyncCase(BjApiSyncTestMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_bj_fixtures()


# -- the inbound REST API over real HTTP ----------------------------------------


def basic_auth(login, password):
    token = base64.b64encode(f"{login}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def bearer_auth(token):
    return {"Authorization": f"Bearer {token}"}


class BjApiHttpCase(BjApiSyncTestMixin, HttpCase):
    """Calls ``/bj_api_sync/v1/...`` on Odoo's test server, like an external system.

    Every call asserts that no cookie is set: the API never saves a session.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_bj_fixtures()

    def api_url(self, endpoint, identifier=None):
        path = f"/bj_api_sync/v1/{endpoint}"
        if identifier is not None:
            path += f"/{identifier}"
        return self.base_url() + path

    def api(self, method, endpoint, identifier=None, *, body=None, data=None, params=None,
            headers=None):
        """Send one request; ``body`` is sent as JSON, ``data`` as raw bytes."""
        if body is not None:
            data = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        response = self.opener.request(
            method, self.api_url(endpoint, identifier), data=data, params=params,
            headers=headers, timeout=30,
        )
        self.assertNotIn("Set-Cookie", response.headers, "the API must never set a cookie")
        # The server wrote through its own cursor: forget what this one cached.
        self.env.invalidate_all()
        return response

    def assertApiSuccess(self, response, status=200):
        """Assert a success answer and return its ``data``."""
        self.assertEqual(response.status_code, status, response.text)
        body = response.json()
        self.assertEqual(body["status"], "success")
        return body["data"]

    def assertApiError(self, response, status, message=None, line_id=None):
        """Assert an error answer of the documented shape and return its body."""
        self.assertEqual(response.status_code, status, response.text)
        body = response.json()
        self.assertEqual(body["status_code"], status)
        self.assertEqual((body["status"], body["code"]), ("error", status))
        self.assertTrue(body["error"])
        self.assertEqual(body["message"], body["error"])
        self.assertIn("line_id", body)
        self.assertNotIn("Traceback", response.text)
        if message is not None:
            self.assertRegex(body["message"], message)
        if line_id is not None:
            self.assertEqual(body["line_id"], line_id)
        return body


# -- a scriptable HTTP server on 127.0.0.1 ------------------------------------


class RecordedRequest:
    def __init__(self, method, path, headers, body):
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.received_at = time.monotonic()

    def json(self):
        return json.loads(self.body or b"null")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        server = self.server
        with server.lock:
            request = RecordedRequest(self.command, self.path, dict(self.headers.items()), body)
            server.requests.append(request)
            response = server.responses.pop(0) if server.responses else server.default_response
        status, headers, payload, delay = response
        if callable(payload):
            payload = payload(request)
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

    def setup(self):
        result = super().setup()
        with self.server.lock:
            self.server.connections.add(self.connection)
        return result

    def finish(self):
        with self.server.lock:
            self.server.connections.discard(self.connection)
        return super().finish()

    def log_message(self, format, *args):  # keep test output quiet
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that timed out or a stop() closed the socket: expected in tests.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            return super().handle_error(request, client_address)


class LocalHttpServer:
    """A real HTTP server on 127.0.0.1 whose answers the test scripts.

    ``queue(status, body, headers, delay)`` sets the next answers in order (a
    callable ``body`` makes it from the ``RecordedRequest``); once they are used
    up every request gets ``default``.  ``stop()``/``start()``
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
        self._server = _QuietServer(("127.0.0.1", self.port), _Handler)
        self._server.connections = set()
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
            # Like a server that really went away: keep-alive connections die too.
            with self._lock:
                for connection in self._server.connections:
                    with suppress(OSError):
                        connection.shutdown(socket.SHUT_RDWR)
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


# -- outbound delivery -----------------------------------------------------------


class LocalTimeoutsMixin:
    """Keep real timeouts for requests to 127.0.0.1 in tests.

    Odoo's test base raises every ``requests`` timeout below 10 s to 10 s (and
    cannot compare a (connect, read) pair); timeout tests would then take
    10 s each.  Requests to other hosts are still blocked by Odoo.
    """

    @classmethod
    def _request_handler(cls, s, r, /, **kw):
        if urlsplit(r.url).hostname in (odoo_test_common.HOST, "localhost"):
            return odoo_test_common._super_send(s, r, **kw)
        return super()._request_handler(s, r, **kw)


class LocalServerMixin(LocalTimeoutsMixin):
    """A LocalHttpServer for the class (``cls.server``), emptied before each test."""

    server_default = (200, None, {"ok": True}, 0)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = LocalHttpServer(default=cls.server_default).start()
        cls.addClassCleanup(cls.server.stop)

    def setUp(self):
        super().setUp()
        self.server.clear()


class CommittedDataMixin(LocalServerMixin):
    """Races need real transactions: a TransactionCase's data lives in one
    uncommitted transaction that other connections cannot see.  These tests
    commit their data through cursors of their own (and delete it afterwards)
    and run workers on connections of their own, as cron workers do."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.registry = Registry(get_db_name())
        # The test runner holds the registry lock while tests run, and every new
        # thread needs it to open an Environment: lift it like HttpCase's test
        # mode does (Registry.enter_test_mode).
        cls.startClassPatcher(patch.object(Registry, "_lock", DummyRLock()))

    @contextmanager
    def committed_env(self):
        """A superuser environment on a cursor of its own, committed at the end."""
        with self.registry.cursor() as cr:
            yield api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True})

    def committed_out_config(self, env, values):
        """An Out configuration on Contacts, run as the administrator, posting to
        the local server's ``/sink``, with ``values``."""
        return env["bj.api.sync.config"].create({
            "request_type": "out",
            "model_id": env["ir.model"]._get_id("res.partner"),
            "run_as_user_id": env.ref("base.user_admin").id,
            "request_url": self.server.url + "/sink",
            "http_method_ids": [Command.set(env.ref("bjet_api_sync.bj_http_method_post").ids)],
            **values,
        })

    def committed_in_config(self, env, values, lines=(), model="res.partner"):
        """An In configuration on ``model`` open to every method without
        authentication, run as the administrator, with ``lines`` (as in
        ``make_config``) and ``values``."""
        return env["bj.api.sync.config"].create({
            "request_type": "in",
            "model_id": env["ir.model"]._get_id(model),
            "authorization_type": "no_auth",
            "http_method_ids": [Command.set(self.all_methods.ids)],
            "run_as_user_id": env.ref("base.user_admin").id,
            "line_ids": line_commands(env, model, lines),
            **values,
        })

    def delete_committed(self, config_id, partner_ids=()):
        """Delete a committed configuration with its jobs, their log rows and
        ``partner_ids``."""
        with self.committed_env() as env:
            env["bj.api.log"].search([("config_id", "=", config_id)]).unlink()
            env["bj.api.sync.job"].search([("config_id", "=", config_id)]).unlink()
            env["bj.api.sync.config"].browse(config_id).unlink()
            env["res.partner"].browse(partner_ids).unlink()

    def run_worker_process(self):
        """One delivery run in a forked process, as in a cron worker of its own;
        its pid.  The child opens connections of its own: the ones it inherits
        belong to this process and are left untouched (never closed)."""
        pid = os.fork()
        if pid:
            return pid
        status = 1
        try:
            pool = sql_db._Pool
            inherited = list(pool._connections)  # noqa: F841 - kept open until _exit
            pool._connections.clear()
            pool._lock = threading.Lock()
            threading.current_thread().testing = False  # commit, as a cron worker does
            with self.committed_env() as env:
                env["bj.api.sync.job"]._cron_deliver_jobs()
            status = 0
        finally:
            os._exit(status)


class BjOutboundCase(LocalServerMixin, BjApiSyncCase):
    """Out configurations aimed at a LocalHttpServer, and the delivery worker."""

    def setUp(self):
        super().setUp()
        # One request at a time: answers queued on the server go to jobs in order.
        self.startPatcher(patch.object(delivery_worker, "SEND_CONCURRENCY", 1))
        # A run stops when nothing is due now, instead of waiting for retries
        # (tests make them due with pass_time).
        self.startPatcher(patch.object(delivery_worker, "WAIT_FOR_RETRIES", False))

    @classmethod
    def make_out_config(cls, path="/contacts", **values):
        """An Out configuration on Contacts (res_id, name, email, phone) posting to the server."""
        values.setdefault("request_url", cls.server.url + path)
        values.setdefault("name", f"Out {path}")
        return cls.make_partner_config(request_type="out", **values)

    def deliver(self):
        """One run of the delivery worker, as its cron would do it."""
        return self.env["bj.api.sync.job"]._cron_deliver_jobs()

    @contextmanager
    def scheduled_action(self, before_commit=lambda: None):
        """Run the block as a scheduled action of a cron worker's go
        (``ir.cron._process_job``), then ``before_commit`` (Odoo's end of the
        action) and the commit of the go's cursor with its post-commit hooks."""
        cron_cr = SimpleNamespace(postcommit=Callbacks())
        cron_clock.job_starts(cron_cr)
        try:
            yield
        finally:
            cron_clock.job_ended()
        before_commit()
        cron_cr.postcommit.run()

    def get_jobs(self, config):
        return self.env["bj.api.sync.job"].search([("config_id", "=", config.id)], order="id")

    def pass_time(self, jobs):
        """Make waiting jobs due, as if their backoff delay had elapsed."""
        jobs.write({"next_attempt_at": fields.Datetime.now() - timedelta(seconds=1)})

    def bodies(self):
        return [request.json() for request in self.server.requests]



class RacingTransactionsMixin(CommittedDataMixin):
    """Two Odoo workers racing on the addon's rows: a committed inbound
    configuration (``self.config_id``), transactions of their own (:meth:`worker`)
    and a call left waiting in a thread (:meth:`in_thread`)."""

    def setUp(self):
        super().setUp()
        with self.committed_env() as env:
            config = env["bj.api.sync.config"].create({
                "name": "Race", "request_type": "in", "endpoint": f"race-{secrets.token_hex(4)}",
                "model_id": env["ir.model"]._get_id("res.partner"),
                "run_as_user_id": env.ref("base.user_admin").id,
            })
        self.config_id = config.id
        self.addCleanup(self._drop_config)

    def _drop_config(self):
        with self.committed_env() as env:
            env.cr.execute("DELETE FROM bj_api_sync_config WHERE id = %s", (self.config_id,))

    def worker(self, model):
        """``model`` on a transaction of its own, as in a request of another worker."""
        cr = self.registry.cursor()
        self.addCleanup(cr.close)
        return api.Environment(cr, SUPERUSER_ID, {})[model]

    def in_thread(self, model, call, outcome):
        """Start ``call(model)`` in a thread; its result, or the serialization
        failure Odoo would retry the request on, lands in ``outcome``."""

        @mute_logger("odoo.sql_db")  # the expected serialization failure
        def run():
            try:
                outcome["result"] = call(model)
            except errors.SerializationFailure as error:
                outcome["error"] = error
                model.env.cr.rollback()

        thread = threading.Thread(target=run)
        thread.start()
        return thread
