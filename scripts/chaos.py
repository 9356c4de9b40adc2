#!/usr/bin/env python3
"""Chaos run of the outbound outbox: no change lost, repeated under a new key or stalled.

Run by ``make chaos`` (``scripts/harness.py chaos``) with Odoo's interpreter,
against a server in multi-process mode (2 HTTP workers, 2 cron workers) that the
harness started on a fresh database; BJET_BENCH_URL, BJET_BENCH_DB, the PG*
variables, BJET_CHAOS_LOG (the server's log), BJET_CHAOS_STARTED and
BJET_CHAOS_REPORT_BY (epoch seconds) come from the harness.  The harness owns
the server: this program asks it for faults by printing ``@@harness <request>``
and reads the answer on its stdin.

1. An ``Out`` configuration on Contacts fires on create and update and sends
   ``{"res_id", "name", "ref"}`` to a local sink; ``ref`` is the record's
   version, bumped by every write.  The delivery scheduled action gets one copy,
   so that both cron workers deliver (README, "Scaling delivery").
2. The sink drops 20% of the requests (connection closed without an answer),
   answers 10% with 503 and ``Retry-After``, and 10% only after the Read
   Timeout (the change is applied, the answer comes too late); it is down for
   30 s (listening socket closed, requests on open connections dropped).  It
   keeps every request in order of arrival.  Its state of a record is the body
   of the last request it accepted for it, duplicates included: a repeated old
   payload arriving after a newer one would set the record back, and is
   counted as a reordering.
3. Concurrent JSON-RPC clients (through Odoo's HTTP workers) make 2,000 creates
   and 1,000 updates, most updates right after the create of their record.
   Each record belongs to one client, so its writes are ordered.
4. Faults, at given shares of the workload: the sink's outage, SIGKILL of a cron
   worker that holds running jobs, SIGKILL of the whole server (restarted on the
   same database), SIGKILL of a cron worker of the new server.
5. The sink stays chaotic after the workload while the queue moves (until about
   one request per change met its chaos, at most 90 s), then turns healthy; the
   run waits until no job is pending or running, or until its report time, then
   checks (see ``check``) and prints the figures.

Exit code 1 on any lost, mismatched, reordered or repeated-under-a-new-key
change, any dead, pending or running job, an unfinished workload or the bound.
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

URL = os.environ.get("BJET_BENCH_URL", "http://127.0.0.1:8069").rstrip("/")
DB = os.environ.get("BJET_BENCH_DB", "")
LOG_PATH = os.environ.get("BJET_CHAOS_LOG", "")
STARTED = float(os.environ.get("BJET_CHAOS_STARTED") or time.time())
REPORT_BY = float(os.environ.get("BJET_CHAOS_REPORT_BY") or STARTED + 540)
BOUND = float(os.environ.get("BJET_CHAOS_BOUND") or 600)
SEED = int(os.environ.get("CHAOS_SEED") or secrets.randbelow(10**6))
LOGIN, PASSWORD = "admin", "admin"

# Workload
CLIENTS = 8
CREATES = 2000
UPDATES = 1000
PAIRED_SHARE = 0.7  # of the updates: right after the create of their record
OP_GIVE_UP = 180  # seconds a client keeps retrying one write (server restarting...)

# The sink
DROP_SHARE, BUSY_SHARE, SLOW_SHARE = 0.20, 0.10, 0.10
RETRY_AFTER = 2  # seconds, in the 503 answers
OUTAGE = 30  # seconds
# After the workload the sink stays chaotic until this many requests met its
# chaos (about one per change), at most CHAOS_TAIL seconds, and while the queue
# moves; then it turns healthy for the drain.
CHAOTIC_REQUESTS = 3000
CHAOS_TAIL = 90
QUEUE_STUCK = 20  # seconds without any job changing state

# The configuration: small delays and timeouts so that the run fits its bound;
# attempts enough that no job dies of bad luck (40% of attempts fail, plus the outage).
CONNECT_TIMEOUT = 2
READ_TIMEOUT = 2
SLOW_ANSWER = READ_TIMEOUT + 1.5
MAX_ATTEMPTS = 30
RETRY_BASE_DELAY = 1
RETRY_MAX_DELAY = 10

# Faults, at these shares of the workload done
OUTAGE_AT = 0.15
CRON_KILL_AT = 0.40
SERVER_KILL_AT = 0.65
SECOND_CRON_KILL_AT = 0.85
RUNNING_WAIT = 30  # seconds to wait for a victim holding running jobs

DELIVERY_CRON = ("bjet_api_sync", "ir_cron_bj_api_sync_deliver")
DELIVERY_CRON_NAME = "BJET API: deliver the outbound queue"
ACCEPTED = ("ok", "slow")

_print_lock = threading.Lock()


def out(*lines):
    with _print_lock:
        for line in lines:
            print(line, flush=True)


def since_start():
    return time.time() - STARTED


class ChaosError(Exception):
    pass


# -- the harness: faults on the server it runs ----------------------------------------


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


Delivery = collections.namedtuple("Delivery", "seq at key event res_id body fate")


class Sink:
    """A local HTTP API that misbehaves; remembers every request in order of arrival."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.deliveries = []
        self.chaotic = True
        self.chaotic_requests = 0  # requests whose fate was drawn
        self.down = False
        self.server = None
        self.port = 0
        self.thread = None

    def start(self):
        server = SinkServer(("127.0.0.1", self.port), SinkHandler)
        server.sink = self
        self.server, self.port = server, server.server_address[1]
        self.thread = threading.Thread(target=server.serve_forever, daemon=True,
                                       name="sink")
        self.thread.start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def outage(self, seconds):
        """Down for ``seconds``: connections refused, requests on open ones dropped."""
        self.down = True
        self.stop()
        time.sleep(seconds)
        self.start()
        self.down = False

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/contacts"

    def receive(self, headers, body, complete):
        """Record one request and decide its fate (under the lock: arrival order).

        A request whose body stops short (its sender was killed mid-request) is
        never processed, as by any HTTP server; one that is not a JSON object
        is refused with 400.
        """
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        res_id = data.get("res_id") if isinstance(data, dict) else None
        with self.lock:
            if not complete:
                fate = "truncated"
            elif not isinstance(data, dict):
                fate = "invalid"
            elif self.down:
                fate = "outage"
            elif not self.chaotic:
                fate = "ok"
            else:
                self.chaotic_requests += 1
                draw = self.rng.random()
                fate = ("drop" if draw < DROP_SHARE else
                        "busy" if draw < DROP_SHARE + BUSY_SHARE else
                        "slow" if draw < DROP_SHARE + BUSY_SHARE + SLOW_SHARE else "ok")
            delivery = Delivery(len(self.deliveries), time.time(),
                                headers.get("Idempotency-Key"), headers.get("X-BJET-Event"),
                                res_id, data, fate)
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
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        delivery = self.server.sink.receive(self.headers, body, len(body) == length)
        try:
            if delivery.fate == "truncated":
                self.close_connection = True
                return
            if delivery.fate == "invalid":
                self._answer(400, b'{"error": "a JSON object is expected"}')
                return
            if delivery.fate in ("drop", "outage"):
                # Reset the connection without a word: the client cannot know
                # whether the change arrived (it did not).
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.close_connection = True
                return
            if delivery.fate == "busy":
                self._answer(503, b'{"error": "busy"}', {"Retry-After": str(RETRY_AFTER)})
                return
            if delivery.fate == "slow":
                # Applied on arrival; the answer comes after the client gave up.
                time.sleep(SLOW_ANSWER)
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


