"""Integrations run as their Run As User, both ways: its rights, field groups
and record rules apply; an archived user, or one not allowed in the
configuration's company, turns the integration off with a clear error."""

from odoo import Command
from odoo.exceptions import UserError, ValidationError
from odoo.tests import tagged
from odoo.tests.common import new_test_user

from .common import BjApiHttpCase, BjApiSyncCase, BjOutboundCase, bearer_auth, generated_secret

HIDDEN_REF = "bj-hidden"


class RunAsFixturesMixin:
    """Company B, and a user whose record rule hides the contacts and tags marked
    hidden (and, as for every user, the companies it is not allowed in)."""

    @classmethod
    def setup_run_as_fixtures(cls):
        cls.company_a = cls.env.company
        cls.company_b = cls.env["res.company"].create({"name": "BJ Run As Company B"})
        hiding = cls.env["res.groups"].create({"name": "BJ hidden records"})
        for model, domain in (("res.partner", f"[('ref', '!=', '{HIDDEN_REF}')]"),
                              ("res.partner.category", "[('name', 'not like', 'Hidden')]")):
            cls.env["ir.rule"].create({
                "name": f"BJ hide {model}", "model_id": cls.env["ir.model"]._get_id(model),
                "domain_force": domain, "groups": [Command.link(hiding.id)],
            })
        cls.restricted_user = new_test_user(
            cls.env, login="bj_restricted",
            groups="base.group_user,base.group_partner_manager",
        )
        cls.restricted_user.groups_id = [Command.link(hiding.id)]
        Partner = cls.env["res.partner"]
        cls.visible = Partner.create({"name": "Run As Visible", "email": "v@example.com"})
        cls.hidden = Partner.create({"name": "Run As Hidden", "email": "h@example.com",
                                     "ref": HIDDEN_REF})


