#!/usr/bin/env python3
"""Chaos run: the outbound queue, the direct call and inbound upserts under faults.

Run by ``make chaos`` (``scripts/harness.py chaos``) with Odoo's interpreter,
against a server in multi-process mode (4 HTTP workers, 2 cron workers under a
``limit_time_real_cron`` of BJET_CHAOS_CRON_LIMIT seconds) that the harness
started on a fresh database of its own PostgreSQL cluster; BJET_BENCH_URL,
BJET_BENCH_DB, the PG* variables, BJET_CHAOS_LOG (the server's log),
BJET_CHAOS_STARTED and BJET_CHAOS_REPORT_BY (epoch seconds) come from the
harness.  The harness owns the server and the cluster: this program asks it for
faults by printing ``@@harness <request>`` and reads the answer on its stdin.

1. Two ``Out`` configurations on Contacts send ``{"res_id", "name", "ref"}`` to
   a local sink, with an ``X-Api-Key`` header; ``ref`` is the record's version,
   bumped by every write.  *Queue* fires on create and update of the workload's
   records; *Direct* fires on create only, of the direct-call records: a server
   action writes a new version and calls ``_make_outbound_http_request`` while
   the record's create job is in the queue.  The delivery scheduled action gets
   one copy, so that both cron workers deliver.  An ``In`` configuration on
   Banks (identifier: the BIC) takes the upserts.
2. The sink misbehaves on a share of the requests (FATES) from the first request
   to the end of the run, drain included: connection resets, 503 and 429 with
   ``Retry-After``, 500, answers after the Read Timeout (applied on arrival) or
   slow within it, and redirects (307 to the same origin, 302 to the same
   origin, 307 to another origin); it is down for OUTAGE seconds.  It keeps
   every request in order of arrival; its state of a record is the body of the
   last request it accepted for it.
3. Concurrent JSON-RPC clients make CREATES creates and UPDATES updates; direct-
   call clients race the queue; bursts of concurrent POSTs of one BIC, new or
   existing, hit the inbound API.
4. Faults, at given shares of the workload: the sink's outage, the statements of
   a delivering cron worker cancelled, SIGKILL of a cron worker holding running
   jobs, a PostgreSQL restart, SIGKILL of the whole server (restarted on the same
   database), SIGKILL of a cron worker of the new server.
5. The run waits, the sink still faulty, until no job is pending or running; then
   the watchdog round (see QUIET); then it drains again, checks (see ``check``)
   and prints the figures.

Exit code 1 when a check fails (each says what it counts), a fault could not be
carried out, or the queue did not drain before the report time.
"""

import collections
import json
import os
import random
import re
import secrets
import signal
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2
import requests
from chaos_checks import (
    FAULT_GRACE,
    STALL_LIMIT,
    canonical,
    dead_jobs,
    early_retries,
    last_retry,
    log_errors,
    merged,
    outside_windows,
    refused_redirect,
    stalls,
    stream_state,
    version_of,
)

URL = os.environ.get("BJET_BENCH_URL", "http://127.0.0.1:8069").rstrip("/")
DB = os.environ.get("BJET_BENCH_DB", "")
LOG_PATH = os.environ.get("BJET_CHAOS_LOG", "")
STARTED = float(os.environ.get("BJET_CHAOS_STARTED") or time.time())
REPORT_BY = float(os.environ.get("BJET_CHAOS_REPORT_BY") or STARTED + 540)
BOUND = float(os.environ.get("BJET_CHAOS_BOUND") or 600)
CRON_LIMIT = int(os.environ.get("BJET_CHAOS_CRON_LIMIT") or 0)
SEED = int(os.environ.get("CHAOS_SEED") or secrets.randbelow(10**6))
LOGIN, PASSWORD = "admin", "admin"

# Workload
CLIENTS = 8
CREATES = 1200
UPDATES = 600
PAIRED_SHARE = 0.7  # of the updates: right after the create of their record
OP_GIVE_UP = 180  # seconds a client keeps retrying one write (server restarting...)
# The direct call: records created (their create job queued), then written and sent
# through a server action calling _make_outbound_http_request, DIRECT_ROUNDS times.
DIRECT_CLIENTS = 3
DIRECT_RECORDS = 36
DIRECT_ROUNDS = 2
# Inbound upserts: groups of concurrent POSTs of one BIC, new or already there.
UPSERT_GROUPS = 24
UPSERT_SIZES = (4, 8, 16)

SERIALIZATION = "could not serialize access"  # PostgreSQL's SerializationFailure message

# The sink: (fate, share of the requests).  Every fate but "ok" is a fault.
FATES = (
    ("drop", 0.10),  # connection reset without an answer
    ("busy", 0.06),  # 503 + Retry-After: BUSY_RETRY_AFTER
    ("throttled", 0.06),  # 429 + Retry-After: THROTTLE_RETRY_AFTER
    ("error", 0.04),  # 500, no Retry-After
    ("slow", 0.06),  # applied on arrival, answered after the Read Timeout
    ("lagging", 0.04),  # answered after LAG, within the Read Timeout
    ("r307", 0.04),  # 307 to the same origin: may be followed once, method and body kept
    ("r302", 0.03),  # 302 to the same origin: must not be followed
    ("r307x", 0.03),  # 307 to another origin: must not be followed
)
# The redirects the addon must refuse: a configuration problem (the URL moved) that
# the operator fixes, then retries the dead jobs; these fates end then.
NOT_FOLLOWED = ("r302", "r307x")
FAULTY = {fate for fate, _share in FATES} | {"outage", "held"}
MIN_FAULTY_SHARE = 0.20
# Fates of requests the sink applies (their body becomes the record's state).
ACCEPTED = ("ok", "slow", "lagging", "followed")
# Requests that must never arrive: a redirect followed although it changes the
# method or drops the body, a 302 followed, a redirect to another origin followed.
VIOLATIONS = ("method-changed", "followed-302", "cross-origin", "unexpected")
BUSY_RETRY_AFTER = 2
THROTTLE_RETRY_AFTER = 1
LAG = 1.2
# The watchdog round, once the queue is drained: QUIET seconds without work (the
# cron workers sleep, which Odoo's watchdog counts, but less than their 60 s),
# then WATCH_RECORDS creates whose first attempt gets a 503 with Retry-After HOLD,
# a retry that a run may wait for: a run that fits the watchdog as Odoo counts
# it survives, one that counts only its own work does not.
QUIET = 57
HOLD = 40
WATCH_RECORDS = 6
OUTAGE = 20  # seconds
STREAMS = ("queue", "direct")  # the sink's paths, one per Out configuration
API_KEY_HEADER = "X-Api-Key"

# The Out configurations: small delays and timeouts so that the run fits its bound;
# attempts enough that no job dies of bad luck (about half the attempts fail).
CONNECT_TIMEOUT = 2
READ_TIMEOUT = 2
SLOW_ANSWER = READ_TIMEOUT + 1.5
MAX_ATTEMPTS = 40
RETRY_BASE_DELAY = 1
RETRY_MAX_DELAY = 10

# Faults, at these shares of the workload done
OUTAGE_AT = 0.15
CANCEL_AT = (0.25, 0.75)
CRON_KILL_AT = 0.35
PG_RESTART_AT = 0.50
SERVER_KILL_AT = 0.62
SECOND_CRON_KILL_AT = 0.85
RUNNING_WAIT = 30  # seconds to wait for a victim holding running jobs
CANCEL_WAIT = 20  # seconds to wait for a delivering statement to cancel

