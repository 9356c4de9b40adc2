"""Several delivery workers on one outbox, with real transactions.

A TransactionCase cannot show this: its data lives in one uncommitted
transaction that other connections cannot see, and within one transaction
row locks never conflict.  These tests commit their data through cursors of
their own (and delete it afterwards), then run workers on separate database
connections, exactly like cron threads or separate Odoo servers do.
"""

import json
import threading
from unittest.mock import patch

from odoo import SUPERUSER_ID, api
from odoo.tests import BaseCase, tagged

from ..services import delivery_worker
from .common import CommittedDataMixin

# Two records' changes appear twice: their order must survive concurrency.
REPEATED_RECORDS = (9000001, 9000002)


@tagged("post_install", "-at_install")
class TestOutboundConcurrentWorkers(CommittedDataMixin, BaseCase):
    server_default = (200, None, {"ok": True}, 0.02)  # slow enough for workers to overlap

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # A run stops when nothing can be taken now, instead of polling for it.
        cls.startClassPatcher(patch.object(delivery_worker, "WAIT_FOR_RETRIES", False))

    def setUp(self):
        super().setUp()
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True})
            config = self.committed_out_config(env, {
                "name": "Concurrency test",
            })
            record_ids = [*range(9000001, 9000031), *REPEATED_RECORDS]
            jobs = env["bj.api.sync.job"].create([{
                "config_id": config.id,
                "event": "manual",
                "res_model": "res.partner",
                "res_ids": str(record_id),
                "payload": json.dumps({"record": record_id, "seq": seq}),
                "attempt_limit": 3,
            } for seq, record_id in enumerate(record_ids)])
            self.config_id, self.job_ids = config.id, jobs.ids
        self.addCleanup(self._delete_data)

    def _delete_data(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            env["bj.api.log"].search([("config_id", "=", self.config_id)]).unlink()
            env["bj.api.sync.job"].browse(self.job_ids).unlink()
            env["bj.api.sync.config"].browse(self.config_id).unlink()

    def run_worker(self, barrier=None):
        if barrier:
            barrier.wait()
        with self.registry.cursor() as cr:
            api.Environment(cr, SUPERUSER_ID, {})["bj.api.sync.job"]._cron_deliver_jobs()

    def read_jobs(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            jobs = env["bj.api.sync.job"].browse(self.job_ids)
            return [(job.state, job.worker, len(job.log_ids)) for job in jobs]

    def test_two_workers_never_send_a_job_twice(self):
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=self.run_worker, args=(barrier,), name=f"bj-worker-{n}")
                   for n in (1, 2)]
        # Small claims, so that the two workers interleave for sure.
        with patch.object(delivery_worker, "CLAIM_BATCH_SIZE", 2):
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        jobs = self.read_jobs()
        self.assertEqual({state for state, _worker, _logs in jobs}, {"done"})
        self.assertEqual({logs for _state, _worker, logs in jobs}, {1}, "one attempt each")
        workers = {worker.split(":")[2] for _state, worker, _logs in jobs}  # host:pid:thread:run
        self.assertEqual(workers, {"bj-worker-1", "bj-worker-2"}, "both workers delivered")
        keys = [request.headers["Idempotency-Key"] for request in self.server.requests]
        self.assertEqual(len(keys), len(self.job_ids))
        self.assertEqual(len(set(keys)), len(keys), "no job was sent twice")
        for record_id in REPEATED_RECORDS:
            sequence = [body["seq"] for body in (r.json() for r in self.server.requests)
                        if body["record"] == record_id]
            self.assertEqual(sequence, sorted(sequence), "changes of a record stay in order")

    def test_a_claim_takes_at_most_its_batch_whatever_the_plan(self):
        """``UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)``
        claims more than ``n`` jobs when PostgreSQL plans the IN as a semi-join
        that rescans the subquery: each rescan skips the rows the UPDATE has
        just changed and returns the next ``n``.  Table statistics decide the
        plan (a full test run flipped it), so the claim must not depend on it:
        here the planner is steered to the rescanning plan."""
        planner = ("enable_hashjoin", "enable_mergejoin", "enable_hashagg", "enable_material",
                   "enable_seqscan", "enable_bitmapscan", "enable_sort", "enable_memoize")
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            for setting in planner:
                cr.execute(f"SET LOCAL {setting} = off")
            worker = delivery_worker.DeliveryWorker(env)
            worker.commit = False  # one transaction: the settings hold, nothing is committed
            claimed = worker._claim(2)
            self.assertEqual(len(claimed), 2, f"a claim of 2 took {len(claimed)} jobs")
            cr.rollback()

    def test_a_locked_job_is_skipped_not_waited_for(self):
        locked_ids = self.job_ids[2:5]
        with self.registry.cursor() as holder:
            # Another worker in the middle of claiming these rows.
            holder.execute("SELECT id FROM bj_api_sync_job WHERE id IN %s FOR UPDATE",
                           [tuple(locked_ids)])
            with self.registry.cursor() as cr:
                # Without SKIP LOCKED the claim would wait for the holder: fail fast instead.
                cr.execute("SET lock_timeout = '2s'")
                api.Environment(cr, SUPERUSER_ID, {})["bj.api.sync.job"]._cron_deliver_jobs()
            states = [state for state, _worker, _logs in self.read_jobs()]
            self.assertEqual(states[2:5], ["pending"] * 3)
            self.assertEqual(set(states[:2] + states[5:]), {"done"})
            holder.rollback()
        self.run_worker()
        self.assertEqual({state for state, _worker, _logs in self.read_jobs()}, {"done"})
        self.assertEqual(len(self.server.requests), len(self.job_ids))