def sql(query, params=(), dbname=DB):
    connection = psycopg2.connect(dbname=dbname)
    try:
        connection.autocommit = True
        with connection.cursor() as cr:
            cr.execute(query, params)
            return cr.fetchall() if cr.description else []
    finally:
        connection.close()


def xmlid(rpc, module, name):
    rows = rpc.execute("ir.model.data", "search_read",
                       [("module", "=", module), ("name", "=", name)], fields=["res_id"])
    if not rows:
        raise ChaosError(f"{module}.{name} not found")
    return rows[0]["res_id"]


def set_up(rpc, sink_url, run):
    """The Out configuration and a second delivery cron; returns (config id, cron ids)."""
    fields = {
        name: rpc.execute("ir.model.fields", "search",
                          [("model", "=", "res.partner"), ("name", "=", name)])[0]
        for name in ("id", "name", "ref")
    }
    lines = [("id", "res_id", True), ("name", "name", False), ("ref", "ref", False)]
    config_id = rpc.execute("bj.api.sync.config", "create", [{
        "name": f"Chaos {run}",
        "request_type": "out",
        "model_id": rpc.execute("ir.model", "search", [("model", "=", "res.partner")])[0],
        "request_url": sink_url,
        "http_method_ids": [(6, 0, [xmlid(rpc, "bjet_api_sync", "bj_http_method_post")])],
        "line_ids": [(0, 0, {"field_id": fields[name], "external_key": key,
                             "value_type": "plain", "is_identifier": ident, "sequence": index})
                     for index, (name, key, ident) in enumerate(lines)],
        "trigger_on_create": True,
        "trigger_on_write": True,
        "connection_timeout": CONNECT_TIMEOUT,
        "read_timeout": READ_TIMEOUT,
        "max_attempts": MAX_ATTEMPTS,
        "retry_base_delay": RETRY_BASE_DELAY,
        "retry_max_delay": RETRY_MAX_DELAY,
    }])[0]
    cron_id = xmlid(rpc, *DELIVERY_CRON)
    copy = rpc.execute("ir.cron", "copy", [cron_id])
    copy_id = copy[0] if isinstance(copy, list) else copy
    rpc.execute("ir.cron", "write", [copy_id], {"active": True})
    return config_id, [cron_id, copy_id]


