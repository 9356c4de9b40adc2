"""The event is what the user did: a record created from a form goes out as
``create`` whatever the form writes on it in the same transaction, and
updates fire only when a field the configuration watches (or sends) changes,
"On save" rules included, not at every stored recompute."""

from odoo import Command
from odoo.tests import Form, tagged

from .common import BjOutboundCase


@tagged("post_install", "-at_install")
class TestFormEvents(BjOutboundCase):
    def setUp(self):
        super().setUp()
        self.config = self.make_out_config(trigger_on_create=True, trigger_on_write=True)
        # Its lines send is_company, which the Contacts form writes inside create.
        self.company_config = self.make_config(
            request_type="out", name="Companies", trigger_on_create=True, trigger_on_write=True,
            request_url=self.server.url + "/companies",
            lines=[("id", "res_id", {"is_identifier": True}), ("name", "name", None),
                   ("is_company", "is_company", None)])

    def sent(self, path):
        return [request for request in self.server.requests if request.path == path]

    def assertCreatedOnce(self, partner):
        for config in (self.config, self.company_config):
            job = self.get_jobs(config)
            self.assertEqual((job.event, job.res_ids), ("create", str(partner.id)), config.name)
        self.deliver()
        for path in ("/contacts", "/companies"):
            request, = self.sent(path)
            self.assertEqual(request.headers["X-BJET-Event"], "create")
            self.assertEqual(request.json()["res_id"], partner.id)

    def test_the_contacts_form_creates_as_create(self):
        # company_type's inverse writes is_company inside BaseModel.create,
        # before the create trigger runs: that write queued a "write" job first.
        with Form(self.env["res.partner"]) as form:
            form.company_type = "company"
            form.name = "From the form"
            form.email = "form@example.com"
        self.assertTrue(form.record.is_company)
        self.assertCreatedOnce(form.record)
        self.assertEqual(self.sent("/companies")[0].json()["is_company"], True)

    def test_web_save_creates_as_create(self):
        # What the web client sends when saving a new contact.
        result = self.env["res.partner"].web_save(
            {"name": "From the web client", "company_type": "company",
             "email": "web@example.com"},
            {"display_name": {}, "is_company": {}})
        partner = self.env["res.partner"].browse(result[0]["id"])
        self.assertCreatedOnce(partner)

    def test_a_write_after_create_in_the_transaction_is_merged_into_it(self):
        partner = self.env["res.partner"].create({"name": "Then written"})
        partner.email = "later@example.com"
        self.deliver()
        request, = self.sent("/contacts")
        self.assertEqual((request.headers["X-BJET-Event"], request.json()["email"]),
                         ("create", "later@example.com"))