@tagged("post_install", "-at_install")
class TestDeadNotificationConcurrency(CommittedDataMixin, BaseCase):
    """Deliveries of one configuration dying at once in two transactions."""

    def setUp(self):
        super().setUp()
        with self.committed_env() as env:
            config = self.committed_out_config(env, {"name": "Dying together"})
            jobs = env["bj.api.sync.job"].create([{
                "config_id": config.id, "event": "manual", "res_model": "res.partner",
                "res_ids": str(record_id), "payload": "{}", "attempt_limit": 1,
            } for record_id in (9000101, 9000102, 9000103)])
            jobs.write({"state": "dead", "last_error": "422"})
            jobs[0]._bj_notify_dead()  # the burst's activity, open
            self.config_id, self.job_ids = config.id, jobs.ids
        self.addCleanup(self._delete_data)

    def _delete_data(self):
        with self.committed_env() as env:
            env["mail.activity"].search([("res_model", "=", "bj.api.sync.config"),
                                         ("res_id", "=", self.config_id)]).unlink()
        self.delete_committed(self.config_id)

    def test_two_transactions_refresh_one_note_quietly(self):
        first = self.registry.cursor()
        self.addCleanup(first.close)
        second = self.registry.cursor()
        self.addCleanup(second.close)
        jobs = api.Environment(first, SUPERUSER_ID, {})["bj.api.sync.job"]
        jobs.browse(self.job_ids[1])._bj_notify_dead()
        jobs.env.flush_all()
        other = api.Environment(second, SUPERUSER_ID, {})["bj.api.sync.job"]
        second.execute("SELECT 1")  # its snapshot, before the first commits
        failures = []

        def notify():
            try:
                other.browse(self.job_ids[2])._bj_notify_dead()
                second.commit()
            except Exception as error:  # noqa: BLE001 - reported below
                failures.append(error)

        with self.assertNoLogs("odoo.sql_db", level="ERROR"), \
                self.assertNoLogs("bj.api.outbound", level="WARNING"):
            thread = threading.Thread(target=notify)
            thread.start()
            thread.join(1)
            self.assertTrue(thread.is_alive(), "the second waits for the first's row")
            first.commit()
            thread.join(10)
        self.assertFalse(thread.is_alive())
        self.assertEqual(failures, [])
        with self.committed_env() as env:
            activities = env["mail.activity"].search([("res_model", "=", "bj.api.sync.config"),
                                                      ("res_id", "=", self.config_id)])
            self.assertEqual(len(activities), 1)
            self.assertIn("3 outbound deliveries failed", activities.note)
