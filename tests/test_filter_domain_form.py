"""The Filter Domain in the form: typed as text in any accepted spelling, saved,
and its matching records counted as the API counts them (as the Run As User);
what the server refuses is named in the form, never raised while it opens."""

import logging

from odoo.exceptions import ValidationError
from odoo.tests import Form, HttpCase, tagged

from .common import BjApiSyncCase, BjApiSyncTestMixin
from .test_ui import START_URL

# The original's "last seven days" (its FAQ), and the README's other spelling.
ORIGINAL_DOMAIN = "[('write_date', '>=', datetime.now() - timedelta(days=7))]"
MODULE_SPELLING = "[('write_date', '>=', datetime.datetime.now() - timedelta(days=7))]"
ONLY_FOR_THEM = "Counted for the Run As User and Settings administrators only."


@tagged("post_install", "-at_install")
class TestFilterDomainCount(BjApiSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        partners = cls.env["res.partner"]
        as_integration = partners.with_user(cls.integration_user)
        as_integration.create([{"name": "Count 1", "ref": "CNT-1"},
                               {"name": "Count 2", "ref": "CNT-2"},
                               {"name": "Count 4", "ref": "CNT-4", "active": False}])
        partners.create({"name": "Count 3", "ref": "CNT-3"})

    def counted(self, config):
        return config.filter_domain_count, config.filter_domain_problem

    def test_counted_as_the_run_as_user_like_the_api(self):
        """uid is the Run As User; archived records count for Out (its deliveries
        send them), not for In (its lists do not show them)."""
        domain = "[('ref', '=like', 'CNT-%'), ('create_uid', '=', uid)]"
        config_in = self.make_config(filter_domain=domain)
        config_out = self.make_config(request_type="out", filter_domain=domain)
        self.assertEqual(self.counted(config_in), (2, False))
        self.assertEqual(self.counted(config_out), (3, False))

    def test_typed_domains_are_counted_before_they_are_saved(self):
        config = self.make_config(filter_domain="[('ref', '=', 'none')]")
        form = Form(config)
        self.assertEqual(form.filter_domain_count, 0)
        for spelling, count in ((ORIGINAL_DOMAIN, 3), (MODULE_SPELLING, 3),
                                (MODULE_SPELLING.replace(">=", "<"), 0)):
            with self.subTest(spelling=spelling):
                form.filter_domain = spelling[:-1] + ", ('ref', '=like', 'CNT-%')]"
                self.assertEqual((form.filter_domain_count, form.filter_domain_problem),
                                 (count, False))
        form.save()
        self.assertEqual(config.filter_domain,
                         MODULE_SPELLING.replace(">=", "<")[:-1] + ", ('ref', '=like', 'CNT-%')]")

    def test_refused_domains_are_named_in_the_form_not_raised(self):
        config = self.make_config(filter_domain="[('ref', '=like', 'CNT-%')]")
        cases = (
            ("[('name', '=', env.user.name)]", "is not allowed in a Filter Domain"),
            ("[('no_such_field', '=', 1)]", "no_such_field"),
            ("[('id', '=', 'abc')]", "invalid input syntax"),  # PostgreSQL's refusal
            ("[('user_ids.password', '=like', 'a%')]", "cannot be searched"),
            ("('is_company', '=', True)", "is a list"),
        )
        logged = self.capture_server_log(logging.ERROR)
        form = Form(config)
        for text, reason in cases:
            with self.subTest(text=text):
                form.filter_domain = text
                self.assertEqual(form.filter_domain_count, 0)
                self.assertIn(reason, form.filter_domain_problem)
                with self.assertRaisesRegex(ValidationError, "is not a valid domain"):
                    form.save()
        form.filter_domain = "[('ref', '=like', 'CNT-%')]"
        self.assertEqual((form.filter_domain_count, form.filter_domain_problem), (3, False))
        self.assertFalse(logged, "no ERROR line: PostgreSQL's refusal is not logged")

    def test_a_domain_saved_before_it_was_data_opens(self):
        config = self.make_config(filter_domain="[]")
        self.env.cr.execute("UPDATE bj_api_sync_config SET filter_domain = %s WHERE id = %s",
                            ["[('name', '=', env.user.name)]", config.id])
        config.invalidate_recordset()
        values = config.web_read({"filter_domain": {}, "filter_domain_count": {},
                                  "filter_domain_problem": {}})[0]
        self.assertEqual(values["filter_domain_count"], 0)
        self.assertIn("cannot be used: reading .name", values["filter_domain_problem"])

    def test_counted_for_the_run_as_user_and_administrators_only(self):
        """Anyone else would count what another user sees, with any domain of an
        unsaved form."""
        configs = self.env["bj.api.sync.config"]
        values = {"name": "Counted", "model_id": self.partner_model.id,
                  "filter_domain": "[('ref', '=like', 'CNT-%')]"}
        for user, run_as, expected in (
                (self.sync_manager, self.sync_manager, (3, False)),
                (self.sync_manager, self.integration_user, (0, ONLY_FOR_THEM)),
                (self.sync_user, self.sync_manager, (0, ONLY_FOR_THEM)),
                (self.env.ref("base.user_admin"), self.integration_user, (3, False))):
            with self.subTest(user=user.login, run_as=run_as.login):
                draft = configs.with_user(user).new({**values, "run_as_user_id": run_as.id})
                self.assertEqual(self.counted(draft), expected)
        saved = self.make_config(filter_domain=values["filter_domain"])
        self.assertEqual(self.counted(saved.with_user(self.sync_manager)), (0, ONLY_FOR_THEM))


@tagged("post_install", "-at_install")
class TestFilterDomainFormTour(BjApiSyncTestMixin, HttpCase):
    """In Chromium: a form holding a date-term domain opens, the original's is
    typed and saved, the reopened form counts its records, and a refused one
    gets the server's Validation Error (static/tests/tours/...filter_domain_tour.js)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_bj_fixtures()
        # Tags written in the last seven days: two, and one from before.
        cls.env.cr.execute(
            "UPDATE res_partner_category SET write_date = now() - interval '30 days'")
        cls.env.invalidate_all()
        tags = cls.env["res.partner.category"].create(
            [{"name": "Domain Tour A"}, {"name": "Domain Tour B"}, {"name": "Domain Tour C"}])
        cls.env.cr.execute(
            "UPDATE res_partner_category SET write_date = now() - interval '30 days' "
            "WHERE id = %s", [tags[2].id])
        cls.env.invalidate_all()
        cls.config = cls.make_config(
            model="res.partner.category", name="Domain Tour",
            filter_domain=MODULE_SPELLING[:-1] + ", ('name', '=', 'Domain Tour A')]")

    def test_filter_domain_typed_saved_and_counted(self):
        self.start_tour(f"{START_URL}/{self.config.id}", "bjet_api_sync_filter_domain_tour",
                        login="admin")
        self.config.invalidate_recordset()
        self.assertEqual(self.config.filter_domain, ORIGINAL_DOMAIN)
        self.assertEqual(self.config.filter_domain_count, 2)