@tagged("post_install", "-at_install")
class TestWhatAnUpdateSends(BjOutboundCase):
    def partner(self):
        partner = self.env["res.partner"].create({"name": "Watched"})
        self.env["bj.api.sync.job"].search([]).unlink()
        return partner

    def test_without_watched_fields_the_fields_the_lines_send(self):
        config = self.make_out_config(trigger_on_write=True)
        self.assertEqual(config._bj_trigger_field_names(), {"id", "name", "email", "phone"})
        partner = self.partner()
        partner.write({"comment": "not sent", "is_company": True})
        partner.name = "Watched"  # the same value
        self.assertFalse(self.get_jobs(config), "nothing it sends changed")
        partner.phone = "123"
        self.assertEqual(self.get_jobs(config).event, "write")

    def test_a_script_line_or_a_field_not_stored_means_any_change(self):
        scripted = self.make_out_config(trigger_on_write=True, name="Scripted")
        scripted.line_ids[-1].write({"value_type": "python_plain",
                                     "python_script": "record.comment"})
        derived = self.make_config(request_type="out", name="Derived", trigger_on_write=True,
                                   lines=[("id", "res_id", {"is_identifier": True}),
                                          ("display_name", "label", None)])
        for config in (scripted, derived):
            self.assertEqual(config._bj_trigger_field_names(), frozenset(), config.name)
        self.partner().comment = "read by the script"
        self.assertEqual(len(self.get_jobs(scripted)), 1)
        self.assertEqual(len(self.get_jobs(derived)), 1)

    def test_the_on_save_rule_fires_only_when_a_watched_field_changes(self):
        base_automation = self.env["ir.model"]._get_id("base.automation")
        config = self.make_out_config(trigger_action_model_id=base_automation)
        config.action_create_trigger_action()
        rule = self.env["base.automation"].browse(config.trigger_action_id)
        self.assertEqual(set(rule.trigger_field_ids.mapped("name")),
                         {"id", "name", "email", "phone"})
        partner = self.env["res.partner"].create({"name": "Rule"})
        self.assertEqual(len(self.get_jobs(config)), 1, "a creation fires")
        self.get_jobs(config).unlink()
        # is_company recomputes the stored commercial_partner_id: neither is sent.
        partner.write({"is_company": True, "comment": "not sent"})
        self.assertFalse(self.get_jobs(config), "no change of a watched field")
        partner.email = "rule@example.com"
        self.assertEqual(len(self.get_jobs(config)), 1)

    def test_the_on_save_rule_watches_the_watched_fields(self):
        config = self.make_out_config(
            watched_field_ids=[Command.set(self.partner_field("email").ids)],
            trigger_action_model_id=self.env["ir.model"]._get_id("base.automation"))
        config.action_create_trigger_action()
        rule = self.env["base.automation"].browse(config.trigger_action_id)
        self.assertEqual(rule.trigger_field_ids.mapped("name"), ["email"])
        partner = self.partner()
        partner.name = "Renamed"
        self.assertFalse(self.get_jobs(config))
        partner.email = "watched@example.com"
        self.assertEqual(len(self.get_jobs(config)), 1)


@tagged("post_install", "-at_install")
class TestEventsBeyondTheForm(BjOutboundCase):
    """Attack vectors on point 7 not in the tests above."""

    def test_a_stored_computed_line_fires_when_its_source_changes(self):
        """Watched Fields empty, a line sends a stored computed field
        (email_normalized, from email): writing the email changes what is sent,
        but only email_normalized is a trigger field, and it is never in the
        write's values (a recompute does not go through write)."""
        config = self.make_config(request_type="out", name="Normalized", trigger_on_write=True,
                                  request_url=self.server.url + "/normalized",
                                  lines=[("id", "res_id", {"is_identifier": True}),
                                         ("email_normalized", "email", None)])
        partner = self.env["res.partner"].create({"name": "Normalized"})
        self.get_jobs(config).unlink()
        partner.email = "Changed@Example.com"
        self.assertEqual(partner.email_normalized, "changed@example.com")
        self.assertEqual(len(self.get_jobs(config)), 1,
                         "the value sent changed and no delivery was queued")

    def test_a_page_of_a_direct_call_is_not_a_creation_of_every_record(self):
        """Paginated: the call takes over the create job of one new record and
        sends it with an existing record under X-BJET-Event: create."""
        config = self.make_out_config(is_paginated=True, page_size=2, name="Paged events",
                                      trigger_on_create=True)
        existing = self.env["res.partner"].create({"name": "Existing"})
        self.get_jobs(config).unlink()  # delivered long ago
        new = self.env["res.partner"].create({"name": "New"})
        self.assertEqual(self.get_jobs(config).event, "create")
        answer = self.env["bj.api.sync.config"]._make_outbound_http_request(
            existing | new, config)
        self.assertTrue(answer["success"], answer)
        request, = self.server.requests
        self.assertEqual(len(request.json()), 2)
        self.assertNotEqual(request.headers["X-BJET-Event"], "create",
                            "an existing record went out as a creation")

    def test_a_record_created_and_deleted_in_one_transaction_sends_nothing(self):
        """The remote never heard of it: a deletion of it is answered 404,
        which kills the job and notifies the configuration's responsible."""
        config = self.make_out_config(trigger_on_create=True, trigger_on_write=True,
                                      trigger_on_unlink=True)
        partner = self.env["res.partner"].create({"name": "Ephemeral"})
        partner.unlink()
        self.server.queue(404, {"error": "unknown record"})
        self.deliver()
        self.assertEqual([r.headers["X-BJET-Event"] for r in self.server.requests], [],
                         "a deletion of a record the remote never received")
        self.assertNotIn("dead", self.get_jobs(config).mapped("state"))