DELIVERY_CRON = ("bjet_api_sync", "ir_cron_bj_api_sync_deliver")

_print_lock = threading.Lock()


def out(*lines):
    with _print_lock:
        for line in lines:
            print(line, flush=True)


def since_start():
    return time.time() - STARTED


class ChaosError(Exception):
    pass


# -- the harness: faults on the server and the cluster it runs -------------------------


class Harness:
    """Requests to the harness (``@@harness ...`` on stdout, the answer on stdin)."""

    def __init__(self):
        self.lock = threading.Lock()

    def ask(self, request):
        with self.lock:
            out(f"@@harness {request}")
            answer = sys.stdin.readline().strip()
        if not answer.startswith("ok"):
            raise ChaosError(f"the harness could not {request}: {answer or 'no answer'}")
        return answer[2:].strip()

    def cron_workers(self):
        return [int(pid) for pid in self.ask("cron-workers").split()]


# -- the sink -----------------------------------------------------------------------------


Delivery = collections.namedtuple(
    "Delivery", "seq at origin method stream key event res_id body fate api_key")


class Sink:
    """A local HTTP API that misbehaves, on two origins (ports): the configured one,
    and the other origin its cross-origin redirects point to.  Remembers every
    request in order of arrival."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.deliveries = []
        self.down = False
        self.hold = None  # seconds: a 503 with this Retry-After to each new key
        self.held = set()
        self.url_fixed = False  # NOT_FOLLOWED fates no longer drawn: they answer "ok"
        self.servers = {"home": None, "other": None}
        self.ports = {"home": 0, "other": 0}

    def start(self, origin="home"):
        server = SinkServer(("127.0.0.1", self.ports[origin]), SinkHandler)
        server.sink, server.origin = self, origin
        self.servers[origin], self.ports[origin] = server, server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True, name=f"sink-{origin}").start()

    def stop(self, origin="home"):
        server = self.servers[origin]
        if server:
            server.shutdown()
            server.server_close()
            self.servers[origin] = None

    def outage(self, seconds):
        """Down for ``seconds``: connections refused, requests on open ones dropped."""
        self.down = True
        self.stop()
        time.sleep(seconds)
        self.start()
        self.down = False

    def url(self, stream):
        return f"http://127.0.0.1:{self.ports['home']}/{stream}"

    def location(self, fate, stream):
        if fate == "r307x":
            return f"http://127.0.0.1:{self.ports['other']}/{stream}"
        return f"/moved/{fate[1:4]}/{stream}"

    def _draw(self):
        draw = self.rng.random()
        for fate, share in FATES:
            if draw < share:
                return "ok" if self.url_fixed and fate in NOT_FOLLOWED else fate
            draw -= share
        return "ok"

    def receive(self, origin, method, path, headers, body, complete):
        """Record one request and decide its fate (under the lock: arrival order).

        A request whose body stops short (its sender was killed mid-request) is
        never processed, as by any HTTP server; one that is not a JSON object
        is refused with 400.
        """
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        res_id = data.get("res_id") if isinstance(data, dict) else None
        parts = path.split("?")[0].strip("/").split("/")
        stream = parts[-1]
        with self.lock:
            if origin == "other":
                fate = "cross-origin"
            elif parts[:2] == ["moved", "307"]:
                fate = ("followed" if method == "POST" and complete and isinstance(data, dict)
                        else "method-changed")
            elif parts[:2] == ["moved", "302"]:
                fate = "followed-302"
            elif method != "POST" or len(parts) != 1 or stream not in STREAMS:
                fate = "unexpected"
            elif not complete:
                fate = "truncated"
            elif not isinstance(data, dict):
                fate = "invalid"
            elif self.down:
                fate = "outage"
            elif self.hold and headers.get("Idempotency-Key") not in self.held:
                self.held.add(headers.get("Idempotency-Key"))
                fate = "held"
            else:
                fate = self._draw()
            delivery = Delivery(len(self.deliveries), time.time(), origin, method, stream,
                                headers.get("Idempotency-Key"), headers.get("X-BJET-Event"),
                                res_id, data, fate, headers.get(API_KEY_HEADER))
            self.deliveries.append(delivery)
        return delivery

    def snapshot(self):
        with self.lock:
            return list(self.deliveries)


class SinkServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that gave up (read timeout) or a connection we reset: not news.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class SinkHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real APIs

    def log_message(self, *_args):
        pass

    def do_POST(self):
        self._serve()

    # A redirect followed as a GET (or anything else) must be seen, not refused.
    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_POST

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        sink = self.server.sink
        delivery = sink.receive(self.server.origin, self.command, self.path, self.headers, body,
                                len(body) == length)
        fate = delivery.fate
        try:
            if fate == "truncated":
                self.close_connection = True
            elif fate == "invalid":
                self._answer(400, b'{"error": "a JSON object is expected"}')
            elif fate in ("drop", "outage"):
                # Reset the connection without a word: the client cannot know
                # whether the change arrived (it did not).
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.close_connection = True
            elif fate == "busy":
                self._answer(503, b'{"error": "busy"}', {"Retry-After": str(BUSY_RETRY_AFTER)})
            elif fate == "held":
                self._answer(503, b'{"error": "busy"}', {"Retry-After": str(HOLD)})
            elif fate == "throttled":
                self._answer(429, b'{"error": "too many requests"}',
                             {"Retry-After": str(THROTTLE_RETRY_AFTER)})
            elif fate == "error":
                self._answer(500, b'{"error": "internal"}')
            elif fate in ("r307", "r302", "r307x"):
                self._answer(int(fate[1:4]), b"",
                             {"Location": sink.location(fate, delivery.stream)})
            else:
                # Applied on arrival (slow: the answer comes after the client gave up).
                # Violations get the 200 a permissive server gives to a stray GET.
                if fate in ("slow", "lagging"):
                    time.sleep(SLOW_ANSWER if fate == "slow" else LAG)
                self._answer(200, b'{"ok": true}')
        except OSError:
            self.close_connection = True

    def _answer(self, status, payload, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


# -- Odoo: JSON-RPC for the users' writes and the set-up, SQL for the figures ---------


class RpcError(Exception):
    pass


class Rpc:
    def __init__(self):
        self.session = requests.Session()
        self.uid = None

    def call(self, service, method, *args, timeout=60):
        response = self.session.post(f"{URL}/jsonrpc", json={
            "jsonrpc": "2.0", "method": "call", "id": 1,
            "params": {"service": service, "method": method, "args": list(args)},
        }, timeout=timeout)
        response.raise_for_status()
        body = response.json()
        if "error" in body:
            error = body["error"]
            raise RpcError((error.get("data") or {}).get("message") or error.get("message"))
        return body["result"]

    def execute(self, model, method, *args, **kwargs):
        if self.uid is None:
            self.uid = self.call("common", "login", DB, LOGIN, PASSWORD)
            if not self.uid:
                raise ChaosError(f"cannot log in to {DB} as {LOGIN}")
        return self.call("object", "execute_kw", DB, self.uid, PASSWORD, model, method,
                         list(args), kwargs)


SQL_RETRY = 60  # seconds: PostgreSQL restarts meanwhile


def sql(query, params=(), dbname=DB):
    """One statement on its own connection, retried while PostgreSQL restarts."""
    give_up = time.time() + SQL_RETRY
    while True:
        try:
            connection = psycopg2.connect(dbname=dbname)
        except psycopg2.OperationalError:
            if time.time() > give_up:
                raise
            time.sleep(0.5)
            continue
        try:
            connection.autocommit = True
            with connection.cursor() as cr:
                cr.execute(query, params)
                return cr.fetchall() if cr.description else []
        except psycopg2.OperationalError:
            if time.time() > give_up:
                raise
            time.sleep(0.5)
        finally:
            connection.close()


def xmlid(rpc, module, name):
    rows = rpc.execute("ir.model.data", "search_read",
                       [("module", "=", module), ("name", "=", name)], fields=["res_id"])
    if not rows:
        raise ChaosError(f"{module}.{name} not found")
    return rows[0]["res_id"]


def field_ids(rpc, model, names):
    return {name: rpc.execute("ir.model.fields", "search",
                              [("model", "=", model), ("name", "=", name)])[0]
            for name in names}


def model_id(rpc, model):
    return rpc.execute("ir.model", "search", [("model", "=", model)])[0]


# What the audit did: write a new version, then send it now.
DIRECT_ACTION = """
for record in records:
    version = int(record.ref or 0) + 1
    record.write({"name": "%s v%d" % (record.name.rsplit(" v", 1)[0], version),
                  "ref": str(version)})
