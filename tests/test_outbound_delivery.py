import time
from datetime import timedelta
from unittest.mock import patch

from odoo import fields
from odoo.exceptions import UserError
from odoo.tests import tagged

from ..core import http_client
from ..services import delivery_worker
from .common import BjOutboundCase, LocalHttpServer


@tagged("post_install", "-at_install")
class TestOutboundDelivery(BjOutboundCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.config = cls.make_out_config(retry_base_delay=10, retry_max_delay=60,
                                         max_attempts=3)
        cls.partners = cls.env["res.partner"].create([
            {"name": f"Delivery {index}", "email": f"d{index}@example.com"} for index in range(4)
        ])

    def enqueue(self, records, config=None):
        return self.env["bj.api.sync.config"]._enqueue_outbound_records(
            records, config or self.config)

    def assertDueWithin(self, job, low, high):
        now = fields.Datetime.now()
        self.assertGreaterEqual(job.next_attempt_at, now + timedelta(seconds=low - 1))
        self.assertLessEqual(job.next_attempt_at, now + timedelta(seconds=high + 1))

    def test_success(self):
        job = self.enqueue(self.partners[0])
        self.assertEqual((job.state, job.event, job.attempt, job.payload), ("pending", "manual", 0,
                                                                          False))
        self.assertFalse(self.server.requests, "queueing never waits on the network")
        self.assertEqual(self.deliver(), 1)
        request = self.server.requests[0]
        self.assertEqual(request.headers["Idempotency-Key"], job.idempotency_key)
        self.assertEqual(request.headers["X-BJET-Event"], "manual")
        self.assertEqual(request.json()["email"], "d0@example.com")
        self.assertEqual((job.state, job.attempt, job.last_status_code), ("done", 1, 200))
        self.assertTrue(job.date_done)
        self.assertEqual(job.payload and request.json(), request.json())
        log = job.log_ids
        self.assertEqual((log.attempt, log.state, log.status_code, log.res_ids),
                         (1, "success", 200, str(self.partners[0].id)))
        self.assertEqual(self.deliver(), 0, "a delivered job is not sent again")

    def test_server_error_then_success_keeps_the_idempotency_key(self):
        job = self.enqueue(self.partners[0])
        self.server.queue(500, {"error": "boom"})
        self.deliver()
        self.assertEqual((job.state, job.attempt, job.last_status_code), ("pending", 1, 500))
        self.assertIn("500", job.last_error)
        self.assertDueWithin(job, 5, 10)  # base delay 10 s, equal jitter
        self.deliver()
        self.assertEqual(len(self.server.requests), 1, "not due yet")
        self.partners[0].email = "changed@example.com"
        self.pass_time(job)
        self.deliver()
        self.assertEqual(job.state, "done")
        first, second = self.server.requests
        self.assertEqual(first.headers["Idempotency-Key"], second.headers["Idempotency-Key"])
        self.assertEqual(first.body, second.body, "a retry sends the same payload")
        self.assertEqual(job.log_ids.sorted("attempt").mapped("attempt"), [1, 2])
        self.assertEqual(job.log_ids.sorted("attempt").mapped("state"), ["error", "success"])

    def test_backoff_grows(self):
        job = self.enqueue(self.partners[0])
        self.server.queue(503, {})
        self.server.queue(503, {})
        self.deliver()
        self.assertDueWithin(job, 5, 10)
        self.pass_time(job)
        self.deliver()
        self.assertDueWithin(job, 10, 20)

    def test_too_many_requests_honours_retry_after(self):
        job = self.enqueue(self.partners[0])
        self.server.queue(429, {"error": "slow down"}, headers={"Retry-After": "120"})
        self.deliver()
        self.assertEqual((job.state, job.last_status_code), ("pending", 429))
        self.assertDueWithin(job, 120, 120)
        self.pass_time(job)
        self.deliver()
        self.assertEqual(job.state, "done")

    def test_client_error_is_dead_at_once(self):
        job = self.enqueue(self.partners[0])
        self.server.queue(400, {"error": "email rejected"})
        self.deliver()
        self.assertEqual((job.state, job.attempt, job.last_status_code), ("dead", 1, 400))
        self.assertIn("400", job.last_error)
        self.assertIn("email rejected", job.log_ids.response_body)
        self.pass_time(job)
        self.deliver()
        self.assertEqual(len(self.server.requests), 1)

    def test_read_timeout_is_retried(self):
        config = self.make_out_config(read_timeout=1, name="Slow")
        job = self.enqueue(self.partners[0], config)
        self.server.queue(200, {}, delay=3)
        self.deliver()
        self.assertEqual((job.state, job.last_status_code), ("pending", 0))
        self.assertIn("did not answer in time", job.last_error)
        self.assertEqual(job.log_ids.state, "error")
        self.pass_time(job)
        self.deliver()
        self.assertEqual(job.state, "done")

    def test_connection_refused_until_dead(self):
        closed = LocalHttpServer().start()
        closed.stop()
        config = self.make_out_config(request_url=closed.url + "/x", max_attempts=2,
                                      name="Nobody")
        job = self.enqueue(self.partners[0], config)
        self.deliver()
        self.assertEqual((job.state, job.attempt), ("pending", 1))
        self.assertIn("Connection refused", job.last_error)
        self.pass_time(job)
        self.deliver()
        self.assertEqual((job.state, job.attempt), ("dead", 2))
        self.assertEqual(len(job.log_ids), 2)

    def test_server_stops_mid_run_and_comes_back(self):
        jobs = self.enqueue(self.partners)
        self.assertEqual(len(jobs), 4)
        send = http_client.send
        calls = []

        def send_then_stop(*args, **kwargs):
            result = send(*args, **kwargs)
            calls.append(result)
            if len(calls) == 2:
                self.server.stop()
            return result

        try:
            with patch.object(http_client, "send", side_effect=send_then_stop):
                self.deliver()
        finally:
            self.server.start()
        self.assertEqual(jobs.mapped("state"), ["done", "done", "pending", "pending"])
        self.assertIn("Connection refused", jobs[2].last_error)
        self.pass_time(jobs)
        self.deliver()
        self.assertEqual(set(jobs.mapped("state")), {"done"})
        keys = [request.headers["Idempotency-Key"] for request in self.server.requests]
        self.assertCountEqual(keys, jobs.mapped("idempotency_key"), "each job delivered once")
        self.assertEqual(jobs.mapped("attempt"), [1, 1, 2, 2])

    def test_requests_go_out_concurrently(self):
        jobs = self.enqueue(self.partners)
        for _job in jobs:
            self.server.queue(200, {}, delay=0.4)
        started = time.monotonic()
        with patch.object(delivery_worker, "SEND_CONCURRENCY", 4):
            self.deliver()
        self.assertLess(time.monotonic() - started, 1.2, "4 requests of 0.4 s in parallel")
        self.assertEqual(set(jobs.mapped("state")), {"done"})

    def test_changes_of_a_record_go_out_in_order(self):
        partner, other = self.partners[:2]
        first = self.enqueue(partner)
        self.server.queue(500, {})
        self.deliver()  # the first payload is now frozen, with the old name
        partner.name = "Renamed"
        second = self.enqueue(partner)
        self.assertNotEqual(first, second, "an attempted job does not absorb new changes")
        third = self.enqueue(other)
        self.deliver()
        self.assertEqual(second.state, "pending", "held back by the older job of its record")
        self.assertEqual(third.state, "done", "other records are not held back")
        self.pass_time(first)
        self.deliver()
        self.assertEqual((first | second).mapped("state"), ["done", "done"])
        names = [body["name"] for body in self.bodies() if body["res_id"] == partner.id]
        self.assertEqual(names, ["Delivery 0", "Delivery 0", "Renamed"])

    def test_retry_and_cancel_dead_jobs(self):
        job = self.enqueue(self.partners[0])
        self.server.queue(422, {"error": "invalid"})
        self.deliver()
        self.assertEqual(job.state, "dead")
        old_key = job.idempotency_key
        self.partners[0].email = "fixed@example.com"
        job.action_retry()
        retried = job.retried_job_id
        self.assertEqual(job.state, "cancelled")
        self.assertGreater(retried.id, job.id, "at the back of the record's queue")
        self.assertEqual((retried.state, retried.attempt_limit, retried.payload),
                         ("pending", 3, False))
        self.assertNotEqual(retried.idempotency_key, old_key,
                            "a rebuilt payload is a new request")
        with self.assertRaises(UserError):
            job.action_retry()  # retried already
        self.deliver()
        self.assertEqual((retried.state, retried.attempt), ("done", 1))
        self.assertEqual(self.server.requests[-1].json()["email"], "fixed@example.com")
        other = self.enqueue(self.partners[1])
        other.action_cancel()
        self.deliver()
        self.assertEqual(other.state, "cancelled")
        self.assertEqual(len(self.server.requests), 2)

    def test_bulk_retry_server_action(self):
        jobs = self.enqueue(self.partners[:2])
        self.server.queue(400, {})
        self.server.queue(400, {})
        self.deliver()
        self.assertEqual(jobs.mapped("state"), ["dead", "dead"])
        action = self.env.ref("bjet_api_sync.action_server_bj_api_sync_job_retry")
        action.with_context(active_model=jobs._name, active_ids=jobs.ids).run()
        self.assertEqual(jobs.mapped("state"), ["cancelled", "cancelled"])
        self.assertEqual(jobs.retried_job_id.mapped("state"), ["pending", "pending"])

    def test_jobs_of_a_dead_worker_are_reclaimed_by_lease(self):
        """A running job whose run left an unlocked lease, or none, lost its
        worker: it is given back at once (whatever its age), its cut-short
        attempt logged, and the dead lease deleted.  (A live run's jobs are
        left alone: TestOutboundLease, with real transactions.)"""
        jobs = self.enqueue(self.partners[:3])
        now = fields.Datetime.now()
        jobs.write({"state": "running", "locked_at": now, "worker": "dead-host:1:t",
                    "attempt": 1})
        jobs[1].write({"attempt": 3})  # its budget was spent by the attempts that died
        jobs[2].write({"worker": "no-lease-host:1:t"})
        self.env.cr.execute(f"INSERT INTO {delivery_worker.LEASE_TABLE} (worker) "
                            "VALUES ('dead-host:1:t')")
        self.deliver()
        self.assertEqual(jobs[0].state, "done")
        self.assertEqual(jobs[1].state, "dead")
        self.assertEqual(jobs[2].state, "done")
        self.assertIn("stopped", jobs[1].last_error)
        cut_short = self.env["bj.api.log"].search([("job_id", "=", jobs[0].id)], order="id")[0]
        self.assertEqual(cut_short.attempt, 1)
        self.assertIn("cut short", cut_short.error_message)
        self.env.cr.execute(f"SELECT worker FROM {delivery_worker.LEASE_TABLE} "
                            "WHERE worker = 'dead-host:1:t'")
        self.assertFalse(self.env.cr.fetchall(), "the dead lease is deleted")

    def test_archived_configuration_keeps_its_jobs_waiting(self):
        config = self.make_out_config(name="Archived later")
        job = self.enqueue(self.partners[0], config)
        config.active = False
        self.deliver()
        self.assertEqual(job.state, "pending")
        config.active = True
        self.deliver()
        self.assertEqual(job.state, "done")

    def test_mapping_error_and_vanished_records(self):
        config = self.make_out_config(name="Broken")
        config.line_ids[-1].write({"value_type": "python_plain", "python_script": "1 / 0"})
        broken = self.enqueue(self.partners[0], config)
        partner = self.env["res.partner"].create({"name": "Gone", "email": "g@example.com"})
        vanished = self.enqueue(partner)
        partner.unlink()
        self.deliver()
        self.assertEqual(broken.state, "dead")
        self.assertIn("phone", broken.last_error)
        self.assertEqual(broken.log_ids.state, "error")
        self.assertEqual(vanished.state, "cancelled")
        self.assertFalse(self.server.requests)
