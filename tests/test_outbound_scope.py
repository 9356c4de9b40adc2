"""Which records an Out configuration sees is decided as its Run As User.

Every search that picks records (the schedule, native triggers and deletions,
Trigger Actions, the entry point, the delivery worker) runs with that user's
rights and record rules: what it may not read is never matched, queued or
counted, so a Filter Domain tells nobody anything about it, and a deletion of
it is not that configuration's to block."""

import logging

from odoo import Command
from odoo.exceptions import ValidationError
from odoo.tests import tagged
from odoo.tests.common import new_test_user

from .common import BjOutboundCase
from .test_run_as_user import HIDDEN_REF, RunAsFixturesMixin


@tagged("post_install", "-at_install")
class TestOutboundScope(RunAsFixturesMixin, BjOutboundCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_run_as_fixtures()
        cls.system_user = new_test_user(cls.env, login="bj_scope_system",
                                        groups="base.group_system")

    def settle(self, table, records):
        """Date the records' last change back, before the schedule's bound."""
        self.env.flush_all()
        self.env.cr.execute(
            f"UPDATE {table} SET write_date = (now() at time zone 'UTC') - interval '3m' "  # noqa: S608
            "WHERE id IN %s", [tuple(records.ids)])
        records.invalidate_recordset(["write_date"])

    def secret_config(self, **values):
        """A configuration on System Parameters, saved while its Run As User could
        read them, whose user has lost that right since."""
        config = self.make_config(
            model="ir.config_parameter", request_type="out", run_as_user_id=self.system_user.id,
            request_url=self.server.url + "/params",
            lines=[("id", "id", {"is_identifier": True})], **values)
        self.system_user.groups_id = [Command.unlink(self.env.ref("base.group_system").id)]
        return config

    def manager_create(self, model, **values):
        manager = self.sync_manager
        return self.env["bj.api.sync.config"].with_user(manager).create({
            "name": f"Manager's {model}", "request_type": "out",
            "model_id": self.env["ir.model"]._get_id(model),
            "request_url": self.server.url + "/x", "run_as_user_id": manager.id,
            "http_method_ids": [Command.set(self.method_post.ids)],
            "line_ids": [Command.create({
                "field_id": self.env["ir.model.fields"]._get(model, "id").id,
                "external_key": "id", "is_identifier": True})],
            **values,
        })

    # -- a Model the Run As User cannot read is refused on save -----------------------

    def test_model_the_run_as_user_cannot_read_is_refused(self):
        for model, label in (("ir.config_parameter", "System Parameter"),
                             ("ir.cron", "Scheduled Actions")):
            with self.subTest(model=model), self.assertRaisesRegex(
                    ValidationError, f"Run As User bj_sync_manager may not read {label}"):
                self.manager_create(model, trigger_on_schedule=True, trigger_on_unlink=True,
                                    filter_domain="[('id', '>', 0)]")
        config = self.make_config(request_type="out")
        with self.assertRaisesRegex(ValidationError, "bj_integration may not read System"):
            config.model_id = self.env["ir.model"]._get("ir.config_parameter")

    # -- the schedule -------------------------------------------------------------------

    def test_schedule_queues_nothing_the_run_as_user_cannot_read(self):
        secret = self.env["ir.config_parameter"].search([("key", "=", "database.secret")])
        prefix = secret.value[0]
        config = self.secret_config(
            trigger_on_schedule=True,
            filter_domain=f"[('key', '=', 'database.secret'), ('value', '=like', '{prefix}%')]")
        self.settle("ir_config_parameter", secret)
        self.assertEqual(self.env["bj.api.sync.config"]._cron_send_scheduled(config.id), 0)
        self.assertFalse(self.get_jobs(config), "the Filter Domain is no oracle")

    def test_schedule_skips_records_hidden_by_record_rules(self):
        config = self.make_out_config(
            path="/scheduled", trigger_on_schedule=True, run_as_user_id=self.restricted_user.id,
            filter_domain="[('name', '=like', 'Run As %')]")
        self.settle("res_partner", self.visible | self.hidden)
        self.assertEqual(self.env["bj.api.sync.config"]._cron_send_scheduled(config.id), 1)
        self.assertEqual(self.get_jobs(config).res_ids, str(self.visible.id))

    # -- native triggers ------------------------------------------------------------------

    def test_deleting_what_the_run_as_user_cannot_read_is_not_blocked(self):
        config = self.make_out_config(path="/deleted", trigger_on_unlink=True,
                                      trigger_on_write=True,
                                      run_as_user_id=self.restricted_user.id)
        self.hidden.email = "changed@example.com"
        self.hidden.unlink()
        self.assertFalse(self.hidden.exists())
        self.assertFalse(self.get_jobs(config), "nothing of it to send")
        self.visible.unlink()
        job = self.get_jobs(config)
        self.assertEqual((job.event, job.res_ids), ("unlink", str(self.visible.id)))

    def test_deleting_a_model_the_run_as_user_lost_is_not_blocked(self):
        config = self.secret_config(trigger_on_unlink=True, trigger_on_create=True)
        parameter = self.env["ir.config_parameter"].create({"key": "bj.scope", "value": "x"})
        parameter.unlink()
        self.assertFalse(parameter.exists())
        self.assertFalse(self.get_jobs(config))

    def test_trigger_filter_domain_matches_only_what_the_user_reads(self):
        config = self.make_out_config(
            path="/created", trigger_on_create=True, run_as_user_id=self.restricted_user.id,
            filter_domain=f"[('ref', '=', '{HIDDEN_REF}')]")
        self.env["res.partner"].create({"name": "Another hidden", "ref": HIDDEN_REF})
        self.assertFalse(self.get_jobs(config))

    # -- Trigger Actions, the entry point and the worker ---------------------------------

    def test_enqueue_and_entry_point_skip_what_the_user_cannot_read(self):
        config = self.make_out_config(path="/sent", run_as_user_id=self.restricted_user.id,
                                      filter_domain="[('create_uid', '!=', uid)]")
        Config = self.env["bj.api.sync.config"]
        jobs = Config._enqueue_outbound_records(self.visible | self.hidden, config)
        self.assertEqual(jobs.res_ids, str(self.visible.id))
        self.assertIn(("create_uid", "!=", self.restricted_user.id),
                      Config._bj_scope_domain_of(config.id), "uid is the Run As User")
        answer = Config._make_outbound_http_request(self.hidden, config)
        self.assertEqual(answer["skipped_ids"], self.hidden.ids)
        self.assertIn("hidden from its Run As User", answer["error"])
        self.assertFalse(self.server.requests)

    def test_worker_cancels_a_record_hidden_since_it_was_queued(self):
        config = self.make_out_config(path="/later", run_as_user_id=self.restricted_user.id)
        job = self.env["bj.api.sync.config"]._enqueue_outbound_records(self.visible, config)
        self.visible.ref = HIDDEN_REF
        self.deliver()
        self.assertEqual(job.state, "cancelled")
        self.assertIn("hidden from the Run As User", job.last_error)
        self.assertFalse(self.server.requests)

    # -- Filter Domain leaves on fields that cannot be searched ---------------------------

    def test_filter_domain_on_a_field_that_cannot_be_searched_is_refused(self):
        cases = (
            ("res.users", "[('password', '=like', 'a%')]", "password"),
            ("res.partner", "[('user_ids.password', '=like', 'a%')]", "password"),
            ("res.partner", "[('user_ids', 'any', [('password', '!=', False)])]", "password"),
        )
        logged = self.capture_server_log(logging.ERROR)
        for model, domain, field in cases:
            with self.subTest(domain=domain), \
                    self.assertRaisesRegex(ValidationError, f"{field}.*cannot be searched"):
                self.make_config(model=model, request_type="out", filter_domain=domain,
                                 run_as_user_id=self.system_user.id,
                                 lines=[("id", "id", {"is_identifier": True})])
        self.assertFalse(logged, "no ERROR line")

    def test_filter_domain_on_a_field_the_run_as_user_may_not_read(self):
        config = self.make_config(
            model="ir.mail_server", request_type="out", run_as_user_id=self.system_user.id,
            request_url=self.server.url + "/servers", trigger_on_write=True,
            filter_domain="[('smtp_user', '=', 'mailer')]",
            lines=[("id", "id", {"is_identifier": True})])
        # Still reads the model, no longer the field: nothing is in scope, and
        # nobody's save fails for it.
        self.env["ir.model.access"].create({
            "name": "BJ read mail servers", "model_id": config.model_id.id, "perm_read": True,
            "group_id": self.env.ref("base.group_user").id})
        self.system_user.groups_id = [Command.unlink(self.env.ref("base.group_system").id)]
        mail_server = self.env["ir.mail_server"].create({
            "name": "BJ SMTP", "smtp_host": "127.0.0.1", "smtp_user": "mailer"})
        mail_server.smtp_port = 2525
        self.assertFalse(self.get_jobs(config))
        with self.assertRaisesRegex(ValidationError, "smtp_user.*restricted to .*"
                                                     "bj_scope_system may not search"):
            config.filter_domain = "[('smtp_user', '=', 'other')]"