result = env["bj.api.sync.config"]._make_outbound_http_request(records, CONFIG_ID)
action = {"success": result["success"], "status_code": result["status_code"],
          "queued": len(result["queued_job_ids"]), "version": int(records[:1].ref or 0)}
"""


class Setup:
    """The configurations, the direct call's server action and the second delivery cron."""

    def __init__(self, rpc, sink, run):
        self.run = run
        self.api_key = secrets.token_hex(16)
        fields = field_ids(rpc, "res.partner", ("id", "name", "ref"))
        post = xmlid(rpc, "bjet_api_sync", "bj_http_method_post")
        self.config_ids = {}
        for stream, on_write in (("queue", True), ("direct", False)):
            lines = [("id", "res_id", True), ("name", "name", False), ("ref", "ref", False)]
            self.config_ids[stream] = rpc.execute("bj.api.sync.config", "create", [{
                "name": f"Chaos {run} {stream}",
                "request_type": "out",
                "model_id": model_id(rpc, "res.partner"),
                "request_url": sink.url(stream),
                "filter_domain": repr([("name", "=like", self.prefix(stream) + "%")]),
                "http_method_ids": [(6, 0, [post])],
                "header_ids": [(0, 0, {"key": API_KEY_HEADER, "value": self.api_key})],
                "line_ids": [(0, 0, {"field_id": fields[name], "external_key": key,
                                     "value_type": "plain", "is_identifier": ident,
                                     "sequence": index})
                             for index, (name, key, ident) in enumerate(lines)],
                "trigger_on_create": True,
                "trigger_on_write": on_write,
                "connection_timeout": CONNECT_TIMEOUT,
                "read_timeout": READ_TIMEOUT,
                "max_attempts": MAX_ATTEMPTS,
                "retry_base_delay": RETRY_BASE_DELAY,
                "retry_max_delay": RETRY_MAX_DELAY,
            }])[0]
        self.action_id = rpc.execute("ir.actions.server", "create", [{
            "name": f"Chaos {run}: write and send now",
            "model_id": model_id(rpc, "res.partner"),
            "state": "code",
            "code": DIRECT_ACTION.replace("CONFIG_ID", str(self.config_ids["direct"])),
        }])[0]
        self.inbound_token = secrets.token_urlsafe(24)
        endpoint = f"chaos-{run}"
        bank_fields = field_ids(rpc, "res.bank", ("bic", "name"))
        rpc.execute("bj.api.sync.config", "create", [{
            "name": f"Chaos {run} upserts",
            "request_type": "in",
            "endpoint": endpoint,
            "model_id": model_id(rpc, "res.bank"),
            "http_method_ids": [(6, 0, rpc.execute("bj.http.method", "search", []))],
            "authorization_type": "bearer_token",
            "bearer_token": self.inbound_token,
            "run_as_user_id": rpc.uid,
            "line_ids": [
                (0, 0, {"sequence": 1, "field_id": bank_fields["bic"], "external_key": "bic",
                        "value_type": "plain", "is_identifier": True}),
                (0, 0, {"sequence": 2, "field_id": bank_fields["name"], "external_key": "name",
                        "value_type": "plain"}),
            ],
        }])
        self.inbound_url = f"{URL}/bj_api_sync/v1/{endpoint}"
        cron_id = xmlid(rpc, *DELIVERY_CRON)
        copy = rpc.execute("ir.cron", "copy", [cron_id])
        copy_id = copy[0] if isinstance(copy, list) else copy
        rpc.execute("ir.cron", "write", [copy_id], {"active": True})
        self.cron_ids = [cron_id, copy_id]

    def prefix(self, stream):
        return f"Chaos {self.run} {stream[0]}"


def wake_delivery_crons(cron_ids):
    """What ir.cron._trigger does: a trigger row each, then NOTIFY the cron workers."""
    for cron_id in cron_ids:
        sql("INSERT INTO ir_cron_trigger (cron_id, call_at, create_uid, write_uid, "
            "create_date, write_date) VALUES (%s, now() at time zone 'UTC', 1, 1, "
            "now() at time zone 'UTC', now() at time zone 'UTC')", [cron_id])
    sql("SELECT pg_notify('cron_trigger', %s)", [DB], dbname="postgres")


def job_states(config_ids):
    return dict(sql("SELECT state, count(*) FROM bj_api_sync_job WHERE config_id = ANY(%s) "
                    "GROUP BY state", [config_ids]))


def running_by_worker_pid(config_ids):
    """{pid: running jobs} from the worker names (host:pid:thread) of running jobs."""
    counts = collections.Counter()
    for (worker,) in sql("SELECT worker FROM bj_api_sync_job WHERE config_id = ANY(%s) "
                         "AND state = 'running'", [config_ids]):
        parts = (worker or "").split(":")
        if len(parts) >= 2 and parts[1].isdigit():
            counts[int(parts[1])] += 1
    return counts


# -- the workload ---------------------------------------------------------------------


