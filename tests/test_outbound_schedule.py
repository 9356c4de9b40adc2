from odoo.tests import tagged

from .common import BjOutboundCase


@tagged("post_install", "-at_install")
class TestOutboundSchedule(BjOutboundCase):
    def settle(self, records, minutes):
        """Date the records' last change some minutes back: past the settle delay."""
        self.env.flush_all()  # pending recomputations would stamp write_date again
        self.env.cr.execute(
            "UPDATE res_partner SET write_date = (now() at time zone 'UTC') - %s * interval '1m'"
            " WHERE id IN %s",
            [minutes, tuple(records.ids)],
        )
        records.invalidate_recordset(["write_date"])

    def test_scheduled_action_follows_the_configuration(self):
        config = self.make_out_config(trigger_on_schedule=True, schedule_interval_number=2,
                                      schedule_interval_type="days")
        cron = config.schedule_cron_id
        self.assertEqual((cron.active, cron.interval_number, cron.interval_type),
                         (True, 2, "days"))
        self.assertEqual(cron.code, f"model._cron_send_scheduled({config.id})")
        config.trigger_on_schedule = False
        self.assertFalse(cron.active)
        config.trigger_on_schedule = True
        config.active = False
        self.assertFalse(cron.active)
        config.active = True
        self.assertTrue(cron.active)
        config.unlink()
        self.assertFalse(cron.exists())

    def test_run_queues_changes_since_last_run_by_page_with_progress(self):
        config = self.make_out_config(
            trigger_on_schedule=True, is_paginated=True, page_size=2, limit=3,
            filter_domain="[('name', '=like', 'Scheduled%')]",
        )
        partners = self.env["res.partner"].create(
            [{"name": f"Scheduled {index}"} for index in range(5)])
        self.env["res.partner"].create({"name": "Out of scope"})
        self.settle(partners, minutes=3)
        progress = self.env["ir.cron.progress"].create({"cron_id": config.schedule_cron_id.id})
        configs = self.env["bj.api.sync.config"].with_context(ir_cron_progress_id=progress.id)
        self.assertEqual(configs._cron_send_scheduled(config.id), 3, "at most Limit per run")
        self.assertEqual((progress.done, progress.remaining), (3, 2))
        jobs = self.get_jobs(config)
        self.assertEqual([len(job.res_ids.split(",")) for job in jobs], [2, 1])
        self.assertEqual(set(jobs.mapped("event")), {"schedule"})
        self.assertEqual(configs._cron_send_scheduled(config.id), 2, "the rest, next call")
        self.assertEqual((progress.done, progress.remaining), (2, 0))
        self.assertEqual(configs._cron_send_scheduled(config.id), 0, "nothing changed since")
        self.deliver()
        self.assertEqual(sorted(item["res_id"] for body in self.bodies() for item in body),
                         partners.ids)
        partners[1].name = "Scheduled again"
        self.assertEqual(configs._cron_send_scheduled(config.id), 0, "not settled yet")
        self.settle(partners[1], minutes=2)
        self.assertEqual(configs._cron_send_scheduled(config.id), 1)
        self.assertEqual(self.get_jobs(config)[-1].res_ids, str(partners[1].id))