@tagged("post_install", "-at_install")
class TestRunAsUserOnSave(RunAsFixturesMixin, BjApiSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_run_as_fixtures()
        cls.system_user = new_test_user(cls.env, login="bj_system", groups="base.group_system")

    def assertRefused(self, message, **values):
        with self.assertRaises(ValidationError) as caught:
            self.make_config(**values)
        self.assertIn(message, str(caught.exception))

    def test_both_directions_need_a_run_as_user_that_is_not_the_superuser(self):
        for request_type in ("in", "out"):
            with self.subTest(request_type=request_type):
                self.assertRefused("needs a Run As User", request_type=request_type,
                                   run_as_user_id=False)
                self.assertRefused("cannot run as the superuser", request_type=request_type,
                                   run_as_user_id=self.env.ref("base.user_root").id)

    def test_default_is_the_user_who_creates_it(self):
        admin = self.env.ref("base.user_admin")
        config = self.env["bj.api.sync.config"].with_user(admin).create({
            "name": "Made by admin", "request_type": "out",
            "model_id": self.partner_model.id, "request_url": "http://127.0.0.1:9/x",
            "http_method_ids": [Command.set(self.method_post.ids)],
        })
        self.assertEqual(config.run_as_user_id, admin)

    def test_archived_user_is_refused(self):
        self.integration_user.active = False
        self.assertRefused("its Run As User bj_integration is archived", request_type="out")

    def test_user_must_be_allowed_in_the_company(self):
        self.assertRefused(
            "its Run As User bj_integration is not allowed in BJ Run As Company B",
            company_id=self.company_b.id)
        self.make_config(request_type="out", company_id=False)  # shared: any user
        config = self.make_config(request_type="out")
        with self.assertRaises(ValidationError):
            config.company_id = self.company_b
        self.integration_user.company_ids = [Command.link(self.company_b.id)]
        config.company_id = self.company_b

    def test_groups_restricted_field_is_refused_unless_the_user_has_the_group(self):
        # ir.mail_server.smtp_user is groups="base.group_system".
        lines = [("id", "id", {"is_identifier": True}), ("smtp_user", "user", None)]
        with self.assertRaises(ValidationError) as caught:
            self.make_config(model="ir.mail_server", request_type="out", lines=lines)
        message = str(caught.exception)
        self.assertIn("Username (Mail Server)", message)
        self.assertIn("Administration / Settings", message)
        self.assertIn("bj_integration", message)
        config = self.make_config(model="ir.mail_server", request_type="out",
                                  run_as_user_id=self.system_user.id,
                                  lines=[("id", "id", {"is_identifier": True})])
        config.line_ids = [Command.create({
            "field_id": self.env["ir.model.fields"]._get("ir.mail_server", "smtp_user").id,
            "external_key": "user", "value_type": "plain",
        })]
        with self.assertRaises(ValidationError) as caught:
            config.run_as_user_id = self.integration_user
        self.assertIn("Username (Mail Server)", str(caught.exception))

    def test_archiving_the_user_tells_the_responsible(self):
        responsible = new_test_user(self.env, login="bj_responsible",
                                    groups="bjet_api_sync.group_api_sync_manager")
        configs = self.make_config(request_type="out", user_id=responsible.id) | self.make_config()
        untouched = self.make_config(run_as_user_id=self.restricted_user.id)
        self.integration_user.action_archive()
        for config in configs:
            activity = config.activity_ids
            self.assertEqual(len(activity), 1)
            self.assertIn("is archived", activity.note)
            self.assertIn("This integration is off", config.message_ids[0].body)
        self.assertEqual(configs[0].activity_ids.user_id, responsible)
        self.assertFalse(untouched.activity_ids)

    def test_removing_the_company_tells_the_responsible(self):
        self.integration_user.company_ids = [Command.link(self.company_b.id)]
        config = self.make_config(request_type="out", company_id=self.company_b.id)
        self.integration_user.company_ids = [Command.unlink(self.company_b.id)]
        self.assertIn("not allowed in BJ Run As Company B", config.activity_ids.note)


@tagged("post_install", "-at_install")
class TestRunAsUserOutbound(RunAsFixturesMixin, BjOutboundCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_run_as_fixtures()
        cls.config = cls.make_out_config(max_attempts=2, run_as_user_id=cls.restricted_user.id)

    def send(self, records, config=None):
        return self.env["bj.api.sync.config"]._make_outbound_http_request(
            records, config or self.config)

    def enqueue(self, records, config=None):
        return self.env["bj.api.sync.config"]._enqueue_outbound_records(
            records, config or self.config)

    def deliver_until_dead(self, job):
        self.deliver()
        self.assertEqual(job.state, "pending", "retried by the usual policy")
        self.pass_time(job)
        self.deliver()
        self.assertEqual(job.state, "dead")

    def test_scripts_of_out_lines_run_as_the_run_as_user(self):
        config = self.make_config(request_type="out", request_url=self.server.url + "/who", lines=[
            ("id", "res_id", {"is_identifier": True}),
            ("comment", "who", {"value_type": "python_plain",
                                "python_script": "[env.uid, env.su, env.company.id]"}),
        ])
        expected = [self.integration_user.id, False, self.company_a.id]
        self.assertTrue(self.send(self.visible, config)["success"])
        self.enqueue(self.visible, config)
        self.deliver()
        self.assertEqual([body["who"] for body in self.bodies()], [expected, expected])

    def test_mapping_model_records_hidden_from_the_user_fail_clearly(self):
        tags = self.make_config(model="res.partner.category", request_type="out",
                                lines=[("name", "name", {"is_identifier": True})])
        config = self.make_config(
            request_type="out", request_url=self.server.url + "/tagged",
            run_as_user_id=self.restricted_user.id,
            lines=[("id", "res_id", {"is_identifier": True}),
                   ("category_id", "tags", {"value_type": "relational_mapping",
                                            "mapping_config_id": tags.id})])
        self.visible.category_id = self.env["res.partner.category"].create({"name": "Hidden"})
        answer = self.send(self.visible, config)
        self.assertIn("bj_restricted may not read res.partner.category records", answer["error"])
        self.assertFalse(self.server.requests)

    def test_field_outside_the_users_groups_is_not_exported(self):
        # Saved while the user had the group; the group was taken away later.
        system_user = new_test_user(self.env, login="bj_out_system", groups="base.group_system")
        config = self.make_config(
            model="ir.mail_server", request_type="out", run_as_user_id=system_user.id,
            request_url=self.server.url + "/servers",
            lines=[("id", "id", {"is_identifier": True}), ("smtp_user", "user", None)])
        mail_server = self.env["ir.mail_server"].create({
            "name": "BJ SMTP", "smtp_host": "127.0.0.1", "smtp_user": "mailer"})
        # Still reads the model (else nothing is in scope), not the field.
        self.env["ir.model.access"].create({
            "name": "BJ read mail servers", "model_id": config.model_id.id, "perm_read": True,
            "group_id": self.env.ref("base.group_user").id})
        system_user.groups_id = [Command.unlink(self.env.ref("base.group_system").id)]
        answer = self.send(mail_server, config)
        self.assertFalse(answer["success"])
        self.assertIn("bj_out_system may not read the fields smtp_user of ir.mail_server",
                      answer["error"])
        self.assertFalse(self.server.requests)

    def test_archived_user_turns_deliveries_off_until_it_is_back(self):
        job = self.enqueue(self.visible)
        self.restricted_user.active = False
        self.deliver()
        self.assertEqual(job.state, "pending")
        self.assertIn("This integration is off: its Run As User bj_restricted is archived",
                      job.last_error)
        self.assertFalse(self.server.requests)
        # Another record: this one's job, older, holds it (see TestDirectCallTakesOverItsJob).
        answer = self.send(self.env["res.partner"].create({"name": "Run As Other"}))
        self.assertIn("is archived", answer["error"])
        self.assertEqual(self.env["bj.api.sync.job"].browse(answer["queued_job_ids"]).state,
                         "dead")
        with self.assertRaisesRegex(UserError, "is archived"):
            self.config.action_test_connection()
        self.restricted_user.active = True
        self.pass_time(job)
        self.deliver()
        self.assertEqual(job.state, "done")

    def test_user_not_in_the_company_turns_deliveries_off(self):
        self.restricted_user.company_ids = [Command.link(self.company_b.id)]
        config = self.make_out_config(path="/b", company_id=self.company_b.id,
                                      run_as_user_id=self.restricted_user.id, max_attempts=2)
        job = self.enqueue(self.visible, config)
        self.restricted_user.company_ids = [Command.unlink(self.company_b.id)]
        self.deliver_until_dead(job)
        self.assertIn("bj_restricted is not allowed in BJ Run As Company B", job.last_error)
        self.assertFalse(self.server.requests)

    def test_schedule_waits_while_the_user_is_off(self):
        config = self.make_out_config(path="/scheduled", trigger_on_schedule=True,
                                      filter_domain=f"[('id', '=', {self.visible.id})]")
        # Changed a minute ago: before the schedule's bound.
        self.env.flush_all()
        self.env.cr.execute("UPDATE res_partner SET write_date = write_date - interval '1m' "
                            "WHERE id = %s", [self.visible.id])
        self.integration_user.active = False
        Config = self.env["bj.api.sync.config"]
        self.assertEqual(Config._cron_send_scheduled(config.id), 0)
        self.assertFalse(config.schedule_last_sync, "the mark stays")
        self.integration_user.active = True
        self.assertEqual(Config._cron_send_scheduled(config.id), 1)

    def test_deletion_is_refused_while_its_export_cannot_run(self):
        self.make_out_config(path="/deleted", trigger_on_unlink=True)
        self.integration_user.active = False
        with self.assertRaisesRegex(UserError, "cannot be deleted.*is archived"):
            self.visible.unlink()


@tagged("post_install", "-at_install")
class TestRunAsUserInbound(RunAsFixturesMixin, BjApiHttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_run_as_fixtures()
        cls.token = generated_secret("runas")
        cls.config = cls.make_config(
            endpoint="run-as-contacts", run_as_user_id=cls.restricted_user.id,
            authorization_type="bearer_token", bearer_token=cls.token,
            lines=[("id", "res_id", {"is_identifier": True}), ("name", "name", None),
                   ("parent_id", "parent", None), ("category_id", "tags", None),
                   ("company_id", "company", None)],
        )
        Tag = cls.env["res.partner.category"]
        cls.tag = Tag.create({"name": "Run As Tag"})
        cls.hidden_tag = Tag.create({"name": "Run As Hidden Tag"})

    def post(self, body, token=None):
        return self.api("POST", "run-as-contacts", body=body,
                        headers=bearer_auth(token or self.token))

    def assertNothingCreated(self):
        self.assertFalse(self.env["res.partner"].search([("name", "=", "Run As New")]))

    def test_ids_the_user_may_read_are_accepted(self):
        data = self.assertApiSuccess(self.post({
            "name": "Run As New", "parent": self.visible.id, "tags": [self.tag.id],
            "company": self.company_a.id}), 201)
        partner = self.env["res.partner"].browse(data["res_id"])
        self.assertEqual((partner.parent_id, partner.category_id), (self.visible, self.tag))

    def test_ids_hidden_by_record_rules_are_refused(self):
        line_id = self.config.line_ids.filtered(lambda line: line.external_key == "parent").id
        cases = (
            ("parent", self.hidden.id, "res.partner", line_id),
            ("tags", [self.tag.id, self.hidden_tag.id], "res.partner.category", None),
            # The multi-company rule: company B is not among the user's companies.
            ("company", self.company_b.id, "res.company", None),
        )
        for key, value, model, expected_line in cases:
            with self.subTest(key=key):
                body = self.assertApiError(
                    self.post({"name": "Run As New", key: value}), 400,
                    f"Invalid value for '{key}': no {model} record with id "
                    r"\d+ that the Run As User may read", line_id=expected_line)
                self.assertNotIn("Traceback", body["message"])
                self.assertNothingCreated()

    def test_archived_user_turns_the_endpoint_off(self):
        self.restricted_user.active = False
        self.assertApiError(self.post({"name": "Run As New"}, token="wrong"), 401)
        response = self.api("GET", "run-as-contacts", self.visible.id,
                            headers=bearer_auth(self.token))
        self.assertApiError(
            response, 503, "This integration is off: its Run As User bj_restricted is archived")
        self.assertApiError(self.post({"name": "Run As New"}), 503)
        self.assertNothingCreated()
        self.assertLogged(self.config, status_code=503, count=2)

    def test_user_not_in_the_company_turns_the_endpoint_off(self):
        self.restricted_user.company_ids = [Command.link(self.company_b.id)]
        self.config.company_id = self.company_b
        self.restricted_user.company_ids = [Command.unlink(self.company_b.id)]
        self.assertApiError(
            self.api("GET", "run-as-contacts", headers=bearer_auth(self.token)), 503,
            "bj_restricted is not allowed in BJ Run As Company B")
