"""The entry point and the Outbound Queue keep one order per record.

``_make_outbound_http_request`` sends a record only when no older unfinished
job holds it, takes over the never-attempted job that would otherwise carry
its state (same Idempotency-Key and X-BJET-Event), and queues what it did not
deliver under the key and with the payload it attempted, in the caller's
transaction.  The races run on real transactions: a delivery worker in a
thread on a cursor of its own against a direct call on another, and a local
HTTP sink that records what it received, in order.
"""

import threading
import time
from unittest.mock import patch

from psycopg2 import errors

from odoo import fields
from odoo.tests import BaseCase, tagged
from odoo.tools import mute_logger

from ..core import http_client
from ..services import delivery_worker
from ..services.outbound_call import OutboundCall
from .common import USAGE, BjOutboundCase, CommittedDataMixin, doc_section, line_commands

KEY = http_client.IDEMPOTENCY_HEADER
EVENT = delivery_worker.EVENT_HEADER


def no_wait(seconds):
    """Inline backoff waits cost nothing in these tests."""


@tagged("post_install", "-at_install")
class TestDirectCallTakesOverItsJob(BjOutboundCase):
    """One transaction: which job the call settles, and under which key."""

    def setUp(self):
        super().setUp()
        self.startPatcher(patch.object(OutboundCall, "sleep", staticmethod(no_wait)))
        self.config = self.make_out_config(trigger_on_create=True, trigger_on_write=True,
                                           retry_base_delay=0, retry_max_delay=0)

    def send(self, records):
        return self.env["bj.api.sync.config"]._make_outbound_http_request(records, self.config)

    def test_the_create_job_of_this_transaction_goes_out_with_the_call(self):
        partner = self.env["res.partner"].create({"name": "Created", "phone": "v1"})
        partner.write({"email": "created@example.com"})  # a younger job, merged
        create_job, write_job = self.get_jobs(self.config)
        self.assertEqual((create_job.event, write_job.event), ("create", "write"))
        answer = self.send(partner)
        self.assertTrue(answer["success"], answer)
        request, = self.server.requests
        self.assertEqual((request.headers[KEY], request.headers[EVENT]),
                         (create_job.idempotency_key, "create"))
        self.assertEqual(request.json()["email"], "created@example.com")
        self.assertEqual((create_job.state, create_job.attempt), ("done", 1))
        self.assertEqual(create_job.payload, request.body.decode())
        self.assertEqual(write_job.state, "cancelled")
        self.assertIn("Merged into a direct call", write_job.last_error)
        self.assertEqual(answer["queued_job_ids"], [])
        # The log row is linked to the job once the caller commits (real
        # transactions: TestDirectCallTakeOverOfACommittedJob).
        self.deliver()
        self.assertEqual(len(self.server.requests), 1, "the queue sends nothing more")

    def test_an_undelivered_take_over_keeps_its_key_and_the_payload_attempted(self):
        partner = self.env["res.partner"].create({"name": "Down", "phone": "v1"})
        job = self.get_jobs(self.config)
        for _attempt in range(3):
            self.server.queue(503, {})
        answer = self.send(partner)
        self.assertFalse(answer["success"])
        self.assertEqual(answer["queued_job_ids"], job.ids)
        sent = self.server.requests
        self.assertEqual({(r.headers[KEY], r.headers[EVENT]) for r in sent},
                         {(job.idempotency_key, "create")}, "every inline attempt")
        self.assertEqual((job.state, job.attempt, job.payload),
                         ("pending", 3, sent[0].body.decode()))
        partner.phone = "v2"  # a change after the call: its own job, after this one
        self.pass_time(job)
        self.deliver()
        retried = self.server.requests[3]
        self.assertEqual((retried.headers[KEY], retried.body), (job.idempotency_key, sent[0].body))
        self.assertEqual(job.state, "done")
        self.pass_time(self.get_jobs(self.config))
        self.deliver()
        self.assertEqual(self.bodies()[-1]["phone"], "v2", "the remote ends with Odoo's state")

    def test_without_a_job_a_fresh_key_and_manual_and_the_queue_keeps_them(self):
        partner = self.env["res.partner"].with_context(tracking_disable=True).create(
            {"name": "No trigger", "phone": "v1"})
        self.get_jobs(self.config).unlink()  # as if delivered long ago
        for _attempt in range(3):
            self.server.queue(503, {})
        answer = self.send(partner)
        job = self.env["bj.api.sync.job"].browse(answer["queued_job_ids"])
        keys = {(r.headers[KEY], r.headers[EVENT], r.body) for r in self.server.requests}
        self.assertEqual(len(keys), 1, "one key, one event, one payload for every attempt")
        key, event, body = keys.pop()
        self.assertEqual((event, job.event, job.idempotency_key, job.payload),
                         ("manual", "manual", key, body.decode()))
        self.assertEqual(self.get_jobs(self.config), job, "the only job of the call")
        self.pass_time(job)
        self.deliver()
        self.assertEqual((self.server.requests[-1].headers[KEY], self.server.requests[-1].body),
                         (key, body))
        self.assertEqual(job.state, "done")

    def test_a_delivery_without_a_job_leaves_none(self):
        partner = self.env["res.partner"].create({"name": "Delivered"})
        self.get_jobs(self.config).unlink()
        answer = self.send(partner)
        self.assertTrue(answer["success"])
        self.assertFalse(self.get_jobs(self.config))
        self.assertEqual(self.server.requests[0].headers[EVENT], "manual")

    def test_a_record_in_backoff_is_held_and_queued_behind(self):
        """The finding, in one transaction: v0 waits in backoff, the call has v1."""
        self.config.write({"retry_base_delay": 30, "retry_max_delay": 30})
        partner = self.env["res.partner"].create({"name": "Held", "phone": "v0"})
        older = self.get_jobs(self.config)
        self.server.queue(503, {})
        self.deliver()
        self.assertEqual((older.state, older.attempt), ("pending", 1))
        partner.phone = "v1"
        write_job = self.get_jobs(self.config) - older
        answer = self.send(partner)
        self.assertFalse(answer["success"])
        self.assertEqual((answer["held_ids"], answer["unsent_ids"]), (partner.ids, partner.ids))
        self.assertEqual(answer["error"], f"Not sent: older deliveries [{older.id}] of records "
                                          f"[{partner.id}] are unfinished; queued behind them.")
        self.assertEqual(answer["queued_job_ids"], write_job.ids,
                         "the never-attempted job already carries the state")
        self.assertIsNone(answer["status_code"])
        self.assertEqual(len(self.server.requests), 1, "nothing sent before the older job")
        self.pass_time(older)
        self.deliver()
        self.assertEqual([body["phone"] for body in self.bodies()], ["v0", "v0", "v1"])

    def test_held_without_a_job_queues_one_built_at_its_first_attempt(self):
        config = self.make_out_config(name="No triggers", path="/plain")
        partner = self.env["res.partner"].create({"name": "Plain", "phone": "v0"})
        older = self.env["bj.api.sync.job"]._bj_enqueue(config._bj_plan(), partner, "manual")
        older.write({"payload": '{"phone": "v0"}', "attempt": 1})
        partner.phone = "v1"
        answer = self.send_to(config, partner)
        job = self.env["bj.api.sync.job"].browse(answer["queued_job_ids"])
        self.assertEqual((answer["held_ids"], job.event, job.payload, job.attempt),
                         (partner.ids, "manual", False, 0))
        self.deliver()
        self.assertEqual([r.json()["phone"] for r in self.server.requests if r.path == "/plain"],
                         ["v0", "v1"])

    def send_to(self, config, records):
        return self.env["bj.api.sync.config"]._make_outbound_http_request(records, config)


