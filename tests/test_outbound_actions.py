import hashlib
import hmac
from unittest.mock import patch

from odoo import Command
from odoo.exceptions import UserError
from odoo.tests import new_test_user, tagged
from odoo.tools import mute_logger

from .common import BjOutboundCase, LocalHttpServer, generated_secret


@tagged("post_install", "-at_install")
class TestOutboundActions(BjOutboundCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.partner = cls.env["res.partner"].create({"name": "Action", "email": "a@example.com"})

    def notification(self, config):
        action = config.action_test_connection()
        self.assertEqual(action["tag"], "display_notification")
        return action["params"]

    def test_test_connection_out_uses_head_and_configured_auth(self):
        token = generated_secret()
        config = self.make_out_config(path="/contacts/{res_id}?expand=1",
                                      authorization_type="bearer_token", bearer_token=token)
        params = self.notification(config)
        self.assertEqual(params["type"], "success")
        self.assertIn("200", params["message"])
        request = self.server.requests[0]
        self.assertEqual((request.method, request.path), ("HEAD", "/contacts?expand=1"))
        self.assertEqual(request.headers["Authorization"], f"Bearer {token}")
        log = self.assertLogged(config, count=1)
        self.assertEqual((log.method, log.direction, log.status_code), ("HEAD", "out", 200))
        self.assertNoSecretIn(log.request_headers, token)

    def test_test_connection_falls_back_when_head_is_refused(self):
        config = self.make_out_config()
        self.server.queue(405, {})
        self.server.queue(501, {})
        self.assertEqual(self.notification(config)["type"], "success")
        self.assertEqual([r.method for r in self.server.requests], ["HEAD", "OPTIONS", "GET"])

    def test_test_connection_reports_problems_in_plain_words(self):
        config = self.make_out_config()
        self.server.queue(401, {})
        params = self.notification(config)
        self.assertEqual((params["type"], params["title"]), ("warning", "Credentials refused"))
        self.assertIn("401", params["message"])
        closed = LocalHttpServer().start()
        closed.stop()
        config.request_url = closed.url
        params = self.notification(config)
        self.assertEqual(params["type"], "danger")
        self.assertIn("Connection refused", params["message"])
        self.assertEqual(self.get_logs(config).mapped("state"), ["error", "error"])

    def test_test_connection_in_calls_its_own_endpoint(self):
        password, signing = generated_secret(), generated_secret()
        config = self.make_partner_config(
            request_type="in", endpoint="own-contacts", authorization_type="basic_auth",
            login="partner-api", password=password, signature_secret=signing,
        )
        self.env["ir.config_parameter"].set_param("web.base.url", self.server.url)
        self.assertEqual(self.notification(config)["type"], "success")
        request = self.server.requests[0]
        self.assertEqual((request.method, request.path),
                         ("GET", "/bj_api_sync/v1/own-contacts?limit=1"))
        self.assertTrue(request.headers["Authorization"].startswith("Basic "))
        stamp, signature = (part.split("=", 1)[1] for part in
                            request.headers["X-BJET-Signature"].split(","))
        signed = f"{stamp}.GET./bj_api_sync/v1/own-contacts?limit=1.".encode()
        expected = hmac.new(signing.encode(), signed, hashlib.sha256).hexdigest()
        self.assertEqual(signature, expected)
        self.assertEqual(self.assertLogged(config, count=1).direction, "in")

    def test_create_trigger_actions(self):
        config = self.make_out_config(filter_domain="[('email', '=', 'a@example.com')]")
        with self.assertRaisesRegex(UserError, "Trigger Action Model first"):
            config.action_create_trigger_action()
        actions = {}
        for kind in ("ir.actions.server", "base.automation", "ir.cron"):
            config.write({"trigger_action_model_id": self.env["ir.model"]._get_id(kind),
                          "trigger_action_id": False})
            result = config.action_create_trigger_action()
            action = actions[kind] = self.env[kind].browse(result["res_id"])
            self.assertEqual((result["res_model"], config.trigger_action_id), (kind, action.id))
            self.assertEqual(action.model_id, config.model_id)
        server_action = actions["ir.actions.server"]
        self.assertTrue(server_action.binding_model_id)
        for code in (server_action.code, actions["ir.cron"].code,
                     actions["base.automation"].action_server_ids.code):
            self.assertIn(f"_enqueue_outbound_records(records, {config.id})", code)
            self.assertNotIn("_make_outbound_http_request", code)
        server_action.with_context(active_model="res.partner", active_ids=self.partner.ids).run()
        self.assertFalse(self.server.requests, "queued, not sent inside the user's transaction")
        job = self.get_jobs(config)
        self.assertEqual((job.event, job.res_ids), ("manual", str(self.partner.id)))
        actions["ir.cron"].ir_actions_server_id.run()
        jobs = self.get_jobs(config)
        self.assertEqual(jobs.mapped("res_ids"), [str(self.partner.id)] * 2)
        self.deliver()
        self.assertEqual(self.bodies(), [{"res_id": self.partner.id, "name": "Action",
                                          "email": "a@example.com", "phone": None}])
        self.assertEqual(jobs.mapped("state"), ["done", "cancelled"])

    def test_a_trigger_action_never_breaks_anyone_s_save(self):
        """An administrator's automation rule queues through a configuration that
        is later archived, moved to another model or deleted: every user's create
        still succeeds, nothing is queued, and the reason is in the server log and
        (once in a row) on the configuration."""
        clerk = new_test_user(self.env, login="bj_trigger_clerk",
                              groups="base.group_user,base.group_partner_manager")
        config = self.make_out_config(
            trigger_action_model_id=self.env["ir.model"]._get_id("base.automation"))
        config.action_create_trigger_action()
        partners = self.env["res.partner"].with_user(clerk)
        queued = partners.create({"name": "Queued"})
        self.env.flush_all()  # the rule fires on recomputed stored fields too
        jobs = self.get_jobs(config)
        self.assertIn(str(queued.id), jobs.mapped("res_ids"))
        country_line = {"field_id": self.env["ir.model.fields"]._get("res.country", "id").id,
                        "is_identifier": True}
        changes = {
            "archived": ({"active": False}, "is not an active Out configuration"),
            "on another model": ({"active": True, "model_id": self.env["ir.model"]._get_id(
                "res.country"), "line_ids": [Command.clear(), Command.create(country_line)]},
                "sends res.country records, not res.partner"),
            "an In configuration": ({"request_type": "in", "endpoint": "was-out",
                                     "model_id": self.partner_model.id,
                                     "line_ids": [Command.clear()]},
                                    "is not an active Out configuration"),
        }
        for case, (values, reason) in changes.items():
            with self.subTest(case):
                config.write(values)
                notes = len(config.message_ids)
                for name in ("First", "Second"):
                    with self.assertLogs("bj.api.outbound", "WARNING") as logs:
                        self.assertTrue(partners.create({"name": f"{name} {case}"}))
                        self.env.flush_all()
                    self.assertIn(reason, logs.output[0])
                self.assertEqual(self.get_jobs(config), jobs)
                self.assertEqual(len(config.message_ids), notes + 1, "one note in a row")
                self.assertIn(reason, config.message_ids[0].body)
        jobs.action_cancel()
        config.unlink()
        with self.assertLogs("bj.api.outbound", "WARNING") as logs:
            self.assertTrue(partners.create({"name": "Deleted"}))
            self.env.flush_all()
        self.assertIn("No API configuration matches", logs.output[0])

    def test_trigger_actions_evaluate_the_filter_domain_when_they_run(self):
        config = self.make_out_config(filter_domain=(
            "[('write_date', '>=', datetime.now() - timedelta(days=7)), ('ref', '=', 'WEEK')]"))
        old, recent = self.env["res.partner"].create(
            [{"name": "Old", "ref": "WEEK"}, {"name": "Recent", "ref": "WEEK"}])
        self.env.flush_all()
        self.env.cr.execute("UPDATE res_partner SET write_date = now() - interval '30 days' "
                            "WHERE id = %s", [old.id])
        old.invalidate_recordset()
        actions = {}
        for kind in ("base.automation", "ir.cron"):
            config.write({"trigger_action_model_id": self.env["ir.model"]._get_id(kind),
                          "trigger_action_id": False})
            actions[kind] = self.env[kind].browse(config.action_create_trigger_action()["res_id"])
        self.assertFalse(actions["base.automation"].filter_domain)
        actions["ir.cron"].ir_actions_server_id.run()
        self.assertEqual(self.get_jobs(config).mapped("res_ids"), [str(recent.id)])
        saved = self.env["res.partner"].create({"name": "Saved", "ref": "WEEK"})
        self.env["res.partner"].create({"name": "Elsewhere"})
        self.assertEqual(self.get_jobs(config).mapped("res_ids"),
                         [str(recent.id), str(saved.id)], "the automation rule, on save")

    def test_two_triggers_deliver_a_change_once(self):
        # Send on Create and on Update, plus a generated automation rule on save.
        config = self.make_out_config(
            trigger_on_create=True, trigger_on_write=True,
            trigger_action_model_id=self.env["ir.model"]._get_id("base.automation"))
        config.action_create_trigger_action()
        partner = self.env["res.partner"].create({"name": "Twice", "email": "t@example.com"})
        self.assertDeliveredOnce(config, partner, "create")
        partner.email = "changed@example.com"
        self.assertDeliveredOnce(config, partner, "write")
        self.assertEqual([body["email"] for body in self.bodies()],
                         ["t@example.com", "changed@example.com"])

    def assertDeliveredOnce(self, config, partner, event):
        """The jobs that the triggers queued for ``partner`` go out as one request."""
        jobs = self.get_jobs(config).filtered(lambda job: job.state == "pending")
        # The automation rule also fires when stored computed fields are
        # recomputed (base_automation), the native trigger once.
        self.assertEqual(set(jobs.mapped("event")), {event, "manual"})
        self.assertEqual(set(jobs.mapped("res_ids")), {str(partner.id)})
        sent = len(self.server.requests)
        self.deliver()
        self.assertEqual(len(self.server.requests), sent + 1, "one delivery for one change")
        self.assertEqual(jobs[0].state, "done")
        self.assertEqual(set((jobs - jobs[0]).mapped("state")), {"cancelled"})

    def dead_messages(self, config):
        return config.message_ids.filtered(
            lambda message: "failed for good" in message.body and not message.mail_activity_type_id
        )

    def test_dead_deliveries_notify_once_per_burst(self):
        config = self.make_out_config(user_id=self.sync_manager.id)
        jobs = self.env["bj.api.sync.config"]._enqueue_outbound_records(
            self.env["res.partner"].create([{"name": f"Dead {i}"} for i in range(3)]), config)
        self.server.queue(400, {})
        self.server.queue(400, {})
        self.deliver()
        self.assertEqual(jobs.mapped("state"), ["dead", "dead", "done"])
        activity = config.activity_ids
        self.assertEqual((len(activity), activity.user_id), (1, self.sync_manager))
        self.assertIn("2 outbound deliveries failed", activity.note)
        self.assertEqual(len(self.dead_messages(config)), 1,
                         "one message for the burst, not one per job")
        self.server.queue(422, {})
        jobs[2].write({"state": "dead"})
        jobs[2].action_retry()
        self.deliver()
        self.assertEqual(len(config.activity_ids), 1)
        self.assertIn("3 outbound deliveries failed", config.activity_ids.note)
        self.assertEqual(len(self.dead_messages(config)), 1)
        config.activity_ids.action_done()
        self.server.queue(400, {})
        jobs[0].action_retry()
        self.deliver()
        self.assertEqual(len(config.activity_ids), 1, "a new burst")
        self.assertEqual(len(self.dead_messages(config)), 2)

    def test_failed_notification_keeps_the_result(self):
        config = self.make_out_config()
        job = self.env["bj.api.sync.config"]._enqueue_outbound_records(self.partner, config)
        self.server.queue(400, {})
        broken = patch.object(type(config), "_bj_notify_dead_job",
                              side_effect=UserError("mail server on fire"))
        with broken, mute_logger("bj.api.outbound"):
            self.deliver()
        self.assertEqual(job.state, "dead")
        self.assertEqual(len(job.log_ids), 1)

    def test_queue_counts_and_unlink_guard(self):
        config = self.make_out_config(header_ids=[Command.create({"key": "X", "value": "1"})])
        jobs = self.env["bj.api.sync.config"]._enqueue_outbound_records(self.partner, config)
        self.assertEqual((config.job_pending_count, config.job_dead_count), (1, 0))
        action = config.action_view_jobs()
        self.assertEqual(self.env[action["res_model"]].search(action["domain"]), jobs)
        with self.assertRaisesRegex(UserError, "still waiting to be sent"):
            config.unlink()
        self.server.queue(400, {})
        self.deliver()
        config.invalidate_recordset(["job_pending_count", "job_dead_count"])
        self.assertEqual((config.job_pending_count, config.job_dead_count), (0, 1))
        config.unlink()
        self.assertFalse(jobs.exists())
