"""A claimed job's lease lives and dies with a transaction of its run, never
with a connection parked in Odoo's pool.

Real transactions, threads and a forked process: a run whose database work
fails mid-run, and a run whose lease connection is killed, leave their jobs to
the next run at once; a live run's jobs are never taken.
"""

import json
import os
import threading
import time
from unittest.mock import patch

from odoo.tests import BaseCase, tagged

from ..services import delivery_worker
from .common import CommittedDataMixin


@tagged("post_install", "-at_install")
class TestOutboundLease(CommittedDataMixin, BaseCase):
    server_default = (200, None, {"ok": True}, 0)

    def setUp(self):
        super().setUp()
        with self.committed_env() as env:
            config = self.committed_out_config(env, {
                "name": "Lease test",
            })
            jobs = env["bj.api.sync.job"].create([{
                "config_id": config.id, "event": "manual", "res_model": "res.partner",
                "res_ids": str(record_id), "payload": json.dumps({"record": record_id}),
                "attempt_limit": 5,
            } for record_id in (9100001, 9100002)])
            self.config_id, self.job_ids = config.id, jobs.ids
        self.addCleanup(self.delete_committed, self.config_id)
        # One job claimed and sent at a time: the test knows which one is on the wire.
        self.startPatcher(patch.object(delivery_worker, "CLAIM_BATCH_SIZE", 1))
        self.startPatcher(patch.object(delivery_worker, "SEND_CONCURRENCY", 1))
        self.startPatcher(patch.object(delivery_worker, "WAIT_FOR_RETRIES", False))

    def jobs(self):
        with self.committed_env() as env:
            return [(job.state, job.attempt) for job in env["bj.api.sync.job"].browse(self.job_ids)]

    def run_worker(self, errors):
        def deliver():
            try:
                with self.committed_env() as env:
                    env["bj.api.sync.job"]._cron_deliver_jobs()
            except Exception as error:  # noqa: BLE001 - the test looks at it
                errors.append(error)

        thread = threading.Thread(target=deliver)
        thread.start()
        return thread

    def wait_for(self, condition, what, timeout=10):
        deadline = time.monotonic() + timeout
        while not condition():
            self.assertLess(time.monotonic(), deadline, what)
            time.sleep(0.05)

    def test_a_run_failing_on_the_database_leaves_nothing_on_the_pooled_connection(self):
        """A database error while recording an outcome ends the run; its
        connection goes back to this process's pool, its transaction aborted.  A run in another
        process (another cron worker) reclaims the job at once."""
        errors = []

        def failing_store(worker, results):
            # A statement that fails: the run's transaction is aborted, and so
            # is anything the run would still do on its connection.
            worker.env.cr.execute("SELECT 1 / 0", log_exceptions=False)

        with patch.object(delivery_worker.DeliveryWorker, "_store_results", failing_store):
            self.run_worker(errors).join(30)
        self.assertEqual(len(errors), 1)
        self.assertEqual(len(self.server.requests), 1, "claimed and sent, its outcome lost")
        # Nothing borrows from this process's pool meanwhile: a borrowed connection
        # is reset (DISCARD ALL), which would hide what the run left on it.
        started = time.monotonic()
        pid = self.run_worker_process()
        _pid, status = os.waitpid(pid, 0)
        self.assertEqual(status, 0)
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual(self.jobs(), [("done", 2), ("done", 1)],
                         "reclaimed by the next run, at once, and sent again")
        with self.committed_env() as env:
            logs = env["bj.api.log"].search([("job_id", "=", self.job_ids[0])], order="id")
            self.assertIn("cut short", logs[0].error_message)

    def test_a_killed_lease_connection_gives_the_jobs_to_the_next_run(self):
        """While a run's request is on the wire, another run leaves its job
        alone; once the run's lease connection is killed (pg_terminate_backend)
        the next run takes the job at once, and the run claims nothing more."""
        self.server.queue(200, {"ok": True}, delay=3)
        leases = []
        take_lease = delivery_worker.DeliveryWorker._take_lease

        def recorded_take_lease(worker):
            take_lease(worker)
            leases.append(worker.lease_cr._cnx.get_backend_pid())

        errors = []
        with patch.object(delivery_worker.DeliveryWorker, "_take_lease", recorded_take_lease):
            first = self.run_worker(errors)
            self.wait_for(lambda: len(self.server.requests) == 1, "the first request goes out")
            second = self.run_worker(errors)
            second.join(30)
            self.assertEqual(self.jobs(), [("running", 1), ("done", 1)],
                             "a live run's job is left alone; the other one is sent")
            with self.committed_env() as env:
                env.cr.execute("SELECT pg_terminate_backend(%s)", [leases[0]])
            third = self.run_worker(errors)
            third.join(30)
            first.join(30)
        self.assertFalse(errors)
        self.assertEqual(self.jobs(), [("done", 2), ("done", 1)],
                         "taken by the next run at once; the killed run's outcome is fenced off")
        self.assertEqual(len(self.server.requests), 3)
