"""Concurrent creates and upserts of one Record Identifier give one record.

Real concurrency: each request runs in a thread on a cursor of its own, as in
an Odoo worker, through Odoo's own ``retrying`` (which replays a request on a
concurrency failure, then commits); the threads are released together.
Writers of one identifier (or of one existing row) fail to serialize under
REPEATABLE READ and are replayed; a request whose last try fails too answers
the documented 503 with Retry-After, having written nothing.  Each race prints
its time, replays and 503s.
"""

import json
import logging
import random
import secrets
import threading
import time
from unittest.mock import patch

from odoo import api, sql_db
from odoo.service.model import MAX_TRIES_ON_CONCURRENCY_FAILURE, retrying
from odoo.tests import BaseCase, tagged

from ..core import inbound
from ..services.inbound_request import InboundRequest
from .common import BjApiSyncCase, CommittedDataMixin

_logger = logging.getLogger(__name__)

SIZES = (4, 16, 64)
BATCH = 5


class InboundWorkersMixin(CommittedDataMixin):
    """Committed inbound configurations on Contacts, and requests served as
    Odoo workers serve them."""

    def setUp(self):
        super().setUp()
        self.tag = secrets.token_hex(4)
        self.config_ids = []
        self.addCleanup(self._drop_data)

    def committed_endpoint(self, name, lines, model="res.partner"):
        """The endpoint of a committed In configuration ``name`` on ``model`` with
        ``lines`` (see ``committed_in_config``), deleted after the test."""
        with self.committed_env() as env:
            config = self.committed_in_config(
                env, {"name": name, "endpoint": f"{name}-{self.tag}"}, lines, model)
            self.config_ids.append(config.id)
            return config.endpoint

    def committed_config(self, name, identifier, key):
        """An inbound configuration identified by ``identifier`` (sent as ``key``)
        with a name line; returns its endpoint."""
        return self.committed_endpoint(
            name, [(identifier, key, {"is_identifier": True}), ("name", "name", None)])

    def _drop_data(self):
        with self.committed_env() as env:
            env.cr.execute("DELETE FROM res_partner WHERE ref LIKE %s OR name LIKE %s",
                           (f"{self.tag}%", f"{self.tag}%"))
            for table in ("bj_api_log", "bj_api_idempotency"):
                env.cr.execute(f"DELETE FROM {table} WHERE config_id = ANY(%s)",  # noqa: S608
                               (self.config_ids,))
            env.cr.execute("DELETE FROM bj_api_sync_config WHERE id = ANY(%s)",
                           (self.config_ids,))

    def serve(self, cr, method, endpoint, body=None, identifier=None, headers=None):
        """``(status, body, headers, tries)`` of one request served on ``cr``:
        what the controller does on each try, replayed by Odoo's ``retrying``
        on a concurrency failure, then committed."""
        env = api.Environment(cr, None, {})  # an auth="none" route's environment
        call = self.call(method, endpoint, body, identifier, headers)
        tries = []

        def attempt():
            tries.append(1)
            return InboundRequest(env, call, attempt=len(tries)).serve()

        answer = retrying(attempt, env)
        return answer.status, answer.body, answer.headers, len(tries)

    @staticmethod
    def call(method, endpoint, body=None, identifier=None, headers=None):
        path = f"{inbound.API_PREFIX}/{endpoint}"
        if identifier is not None:
            path += f"/{identifier}"
        data = json.dumps(body).encode() if body is not None else b""
        return inbound.InboundCall(
            method=method, path=path, endpoint=endpoint,
            identifier=None if identifier is None else str(identifier),
            headers={"Content-Type": "application/json", **(headers or {})}, query=[],
            remote_addr="127.0.0.1", read_body=lambda: data, content_length=len(data),
            target=path,
        )