def wake_delivery_crons(cron_ids):
    """What ir.cron._trigger does: a trigger row each, then NOTIFY the cron workers."""
    for cron_id in cron_ids:
        sql("INSERT INTO ir_cron_trigger (cron_id, call_at, create_uid, write_uid, "
            "create_date, write_date) VALUES (%s, now() at time zone 'UTC', 1, 1, "
            "now() at time zone 'UTC', now() at time zone 'UTC')", [cron_id])
    sql("SELECT pg_notify('cron_trigger', %s)", [DB], dbname="postgres")


def job_states(config_id):
    return dict(sql("SELECT state, count(*) FROM bj_api_sync_job WHERE config_id = %s "
                    "GROUP BY state", [config_id]))


def running_by_worker_pid(config_id):
    """{pid: running jobs} from the worker names (host:pid:thread) of running jobs."""
    counts = collections.Counter()
    for (worker,) in sql("SELECT worker FROM bj_api_sync_job WHERE config_id = %s "
                         "AND state = 'running'", [config_id]):
        parts = (worker or "").split(":")
        if len(parts) >= 2 and parts[1].isdigit():
            counts[int(parts[1])] += 1
    return counts


# -- the workload ---------------------------------------------------------------------


class Workload:
    """CLIENTS threads of JSON-RPC writes; every record belongs to one thread."""

    def __init__(self, run, seed, stop_at):
        self.run, self.stop_at = run, stop_at
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
                record_id = self._write(rpc, f"c{client}-{slot}", None, 0)
                if record_id:
                    ids[slot], versions[slot] = record_id, 0
            elif slot in ids:
                version = self._write(rpc, f"c{client}-{slot}", ids[slot], versions[slot] + 1)
                versions[slot] = version if version is not None else versions[slot] + 1
            with self.lock:
                self.done_ops += 1

    def _write(self, rpc, label, record_id, version):
        """Create (``record_id`` None) or update one record, retrying until Odoo
        answers; the new record's id, or the version written; None on giving up.

        A retried update writes the next version: the first try may have committed
        before its answer was lost, and every write must change the record.  A
        retried create may likewise leave a record behind: it is checked too
        (every record named after this run is).
        """
        give_up = min(time.time() + OP_GIVE_UP, self.stop_at)
        tries = 0
        while time.time() < give_up:
            suffix = f" r{tries}" if tries and record_id is None else ""
            values = {"name": f"Chaos {self.run} {label}{suffix} v{version}", "ref": str(version)}
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


# -- faults and draining --------------------------------------------------------------


