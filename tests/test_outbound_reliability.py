"""The outbox cannot lose, repeat or stall a change: lost updates, failure
isolation, the watchdog budget, fencing, commit latency and retry timing."""

import os
import signal
import threading
import time
from datetime import timedelta
from unittest.mock import patch

from odoo import Command, fields
from odoo.exceptions import AccessError
from odoo.tests import BaseCase, tagged
from odoo.tools import config as odoo_config

from ..services import cron_clock, delivery_worker, outbound
from ..services.scripts import PARAM_SCRIPT_SECONDS
from .common import BjOutboundCase, CommittedDataMixin


@tagged("post_install", "-at_install")
class TestCommittedOutbox(CommittedDataMixin, BaseCase):
    """The outbox with committed data and workers on their own connections."""

    def setUp(self):
        super().setUp()
        with self.committed_env() as env:
            config = self.committed_out_config(env, {
                "name": "Committed outbox test",
                "trigger_on_create": True,
                "trigger_on_write": True,
                "retry_base_delay": 1,
                "line_ids": [
                    Command.create({"field_id": env["ir.model.fields"]._get("res.partner", name).id,
                                    "external_key": name, "value_type": "plain",
                                    "is_identifier": name == "id", "sequence": index})
                    for index, name in enumerate(("id", "name"))
                ],
            })
            self.config_id = config.id
        self.partner_ids = []
        self.addCleanup(self.delete_data)

    def delete_data(self):
        self.delete_committed(self.config_id, self.partner_ids)

    def create_partner(self, name):
        with self.committed_env() as env:
            partner = env["res.partner"].create({"name": name})
            self.partner_ids.append(partner.id)
            return partner.id

    def run_worker(self):
        """One delivery run in a thread of its own, committing as a cron worker does."""
        def deliver():
            with self.committed_env() as env:
                env["bj.api.sync.job"]._cron_deliver_jobs()

        thread = threading.Thread(target=deliver)
        thread.start()
        return thread

    def names_received(self):
        return [request.json()["name"] for request in self.server.requests]

    def jobs(self):
        with self.committed_env() as env:
            return [(job.event, job.state) for job in env["bj.api.sync.job"].search(
                [("config_id", "=", self.config_id)], order="id")]

    def test_a_change_committed_between_export_and_merge_is_delivered(self):
        """The export and the merge of younger jobs share one snapshot: an update
        made after the export read the record keeps its own job.  (It commits
        once the payloads are: the build share-locks the records it reads.)"""
        partner_id = self.create_partner("v1")
        merge = delivery_worker.DeliveryWorker._merge_younger_jobs

        updates = []

        def update():
            with self.committed_env() as env:  # another transaction
                env["res.partner"].browse(partner_id).name = "v2"

        def update_then_merge(worker, plan, ids):
            if not updates:
                updates.append(threading.Thread(target=update))
                updates[0].start()
                updates[0].join(1)  # waits for the worker's lock on the record
            return merge(worker, plan, ids)

        with patch.object(delivery_worker.DeliveryWorker, "_merge_younger_jobs",
                          update_then_merge):
            self.run_worker().join(60)
        updates[0].join(60)
        self.run_worker().join(60)
        self.assertEqual(self.names_received(), ["v1", "v2"], "the update arrives, after")
        self.assertEqual(self.jobs(), [("create", "done"), ("write", "done")])

    def test_an_update_seen_by_the_export_is_merged(self):
        partner_id = self.create_partner("v1")
        with self.committed_env() as env:
            env["res.partner"].browse(partner_id).name = "v2"
        self.run_worker().join(60)
        self.assertEqual(self.names_received(), ["v2"])
        self.assertEqual(self.jobs(), [("create", "done"), ("write", "cancelled")])

    def job_row(self, job_id):
        """State, attempt, error, and whether the run named by the job holds its lease."""
        with self.committed_env() as env:
            env.cr.execute("SELECT state, attempt, last_error, worker FROM bj_api_sync_job "
                           "WHERE id = %s", [job_id])
            state, attempt, error, worker = env.cr.fetchone()
            env.cr.execute(f"SELECT count(*) FROM {delivery_worker.LEASE_TABLE} WHERE worker = %s",
                           [worker])
            exists = env.cr.fetchone()[0]
            env.cr.execute(f"SELECT 1 FROM {delivery_worker.LEASE_TABLE} WHERE worker = %s "
                           "FOR UPDATE SKIP LOCKED", [worker])
            return state, attempt, error, bool(exists and not env.cr.fetchall())

    def test_a_runaway_script_costs_its_worker_and_an_attempt(self):
        """A script that no budget check reaches (one long operation in C) holds
        its worker until Odoo's watchdog kills it (here: SIGKILL from the test,
        as the master does past limit_time_real).  The attempt was committed
        before the script ran; the next run gives the job back, and after its
        Maximum Attempts it is dead, with the reason on the job.  The job of
        another configuration, queued by the same change, loses nothing."""
        with self.committed_env() as env:
            config = env["bj.api.sync.config"].browse(self.config_id)
            other = config.copy({"name": "Committed outbox, no script", "max_attempts": 2})
            self.addCleanup(self.delete_committed, other.id)
            config.max_attempts = 2
            config.line_ids.filtered(lambda line: line.external_key == "name").write({
                "value_type": "python_plain", "python_script": "sum(range(10 ** 15))"})
        self.create_partner("Runaway")
        with self.committed_env() as env:
            job_id = env["bj.api.sync.job"].search([("config_id", "=", self.config_id)]).id
            other_job_id = env["bj.api.sync.job"].search([("config_id", "=", other.id)]).id
        self.assertGreater(other_job_id, job_id, "claimed after the runaway, were it batched")
        for attempt in (1, 2):
            pid = self.run_worker_process()
            try:
                deadline = time.monotonic() + 60
                while self.job_row(job_id)[:2] != ("running", attempt) or not self.job_row(
                        job_id)[3]:
                    self.assertLess(time.monotonic(), deadline, "the worker claims the job")
                    time.sleep(0.1)
                time.sleep(0.5)  # the script is running away
                state, counted, _error, locked = self.job_row(job_id)
                self.assertEqual((state, counted, locked), ("running", attempt, True),
                                 "the attempt is committed while the script runs")
            finally:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            deadline = time.monotonic() + 30
            while self.job_row(job_id)[3]:  # its connection ends with it
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.1)
        # The next run (a process too, as it could claim the job again) reclaims it.
        pid = self.run_worker_process()
        _pid, status = os.waitpid(pid, 0)
        self.assertEqual(status, 0)
        state, attempt, error, _locked = self.job_row(job_id)
        self.assertEqual((state, attempt), ("dead", 2))
        self.assertIn("stopped while building this delivery's payload", error)
        self.assertIn("worker limits", error)
        with self.committed_env() as env:
            logs = env["bj.api.log"].search([("job_id", "=", job_id)], order="id")
            self.assertEqual(logs.mapped("attempt"), [1, 2])
            self.assertTrue(all("cut short" in log.error_message for log in logs))
        self.assertEqual(self.job_row(other_job_id)[:2], ("done", 1))
        self.assertEqual(self.names_received(), ["Runaway"])

    def test_an_answer_is_committed_within_about_a_second(self):
        """While a slow request is still in flight, the outcome of a quick one is
        already visible to other transactions."""
        self.server.queue(200, {"ok": True})  # whichever request comes first
        self.server.queue(200, {"ok": True}, delay=6)
        self.create_partner("one")
        self.create_partner("two")
        worker = self.run_worker()
        states = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "done" not in states:
            time.sleep(0.2)
            states = [state for _event, state in self.jobs()]
        seen_at = time.monotonic()
        worker.join(30)
        self.assertEqual(sorted(states), ["done", "running"], "the slow one is still on the wire")
        self.assertLess(seen_at - self.server.requests[0].received_at, 2.5)