def readme_entry_point_example():
    """The code block of the usage guide's section on the entry point."""
    section = doc_section(USAGE, "From code: the original entry point")
    return section.split("```python\n", 1)[1].split("```", 1)[0]


class CommittedOutboundMixin(CommittedDataMixin):
    """A committed Out configuration on Contacts (name, phone) posting to the
    sink, with a committed partner; everything deleted afterwards."""

    config_values = {}

    def setUp(self):
        super().setUp()
        with self.committed_env() as env:
            env["ir.config_parameter"].set_param(delivery_worker.PARAM_RUN_SECONDS, 10)
            config = self.committed_out_config(env, {
                "name": "Direct order", "request_url": self.server.url + "/contacts",
                "retry_base_delay": 0, "retry_max_delay": 0,
                "line_ids": line_commands(env, "res.partner", [
                    ("id", "res_id", {"is_identifier": True}), ("name", "name", None),
                    ("phone", "phone", None)]),
                **self.config_values,
            })
            partner = env["res.partner"].create({"name": "Raced", "phone": "v0"})
            self.config_id, self.partner_id = config.id, partner.id
        self.addCleanup(self._delete_data)

    def _delete_data(self):
        with self.committed_env() as env:
            env["ir.config_parameter"].set_param(delivery_worker.PARAM_RUN_SECONDS, False)
            env["bj.api.log"].search([("config_id", "=", self.config_id)]).unlink()
            env["bj.api.sync.job"].search([("config_id", "=", self.config_id)]).unlink()
            env["bj.api.sync.config"].browse(self.config_id).unlink()
            env["res.partner"].browse(self.partner_id).unlink()

    def run_worker(self, wait_for_retries=False):
        with patch.object(delivery_worker, "WAIT_FOR_RETRIES", wait_for_retries), \
                self.committed_env() as env:
            env["bj.api.sync.job"]._cron_deliver_jobs()

    def worker_thread(self, wait_for_retries=True):
        thread = threading.Thread(target=self.run_worker, args=(wait_for_retries,),
                                  name="bj-test-worker")
        thread.start()
        return thread

    def jobs(self, env):
        return env["bj.api.sync.job"].search([("config_id", "=", self.config_id)], order="id")

    def direct_call(self, env):
        return env["bj.api.sync.config"]._make_outbound_http_request(
            self.partner_id, self.config_id)

    def phones(self):
        return [request.json()["phone"] for request in self.server.requests]

    def queue_slow_answer(self):
        """The sink's next answer takes a second; the event is set once its
        request has arrived."""
        arrived = threading.Event()

        def slow(request):
            arrived.set()
            time.sleep(1)
            return {"ok": True}

        self.server.queue(200, slow)
        return arrived