class Workload:
    """CLIENTS threads of JSON-RPC writes; every record belongs to one thread."""

    def __init__(self, setup, seed, stop_at):
        self.prefix, self.stop_at = setup.prefix("queue"), stop_at
        self.lock = threading.Lock()
        self.done_ops = 0
        self.total_ops = CREATES + UPDATES
        self.created = 0
        self.updated = 0
        self.retried = 0
        self.failed = 0
        self.errors = collections.Counter()
        # res_id -> versions acknowledged by Odoo (the call returned)
        self.acknowledged = collections.defaultdict(list)
        self.plans = [self._plan(random.Random(seed * 1000 + client), client)
                      for client in range(CLIENTS)]
        self.paired = sum(1 for plan in self.plans for step in plan if step[1] == "pair")
        self.threads = []

    @staticmethod
    def _share(total, client):
        return total // CLIENTS + (1 if client < total % CLIENTS else 0)

    def _plan(self, rng, client):
        """Ordered steps (position, kind, slot): creates, paired updates right
        after their create, later updates of an earlier record of this client."""
        creates, updates = self._share(CREATES, client), self._share(UPDATES, client)
        paired = round(updates * PAIRED_SHARE)
        steps = []
        for slot in range(creates):
            steps.append((2 * slot, "create", slot))
        for slot in rng.sample(range(creates), paired):
            steps.append((2 * slot + 1, "pair", slot))
        for _index in range(updates - paired):
            slot = rng.randrange(creates - 1)
            steps.append((rng.uniform(2 * slot + 1.5, 2 * creates), "later", slot))
        return sorted(steps)

    def start(self):
        for client, plan in enumerate(self.plans):
            thread = threading.Thread(target=self._client, args=(client, plan), daemon=True,
                                      name=f"client-{client}")
            thread.start()
            self.threads.append(thread)

    def progress(self):
        with self.lock:
            return self.done_ops / self.total_ops

    def finished(self):
        return not any(thread.is_alive() for thread in self.threads)

    def join(self, until):
        for thread in self.threads:
            thread.join(max(until - time.time(), 0))

    def _client(self, client, plan):
        rpc = Rpc()
        ids, versions = {}, {}
        for _position, kind, slot in plan:
            if time.time() > self.stop_at:
                return
            if kind == "create":
                record_id = self._write(rpc, f"{client}-{slot}", None, 0)
                if record_id:
                    ids[slot], versions[slot] = record_id, 0
            elif slot in ids:
                version = self._write(rpc, f"{client}-{slot}", ids[slot], versions[slot] + 1)
                versions[slot] = version if version is not None else versions[slot] + 1
            with self.lock:
                self.done_ops += 1

    def _write(self, rpc, label, record_id, version):
        """Create (``record_id`` None) or update one record, retrying until Odoo
        answers; the new record's id, or the version written; None on giving up.

        A retried update writes the next version: the first try may have committed
        before its answer was lost, and every write must change the record.  A
        retried create may likewise leave a record behind: it is checked too
        (every record named with the stream's prefix is).
        """
        give_up = min(time.time() + OP_GIVE_UP, self.stop_at)
        tries = 0
        while time.time() < give_up:
            suffix = f" r{tries}" if tries and record_id is None else ""
            values = {"name": f"{self.prefix}{label}{suffix} v{version}", "ref": str(version)}
            try:
                if record_id is None:
                    new_id = rpc.execute("res.partner", "create", [values])[0]
                else:
                    rpc.execute("res.partner", "write", [record_id], values)
            except (requests.RequestException, RpcError, ValueError) as error:
                tries += 1
                with self.lock:
                    self.retried += 1
                    self.errors[f"{type(error).__name__}: {str(error)[:90]}"] += 1
                time.sleep(min(0.25 * 2 ** tries, 3))
                if record_id is not None:
                    version += 1
                continue
            with self.lock:
                if record_id is None:
                    self.created += 1
                    self.acknowledged[new_id].append(version)
                    return new_id
                self.updated += 1
                self.acknowledged[record_id].append(version)
                return version
        with self.lock:
            self.failed += 1
        return None


class DirectCalls:
    """DIRECT_CLIENTS threads: each creates its records (a create job queued for
    each, behind the workload's backlog), then, DIRECT_ROUNDS times per record,
    runs the server action that writes the next version and calls
    ``_make_outbound_http_request`` on it, racing the queued jobs."""

    def __init__(self, setup, seed, stop_at):
        self.setup, self.stop_at = setup, stop_at
        self.rng = random.Random(seed + 7)
        self.lock = threading.Lock()
        self.acknowledged = collections.defaultdict(list)
        self.calls = collections.Counter()  # outcome of the direct calls
        self.errors = collections.Counter()
        self.threads = []

    def start(self):
        for client in range(DIRECT_CLIENTS):
            slots = range(client, DIRECT_RECORDS, DIRECT_CLIENTS)
            thread = threading.Thread(target=self._client, args=(client, slots), daemon=True,
                                      name=f"direct-{client}")
            thread.start()
            self.threads.append(thread)

    def join(self, until):
        for thread in self.threads:
            thread.join(max(until - time.time(), 0))

    def _try(self, function, tries=5):
        for _try in range(tries):
            if time.time() > self.stop_at:
                return None
            try:
                return function()
            except (requests.RequestException, RpcError, ValueError) as error:
                with self.lock:
                    self.errors[f"{type(error).__name__}: {str(error)[:90]}"] += 1
                time.sleep(2)
        return None

    def _client(self, client, slots):
        rpc = Rpc()
        rng = random.Random(self.rng.random() + client)
        records = []
        for slot in slots:
            values = {"name": f"{self.setup.prefix('direct')}{slot} v0", "ref": "0"}
            record_id = self._try(lambda values=values: rpc.execute("res.partner", "create",
                                                                     [values])[0])
            if record_id:
                records.append(record_id)
                with self.lock:
                    self.acknowledged[record_id].append(0)
        for _round in range(DIRECT_ROUNDS):
            for record_id in records:
                time.sleep(rng.uniform(0, 0.5))
                context = {"active_model": "res.partner", "active_ids": [record_id],
                           "active_id": record_id}
                answer = self._try(lambda context=context: rpc.execute(
                    "ir.actions.server", "run", [self.setup.action_id], context=context), 1)
                if answer is None:
                    continue
                with self.lock:
                    self.acknowledged[record_id].append(answer["version"])
                    self.calls["sent now" if answer.get("success") else
                               f"not sent now, {answer.get('queued', 0)} job(s) queued"] += 1