@tagged("post_install", "-at_install")
class TestOutboundReliability(BjOutboundCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.partners = cls.env["res.partner"].create(
            [{"name": f"Reliable {index}", "email": f"r{index}@example.com"} for index in range(6)]
        )

    def enqueue(self, config, partners):
        return self.env["bj.api.sync.job"]._bj_enqueue(config._bj_plan(), partners, "manual")

    def test_one_failing_job_fails_alone(self):
        """Whatever makes a payload fail, that job fails alone and records why;
        the other jobs and configurations are delivered and the run raises nothing."""
        self.env["ir.config_parameter"].set_param(PARAM_SCRIPT_SECONDS, "1")
        good = self.make_out_config(name="Good")
        scripted = {
            "script raising": ("raise UserError('refused')", "dead", "refused"),
            "unserializable value": ("datetime.timedelta(days=1)", "pending", "TypeError"),
            # Out of time may be the load of the moment: retried by the policy.
            "script running too long": ("while True:\n    pass", "pending", "budget"),
            "sleeping script": ("time.sleep(30)", "pending", "budget"),
        }
        cases = {}
        for index, (name, (script, _state, _why)) in enumerate(scripted.items()):
            config = self.make_out_config(name=name, max_attempts=3)
            config.line_ids[-1].write({"value_type": "python_plain", "python_script": script})
            cases[name] = self.enqueue(config, self.partners[index])
        access = self.make_out_config(name="access error", max_attempts=3)
        database = self.make_out_config(name="database error", max_attempts=3)
        cases["access error"] = self.enqueue(access, self.partners[4])
        cases["database error"] = self.enqueue(database, self.partners[5])
        good_jobs = self.enqueue(good, self.partners)
        real_export = outbound.export_payloads

        def export(env, plan, records):
            if plan.config_id == access.id:
                # A test double's message; pylint: disable-next=translation-required
                raise AccessError("not for you")
            if plan.config_id == database.id:
                env.cr.execute("SELECT 1 / 0", log_exceptions=False)
            return real_export(env, plan, records)

        started = time.monotonic()
        with patch.object(outbound, "export_payloads", export):
            self.deliver()
        self.assertLess(time.monotonic() - started, 8, "scripts stop at their budget")
        self.assertEqual(set(good_jobs.mapped("state")), {"done"})
        self.assertEqual(len(self.server.requests), len(good_jobs))
        expected = {name: (state, why) for name, (_script, state, why) in scripted.items()}
        expected["access error"] = ("pending", "not for you")
        expected["database error"] = ("pending", "division by zero")
        for name, (state, why) in expected.items():
            with self.subTest(name):
                job = cases[name]
                self.assertEqual(job.state, state)
                self.assertIn(why, job.last_error)
                self.assertTrue(job.log_ids, "the failure is logged")
        cron = self.env.ref(delivery_worker.WORKER_CRON)
        self.assertTrue(cron.active)

    def test_a_run_stays_within_the_cron_time_limit(self):
        """A slow API and a short limit: each run ends in time, counting the
        requests in flight at their timeouts, and every job is delivered."""
        config = self.make_out_config(name="Slow API", read_timeout=5)
        jobs = self.enqueue(config, self.partners)
        for _job in jobs:
            self.server.queue(200, {"ok": True}, delay=1)
        limit = 10
        limits = {"limit_time_real_cron": limit, "limit_time_real": 120}
        runs = []
        # As in a cron worker's scheduled action, with nothing spent before it.
        with patch.dict(odoo_config.options, limits), \
                patch.object(cron_clock, "seconds_used", return_value=0):
            for _run in range(len(jobs) + 2):
                started = time.monotonic()
                with self.scheduled_action():
                    self.deliver()
                runs.append(time.monotonic() - started)
                if set(jobs.mapped("state")) == {"done"}:
                    break
        self.assertEqual(set(jobs.mapped("state")), {"done"})
        self.assertGreater(len(runs), 1, "the work needed several runs")
        self.assertLess(max(runs), limit * delivery_worker.RUN_SHARE + 1,
                        f"every run ended within its share of the limit: {runs}")

    def test_outcomes_are_fenced(self):
        """Only the claim that sent an attempt may write its outcome."""
        config = self.make_out_config(name="Fenced")
        job = self.enqueue(config, self.partners[0])
        job.write({"state": "running", "worker": "other-run", "attempt": 2})
        worker = delivery_worker.DeliveryWorker(self.env)
        row = (job.id, "done", 200, None, fields.Datetime.now(), fields.Datetime.now(), None)
        worker.claims[job.id] = 2
        self.assertEqual(worker._update_rows(delivery_worker.OUTCOME_COLUMNS, [row],
                                             fence=True), set())
        job.invalidate_recordset()
        self.assertEqual(job.state, "running", "another run's claim")
        job.write({"worker": worker.name})
        worker.claims[job.id] = 1
        self.assertEqual(worker._update_rows(delivery_worker.OUTCOME_COLUMNS, [row],
                                             fence=True), set(), "a stale attempt")
        worker.claims[job.id] = 2
        self.assertEqual(worker._update_rows(delivery_worker.OUTCOME_COLUMNS, [row],
                                             fence=True), {job.id})
        job.invalidate_recordset()
        self.assertEqual(job.state, "done")

    def test_a_retry_goes_out_on_time(self):
        """A retry due in N seconds is sent N seconds after the answer by the
        same run, to the sub-second and never early, Retry-After included,
        instead of at the next cron tick."""
        config = self.make_out_config(name="On time", retry_base_delay=1, retry_max_delay=1)
        # (headers, shortest wait, longest wait): the backoff's jitter takes up to half.
        cases = [({"Retry-After": "3"}, 3, 3), ({}, 0.5, 1)]
        for headers, shortest, longest in cases:
            with self.subTest(headers=headers):
                self.server.clear()
                job = self.enqueue(config, self.partners[0])
                self.server.queue(503, {}, headers=headers)
                with patch.object(delivery_worker, "WAIT_FOR_RETRIES", True):
                    self.deliver()
                self.assertEqual(job.state, "done")
                first, second = self.server.requests
                waited = second.received_at - first.received_at
                self.assertGreaterEqual(waited, shortest, "never early")
                self.assertLess(waited, longest + 0.5, "to the sub-second")

    def test_no_polling_behind_an_older_job_in_a_long_backoff(self):
        """A due job held back by an older job of its record waiting out a long
        backoff: the run does not wait for it (it cannot go before the older
        one), ends at once, and wakes the cron only for the older one's due time."""
        config = self.make_out_config(name="Held back")
        older, younger = self.enqueue(config, self.partners[0]), self.enqueue(
            config, self.partners[0])
        due = fields.Datetime.now() + timedelta(seconds=3600)
        older.write({"attempt": 1, "next_attempt_at": due, "payload": "{}"})
        cron = self.env.ref(delivery_worker.WORKER_CRON)
        triggers = self.env["ir.cron.trigger"].sudo()
        before = triggers.search([("cron_id", "=", cron.id)])
        claims = []
        real_claim = delivery_worker.DeliveryWorker._claim

        def counting_claim(worker, limit):
            claims.append(time.monotonic())
            return real_claim(worker, limit)

        with patch.object(delivery_worker.DeliveryWorker, "_claim", counting_claim), \
                patch.object(delivery_worker, "WAIT_FOR_RETRIES", True):
            started = time.monotonic()
            self.deliver()
            elapsed = time.monotonic() - started
        self.assertEqual((older.state, younger.state), ("pending", "pending"))
        self.assertLess(elapsed, 1, "no waiting")
        self.assertEqual(len(claims), 1, "one look, no polling")
        self.assertEqual(self.server.requests, [])
        wake_ups = (triggers.search([("cron_id", "=", cron.id)]) - before).mapped("call_at")
        self.assertEqual(len(wake_ups), 1)
        lead = (due - wake_ups[0]).total_seconds()
        self.assertAlmostEqual(lead, delivery_worker.CRON_POLL_GAP + delivery_worker.run_budget(),
                               delta=2, msg="woken for the older job's due time, not at once")

    def test_a_far_retry_wakes_the_cron_shortly_before_it_falls_due(self):
        """Beyond what a run waits for, the cron is triggered early enough for
        the run started then to wait for the retry (the cron polls once a minute)."""
        config = self.make_out_config(name="Far retry")
        job = self.enqueue(config, self.partners[0])
        due = fields.Datetime.now() + timedelta(seconds=600)
        job.write({"next_attempt_at": due})
        cron = self.env.ref(delivery_worker.WORKER_CRON)
        triggers = self.env["ir.cron.trigger"].sudo()
        before = triggers.search([("cron_id", "=", cron.id)])
        with patch.object(delivery_worker, "WAIT_FOR_RETRIES", True):
            self.deliver()
        new = triggers.search([("cron_id", "=", cron.id)]) - before
        lead = (due - max(new.mapped("call_at"))).total_seconds()
        expected = delivery_worker.CRON_POLL_GAP + delivery_worker.run_budget()
        self.assertAlmostEqual(lead, expected, delta=2)
        self.assertGreater(lead, 70, "more than the cron's polling interval")

    def test_a_retry_after_date_is_never_early(self):
        """Retry-After as an HTTP-date: the delay is computed when the outcome
        is recorded, up to RESULTS_COMMIT_INTERVAL after the answer (while
        another request is in flight), but counted from the answer: the retry
        leaves that much before the date the server gave."""
        import math
        from email.utils import formatdate

        config = self.make_out_config(name="Dated retry", retry_base_delay=0, retry_max_delay=0)
        jobs = self.enqueue(config, self.partners[0]) | self.enqueue(config, self.partners[1])
        not_before = math.ceil(time.time()) + 2
        sent_at = []

        def record(request):
            sent_at.append(time.time())
            return {"ok": True}

        self.server.queue(503, {}, headers={"Retry-After": formatdate(not_before, usegmt=True)})
        self.server.queue(200, {"ok": True}, delay=0.9)  # the other job, in flight meanwhile
        self.server.queue(200, record)
        with patch.object(delivery_worker, "SEND_CONCURRENCY", 2), \
                patch.object(delivery_worker, "WAIT_FOR_RETRIES", True):
            self.deliver()
        self.assertEqual(set(jobs.mapped("state")), {"done"})
        self.assertTrue(sent_at)
        self.assertGreaterEqual(sent_at[0], not_before,
                                f"sent {not_before - sent_at[0]:.2f} s before the Retry-After date")

    def test_a_run_outside_a_cron_worker_fits_the_http_workers_limit(self):
        """Run Manually on the delivery action (or a server action calling the
        cron method) runs in an HTTP worker, which Odoo's watchdog kills after
        limit_time_real: the run's budget is taken from limit_time_real_cron
        instead, here four times longer than the worker may live."""
        limits = {"limit_time_real_cron": 600, "limit_time_real": 60}
        with patch.dict(odoo_config.options, limits):
            budget = delivery_worker.DeliveryWorker(self.env).budget
        self.assertLess(budget, 60, f"a {budget:.0f} s run in a worker killed after 60 s")

    def test_a_run_in_a_request_counts_what_the_request_used(self):
        """Threaded server: the HTTP watchdog counts from the request's start
        (``thread.start_time``), so a run started 30 s into a request that
        may last 60 s shares the 30 s left."""
        budgets = []

        def measure():
            threading.current_thread().start_time = time.time() - 30
            budgets.append(delivery_worker.DeliveryWorker(self.env).budget)

        limits = {"limit_time_real_cron": 600, "limit_time_real": 60}
        with patch.dict(odoo_config.options, limits):
            thread = threading.Thread(target=measure)
            thread.start()
            thread.join(10)
        self.assertAlmostEqual(budgets[0], 30 * delivery_worker.RUN_SHARE, delta=0.5)

    def test_a_payload_is_fenced_like_an_outcome(self):
        """A run whose lease died while it built payloads (its scripts are not
        interrupted by the loss) has had its jobs reclaimed and claimed again by
        another run: it still writes the payload it built onto the other run's
        claim (unfenced) and goes on to send the job, which the other run
        sends too, each with the payload it built."""
        config = self.make_out_config(name="Fenced build")
        job = self.enqueue(config, self.partners[0])
        worker = delivery_worker.DeliveryWorker(self.env)
        claimed = worker._claim(1)
        self.assertEqual(claimed, job)
        # Meanwhile: the lease lost, another run reclaimed the job and claimed it.
        job.write({"worker": "other-run", "attempt": 2})
        to_send = worker._prepare_payloads(claimed)
        job.invalidate_recordset()
        self.assertFalse(job.payload, "the other run's claim got this run's payload")
        self.assertFalse(to_send, "a job another run holds is sent by this one too")
