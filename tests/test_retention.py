"""Retention: finished deliveries (their payloads carry personal data) and log
rows are deleted after their retention period, in committed batches."""

from unittest.mock import Mock, patch

from odoo.tests import tagged

from ..models.bj_api_sync_job import PARAM_RETENTION_DAYS
from ..services import retention
from .common import BjApiSyncCase

STATES = ("pending", "running", "done", "dead", "cancelled")


@tagged("post_install", "-at_install")
class TestJobRetention(BjApiSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.config = cls.make_config(request_type="out")

    def make_jobs(self, states, days_ago):
        """Jobs in ``states``, last changed ``days_ago`` days ago."""
        jobs = self.env["bj.api.sync.job"].create([{
            "config_id": self.config.id,
            "event": "manual",
            "res_model": "res.partner",
            "res_ids": "1",
            "payload": '{"email": "jane.doe@example.com"}',
            "attempt_limit": 1,
        } for _state in states])
        self.env.flush_all()
        for job, state in zip(jobs, states, strict=True):
            self.env.cr.execute(
                "UPDATE bj_api_sync_job SET state = %s, "
                "write_date = (now() AT TIME ZONE 'UTC') - %s * interval '1 day' WHERE id = %s",
                [state, days_ago, job.id],
            )
        jobs.invalidate_recordset()
        return jobs

    def test_done_and_cancelled_jobs_are_deleted_after_the_retention_period(self):
        old = self.make_jobs(STATES, days_ago=31)
        recent = self.make_jobs(("done", "cancelled"), days_ago=29)
        log = self.env["bj.api.log"].create({"direction": "out", "state": "success",
                                             "job_id": old[2].id})
        self.env["bj.api.sync.job"]._gc_finished_jobs()
        self.assertEqual((old | recent).exists().mapped("state"),
                         ["pending", "running", "dead", "done", "cancelled"],
                         "default 30 days: the old done and cancelled jobs are gone")
        self.assertEqual(recent.exists(), recent)
        self.assertTrue(log.exists(), "the attempt's log row stays")
        self.assertFalse(log.job_id)

    def test_zero_days_keeps_every_job(self):
        self.env["ir.config_parameter"].sudo().set_param(PARAM_RETENTION_DAYS, "0")
        old = self.make_jobs(("done", "cancelled"), days_ago=400)
        self.env["bj.api.sync.job"]._gc_finished_jobs()
        self.assertEqual(old.exists(), old)
        self.env["ir.config_parameter"].sudo().set_param(PARAM_RETENTION_DAYS, "7")
        recent = self.make_jobs(("done",), days_ago=6)
        self.env["bj.api.sync.job"]._gc_finished_jobs()
        self.assertEqual((old | recent).exists(), recent, "the period is the parameter's")

    def test_deletion_commits_batch_by_batch(self):
        old = self.make_jobs(["done"] * 5, days_ago=31)
        commit = Mock()
        # Outside a test the cleanup commits after each batch: count those commits.
        with patch.object(retention, "BATCH_SIZE", 2), \
                patch.object(retention, "auto_commit", return_value=True), \
                patch.object(self.env.cr, "commit", commit):
            self.env["bj.api.sync.job"]._gc_finished_jobs()
        self.assertFalse(old.exists())
        self.assertEqual(commit.call_count, 3, "batches of 2, 2 and 1, each committed")