class Upserts:
    """UPSERT_GROUPS groups of concurrent POSTs of one BIC to the inbound API, each
    from its own connection, released at once; every other group's BIC exists
    before (created by one POST), the others are new."""

    def __init__(self, setup, stop_at):
        self.setup, self.stop_at = setup, stop_at
        self.answers = collections.Counter()
        self.succeeded = set()  # BICs with at least one 2xx answer
        self.bics = []
        self.concurrent = 0
        self.lock = threading.Lock()
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self._run, daemon=True, name="upserts")
        self.thread.start()

    def join(self, until):
        if self.thread:
            self.thread.join(max(until - time.time(), 0))

    def _post(self, bic, name, barrier=None):
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.setup.inbound_token}"
        if barrier:
            barrier.wait()
        try:
            status = session.post(self.setup.inbound_url, json={"bic": bic, "name": name},
                                  timeout=60).status_code
        except requests.RequestException as error:
            status = type(error).__name__
        finally:
            session.close()
        with self.lock:
            self.answers[status] += 1
            if isinstance(status, int) and 200 <= status < 300:
                self.succeeded.add(bic)
        return status

    def _run(self):
        for group in range(UPSERT_GROUPS):
            if time.time() > self.stop_at:
                return
            size = UPSERT_SIZES[group % len(UPSERT_SIZES)]
            bic = f"CH{self.setup.run}{group:03d}".upper()
            self.bics.append(bic)
            if group % 2:
                self._post(bic, f"Chaos {self.setup.run} bank {group}")
            barrier = threading.Barrier(size)
            threads = [threading.Thread(target=self._post, daemon=True,
                                        args=(bic, f"Chaos {self.setup.run} bank {group} "
                                              f"t{index}", barrier))
                       for index in range(size)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(90)
            self.concurrent += size
            time.sleep(1)


# -- faults and draining --------------------------------------------------------------


class Faults:
    """The outage, the cancelled statements, the SIGKILLs and the PostgreSQL
    restart, each when a share of the workload is done."""

    def __init__(self, harness, sink, workload, config_ids):
        self.harness, self.sink, self.workload = harness, sink, workload
        self.config_ids = config_ids
        self.done = []  # lines for the report
        self.errors = []
        self.windows = []  # (start, end) of each fault, epoch seconds
        self.killed = {}  # pid -> how
        self.outage_thread = None

    def note(self, text, started=None):
        if started is not None:
            self.windows.append((started, time.time()))
        self.done.append(f"{since_start():5.0f}s  {text}")
        out(f"[chaos {since_start():5.0f}s] {text}")

    def _wait_progress(self, share):
        while self.workload.progress() < share and not self.workload.finished():
            time.sleep(0.2)

    def run(self):
        steps = sorted([
            (OUTAGE_AT, self._outage),
            (CRON_KILL_AT, self._kill_cron_worker),
            (PG_RESTART_AT, self._restart_postgres),
            (SERVER_KILL_AT, self._kill_server),
            (SECOND_CRON_KILL_AT, self._kill_cron_worker),
            *((share, self._cancel_statements) for share in CANCEL_AT),
        ], key=lambda step: step[0])
        for share, step in steps:
            self._wait_progress(share)
            try:
                step()
            except (ChaosError, psycopg2.Error) as error:
                self.errors.append(f"{step.__name__}: {error}")
                out(f"[chaos] fault failed: {error}")

    def join(self):
        if self.outage_thread:
            self.outage_thread.join(OUTAGE + 10)

    def _outage(self):
        def down():
            started = time.time()
            self.note(f"sink down for {OUTAGE} s")
            self.sink.outage(OUTAGE)
            self.note("sink up again", started)

        self.outage_thread = threading.Thread(target=down, daemon=True, name="outage")
        self.outage_thread.start()

    def _victim(self):
        """A cron worker holding running jobs (waiting a little for one), and how many."""
        deadline = time.time() + RUNNING_WAIT
        while True:
            workers = self.harness.cron_workers()
            running = running_by_worker_pid(self.config_ids)
            holding = sorted((pid for pid in workers if running[pid]), key=running.get)
            if holding:
                return holding[-1], running[holding[-1]]
            if time.time() > deadline:
                if not workers:
                    raise ChaosError("no live cron worker")
                return workers[0], 0
            time.sleep(0.05)

    def _kill_cron_worker(self):
        for tries_left in (2, 1, 0):
            pid, held = self._victim()
            started = time.time()
            try:
                answer = self.harness.ask(f"kill-cron {pid}")
                break
            except ChaosError:
                # It may have died meanwhile (Odoo's watchdog): pick another one.
                if not tries_left:
                    raise
        self.killed[pid] = "SIGKILLed cron worker"
        self.note(f"SIGKILL cron worker {pid} while it held {held} running jobs ({answer})",
                  started)

    def _kill_server(self):
        deadline = time.time() + RUNNING_WAIT
        while not sum(running_by_worker_pid(self.config_ids).values()) and time.time() < deadline:
            time.sleep(0.05)
        started = time.time()
        held = sum(running_by_worker_pid(self.config_ids).values())
        for pid in self.harness.cron_workers():
            self.killed[pid] = "cron worker of the SIGKILLed server"
        answer = self.harness.ask("kill-server")
        self.note(f"SIGKILL the whole server while its workers held {held} running jobs "
                  f"({answer})", started)

    def _restart_postgres(self):
        started = time.time()
        held = sum(running_by_worker_pid(self.config_ids).values())
        answer = self.harness.ask("restart-postgres")
        self.note(f"PostgreSQL restarted (fast shutdown: every session terminated) while "
                  f"{held} jobs were running ({answer})", started)

    def _cancel_statements(self):
        """Cancel a statement of a delivering cron worker: its transaction fails and
        its connection goes back to Odoo's pool, alive.  The statement is caught
        waiting: a transaction of ours locks the rows of the worker's running jobs
        until the worker writes one of their outcomes."""
        pid, held = self._victim()
        if not held:
            raise ChaosError(f"no cron worker held a running job for {RUNNING_WAIT} s while "
                             "the workload went on: nothing to cancel")
        started = time.time()
        cancelled = []
        locker, watcher = psycopg2.connect(dbname=DB), psycopg2.connect(dbname=DB)
        try:
            watcher.autocommit = True
            with locker.cursor() as lock_cr, watcher.cursor() as cr:
                lock_cr.execute("SELECT id FROM bj_api_sync_job WHERE state = 'running' "
                                "AND split_part(worker, ':', 2) = %s FOR UPDATE", [str(pid)])
                while not cancelled and time.time() < started + CANCEL_WAIT:
                    # Materialized: pg_cancel_backend only on the statements waiting for us.
                    cr.execute(
                        "WITH waiting AS MATERIALIZED (SELECT pid FROM pg_stat_activity "
                        "WHERE %s = ANY(pg_blocking_pids(pid))) "
                        "SELECT pid FROM waiting WHERE pg_cancel_backend(pid)",
                        [locker.info.backend_pid])
                    cancelled = cr.fetchall()
                    time.sleep(0.05)
        finally:
            locker.close()
            watcher.close()
        if not cancelled:
            raise ChaosError(f"no statement waited for the rows of the {held} jobs cron "
                             f"worker {pid} was running within {CANCEL_WAIT} s")
        self.note(f"cancelled {len(cancelled)} statement(s) waiting for the rows of the "
                  f"{held} jobs cron worker {pid} was running", started)


def watchdog_round(setup, sink, workload, faults):
    """QUIET seconds without work, then WATCH_RECORDS creates held by the sink."""
    started = time.time()
    time.sleep(QUIET)
    sink.hold = HOLD
    # One transaction, so one wake-up: the first one after the quiet starts the run.
    values = [{"name": f"{setup.prefix('queue')}w{index} v0", "ref": "0"}
              for index in range(WATCH_RECORDS)]
    for record_id in Rpc().execute("res.partner", "create", values):
        workload.acknowledged[record_id].append(0)
    faults.note(f"watchdog round: after {time.time() - started:.0f} s without work, "
                f"{WATCH_RECORDS} creates whose first attempt gets a 503 with Retry-After {HOLD}")
    return started


def fix_url_and_retry(sink, config_ids, faults):
    """What an operator does about a refused redirect: fix the URL (the sink no
    longer draws NOT_FOLLOWED fates; every other fault stays on at its rate), then
    Retry the jobs dead from it, through JSON-RPC.  Returns {job id: its key before}."""
    sink.url_fixed = True
    dead = {job.id: job.key for job in load_jobs(config_ids)
            if job.state == "dead" and refused_redirect(job.last_error)}
    if dead:
        Rpc().execute("bj.api.sync.job", "action_retry", sorted(dead))
    faults.note(f"the URL fixed (no more {'/'.join(NOT_FOLLOWED)}), Retry on the {len(dead)} "
                "jobs dead from a refused redirect")
    return dead


def drain(config_ids, cron_ids, until):
    """Wait until no job is pending or running, waking the delivery crons every 30 s.
    Returns (drained, wake-ups, seconds since the last job changed state)."""
    wakes, last_wake, last_print = 1, time.time(), 0
    wake_delivery_crons(cron_ids)
    previous, changed = None, time.time()
    while True:
        states = job_states(config_ids)
        unfinished = states.get("pending", 0) + states.get("running", 0)
        now = time.time()
        if states != previous:
            previous, changed = states, now
        if not unfinished:
            return True, wakes, 0
        if now > until:
            return False, wakes, now - changed
        if now - last_print > 20:
            out(f"[chaos {since_start():5.0f}s] draining (sink still faulty): "
                + ", ".join(f"{state} {count}" for state, count in sorted(states.items())))
            last_print = now
        if now - last_wake > 30:
            wake_delivery_crons(cron_ids)
            wakes, last_wake = wakes + 1, now
        time.sleep(1)


# -- the checks -------------------------------------------------------------------------


def payload_ref(job):
    return version_of(json.loads(job.payload)) if job.payload else None


Job = collections.namedtuple(
    "Job", "id config_id state event attempt key res_id payload last_error worker locked_at "
           "next_due retried_as")


def load_jobs(config_ids):
    rows = sql(
        "SELECT id, config_id, state, event, attempt, idempotency_key, res_ids, payload, "
        "last_error, worker, extract(epoch FROM (now() at time zone 'UTC') - locked_at), "
        "next_attempt_at <= (now() at time zone 'UTC'), retried_job_id "
        "FROM bj_api_sync_job WHERE config_id = ANY(%s) ORDER BY id", [config_ids])
    return [Job(*row[:6], int(row[6]) if (row[6] or "").isdigit() else None, *row[7:])
            for row in rows]


def log_figures(cron_ids):
    """From the server log: delivery cron runs started / finished / raised, restarts
    of cron workers, reclaims, the watchdog's kills of cron workers, and the most
    frequent ERROR and WARNING lines, and the ERROR records (log_errors)."""
    figures = collections.Counter()
    problems = collections.Counter()
    watchdog_kills = {}
    try:
        lines = open(LOG_PATH, encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        return figures, problems, watchdog_kills, []
    ids = "|".join(str(cron_id) for cron_id in cron_ids)
    job = re.compile(rf"Job .* \((?:{ids})\) (starting|done in|server action #\d+ failed)")
    level = re.compile(r"^\S+ \S+ \d+ (ERROR|WARNING|CRITICAL) \S+ (\S+): (.*)")
    # prefork's process_timeout (odoo/service/server.py)
    watchdog = re.compile(r"WorkerCron \((\d+)\) timeout after (\d+)s")
    for line in lines:
        line = line.rstrip()
        match = watchdog.search(line)
        if match:
            watchdog_kills[int(match.group(1))] = match.group(2)
        match = job.search(line)
        if match:
            figures[match.group(1).split()[0]] += 1
        if "Worker WorkerCron (" in line and line.endswith("alive"):
            figures["cron worker started"] += 1
        if "Reclaiming" in line and "outbound jobs" in line:
            figures["reclaims"] += 1
        match = level.match(line)
        if match:
            text = re.sub(r"\d+", "N", match.group(3))[:110]
            problems[f"{match.group(1)} {match.group(2)}: {text}"] += 1
    return figures, problems, watchdog_kills, log_errors(lines)


class Run:
    """What main() gathered, for check()."""

    def __init__(self, **values):
        self.__dict__.update(values)


def check(run):
    """The figures and the verdicts: (lines, failures, diagnosis lines)."""
    setup, sink, workload, direct, upserts = (run.setup, run.sink, run.workload, run.direct,
                                              run.upserts)
    config_ids = list(setup.config_ids.values())
    stream_of = {config_id: stream for stream, config_id in setup.config_ids.items()}
    jobs = load_jobs(config_ids)
    deliveries = sink.snapshot()
    primary = [d for d in deliveries if d.origin == "home"
               and d.fate not in ("followed", "method-changed", "followed-302")]
    accepted = [d for d in deliveries if d.fate in ACCEPTED]
    failures, diagnosis, lines = [], [], []

    def verdict(ok, text):
        if not ok:
            failures.append(text)
        lines.append(f"  {'ok  ' if ok else 'FAIL'} {text}")

    # The sink's faults
    fates = collections.Counter(d.fate for d in deliveries)
    drawn = [d for d in primary if d.fate in FAULTY or d.fate == "ok"]
    faulty = sum(1 for d in drawn if d.fate in FAULTY)
    share = faulty / len(drawn) if drawn else 0
    after_workload = [d for d in drawn if d.at > run.workload_done]
    faulty_after = sum(1 for d in after_workload if d.fate in FAULTY)
    lines.append(
        f"sink               {len(deliveries)} requests: {len(drawn)} drew a fate, {faulty} of "
        f"them met a fault ({share:.1%}; {faulty_after} of the {len(after_workload)} after "
        f"the workload); {len(accepted)} accepted")
    lines.append("faults met         " + ", ".join(
        f"{fate} {fates[fate]}" for fate in [name for name, _share in FATES]
        + ["outage", "held"]))
    lines.append("other requests     " + ", ".join(
        f"{fate} {fates[fate]}" for fate in
        ("ok", "followed", "truncated", "invalid", *VIOLATIONS)))

    # Every record: its final remote state against Odoo's, per Out configuration.
    states = {}
    for stream, acknowledged in (("queue", workload.acknowledged),
                                 ("direct", direct.acknowledged)):
        records = {row[0]: {"res_id": row[0], "name": row[1], "ref": row[2]} for row in sql(
            "SELECT id, name, ref FROM res_partner WHERE name LIKE %s",
            [setup.prefix(stream) + "%"])}
        states[stream] = (records, *stream_state(stream, records, accepted, acknowledged))

    # Keys: one per job, the same on every attempt, with the job's payload and event.
    by_key = {job.key: job for job in jobs}
    sent = collections.defaultdict(set)
    for job in jobs:
        if job.attempt > 0:
            sent[stream_of[job.config_id]].add(job.key)
    # A retried job was sent under its key before the Retry queued a new job, with a
    # key of its own, in its place.
    by_id = {job.id: job for job in jobs}
    retried_keys = {*run.retried.values(), *(by_id[job_id].key for job_id in run.retried),
                    *(by_id[job.retried_as].key for job in jobs if job.retried_as in by_id)}
    for job_id, key in run.retried.items():
        sent[stream_of[by_id[job_id].config_id]].add(key)
    other_dead, undelivered = dead_jobs(jobs, set(run.retried))
    received = collections.defaultdict(set)
    for d in primary:
        if d.key:
            received[d.stream].add(d.key)
    accepted_keys = collections.Counter(d.key for d in accepted)
    done_unaccepted = [job for job in jobs if job.state == "done"
                       and job.key not in accepted_keys]
    unmarked = collections.Counter(d.stream for d in primary
                                   if d.stream in STREAMS and not (d.key and d.event))
    foreign = [d for d in deliveries if d.key in by_key and d.fate in ACCEPTED and (
        d.body != json.loads(by_key[d.key].payload or "null") or d.event != by_key[d.key].event)]
    repeats = sum(count - 1 for count in accepted_keys.values() if count > 1)
    keys_per_state = collections.defaultdict(set)
    for delivery in accepted:
        keys_per_state[delivery.stream, delivery.res_id, canonical(delivery.body)].add(
            delivery.key)
    # A Retry rebuilds the payload from the record as it is now: a state a later job
    # may have delivered already, under that job's key.
    after_retry = sum(1 for keys in keys_per_state.values()
                      if len(keys) > 1 and keys & retried_keys)
    for keys in keys_per_state.values():
        keys -= retried_keys
    new_key_repeats = sum(1 for keys in keys_per_state.values() if len(keys) > 1)
    job_states_count = collections.Counter(job.state for job in jobs)
    merged_count = sum(1 for job in jobs if merged(job))

    figures, problems, watchdog_kills, logged_errors = log_figures(setup.cron_ids)
    errors_outside = outside_windows(logged_errors, run.windows)
    # A race between two transactions, which no fault causes, even inside a window.
    races = [(at, record) for at, record in logged_errors
             if any(SERIALIZATION in line for line in record)]
    # One ir_cron_progress row per call of a cron, killed ones included.
    runs_started = sql("SELECT count(*) FROM ir_cron_progress WHERE cron_id = ANY(%s)",
                       [setup.cron_ids])[0][0]
    attempts = dict(sql(
        "SELECT CASE WHEN status_code BETWEEN 200 AND 299 THEN '2xx' "
        "WHEN coalesce(status_code, 0) = 0 THEN 'no answer' ELSE status_code::text END, "
        "count(*) FROM bj_api_log WHERE config_id = ANY(%s) GROUP BY 1", [config_ids]))
    early, paired = early_retries(primary, run.windows, {
        "busy": BUSY_RETRY_AFTER, "throttled": THROTTLE_RETRY_AFTER, "held": HOLD})
    stalled, longest = stalls(primary, run.windows, run.workload_started, run.drain_done,
                              run.drained)
    leaked = sum(1 for d in deliveries if d.origin == "other" and d.api_key)

    # Upserts: exactly one record per BIC.
    counts = dict(sql("SELECT bic, count(*) FROM res_bank WHERE bic = ANY(%s) GROUP BY bic",
                      [upserts.bics]))
    duplicated = {bic: count for bic, count in counts.items() if count > 1}
    missing = sorted(upserts.succeeded - set(counts))

    lines += [
        f"jobs               {len(jobs)}: " + ", ".join(
            f"{state} {job_states_count[state]}" for state in
            ("done", "cancelled", "dead", "pending", "running"))
        + f" ({merged_count} cancelled as merged); {sum(map(len, sent.values()))} keys sent; "
        f"{len(run.retried)} dead from a refused redirect retried once the URL was fixed: "
        + ", ".join(f"{state} {count}" for state, count in sorted(collections.Counter(
            last_retry(by_id, by_id[job_id]).state for job_id in run.retried).items())),
        f"log errors         {len(logged_errors)} ERROR records in the server log, "
        f"{len(logged_errors) - len(errors_outside)} within a fault's window (its time plus "
        f"{FAULT_GRACE} s), {len(errors_outside)} outside; {len(races)} of them serialization "
        "failures (a race between transactions, not a fault's doing)",
        "records            " + "; ".join(
            f"{stream}: {len(states[stream][0])} in Odoo, {len(states[stream][2])} "
            f"mismatched, {states[stream][4]} changes lost, {len(states[stream][5])} older "
            "states accepted after newer ones" for stream in STREAMS),
        "direct calls       " + ", ".join(
            f"{outcome} {count}" for outcome, count in sorted(direct.calls.items()))
        + f"; {sum(direct.errors.values())} failed calls",
        f"idempotency keys   queue: {len(received['queue'])} distinct received, "
        f"{len(sent['queue'])} sent; direct: {len(received['direct'])} received, "
        f"{len(sent['direct'])} sent; requests without a key or an event: "
        + ", ".join(f"{stream} {unmarked[stream]}" for stream in STREAMS)
        + f"; {repeats} accepted repeats of a key; {after_retry} states accepted under a "
        "retried job's key and another",
        f"retry-after        {paired} retries after a 503 or 429: {len(early)} sooner than "
        "asked" + (f" (shortest {min(gap for gap, _ in early):.2f} s)" if early else ""),
        f"redirects          {fates['followed']} 307s followed with method and body; "
        f"{fates['method-changed']} followed as another method or without the body, "
        f"{fates['followed-302']} 302s followed, {fates['cross-origin']} followed to another "
        f"origin ({leaked} carried {API_KEY_HEADER})",
        f"upserts            {len(upserts.bics)} groups of {'/'.join(map(str, UPSERT_SIZES))} "
        f"concurrent POSTs ({upserts.concurrent} requests): answers " + ", ".join(
            f"{status} {count}" for status, count in sorted(upserts.answers.items(), key=str))
        + f"; {len(duplicated)} BICs duplicated"
        + (f" (up to {max(duplicated.values())} records)" if duplicated else ""),
        f"attempts logged    {sum(attempts.values())} by Odoo (bj.api.log): "
        + ", ".join(f"{kind} {count}" for kind, count in sorted(attempts.items())),
        f"cron runs          {runs_started} runs of the {len(setup.cron_ids)} delivery crons "
        f"started; server log: {figures['starting']} started, "
        f"{figures['done']} finished, {figures['server']} raised; "
        f"{figures['cron worker started']} cron worker processes started, "
        f"{figures['reclaims']} reclaims; longest time without a request reaching the sink, "
        f"outside the faults' windows, {longest[0]:.1f} s (from {longest[1] - STARTED:.0f}s)",
        f"watchdog           limit_time_real_cron {CRON_LIMIT} s: {len(watchdog_kills)} cron "
        "workers killed (" + (", ".join(f"{pid} after {sec} s" for pid, sec in
                                        watchdog_kills.items()) or "none") + ")",
    ]

    lines.append("checks:")
    verdict(workload.created == CREATES and workload.updated == UPDATES
            and not workload.failed,
            f"workload done: {workload.created}/{CREATES} creates, "
            f"{workload.updated}/{UPDATES} updates acknowledged, {workload.failed} given up")
    verdict(share >= MIN_FAULTY_SHARE and faulty_after,
            f"faults all along: {share:.1%} of the requests met one (at least "
            f"{MIN_FAULTY_SHARE:.0%}), {faulty_after} after the workload")
    for stream in STREAMS:
        records, _last, mismatched, strays, lost, regressions = states[stream]
        verdict(not mismatched and not strays and not lost,
                f"{stream}: every record's final remote state equals Odoo's "
                f"({len(mismatched)} differ, {len(strays)} unknown, {lost} acknowledged "
                "writes lost)")
        verdict(not regressions, f"{stream}: no state accepted after a newer one of its record "
                                 f"({len(regressions)})")
    verdict(not unmarked, "every request carries an Idempotency-Key and an X-BJET-Event ("
            + ", ".join(f"{stream} {unmarked[stream]} without" for stream in STREAMS) + ")")
    verdict(received["queue"] == sent["queue"],
            f"queue: the distinct keys received are the jobs sent "
            f"({len(received['queue'])} vs {len(sent['queue'])})")
    verdict(not done_unaccepted,
            f"every done job was accepted by the sink ({len(done_unaccepted)} were not)")
    verdict(not new_key_repeats and not foreign,
            f"a state is accepted under one key (retried jobs aside), with its job's payload "
            f"and event ({new_key_repeats} under several keys, {len(foreign)} foreign bodies)")
    verdict(not any(fates[fate] for fate in VIOLATIONS),
            "redirects: none followed that changes the method or drops the body, to another "
            f"origin, or a 302 ({sum(fates[fate] for fate in VIOLATIONS)}; "
            f"{leaked} carried {API_KEY_HEADER} to another origin)")
    verdict(not early, f"Retry-After honoured to the sub-second ({len(early)} of {paired} "
                       "retries early)")
    verdict(not duplicated and not missing,
            f"upserts: exactly one record per BIC ({len(duplicated)} duplicated, "
            f"{len(missing)} answered 2xx but missing)")
    verdict(not watchdog_kills, f"no cron worker killed by Odoo's watchdog "
                                f"({len(watchdog_kills)})")
    verdict(not stalled, f"delivery never stalled over {STALL_LIMIT} s outside the faults "
                         f"({len(stalled)} stalls"
            + (", " + ", ".join(f"{gap:.0f} s at {at - STARTED:.0f}s" for gap, at in stalled[:4])
               if stalled else "") + ")")
    verdict(not other_dead, f"no job dead for another reason than a refused redirect "
                            f"({len(other_dead)})")
    verdict(not undelivered, f"every job dead from a refused redirect was retried and "
                             f"delivered ({len(run.retried)} retried, {len(undelivered)} not "
                             "delivered)")
    verdict(not errors_outside, f"no ERROR in the server log outside the faults' windows "
                                f"({len(errors_outside)})")
    verdict(run.drained, f"queue drained, the sink still faulty ({job_states_count['pending']} "
                         f"pending, {job_states_count['running']} running)")

    # Diagnosis: why records differ, and what holds the queue.
    jobs_of = collections.defaultdict(list)
    for job in jobs:
        jobs_of[job.res_id].append(job)
    for stream in STREAMS:
        records, last, mismatched = states[stream][:3]
        for rid in mismatched[:3]:
            got = last[rid].body if rid in last else None
            diagnosis.append(
                f"      {stream} record {rid}: Odoo ref {records[rid]['ref']!r}, sink "
                f"{'ref ' + repr(got.get('ref')) if got else 'nothing'}; jobs " + "; ".join(
                    f"#{job.id} {job.event} {job.state} attempt {job.attempt} payload ref "
                    f"{payload_ref(job)}" for job in jobs_of.get(rid, [])))
    running = [job for job in jobs if job.state == "running"]
    if running:
        holders = collections.Counter((job.worker or "::").split(":")[1] for job in running)
        diagnosis.append(f"{len(running):5d} jobs still running, claimed up to "
                         f"{max(job.locked_at or 0 for job in running):.0f} s ago, by "
                         + "; ".join(f"pid {pid}"
                                     + (" (killed)" if pid.isdigit() and int(pid) in run.killed
                                        else "") + f": {count}"
                                     for pid, count in holders.most_common()))
    pending = [job for job in jobs if job.state == "pending"]
    if pending:
        due = sum(1 for job in pending if job.next_due)
        diagnosis.append(f"{len(pending):5d} jobs pending ({due} due), attempts: "
                         + ", ".join(f"{attempt}: {count}" for attempt, count in sorted(
                             collections.Counter(job.attempt for job in pending).items())))
    for job in [job for job in jobs if job.state == "dead"][:3]:
        diagnosis.append(f"      dead job {job.id}: {(job.last_error or '')[:120]}")
    shown = [(error, "outside the faults' windows") for error in errors_outside[:3]]
    shown += [(race, "a serialization failure") for race in races[:2]]
    for (at, record), where in shown:
        diagnosis.append(f"      ERROR at {at - STARTED:.0f}s, {where}:")
        excerpt = record if len(record) <= 7 else record[:1] + record[-6:]
        diagnosis += [f"        {line[:160]}" for line in excerpt]
    for problem, count in problems.most_common(8):
        diagnosis.append(f"{count:5d} x log {problem}")
    for name, errors in (("workload", workload.errors), ("direct", direct.errors)):
        if errors:
            diagnosis.append(f"{sum(errors.values()):5d} {name} calls failed, e.g.: " + "; ".join(
                f"{text} ({count})" for text, count in errors.most_common(3)))
    return lines, failures, diagnosis


# -- main -------------------------------------------------------------------------------


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt


def main():
    signal.signal(signal.SIGTERM, _interrupt)
    program_started = time.time()
    run_name = secrets.token_hex(3)
    sink = Sink(SEED)
    sink.start()
    sink.start("other")
    harness = Harness()
    try:
        rpc = Rpc()
        setup = Setup(rpc, sink, run_name)
        config_ids = list(setup.config_ids.values())
        out(f"[chaos] run {run_name}, seed {SEED} (CHAOS_SEED={SEED} to replay the sink's "
            f"draws), sink {sink.url('queue')}, Out configurations {setup.config_ids}, "
            f"delivery crons {setup.cron_ids}, cron workers {harness.cron_workers()}")
        workload_started = time.time()
        stop_at = REPORT_BY - 120
        workload = Workload(setup, SEED, stop_at)
        direct = DirectCalls(setup, SEED, stop_at)
        upserts = Upserts(setup, stop_at)
        workload.start()
        direct.start()
        upserts.start()
        faults = Faults(harness, sink, workload, config_ids)
        faults.run()
        for part in (workload, direct, upserts):
            part.join(REPORT_BY - 110)
        workload_done = time.time()
        out(f"[chaos {since_start():5.0f}s] workload over: {workload.created} creates, "
            f"{workload.updated} updates acknowledged; {sum(direct.calls.values())} direct "
            f"calls; {upserts.concurrent} concurrent upserts")
        faults.join()
        drained, wakes, idle = drain(config_ids, setup.cron_ids, REPORT_BY - 25)
        retried = {}
        if drained:
            retried = fix_url_and_retry(sink, config_ids, faults)
            drained, more_wakes, idle = drain(config_ids, setup.cron_ids, REPORT_BY - 25)
            wakes += more_wakes
        if not drained:
            faults.errors.append("watchdog round: not run, the queue did not drain")
        elif time.time() + QUIET + HOLD + 30 > REPORT_BY - 25:
            faults.errors.append("watchdog round: not run, no time left before the report")
        else:
            round_started = watchdog_round(setup, sink, workload, faults)
            drained, more_wakes, idle = drain(config_ids, setup.cron_ids, REPORT_BY - 25)
            wakes += more_wakes
            sink.hold = None
            # A deliberate stall: the watchdog check judges it.
            faults.windows.append((round_started, time.time()))
        drain_done = time.time()
        # Late answers still on the wire (a slow answer, a reclaimed job sent twice).
        time.sleep(SLOW_ANSWER + 1)
        lines, failures, diagnosis = check(Run(
            setup=setup, sink=sink, workload=workload, direct=direct, upserts=upserts,
            windows=faults.windows, killed=faults.killed, workload_started=workload_started,
            workload_done=workload_done, drain_done=drain_done, drained=drained,
            retried=retried))
    except KeyboardInterrupt:
        out("[chaos] interrupted")
        return 130
    except (ChaosError, RpcError, requests.RequestException, psycopg2.Error) as error:
        out(f"result: FAILED: the chaos run could not go on: {error}")
        return 1
    finally:
        sink.stop()
        sink.stop("other")
    total = since_start()
    drain_state = "drained" if drained else (
        f"NOT drained: no job changed state in its last {idle:.0f} s")
    lines[:0] = [
        "",
        f"== make chaos: figures (run {run_name}, seed {SEED}) ==",
        f"wall time          {total:.1f} s since `make chaos` started (bound {BOUND:.0f} s): "
        f"set-up {program_started - STARTED:.1f} s, workload "
        f"{workload_done - workload_started:.1f} s, drain and watchdog round "
        f"{drain_done - workload_done:.1f} s with the sink still faulty ({drain_state}; "
        f"delivery crons woken {wakes} times)",
        f"workload           {CLIENTS} JSON-RPC clients: {workload.created} creates, "
        f"{workload.updated} updates acknowledged ({workload.paired} planned right after "
        f"their create), {workload.retried} calls retried, {workload.failed} given up; "
        f"{DIRECT_CLIENTS} direct-call clients on {DIRECT_RECORDS} records",
        "faults             " + "; ".join(faults.done),
    ]
    if faults.errors:
        failures.append("faults not all carried out: " + "; ".join(faults.errors))
        lines.append("  FAIL faults: " + "; ".join(faults.errors))
    out(*lines)
    if diagnosis:
        out("diagnosis:", *diagnosis)
    if failures:
        out(f"result: FAILED ({len(failures)} of the checks): " + "; ".join(failures))
        return 1
    out("result: ok: every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