@tagged("post_install", "-at_install")
class TestConcurrentUpserts(InboundWorkersMixin, BjApiSyncCase):
    """4, 16 and 64 concurrent requests per identifier: exactly one record
    each time, every request answered 200/201 or, at its last try, the
    documented 503 with Retry-After; no ERROR line in the log."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # One connection per thread, besides the test's own.
        pool = sql_db._Pool
        cls.startClassPatcher(patch.object(pool, "_maxconn", max(pool._maxconn, 80)))

    def setUp(self):
        super().setUp()
        # A char identifier, and a many2one one (parents made for the test).
        self.by_ref = self.committed_config("race-ref", "ref", "ref")
        # Two configurations upserting one field of one model share its locks.
        self.by_ref_too = self.committed_config("race-ref-too", "ref", "ref")
        self.by_parent = self.committed_config("race-parent", "parent_id", "parent")
        self.errors = self.capture_server_log(logging.ERROR)

    def tearDown(self):
        # The test runner's own lines (a failed subtest) are not the server's.
        errors = [self.logged_text(record) for record in self.errors if record.name != __name__]
        self.assertEqual(errors, [], "no ERROR line in the server log")
        super().tearDown()

    def race(self, requests):
        """Serve ``requests`` (argument tuples of :meth:`serve`) at once, each on
        a transaction of its own; their answers, in order."""
        start = threading.Barrier(len(requests))
        answers = [None] * len(requests)

        def run(index, request):
            with self.registry.cursor() as cr:
                start.wait(30)
                try:
                    answers[index] = self.serve(cr, *request)
                except Exception as error:  # noqa: BLE001 - reported below
                    answers[index] = error

        threads = [threading.Thread(target=run, args=item) for item in enumerate(requests)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        for answer in answers:
            self.assertIsInstance(answer, tuple, f"every request is answered: {answer!r}")
        replays = sum(tries - 1 for _status, _body, _headers, tries in answers)
        busy = sum(status == 503 for status, _body, _headers, _tries in answers)
        _logger.info("race %s x%d: %.2f s, %d replays, %d answered 503", self._testMethodName,
                     len(requests), time.monotonic() - started, replays, busy)
        return answers

    # -- checks -----------------------------------------------------------------

    def partners(self, field, value):
        with self.committed_env() as env:
            return env["res.partner"].with_context(active_test=False).search_read(
                [(field, "=", value)], ["name"])

    def assertOneRecordEach(self, field, values):
        for value in values:
            found = self.partners(field, value)
            self.assertEqual(len(found), 1, f"one record with {field} = {value!r}: {found}")

    def assertStatuses(self, answers, created):
        """Every answer a success, ``created`` of them 201 (those that created
        committed; the rest 200), or the documented 503 of a last try."""
        for status, body, headers, tries in answers:
            if status == 503:
                self.assertEqual((tries, headers.get("Retry-After")),
                                 (MAX_TRIES_ON_CONCURRENCY_FAILURE, "1"), body)
        statuses = [status for status, _body, _headers, _tries in answers if status != 503]
        self.assertEqual(sorted(statuses), [200] * (len(statuses) - created) + [201] * created,
                         [body for _status, body, _headers, _tries in answers])

    def refs(self, size, count=1):
        return [f"{self.tag}-{size}-{secrets.token_hex(3)}" for _index in range(count)]

    def make_parents(self, count):
        with self.committed_env() as env:
            return env["res.partner"].create([
                {"name": f"{self.tag}-parent-{index}", "is_company": True}
                for index in range(count)]).ids

    # -- the races -----------------------------------------------------------------

    def test_new_identifier_single_objects(self):
        for size in SIZES:
            with self.subTest(size=size):
                (ref,) = self.refs(size)
                answers = self.race([
                    ("POST", (self.by_ref, self.by_ref_too)[index % 2],
                     {"ref": ref, "name": f"{self.tag}-{index}"})
                    for index in range(size)])
                self.assertOneRecordEach("ref", [ref])
                self.assertStatuses(answers, created=1)

    def test_existing_identifier_every_write(self):
        """POST (upsert), PUT by body and PUT by URL of one existing record."""
        for size in SIZES:
            with self.subTest(size=size):
                (ref,) = self.refs(size)
                with self.committed_env() as env:
                    record_id = env["res.partner"].create({"name": ref, "ref": ref}).id
                bodies = [{"ref": ref, "name": f"{self.tag}-{index}"} for index in range(size)]
                answers = self.race([
                    [("POST", self.by_ref, body), ("PUT", self.by_ref, [body]),
                     ("PUT", self.by_ref, {"name": body["name"]}, ref)][index % 3]
                    for index, body in enumerate(bodies)])
                self.assertStatuses(answers, created=0)
                (found,) = self.partners("ref", ref)
                self.assertEqual(found["id"], record_id)
                self.assertIn(found["name"], [body["name"] for body in bodies])

    def test_new_identifiers_in_batches(self):
        """Batches naming the same new identifiers in different orders."""
        for size in SIZES:
            with self.subTest(size=size):
                refs = self.refs(size, BATCH)
                requests = []
                for index in range(size):
                    order = random.sample(refs, len(refs))
                    requests.append(("POST", self.by_ref, [
                        {"ref": ref, "name": f"{self.tag}-{index}"} for ref in order]))
                answers = self.race(requests)
                self.assertOneRecordEach("ref", refs)
                self.assertStatuses(answers, created=1)

    def test_one_idempotency_key(self):
        """Concurrent duplicates of one keyed POST: one runs, the others wait for
        it and replay its answer (or answer the 503 of a last try)."""
        (ref,) = self.refs(16)
        headers = {"Idempotency-Key": f"{self.tag}-key"}
        answers = self.race([("POST", self.by_ref, {"ref": ref, "name": ref}, None, headers)
                             for _index in range(16)])
        self.assertOneRecordEach("ref", [ref])
        self.assertStatuses(answers, created=sum(answer[0] != 503 for answer in answers))
        answers = [answer for answer in answers if answer[0] != 503]
        replayed = [headers.get("Idempotent-Replayed") for _status, _body, headers, _tries
                    in answers]
        self.assertEqual(sorted(replayed, key=str), [None] + ["true"] * (len(answers) - 1))
        self.assertEqual(len({json.dumps(body) for _status, body, _headers, _tries in answers}),
                         1, "one answer, replayed")

    def test_many2one_identifier(self):
        """Single objects and batches, new and existing, identified by a many2one."""
        for size in SIZES:
            with self.subTest(size=size):
                parents = self.make_parents(BATCH + 1)
                existing, single, batch = parents[0], parents[1], parents[2:]
                with self.committed_env() as env:
                    env["res.partner"].create({"name": f"{self.tag}-child", "parent_id": existing})
                requests = []
                for index in range(size):
                    name = f"{self.tag}-{index}"
                    if index % 2:
                        requests.append(("POST", self.by_parent, {"parent": single, "name": name}))
                    else:
                        order = random.sample([existing, *batch], BATCH)
                        requests.append(("POST", self.by_parent, [
                            {"parent": parent, "name": name} for parent in order]))
                answers = self.race(requests)
                self.assertOneRecordEach("parent_id", parents)
                # The first single object and the first batch create, the rest update.
                self.assertStatuses(answers, created=2)


@tagged("post_install", "-at_install")
class TestQuietRetries(InboundWorkersMixin, BjApiSyncCase):
    """A concurrency failure that Odoo retries writes no ERROR line; the retry's
    INFO line is Odoo's.  Two DELETEs with one Idempotency-Key: the second waits
    for the first's claim and, once it commits, fails to serialize (REPEATABLE
    READ), is replayed, and answers the first one's answer."""

    def setUp(self):
        super().setUp()
        self.endpoint = self.committed_config("quiet", "ref", "ref")
        with self.committed_env() as env:
            env["res.partner"].create({"name": self.tag, "ref": self.tag})

    def waiting_on_lock(self):
        """True once another transaction waits for a lock in this database."""
        with self.registry.cursor() as cr:
            cr.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                       " AND wait_event_type = 'Lock'")
            return cr.fetchone()[0] > 0

    def test_retried_serialization_failure_is_quiet(self):
        logged = self.capture_server_log(logging.INFO)
        headers = {"Idempotency-Key": f"delete-{self.tag}"}
        first = self.registry.cursor()
        self.addCleanup(first.close)
        # The first DELETE, served but not committed yet: it holds its claim.
        answer = InboundRequest(api.Environment(first, None, {}), self.call(
            "DELETE", self.endpoint, identifier=self.tag, headers=headers)).serve()
        self.assertEqual(answer.status, 200, answer.body)
        second = {}

        def run():
            with self.registry.cursor() as cr:
                second["answer"] = self.serve(cr, "DELETE", self.endpoint,
                                              identifier=self.tag, headers=headers)

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 30
        while not self.waiting_on_lock():
            self.assertLess(time.monotonic(), deadline, "the second DELETE waits for the first")
            time.sleep(0.05)
        first.commit()
        thread.join(60)
        status, body, answer_headers, tries = second["answer"]
        self.assertEqual((status, tries), (200, 2), body)
        self.assertEqual(answer_headers.get("Idempotent-Replayed"), "true")
        self.assertEqual(body, answer.body)
        retried = [record for record in logged if record.name == "odoo.service.model"]
        self.assertIn("SERIALIZATION_FAILURE", retried[0].getMessage())
        errors = [self.logged_text(record) for record in logged if record.levelno >= logging.ERROR]
        self.assertEqual(errors, [], "no ERROR line for a retried failure")


class TestIdentifierLockKeys(BaseCase):
    def test_keys(self):
        keys = inbound.identifier_lock_keys
        cases = [
            # (values, expected number of keys)
            (["A", "A"], 1),
            (["A", "a"], 2),
            ([5, "5"], 2),
            ([1, 2, 3], 3),
            ([], 0),
        ]
        for values, count in cases:
            with self.subTest(values=values):
                found = keys("res.partner", "ref", values)
                self.assertEqual(len(found), count)
                self.assertEqual(found, sorted(found), "ascending: batches never deadlock")
                self.assertTrue(all(-2**63 <= key < 2**63 for key in found), "bigint keys")
        self.assertEqual(keys("res.partner", "ref", ["A"]), keys("res.partner", "ref", ["A"]),
                         "stable")
        self.assertNotEqual(keys("res.partner", "ref", ["A"]), keys("res.partner", "email", ["A"]))
        self.assertNotEqual(keys("res.partner", "ref", ["A"]), keys("res.users", "ref", ["A"]))