@tagged("post_install", "-at_install")
class TestDirectCallRacesTheQueue(CommittedOutboundMixin, BaseCase):
    config_values = {"retry_base_delay": 2, "retry_max_delay": 2}

    def setUp(self):
        super().setUp()
        self.startPatcher(patch.object(OutboundCall, "sleep", staticmethod(no_wait)))

    def assertHeldBehindTheSlowAnswer(self, worker, answer):
        """Once ``worker`` is done: the call was held behind the job the worker
        was sending (v0, answered slowly), and v1 left once v0 was answered."""
        worker.join(30)
        self.run_worker()
        self.assertEqual(answer["held_ids"], [self.partner_id], answer)
        self.assertEqual(self.phones(), ["v0", "v1"])
        first, second = self.server.requests
        self.assertGreaterEqual(second.received_at - first.received_at, 1,
                                "v1 leaves once v0 is answered")

    def test_the_finding_a_job_in_backoff_with_v0_and_a_direct_call_with_v1(self):
        with self.committed_env() as env:
            env["bj.api.sync.config"]._enqueue_outbound_records(self.partner_id, self.config_id)
        self.server.queue(503, {})
        self.run_worker()  # v0 refused: the job waits 1 to 2 s
        worker = self.worker_thread()  # it waits for the retry, then sends it
        with self.committed_env() as env:
            env["res.partner"].browse(self.partner_id).phone = "v1"
            answer = self.direct_call(env)
        worker.join(30)
        self.run_worker()  # what the thread left, if anything
        phones = self.phones()
        self.assertEqual(phones[-1], "v1", "the remote ends with Odoo's state")
        self.assertNotIn("v0", phones[phones.index("v1"):], "v0 never sent after v1")
        self.assertEqual(answer["held_ids"], [self.partner_id], answer)
        with self.committed_env() as env:
            self.assertEqual(set(self.jobs(env).mapped("state")), {"done"})

    def test_a_worker_skips_the_job_a_direct_call_took_over(self):
        with self.committed_env() as env:
            job = env["bj.api.sync.config"]._enqueue_outbound_records(
                self.partner_id, self.config_id)
            key = job.idempotency_key
            worker = None

            def start_worker(request):
                nonlocal worker
                worker = self.worker_thread(wait_for_retries=False)
                worker.join(30)  # the worker's whole run, while the call waits
                return {"ok": True}

            self.server.clear()
            self.server.queue(200, start_worker)
            answer = self.direct_call(env)
        self.assertFalse(worker.is_alive())
        self.assertTrue(answer["success"], answer)
        self.run_worker()
        self.assertEqual([request.headers[KEY] for request in self.server.requests], [key],
                         "sent once, by the direct call")
        with self.committed_env() as env:
            self.assertEqual(self.jobs(env).mapped("state"), ["done"])

    def test_a_job_claimed_after_the_callers_snapshot_is_not_sent_twice(self):
        with self.committed_env() as env:
            job = env["bj.api.sync.config"]._enqueue_outbound_records(
                self.partner_id, self.config_id)
            key = job.idempotency_key
        with self.committed_env() as env:
            # The caller's snapshot: the job is pending and never attempted.
            self.assertEqual(self.jobs(env).mapped("attempt"), [0])
            self.run_worker()  # another worker delivers it meanwhile
            answer = self.direct_call(env)
        # Decided from the jobs as committed now: the job is done, nothing holds.
        self.assertEqual(answer["held_ids"], [], answer)
        self.run_worker()
        keys = [request.headers[KEY] for request in self.server.requests]
        self.assertEqual(keys.count(key), 1, "the worker's claim is not sent again")
        self.assertEqual(len(keys), 2, "the call's state goes out behind it, once")

    def test_a_record_changed_since_the_callers_snapshot_is_never_sent_stale(self):
        with self.committed_env() as env:
            self.assertEqual(env["res.partner"].browse(self.partner_id).phone, "v0")
            with self.committed_env() as other:
                other["res.partner"].browse(self.partner_id).phone = "v1"
            with mute_logger("odoo.sql_db"), self.assertRaises(errors.SerializationFailure):
                self.direct_call(env)
            env.cr.rollback()
        self.assertFalse(self.server.requests, "nothing sent: Odoo retries the request")

    def test_a_job_queued_and_claimed_after_the_callers_snapshot_holds_the_record(self):
        arrived = self.queue_slow_answer()
        with self.committed_env() as env:
            self.assertEqual(env["res.partner"].browse(self.partner_id).phone, "v0")
            with self.committed_env() as other:  # after the caller's snapshot
                other["bj.api.sync.config"]._enqueue_outbound_records(
                    self.partner_id, self.config_id)
            worker = self.worker_thread(wait_for_retries=False)
            self.assertTrue(arrived.wait(10))
            env["res.partner"].browse(self.partner_id).phone = "v1"
            answer = self.direct_call(env)
        self.assertHeldBehindTheSlowAnswer(worker, answer)

    def test_a_dead_job_retried_during_a_direct_call_is_built_after_it(self):
        with self.committed_env() as env:
            dead = env["bj.api.sync.config"]._enqueue_outbound_records(
                self.partner_id, self.config_id)
            dead.write({"state": "dead", "attempt": 1, "attempt_limit": 1,
                        "payload": '{"phone": "older"}'})
        with self.committed_env() as env:
            env["res.partner"].browse(self.partner_id).phone = "v1"
            self.assertTrue(self.direct_call(env)["success"])
            with self.committed_env() as other:  # a manager's Retry, meanwhile
                other["bj.api.sync.job"].browse(dead.id).write({
                    "state": "pending", "payload": False, "attempt_limit": 6,
                    "next_attempt_at": fields.Datetime.now()})
            self.run_worker()  # the record is the call's until it commits
            self.assertEqual(self.phones(), ["v1"])
        time.sleep(delivery_worker.IDLE_POLL + 0.2)
        self.run_worker()
        self.assertEqual(self.phones(), ["v1", "v1"], "never the committed v0 after v1")

    def test_a_job_of_a_record_being_saved_waits_for_the_save(self):
        with self.committed_env() as env:
            job_id = env["bj.api.sync.config"]._enqueue_outbound_records(
                self.partner_id, self.config_id).id
        with self.committed_env() as env:
            env["res.partner"].browse(self.partner_id).phone = "v1"
            env.flush_all()  # written, not committed
            self.run_worker()
            self.assertFalse(self.server.requests, "v0 would be older than the save")
            with self.committed_env() as other:
                job = other["bj.api.sync.job"].browse(job_id)
                self.assertEqual((job.state, job.attempt), ("pending", 0), "not counted")
        time.sleep(delivery_worker.IDLE_POLL + 0.2)
        self.run_worker()
        self.assertEqual(self.phones(), ["v1"])

    def test_a_direct_call_while_a_job_is_being_sent_waits_behind_it(self):
        with self.committed_env() as env:
            env["bj.api.sync.config"]._enqueue_outbound_records(self.partner_id, self.config_id)
        arrived = self.queue_slow_answer()
        worker = self.worker_thread(wait_for_retries=False)
        self.assertTrue(arrived.wait(10))
        with self.committed_env() as env:
            env["res.partner"].browse(self.partner_id).phone = "v1"
            answer = self.direct_call(env)
        self.assertHeldBehindTheSlowAnswer(worker, answer)