class Faults:
    """The outage and the SIGKILLs, each when a share of the workload is done."""

    def __init__(self, harness, sink, workload, config_id):
        self.harness, self.sink, self.workload = harness, sink, workload
        self.config_id = config_id
        self.done = []  # lines for the report
        self.errors = []
        self.killed = {}  # pid -> how
        self.outage_thread = None

    def note(self, text):
        self.done.append(f"{since_start():5.0f}s  {text}")
        out(f"[chaos {since_start():5.0f}s] {text}")

    def _wait_progress(self, share):
        while self.workload.progress() < share and not self.workload.finished():
            time.sleep(0.2)

    def run(self):
        steps = (
            (OUTAGE_AT, self._outage),
            (CRON_KILL_AT, self._kill_cron_worker),
            (SERVER_KILL_AT, self._kill_server),
            (SECOND_CRON_KILL_AT, self._kill_cron_worker),
        )
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
            self.note(f"sink down for {OUTAGE} s")
            self.sink.outage(OUTAGE)
            self.note("sink up again")

        self.outage_thread = threading.Thread(target=down, daemon=True, name="outage")
        self.outage_thread.start()

    def _victim(self):
        """A cron worker holding running jobs (waiting a little for one), and how many."""
        deadline = time.time() + RUNNING_WAIT
        while True:
            workers = self.harness.cron_workers()
            running = running_by_worker_pid(self.config_id)
            holding = sorted((pid for pid in workers if running[pid]), key=running.get)
            if holding:
                return holding[-1], running[holding[-1]]
            if time.time() > deadline:
                if not workers:
                    raise ChaosError("no live cron worker to kill")
                return workers[0], 0
            time.sleep(0.05)

    def _kill_cron_worker(self):
        for tries_left in (2, 1, 0):
            pid, held = self._victim()
            try:
                answer = self.harness.ask(f"kill-cron {pid}")
                break
            except ChaosError:
                # It may have died meanwhile (Odoo's watchdog): pick another one.
                if not tries_left:
                    raise
        self.killed[pid] = "SIGKILLed cron worker"
        self.note(f"SIGKILL cron worker {pid} while it held {held} running jobs ({answer})")

    def _kill_server(self):
        deadline = time.time() + RUNNING_WAIT
        while not sum(running_by_worker_pid(self.config_id).values()) and time.time() < deadline:
            time.sleep(0.05)
        held = sum(running_by_worker_pid(self.config_id).values())
        for pid in self.harness.cron_workers():
            self.killed[pid] = "cron worker of the SIGKILLed server"
        answer = self.harness.ask("kill-server")
        self.note(f"SIGKILL the whole server while its workers held {held} running jobs "
                  f"({answer})")


def chaos_tail(sink, config_id, until):
    """Keep the sink chaotic after the workload while the queue moves, until
    CHAOTIC_REQUESTS met its chaos, CHAOS_TAIL seconds or ``until``."""
    started = time.time()
    previous, changed = None, started
    while sink.chaotic_requests < CHAOTIC_REQUESTS:
        now = time.time()
        states = job_states(config_id)
        if states != previous:
            previous, changed = states, now
        if (now - started > CHAOS_TAIL or now > until or now - changed > QUEUE_STUCK
                or not states.get("pending", 0) + states.get("running", 0)):
            break
        time.sleep(1)
    return time.time() - started


def drain(config_id, cron_ids, until):
    """Wait until no job is pending or running, waking the delivery crons every 30 s.
    Returns (drained, wake-ups, seconds since the last job finished)."""
    wakes, last_wake, last_print = 1, time.time(), 0
    wake_delivery_crons(cron_ids)
    previous, changed = None, time.time()
    while True:
        states = job_states(config_id)
        unfinished = states.get("pending", 0) + states.get("running", 0)
        now = time.time()
        if states != previous:
            previous, changed = states, now
        if not unfinished:
            return True, wakes, 0
        if now > until:
            return False, wakes, now - changed
        if now - last_print > 20:
            out(f"[chaos {since_start():5.0f}s] draining: "
                + ", ".join(f"{state} {count}" for state, count in sorted(states.items())))
            last_print = now
        if now - last_wake > 30:
            wake_delivery_crons(cron_ids)
            wakes, last_wake = wakes + 1, now
        time.sleep(1)


# -- the checks -------------------------------------------------------------------------


