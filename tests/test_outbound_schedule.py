import secrets
import time
from contextlib import contextmanager
from datetime import timedelta
from unittest.mock import patch

from odoo import SUPERUSER_ID, Command, api, fields
from odoo.modules.registry import Registry
from odoo.sql_db import db_connect
from odoo.tests import BaseCase, get_db_name, tagged

from ..core.record_ids import id_list
from ..models.bj_api_sync_config_outbound import SCHEDULE_CLOCK_MARGIN
from .common import BjOutboundCase


def wait_for_the_clock_margin():
    """Let the database clock pass the schedule's margin over what was written so far."""
    time.sleep(SCHEDULE_CLOCK_MARGIN.total_seconds() + 0.1)


@tagged("post_install", "-at_install")
class TestOutboundSchedule(BjOutboundCase):
    def settle(self, records, minutes):
        """Date the records' last change some minutes back (they are in the test's
        own transaction, which the schedule's bound does not wait for)."""
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
        self.settle(partners[1], minutes=2)
        self.assertEqual(configs._cron_send_scheduled(config.id), 1)
        self.assertEqual(self.get_jobs(config)[-1].res_ids, str(partners[1].id))

    def test_bound_is_the_start_of_the_oldest_other_open_transaction(self):
        configs = self.env["bj.api.sync.config"]
        with db_connect(self.env.cr.dbname).cursor() as other:
            # Open, and has written nothing yet: what it writes later is stamped
            # with this start time all the same.
            other.execute("SELECT now() AT TIME ZONE 'UTC'")
            started = other.fetchone()[0]
            wait_for_the_clock_margin()
            self.assertEqual(configs._bj_schedule_bound(), started,
                             "the test's own transaction, older, does not count")
            other.rollback()
            self.assertGreater(configs._bj_schedule_bound(), started)


@tagged("post_install", "-at_install")
class TestOutboundScheduleOpenTransaction(BaseCase):
    """The schedule while another transaction stays open, on real connections.

    A TransactionCase cannot show it: its REPEATABLE READ snapshot never sees
    what another connection commits after it began.  Here the configuration and
    the records are committed (and deleted afterwards), and a second connection
    writes a partner without committing while the schedule runs.
    """

    def setUp(self):
        super().setUp()
        self.registry = Registry(get_db_name())
        self.prefix = f"Held open {secrets.token_hex(4)}"
        with self.environment() as env:
            config = env["bj.api.sync.config"].create({
                "name": self.prefix,
                "request_type": "out",
                "model_id": env["ir.model"]._get_id("res.partner"),
                "run_as_user_id": env.ref("base.user_admin").id,
                "request_url": "http://127.0.0.1:9/sink",
                "http_method_ids": [Command.set(env.ref("bjet_api_sync.bj_http_method_post").ids)],
                "trigger_on_schedule": True,
                "filter_domain": repr([("name", "=like", f"{self.prefix}%")]),
            })
            settled = env["res.partner"].create({"name": f"{self.prefix} settled"})
            env.flush_all()
            env.cr.execute("UPDATE res_partner SET write_date = write_date - interval '1 hour' "
                           "WHERE id = %s", [settled.id])
            env.cr.execute("SELECT COALESCE(MAX(id), 0) FROM ir_cron_trigger")
            self.config_id, self.settled_id = config.id, settled.id
            self.last_trigger_id = env.cr.fetchone()[0]
        self.addCleanup(self.delete_data)

    @contextmanager
    def environment(self):
        """A transaction of its own, committed at the end."""
        with self.registry.cursor() as cr:
            yield api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True})

    def delete_data(self):
        with self.environment() as env:
            env["bj.api.sync.job"].search([("config_id", "=", self.config_id)]).unlink()
            env["bj.api.sync.config"].browse(self.config_id).unlink()
            env["res.partner"].with_context(active_test=False).search(
                [("name", "=like", f"{self.prefix}%")]).unlink()
            # Wake-ups of the delivery worker that the queued jobs asked for.
            env.cr.execute("DELETE FROM ir_cron_trigger WHERE id > %s", [self.last_trigger_id])

    def run_schedule(self):
        with self.environment() as env:
            return env["bj.api.sync.config"]._cron_send_scheduled(self.config_id)

    def queued_and_mark(self):
        """Record ids queued so far, in order, and the "synchronised up to" mark."""
        with self.environment() as env:
            jobs = env["bj.api.sync.job"].search([("config_id", "=", self.config_id)], order="id")
            config = env["bj.api.sync.config"].browse(self.config_id)
            return ([i for job in jobs for i in id_list(job.res_ids)],
                    (config.schedule_last_sync, config.schedule_last_sync_id))

    def test_rows_of_a_transaction_held_open_are_sent_once_it_commits(self):
        holder = db_connect(self.registry.db_name).cursor()
        self.addCleanup(holder.close)  # rolls back, should the test stop before the commit
        held = api.Environment(holder, SUPERUSER_ID, {"tracking_disable": True})[
            "res.partner"].create({"name": f"{self.prefix} held open"})
        held.env.flush_all()
        held_id, held_at = held.id, held.write_date  # stamped with the holder's start
        # Committed by a transaction that began after the holder's: a mark that
        # followed it would pass over the held row.
        with self.environment() as env:
            later_id = env["res.partner"].create({"name": f"{self.prefix} later"}).id
        # Python's clock 10 minutes ahead: to a fixed settle delay the held
        # transaction would look long settled.  The bound reads the database.
        now = fields.Datetime.now
        with patch.object(fields.Datetime, "now", lambda: now() + timedelta(minutes=10)):
            self.assertEqual(self.run_schedule(), 1)
        queued, mark = self.queued_and_mark()
        self.assertEqual(queued, [self.settled_id],
                         "neither the open transaction's row nor any written after it began")
        self.assertLess(mark, (held_at, held_id), "the mark stays before the open transaction")

        holder.commit()
        wait_for_the_clock_margin()
        self.assertEqual(self.run_schedule(), 2)
        queued, mark = self.queued_and_mark()
        self.assertEqual(queued, [self.settled_id, held_id, later_id])
        self.assertEqual(self.run_schedule(), 0, "nothing left behind, nothing sent twice")