@tagged("post_install", "-at_install")
class TestDirectCallInTheCallersTransaction(CommittedOutboundMixin, BaseCase):
    """The usage guide's pattern keeps the queued jobs; raising rolls them back with
    the changes they carry (real transactions)."""

    def run_action(self, code):
        with self.committed_env() as env:
            action = env["ir.actions.server"].create({
                "name": "Send to the CRM", "state": "code", "code": code,
                "model_id": env["ir.model"]._get_id("res.partner"),
            })
            self.addCleanup(self._delete_action, action.id)
        with self.committed_env() as env:
            try:
                env["ir.actions.server"].browse(action.id).with_context(
                    active_model="res.partner", active_id=self.partner_id,
                    active_ids=[self.partner_id]).run()
            except Exception:  # noqa: BLE001 - the action's UserError ends the transaction
                env.cr.rollback()
                raise

    def _delete_action(self, action_id):
        with self.committed_env() as env:
            env["ir.actions.server"].browse(action_id).unlink()

    def committed_jobs(self):
        with self.committed_env() as env:
            return [(job.state, job.payload) for job in self.jobs(env)]

    def test_the_documented_pattern_keeps_the_queued_jobs(self):
        with self.committed_env() as env:
            env["ir.model.data"].create({
                "module": "my_module", "name": "my_out_configuration",
                "model": "bj.api.sync.config", "res_id": self.config_id})
        for _attempt in range(3):
            self.server.queue(503, {})
        self.run_action("record.write({'phone': 'v1'})\n" + readme_entry_point_example())
        (state, payload), = self.committed_jobs()
        self.assertEqual(state, "pending")
        self.assertIn('"phone": "v1"', payload)

    def test_raising_rolls_the_jobs_back_with_the_change(self):
        for _attempt in range(3):
            self.server.queue(503, {})
        with self.assertRaisesRegex(Exception, "503"):
            self.run_action(
                "record.write({'phone': 'v1'})\n"
                "result = env['bj.api.sync.config']._make_outbound_http_request(\n"
                f"    record, {self.config_id})\n"
                "if not result.success:\n"
                "    raise UserError(result.error)\n"
            )
        self.assertEqual(self.committed_jobs(), [], "no job carries a state Odoo never held")
        with self.committed_env() as env:
            self.assertEqual(env["res.partner"].browse(self.partner_id).phone, "v0")
        self.assertEqual(self.phones(), ["v1"] * 3)


