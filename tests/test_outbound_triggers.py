from datetime import timedelta
from unittest.mock import patch

from odoo import Command, fields
from odoo.exceptions import UserError, ValidationError
from odoo.tests import tagged

from ..services import delivery_worker
from ..services.delivery_worker import WORKER_CRON
from ..services.inbound_request import INBOUND_CONTEXT_KEY, InboundOrigin
from .common import BjOutboundCase


@tagged("post_install", "-at_install")
class TestOutboundTriggers(BjOutboundCase):
    def partner(self, name="Trigger", **values):
        return self.env["res.partner"].create({"name": name, **values})

    def test_create_queues_and_never_calls_the_network(self):
        config = self.make_out_config(trigger_on_create=True)
        partner = self.partner(email="t@example.com")
        job = self.get_jobs(config)
        self.assertEqual((job.event, job.state, job.res_ids), ("create", "pending",
                                                              str(partner.id)))
        self.assertFalse(self.server.requests, "the user's transaction never waits on the API")
        self.deliver()
        self.assertEqual(self.bodies()[0]["email"], "t@example.com")
        self.assertEqual(self.server.requests[0].headers["X-BJET-Event"], "create")

    def test_worker_is_woken_right_after_commit(self):
        self.make_out_config(trigger_on_create=True)
        jobs = self.env["bj.api.sync.job"]
        self.partner()
        self.partner()
        wake_ups = [f for f in self.env.cr.postcommit._funcs
                    if getattr(f, "__func__", None) is type(jobs)._bj_wake_worker_unless_pending]
        self.assertEqual(len(wake_ups), 1, "one wake-up per transaction, after its commit")

    def test_every_delivery_cron_is_woken_whatever_stale_triggers_say(self):
        """With a copy of the delivery action (docs/OPERATIONS.md, Scaling delivery), a
        past-due trigger left by a cron still running stops no wake-up: every
        delivery cron without a trigger made a moment ago is triggered, and a
        burst of commits within that moment triggers nothing more."""
        jobs = self.env["bj.api.sync.job"]
        main = self.env.ref(WORKER_CRON)
        copy = main.copy({"name": "Deliver outbound jobs (2)", "active": True})
        triggers = self.env["ir.cron.trigger"].sudo()
        triggers.search([("cron_id", "in", (main | copy).ids)]).unlink()
        self.assertEqual(jobs._bj_delivery_crons(), main | copy)
        stale = fields.Datetime.now() - timedelta(seconds=40)
        triggers.create([{"cron_id": main.id, "call_at": stale}])
        self.assertEqual(jobs._bj_crons_to_wake(), main | copy, "a stale trigger is ignored")
        for cron in main | copy:
            cron._trigger()  # what the wake-up does
        self.assertFalse(jobs._bj_crons_to_wake(), "no second wake-up in a burst")
        triggers.search([("cron_id", "=", copy.id)]).unlink()  # the copy ran
        self.assertEqual(jobs._bj_crons_to_wake(), copy)
        copy.active = False
        self.assertFalse(jobs._bj_crons_to_wake(), "an archived copy is not woken")

    def test_rollback_sends_nothing(self):
        config = self.make_out_config(trigger_on_create=True, trigger_on_write=True)
        partner = self.partner("Kept")
        self.deliver()
        self.server.clear()
        with self.assertRaises(ZeroDivisionError), self.env.cr.savepoint():
            self.partner("Rolled back")
            partner.name = "Never saved"
            raise ZeroDivisionError
        self.assertFalse(self.get_jobs(config).filtered(lambda job: job.state == "pending"))
        self.deliver()
        self.assertFalse(self.server.requests)

    def test_write_with_watched_fields(self):
        config = self.make_out_config(
            trigger_on_write=True,
            watched_field_ids=[Command.set(self.partner_field("email").ids)],
        )
        partner = self.partner(email="old@example.com")
        partner.name = "Renamed"
        partner.email = "old@example.com"
        self.assertFalse(self.get_jobs(config), "unwatched field, or same value: no delivery")
        partner.write({"email": "new@example.com", "phone": "123"})
        job = self.get_jobs(config)
        self.assertEqual((job.event, job.res_ids), ("write", str(partner.id)))

    def test_any_write_without_watched_fields(self):
        config = self.make_out_config(trigger_on_write=True)
        partner = self.partner()
        self.assertFalse(self.get_jobs(config))
        partner.name = "Renamed"
        self.assertEqual(len(self.get_jobs(config)), 1)

    def test_changes_queued_before_a_delivery_are_sent_once(self):
        config = self.make_out_config(trigger_on_create=True, trigger_on_write=True)
        partner = self.partner("First")
        partner.name = "Second"
        partner.email = "third@example.com"
        jobs = self.get_jobs(config)
        self.assertEqual(jobs.mapped("event"), ["create", "write", "write"])
        self.deliver()
        self.assertEqual(self.bodies(), [{"res_id": partner.id, "name": "Second",
                                          "email": "third@example.com", "phone": None}])
        self.assertEqual(jobs.mapped("state"), ["done", "cancelled", "cancelled"])
        self.assertIn("Merged", jobs[1].last_error)

    def test_filter_domain_applies(self):
        config = self.make_out_config(trigger_on_create=True,
                                      filter_domain="[('is_company', '=', True)]")
        self.partner("Person")
        company = self.partner("Company", is_company=True)
        self.assertEqual(self.get_jobs(config).res_ids, str(company.id))

    def test_delete_captures_the_payload(self):
        config = self.make_out_config(
            path="/contacts/{res_id}", trigger_on_unlink=True,
            http_method_ids=[Command.set(self.method_delete.ids)],
        )
        partner = self.partner("Doomed", email="doomed@example.com")
        partner_id = partner.id
        partner.unlink()
        job = self.get_jobs(config)
        self.assertEqual(job.event, "unlink")
        self.assertIn("doomed@example.com", job.payload)
        self.deliver()
        request = self.server.requests[0]
        self.assertEqual((request.method, request.path), ("DELETE", f"/contacts/{partner_id}"))
        self.assertEqual(request.json()["name"], "Doomed")
        self.assertEqual(job.state, "done")

    def test_delete_that_cannot_be_exported_is_refused(self):
        config = self.make_out_config(trigger_on_unlink=True)
        config.line_ids[-1].write({"value_type": "python_plain", "python_script": "1 / 0"})
        partner = self.partner()
        with self.assertRaisesRegex(UserError, "cannot be deleted"):
            partner.unlink()
        self.assertTrue(partner.exists())

    def test_no_echo_of_inbound_changes(self):
        config = self.make_out_config(trigger_on_create=True)
        inbound = self.make_partner_config(request_type="in")
        # What a caller can put in an RPC context hides nothing.
        for value in (inbound.id, str(inbound.id), [inbound.id], {"config_id": inbound.id}):
            self.env["res.partner"].with_user(self.integration_user).with_context(
                **{INBOUND_CONTEXT_KEY: value}).create({"name": "Not hidden"})
        self.assertEqual(len(self.get_jobs(config)), 4)
        self.get_jobs(config).unlink()
        partners = self.env["res.partner"].with_context(
            **{INBOUND_CONTEXT_KEY: InboundOrigin(inbound.id)})
        partners.create({"name": "From the other system"})
        self.assertFalse(self.get_jobs(config))
        config.send_inbound_changes = True
        echoed = partners.create({"name": "Echo wanted"})
        self.assertEqual(self.get_jobs(config).res_ids, str(echoed.id))

    def test_paginated_triggers_batch_the_records_of_a_change(self):
        config = self.make_out_config(trigger_on_create=True, is_paginated=True, page_size=3)
        partners = self.env["res.partner"].create([{"name": f"Batch {i}"} for i in range(4)])
        self.assertEqual(self.get_jobs(config).mapped("res_ids"), [
            ",".join(str(p.id) for p in partners[:3]), str(partners[3].id)])
        self.deliver()
        self.assertEqual([len(body) for body in self.bodies()], [3, 1])

    def test_configuration_changes_apply_at_once(self):
        config = self.make_out_config(trigger_on_create=True)
        self.partner()
        config.trigger_on_create = False
        self.partner()
        config.write({"trigger_on_create": True, "active": False})
        self.partner()
        self.assertEqual(len(self.get_jobs(config)), 1)

    def test_own_models_cannot_fire(self):
        with self.assertRaisesRegex(ValidationError, "every delivery writes it"):
            self.make_config(request_type="out", model="bj.api.log", trigger_on_create=True,
                             run_as_user_id=self.env.ref("base.user_admin").id)

    def test_a_change_committed_as_a_run_ends_is_not_left_to_the_interval(self):
        """Odoo ends every cron run with ``DELETE FROM ir_cron_trigger WHERE
        call_at < now()`` (``ir.cron._reschedule_later``), ``now()`` being the
        start of the cron cursor's transaction: the run's acquisition.  A
        change committed after the run's last look at the queue
        (``_schedule_next_run``) and before that DELETE, within WAKE_GRACE of
        the trigger that woke the run, makes no trigger (that one is "on its
        way"), and the DELETE removes that one: the change waits for the
        cron's next interval (a minute), unless the run looks at the queue
        again after the DELETE, as it does.  A burst of commits meets this
        window."""
        import time

        jobs = self.env["bj.api.sync.job"]
        main = self.env.ref(WORKER_CRON)
        triggers = self.env["ir.cron.trigger"].sudo()
        triggers.search([("cron_id", "=", main.id)]).unlink()
        main._trigger()  # the commit that woke the run
        time.sleep(0.05)
        acquired = jobs._bj_now()  # the run starts (ir.cron._acquire_one_job)
        # The run, in a scheduled action of a go whose cron cursor commits
        # Odoo's end of it, sends what was due and looks at the queue one last
        # time; then a user's change commits.
        def change_then_end_of_run():
            self.make_out_config(trigger_on_create=True)
            self.partner(name="Committed as the run ends")
            for cron in jobs._bj_crons_to_wake():  # what its post-commit does
                cron._trigger()
            self.env.flush_all()
            # Odoo's end of the run (ir.cron._reschedule_later), now() = the acquisition.
            self.env.cr.execute(
                "DELETE FROM ir_cron_trigger WHERE cron_id = %s AND call_at < %s",
                [main.id, acquired])

        # The run's cursors of their own share the test's transaction.
        self.registry.enter_test_mode(self.cr)
        self.addCleanup(self.registry.leave_test_mode)
        with patch.object(delivery_worker, "WAIT_FOR_RETRIES", False), \
                self.scheduled_action(before_commit=change_then_end_of_run):
            self.deliver()
        triggers.invalidate_model()
        due = triggers.search([("cron_id", "=", main.id),
                               ("call_at", "<=", fields.Datetime.now() + timedelta(seconds=2))])
        self.assertTrue(due, "no wake-up left for the change: it waits for the cron's interval")