def version_of(body):
    try:
        return int(body.get("ref"))
    except (AttributeError, TypeError, ValueError):
        return None


def payload_ref(job):
    return version_of(json.loads(job.payload)) if job.payload else None


def canonical(body):
    return json.dumps(body, sort_keys=True)


Job = collections.namedtuple(
    "Job", "id state event attempt key res_id payload last_error worker locked_at next_due")


def load_jobs(config_id):
    rows = sql(
        "SELECT id, state, event, attempt, idempotency_key, res_ids, payload, last_error, "
        "worker, extract(epoch FROM (now() at time zone 'UTC') - locked_at), "
        "next_attempt_at <= (now() at time zone 'UTC') "
        "FROM bj_api_sync_job WHERE config_id = %s ORDER BY id", [config_id])
    return [Job(*row[:5], int(row[5]) if (row[5] or "").isdigit() else None, *row[6:])
            for row in rows]


def log_figures(cron_ids):
    """From the server log: delivery cron runs started / finished / raised, restarts
    of cron workers, reclaims, and the most frequent ERROR and WARNING lines."""
    figures = collections.Counter()
    problems = collections.Counter()
    try:
        lines = open(LOG_PATH, encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        return figures, problems
    ids = "|".join(str(cron_id) for cron_id in cron_ids)
    job = re.compile(rf"Job .* \((?:{ids})\) (starting|done in|server action #\d+ failed)")
    level = re.compile(r"^\S+ \S+ \d+ (ERROR|WARNING|CRITICAL) \S+ (\S+): (.*)")
    watchdog = re.compile(r"WorkerCron \((\d+)\) timeout after (\d+)s")
    for line in lines:
        line = line.rstrip()
        match = watchdog.search(line)
        if match:
            figures[f"watchdog {match.group(1)} {match.group(2)}"] = 1
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
    return figures, problems


def check(run, config_id, cron_ids, sink, workload, live_workers, killed):
    """The figures and the verdicts: (lines, failures, diagnosis lines)."""
    records = {row[0]: {"res_id": row[0], "name": row[1], "ref": row[2]} for row in sql(
        "SELECT id, name, ref FROM res_partner WHERE name LIKE %s", [f"Chaos {run} %"])}
    jobs = load_jobs(config_id)
    deliveries = sink.snapshot()
    accepted = [d for d in deliveries if d.fate in ACCEPTED]
    failures, diagnosis = [], []

    # The sink's state: the last change it accepted per record, in order of arrival.
    last, highest, regressions = {}, {}, []
    for delivery in accepted:
        version = version_of(delivery.body)
        top = highest.get(delivery.res_id)
        if top is not None and (version is None or version < top):
            regressions.append(delivery)
        highest[delivery.res_id] = max(top or 0, version or 0)
        last[delivery.res_id] = delivery
    mismatched = [rid for rid, state in records.items()
                  if rid not in last or last[rid].body != state]
    never = [rid for rid in records if rid not in last]
    strays = {d.res_id for d in accepted if d.res_id not in records}
    lost = 0
    for rid, versions in workload.acknowledged.items():
        got = version_of(last[rid].body) if rid in last else -1
        lost += sum(1 for version in versions if version > (got if got is not None else -1))
    odoo_behind = [rid for rid, versions in workload.acknowledged.items()
                   if rid not in records or int(records[rid]["ref"] or -1) < max(versions)]

    # Keys: one per job, the same on every attempt, with the job's payload and event.
    by_key = {job.key: job for job in jobs}
    sent = {job.key for job in jobs if job.attempt > 0}
    received = {d.key for d in deliveries if d.key}
    accepted_keys = collections.Counter(d.key for d in accepted)
    unknown = received - set(by_key)
    done_unaccepted = [job for job in jobs if job.state == "done" and job.key not in accepted_keys]
    no_key = sum(1 for d in deliveries if not d.key)
    foreign = [d for d in deliveries if d.key in by_key and (
        (d.fate != "truncated" and d.body != json.loads(by_key[d.key].payload or "null"))
        or d.event != by_key[d.key].event)]
    repeats = sum(count - 1 for count in accepted_keys.values() if count > 1)
    repeated_keys = sum(1 for count in accepted_keys.values() if count > 1)
    keys_per_state = collections.defaultdict(set)
    for delivery in accepted:
        keys_per_state[delivery.res_id, canonical(delivery.body)].add(delivery.key)
    new_key_repeats = sum(1 for keys in keys_per_state.values() if len(keys) > 1)

    states = collections.Counter(job.state for job in jobs)
    merged = sum(1 for job in jobs if job.state == "cancelled"
                 and (job.last_error or "").startswith("Merged"))
    fates = collections.Counter(d.fate for d in deliveries)
    runs, working_runs = sql("SELECT count(*), count(*) FILTER (WHERE done > 0) "
                             "FROM ir_cron_progress WHERE cron_id = ANY(%s)", [cron_ids])[0]
    log, problems = log_figures(cron_ids)
    watchdog_kills = {}
    for key in log:
        if key.startswith("watchdog "):
            _word, pid, seconds = key.split()
            watchdog_kills[int(pid)] = seconds
    attempts = dict(sql(
        "SELECT CASE WHEN status_code BETWEEN 200 AND 299 THEN '2xx' "
        "WHEN coalesce(status_code, 0) = 0 THEN 'no answer' ELSE status_code::text END, "
        "count(*) FROM bj_api_log WHERE config_id = %s GROUP BY 1", [config_id]))

    lines = [
        f"records            {len(records)} in Odoo ({len(records) - workload.created} "
        "more than acknowledged creates: created by calls whose answer was lost)",
        f"jobs               {len(jobs)}: " + ", ".join(
            f"{state} {states[state]}" for state in
            ("done", "cancelled", "dead", "pending", "running"))
        + f" ({merged} cancelled as merged); {len(sent)} sent (attempted at least once)",
        f"sink               {len(deliveries)} requests, {sink.chaotic_requests} of them "
        f"while chaotic: {len(accepted)} accepted "
        f"({fates['ok']} answered 2xx at once, {fates['slow']} slow: applied, answered "
        f"after the {READ_TIMEOUT} s read timeout), {fates['busy']} refused with 503 + "
        f"Retry-After, {fates['drop']} dropped, {fates['outage']} dropped during the outage, "
        f"{fates['truncated']} cut short by their sender, {fates['invalid']} refused as "
        "not a JSON object",
        f"idempotency keys   {len(received)} distinct received, {len(sent)} jobs sent, "
        f"{len(accepted_keys)} keys accepted, {len(done_unaccepted)} done jobs never "
        f"accepted, {len(unknown)} unknown keys, {no_key} requests without a key",
        f"duplicates         {repeats} accepted deliveries repeated {repeated_keys} keys "
        f"(same key); {new_key_repeats} changes accepted under more than one key; "
        f"{len(foreign)} deliveries whose body or event differ from their job's",
        f"ordering           {len(regressions)} accepted deliveries older than one accepted "
        "before for the same record",
        f"mismatches         {len(mismatched)} records whose last state accepted by the sink "
        f"differs from Odoo's ({len(never)} never accepted), {len(strays)} unknown records",
        f"lost changes       {lost} acknowledged writes newer than the record's last state "
        "accepted by the sink",
        f"attempts logged    {sum(attempts.values())} by Odoo (bj.api.log): "
        + ", ".join(f"{kind} {count}" for kind, count in sorted(attempts.items()))
        + " (a killed worker's attempts are sent but not logged; refused connections "
        "are logged but never reach the sink)",
        f"cron runs          {runs} runs of the {len(cron_ids)} delivery crons started "
        f"(ir_cron_progress rows), {working_runs} of them sent something; server log: "
        f"{log['starting']} started, {log['done']} finished, {log['server']} raised; "
        f"{log['cron worker started']} cron worker processes started; "
        f"{len(watchdog_kills)} cron workers killed by Odoo's watchdog ("
        + (", ".join(f"{pid} after {sec} s" for pid, sec in watchdog_kills.items()) or "none")
        + f"); {log['reclaims']} reclaims of stale jobs",
    ]

    def verdict(ok, text):
        if not ok:
            failures.append(text)
        lines.append(f"  {'ok  ' if ok else 'FAIL'} {text}")

    lines.append("checks:")
    verdict(workload.created == CREATES and workload.updated == UPDATES
            and not workload.failed,
            f"workload done: {workload.created}/{CREATES} creates, "
            f"{workload.updated}/{UPDATES} updates acknowledged, {workload.failed} given up")
    verdict(not mismatched and not strays,
            "for every record, the last state the sink accepted equals Odoo's "
            f"({len(mismatched)} mismatches)")
    verdict(not lost, f"no change lost ({lost} lost)")
    verdict(not regressions, f"no change accepted after a newer one ({len(regressions)})")
    verdict(len(received) == len(sent) and not unknown and not no_key,
            f"distinct Idempotency-Keys received = jobs sent ({len(received)} vs {len(sent)})")
    verdict(not done_unaccepted,
            f"every done job was accepted by the sink ({len(done_unaccepted)} were not)")
    verdict(not new_key_repeats and not foreign,
            f"every duplicate delivery shares its key and its job's payload "
            f"({new_key_repeats} changes under several keys, {len(foreign)} foreign bodies)")
    verdict(not states["dead"], f"0 dead once the sink is healthy ({states['dead']})")
    verdict(not states["pending"] and not states["running"],
            f"0 pending after draining ({states['pending']} pending, "
            f"{states['running']} running)")
    if odoo_behind:
        lines.append(f"  note: {len(odoo_behind)} records in Odoo older than a write it "
                     "acknowledged")

    # Diagnosis: why records differ, and what holds the queue.
    jobs_of = collections.defaultdict(list)
    for job in jobs:
        jobs_of[job.res_id].append(job)
    causes = collections.Counter()
    for rid in mismatched:
        mine = jobs_of.get(rid, [])
        sent_versions = [version_of(json.loads(job.payload)) for job in mine
                         if job.state == "done" and job.payload]
        if any(job.state in ("pending", "running") for job in mine):
            causes["a job of the record is still pending or running (stalled)"] += 1
        elif any(job.state == "dead" for job in mine):
            causes["a job of the record is dead"] += 1
        elif any(job.state == "cancelled" and (job.last_error or "").startswith("Merged")
                 for job in mine) and max(sent_versions, default=-1) < int(
                     records[rid]["ref"] or -1):
            causes["its last change was merged into an older job whose payload was "
                   "exported before that change (lost update)"] += 1
        elif rid not in last:
            causes["never accepted by the sink"] += 1
        else:
            causes["other"] += 1
    for cause, count in causes.most_common():
        diagnosis.append(f"{count:5d} mismatched records: {cause}")
    running = [job for job in jobs if job.state == "running"]
    if running:
        def fate(worker):
            pid = (worker or "::").split(":")[1]
            pid = int(pid) if pid.isdigit() else 0
            if pid in watchdog_kills:
                return f"{pid}, killed by Odoo's watchdog after {watchdog_kills[pid]} s"
            if pid in killed:
                return f"{pid}, {killed[pid]}"
            return f"{pid}, {'alive' if pid in live_workers else 'gone'}"

        workers = collections.Counter(fate(job.worker) for job in running)
        oldest = max(job.locked_at or 0 for job in running)
        diagnosis.append(
            f"{len(running):5d} jobs still running, claimed up to {oldest:.0f} s ago (reclaimed"
            " only once 15 minutes old) by workers: "
            + "; ".join(f"{worker} ({count})" for worker, count in workers.most_common()))
        blocked = 0
        held = {job.res_id: job.id for job in running}
        for job in jobs:
            if job.state == "pending" and job.res_id in held and job.id > held[job.res_id]:
                blocked += 1
        diagnosis.append(f"{blocked:5d} pending jobs wait behind those running jobs")
    pending = [job for job in jobs if job.state == "pending"]
    if pending:
        due = sum(1 for job in pending if job.next_due)
        diagnosis.append(f"{len(pending):5d} jobs pending ({due} due), attempts: "
                         + ", ".join(f"{attempt}: {count}" for attempt, count in sorted(
                             collections.Counter(job.attempt for job in pending).items())))
    for job in [job for job in jobs if job.state == "dead"][:3]:
        diagnosis.append(f"      dead job {job.id}: {(job.last_error or '')[:120]}")
    for rid in mismatched[:4]:
        got = last[rid].body if rid in last else None
        diagnosis.append(f"      record {rid}: Odoo ref {records[rid]['ref']!r}, sink "
                         f"{'ref ' + repr(got.get('ref')) if got else 'nothing'}; jobs "
                         + "; ".join(
                             f"#{job.id} {job.event} {job.state} attempt {job.attempt} "
                             f"payload ref {payload_ref(job)}" for job in jobs_of.get(rid, [])))
    for problem, count in problems.most_common(8):
        diagnosis.append(f"{count:5d} x log {problem}")
    if workload.errors:
        diagnosis.append(f"{workload.retried:5d} client calls retried, e.g.: " + "; ".join(
            f"{text} ({count})" for text, count in workload.errors.most_common(3)))
    return lines, failures, diagnosis


# -- main -------------------------------------------------------------------------------


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt


def main():
    signal.signal(signal.SIGTERM, _interrupt)
    program_started = time.time()
    run = secrets.token_hex(3)
    sink = Sink(SEED)
    sink.start()
    harness = Harness()
    try:
        config_id, cron_ids = set_up(Rpc(), sink.url, run)
        out(f"[chaos] run {run}, seed {SEED} (CHAOS_SEED={SEED} to replay the sink's "
            f"draws), sink {sink.url}, Out configuration {config_id}, delivery crons "
            f"{cron_ids}, cron workers {harness.cron_workers()}")
        workload_started = time.time()
        workload = Workload(run, SEED, REPORT_BY - 120)
        workload.start()
        faults = Faults(harness, sink, workload, config_id)
        faults.run()
        workload.join(REPORT_BY - 110)
        workload_done = time.time()
        out(f"[chaos {since_start():5.0f}s] workload over: {workload.created} creates, "
            f"{workload.updated} updates acknowledged")
        faults.join()
        tail = chaos_tail(sink, config_id, REPORT_BY - 180)
        sink.chaotic = False
        out(f"[chaos {since_start():5.0f}s] the sink turns healthy after "
            f"{sink.chaotic_requests} requests met its chaos")
        drained, wakes, idle = drain(config_id, cron_ids, REPORT_BY - 25)
        drain_done = time.time()
        # Late answers still on the wire (a slow answer, a reclaimed job sent twice).
        time.sleep(SLOW_ANSWER + 1)
        lines, failures, diagnosis = check(run, config_id, cron_ids, sink, workload,
                                           harness.cron_workers(), faults.killed)
    except KeyboardInterrupt:
        out("[chaos] interrupted")
        return 130
    except (ChaosError, RpcError, requests.RequestException, psycopg2.Error) as error:
        out(f"result: FAILED: the chaos run could not go on: {error}")
        return 1
    finally:
        sink.stop()
    total = since_start()
    drain_state = "drained" if drained else (
        f"NOT drained: no job changed state in its last {idle:.0f} s")
    lines[:0] = [
        "",
        f"== make chaos: figures (run {run}, seed {SEED}) ==",
        f"wall time          {total:.1f} s since `make chaos` started (bound {BOUND:.0f} s): "
        f"set-up {program_started - STARTED:.1f} s, workload "
        f"{workload_done - workload_started:.1f} s, sink still chaotic {tail:.1f} s, drain "
        f"{drain_done - workload_done - tail:.1f} s ({drain_state}; delivery crons woken "
        f"{wakes} times)",
        f"workload           {CLIENTS} JSON-RPC clients: {workload.created} creates, "
        f"{workload.updated} updates acknowledged ({workload.paired} planned right after "
        f"their create), {workload.retried} calls retried, {workload.failed} given up",
        "faults             " + "; ".join(faults.done),
    ]
    if faults.errors:
        failures.append("faults not all carried out: " + "; ".join(faults.errors))
        lines.append("  FAIL faults: " + "; ".join(faults.errors))
    if not drained:
        failures.append("the queue did not drain before the report time")
    out(*lines)
    if diagnosis:
        out("diagnosis:", *diagnosis)
    if failures:
        out(f"result: FAILED ({len(failures)}): " + "; ".join(failures))
        return 1
    out("result: ok: no change lost, repeated under a new key or stalled")
    return 0


if __name__ == "__main__":
    sys.exit(main())