@tagged("post_install", "-at_install")
class TestDirectCallTakeOverOfACommittedJob(CommittedOutboundMixin, BaseCase):
    """The call takes over only the jobs its caller's transaction queued: they
    vanish with a rollback.  A committed never-attempted job (the usual case:
    the record's create or write job of an earlier request) holds the record
    like any older unfinished job."""

    def setUp(self):
        super().setUp()
        self.startPatcher(patch.object(OutboundCall, "sleep", staticmethod(no_wait)))

    def enqueue(self, env):
        return env["bj.api.sync.config"]._enqueue_outbound_records(
            self.partner_id, self.config_id)

    def bodies_per_key(self):
        bodies = {}
        for request in self.server.requests:
            bodies.setdefault(request.headers[KEY], set()).add(request.body)
        return {key: len(found) for key, found in bodies.items()}

    def test_a_committed_job_holds_and_a_rolled_back_call_leaves_one_body_per_key(self):
        """Were the call to send v1 under the committed job's key and the
        caller roll back, the job would send v0 under it: an API honouring
        Idempotency-Key would answer the replay of v1 and keep it."""
        with self.committed_env() as env:
            key = self.enqueue(env).idempotency_key
        with self.committed_env() as env:
            env["res.partner"].browse(self.partner_id).phone = "v1"
            answer = self.direct_call(env)
            self.assertEqual((answer["success"], answer["held_ids"]),
                             (False, [self.partner_id]), answer)
            env.cr.rollback()  # the caller raises after the call
        self.run_worker()
        self.assertEqual(self.phones(), ["v0"])
        self.assertEqual(self.server.requests[0].headers[KEY], key)
        self.assertEqual(set(self.bodies_per_key().values()), {1})

    def test_a_rolled_back_call_takes_its_own_job_with_it(self):
        """The job the caller's transaction queued is taken over, and rolls
        back with it: nothing is sent again, under its key or any other."""
        with self.committed_env() as env:
            env["res.partner"].browse(self.partner_id).phone = "v1"
            self.enqueue(env)
            self.assertTrue(self.direct_call(env)["success"])
            env.cr.rollback()
        self.run_worker()
        self.assertEqual(self.phones(), ["v1"])
        with self.committed_env() as env:
            self.assertFalse(self.jobs(env))

    def test_a_rolled_back_call_keeps_the_log_of_what_it_sent(self):
        """The log row of an attempt survives the caller's rollback (readme/USAGE.md,
        bj.api.log._bj_write_log): the request did leave."""
        with self.committed_env() as env:
            env["res.partner"].browse(self.partner_id).phone = "v1"
            self.enqueue(env)
            answer = self.direct_call(env)
            self.assertTrue(answer["success"])
            env.cr.rollback()
        with self.committed_env() as env:
            log = env["bj.api.log"].browse(answer["log_id"])
            self.assertTrue(log.exists(), "the sent request left no log row")
            self.assertFalse(log.job_id, "its job rolled back")

    def test_taking_over_a_job_costs_no_wait(self):
        """The log row is written on a cursor of its own, with no link to the
        job that the caller's transaction holds: nothing to wait for."""
        with self.committed_env() as env:
            job_id = self.enqueue(env).id
            started = time.monotonic()
            answer = self.direct_call(env)
            elapsed = time.monotonic() - started
            self.assertTrue(answer["success"], answer)
        self.assertLess(elapsed, 2, f"one instant request took {elapsed:.1f} s")
        with self.committed_env() as env:
            self.assertEqual(env["bj.api.log"].browse(answer["log_id"]).job_id.id, job_id,
                             "linked to its job once the caller committed")

    def test_two_direct_calls_racing_on_one_record(self):
        """The second call waits for the first one's record lock; once the
        first commits (its job done), the second, whose snapshot predates that
        commit, decides from the committed jobs as they are now: none holds
        the record, and it sends."""
        arrived = self.queue_slow_answer()
        first = {}

        def call_first():
            with self.committed_env() as env:
                self.enqueue(env)
                first["answer"] = self.direct_call(env)

        thread = threading.Thread(target=call_first, name="bj-test-first-call")
        thread.start()
        self.assertTrue(arrived.wait(10))
        with self.committed_env() as env:
            self.assertEqual(env["res.partner"].browse(self.partner_id).phone, "v0")  # snapshot
            second = self.direct_call(env)
        thread.join(30)
        self.assertTrue(first["answer"]["success"], first["answer"])
        with self.committed_env() as env:
            self.assertEqual(self.jobs(env).mapped("state")[0], "done")
        self.assertEqual((second["success"], second["held_ids"], second["error"]),
                         (True, [], None), "held behind a job that is done")


@tagged("post_install", "-at_install")
class TestUsersSavesDuringAScriptedBuild(CommittedDataMixin, BaseCase):
    """The worker share-locks the records of every job it claimed before it
    builds their payloads (``_defer_records_in_use``), then builds them one job
    at a time when the lines run scripts: a user's save of one of them waits
    for the scripts of all the jobs before it."""

    SCRIPT_SECONDS = 1.5
    JOBS = 3

    def setUp(self):
        super().setUp()
        with self.committed_env() as env:
            env["ir.config_parameter"].set_param(delivery_worker.PARAM_RUN_SECONDS, 20)
            config = self.committed_out_config(env, {
                "name": "Scripted build",
                "line_ids": line_commands(env, "res.partner", [
                    ("id", "id", {"is_identifier": True}),
                    ("name", "name", {"value_type": "python_plain",
                                      "python_script": f"time.sleep({self.SCRIPT_SECONDS})\n"
                                                       "result = record.name"}),
                ]),
            })
            partners = env["res.partner"].create(
                [{"name": f"Scripted {n}"} for n in range(self.JOBS)])
            self.config_id, self.partner_ids = config.id, partners.ids
            for partner in partners:  # one job each
                env["bj.api.sync.config"]._enqueue_outbound_records(partner.id, config.id)
        self.addCleanup(self.delete_committed, self.config_id, self.partner_ids)
        self.addCleanup(self._reset_param)

    def _reset_param(self):
        with self.committed_env() as env:
            env["ir.config_parameter"].set_param(delivery_worker.PARAM_RUN_SECONDS, False)

    def run_worker(self):
        with patch.object(delivery_worker, "WAIT_FOR_RETRIES", False), \
                self.committed_env() as env:
            env["bj.api.sync.job"]._cron_deliver_jobs()

    def test_a_save_does_not_wait_for_other_jobs_scripts(self):
        worker = threading.Thread(target=self.run_worker, name="bj-test-worker")
        worker.start()
        time.sleep(0.5)  # claimed, the first script running
        with self.committed_env() as env:
            started = time.monotonic()
            env["res.partner"].browse(self.partner_ids[-1]).phone = "saved"
            env.flush_all()
            waited = time.monotonic() - started
        worker.join(60)
        self.assertLess(waited, 1, f"a user's save of the last record waited {waited:.1f} s "
                                   "for the scripts of the jobs before it")

    def test_a_new_change_of_another_configuration_is_not_held_by_the_scripts(self):
        """Point 6: a new change starts its first attempt within 2 s.  With the
        one delivery action busy building a scripted configuration's payloads
        (claimed alone, job after job), a plain configuration's new change
        waited for all of them."""
        with self.committed_env() as env:
            plain = self.committed_out_config(env, {
                "name": "Plain", "request_url": self.server.url + "/plain",
                "line_ids": line_commands(env, "res.partner", [
                    ("id", "id", {"is_identifier": True}), ("name", "name", None)])})
            self.addCleanup(self.delete_committed, plain.id)
        worker = threading.Thread(target=self.run_worker, name="bj-test-worker")
        worker.start()
        time.sleep(0.5)  # the scripted jobs claimed, the first script running
        with self.committed_env() as env:
            env["bj.api.sync.config"]._enqueue_outbound_records(self.partner_ids[0], plain.id)
        queued = time.monotonic()
        deadline = queued + 30
        while time.monotonic() < deadline and not any(
                request.path == "/plain" for request in self.server.requests):
            time.sleep(0.05)
        arrived = next((request.received_at for request in self.server.requests
                        if request.path == "/plain"), None)
        worker.join(60)
        self.assertIsNotNone(arrived, "never sent by the run")
        self.assertLess(arrived - queued, 2,
                        f"the new change's first attempt came {arrived - queued:.1f} s after it")


@tagged("post_install", "-at_install")
class TestRetryOfAnOlderDeadJob(BjOutboundCase):
    """A job never delivers a state older than one already accepted: Retry of a
    dead job rebuilds its payload from the record as it is now, and it is older
    (by id) than the record's jobs queued since, some of which already carry a
    payload built before."""

    def test_a_retried_dead_job_is_not_overtaken_by_an_older_state(self):
        config = self.make_out_config(trigger_on_create=True, trigger_on_write=True,
                                      retry_base_delay=30, retry_max_delay=30)
        partner = self.env["res.partner"].create({"name": "Retried", "phone": "v0"})
        dead = self.get_jobs(config)
        self.server.queue(422, {"error": "rejected"})
        self.deliver()
        self.assertEqual(dead.state, "dead")
        partner.phone = "v1"
        in_backoff = self.get_jobs(config) - dead
        self.server.queue(503, {})
        self.deliver()  # built with v1, refused: waits 30 s with its payload
        self.assertEqual((in_backoff.state, in_backoff.attempt), ("pending", 1))
        partner.phone = "v2"
        dead.action_retry()  # the manager fixed the cause
        self.deliver()  # the retried job is older: it goes first, built now (v2)
        self.pass_time(self.get_jobs(config).filtered(lambda job: job.state == "pending"))
        self.deliver()
        phones = [body["phone"] for body in self.bodies()]
        self.assertEqual(phones[-1], "v2",
                         f"the remote ends with v1 while Odoo holds v2 (sent: {phones})")
