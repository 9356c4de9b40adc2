from odoo import fields
from odoo.tests import tagged

from ..core.plan import ParamPlan
from ..services.filter_domain import evaluate_domain
from .common import BjApiSyncCase


@tagged("post_install", "-at_install")
class TestCachedPlans(BjApiSyncCase):
    """Compiled plans, the endpoint index and the trigger index are cached in the
    registry: reading one costs no query, and any change of what they are built
    from drops them."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Config = cls.env["bj.api.sync.config"]
        cls.config = cls.make_partner_config(endpoint="cache-partners")

    def plan(self, endpoint="cache-partners"):
        return self.Config._bj_plan_for(self.Config._bj_inbound_config_id(endpoint))

    def queries_to_read_plan(self):
        before = self.cr.sql_log_count
        self.plan()
        return self.cr.sql_log_count - before

    def test_a_cached_plan_costs_no_query(self):
        self.plan()
        self.assertEqual(self.queries_to_read_plan(), 0)

    def test_every_change_of_its_sources_drops_the_plan(self):
        email_line = self.config.line_ids.filtered(lambda line: line.external_key == "email")
        changes = {
            "configuration": (lambda: self.config.write({"limit": 7}),
                              lambda plan: plan.limit == 7),
            "line": (lambda: email_line.write({"external_key": "mail"}),
                     lambda plan: plan.line("mail")),
            "new parameter": (
                lambda: self.env["bj.api.sync.param"].create({
                    "config_id": self.config.id, "key": "q",
                    "field_id": self.partner_field("name").id,
                }),
                lambda plan: plan.params == (ParamPlan("q", "name", "="),)),
            "parameter": (lambda: self.config.param_ids.write({"domain_operator": "ilike"}),
                          lambda plan: plan.params == (ParamPlan("q", "name", "ilike"),)),
            "HTTP method": (lambda: self.method_delete.write({"name": "PURGE"}),
                            lambda plan: "PURGE" in plan.methods),
            "deleted line": (lambda: email_line.unlink(), lambda plan: not plan.line("mail")),
        }
        for name, (change, seen) in changes.items():
            with self.subTest(change=name):
                self.plan()
                change()
                self.assertGreater(self.queries_to_read_plan(), 0)
                self.assertTrue(seen(self.plan()))

    def test_headers_drop_the_plan(self):
        out = self.make_config(request_type="out")
        self.assertEqual(out._bj_plan().delivery.headers, ())
        header = self.env["bj.api.sync.header"].create(
            {"config_id": out.id, "key": "X-Tenant", "value": "a"})
        self.assertEqual(out._bj_plan().delivery.headers, (("X-Tenant", "a"),))
        header.value = "b"
        self.assertEqual(out._bj_plan().delivery.headers, (("X-Tenant", "b"),))

    def test_mapping_models_are_part_of_the_plan(self):
        country = self.make_config(model="res.country",
                                   lines=[("code", "code", {"is_identifier": True})])
        config = self.make_config(lines=[
            ("id", "id", {"is_identifier": True}),
            ("country_id", "country", {"value_type": "relational_mapping",
                                       "mapping_config_id": country.id}),
        ])
        self.assertEqual(config._bj_plan().line("country").child.identifier.key, "code")
        country.line_ids.external_key = "iso"
        self.assertEqual(config._bj_plan().line("country").child.identifier.key, "iso")

    def test_secrets_stay_out_of_repr(self):
        config = self.make_config(request_type="out", authorization_type="bearer_token",
                                  bearer_token="Bearer s3cret-token-value")
        self.env["bj.api.sync.header"].create(
            {"config_id": config.id, "key": "X-Api-Key", "value": "header-secret-value"})
        plan = config._bj_plan()
        self.assertEqual(plan.auth.bearer_token, "s3cret-token-value")  # kept bare
        self.assertNotIn("s3cret-token-value", repr(plan))
        self.assertNotIn("header-secret-value", repr(plan))

    def test_archived_configuration_is_unknown_at_once(self):
        self.plan()
        self.config.active = False
        with self.assertRaises(LookupError):
            self.plan()

    def test_unknown_endpoints_are_not_cached(self):
        # Callers choose the endpoint: caching misses would let them fill the cache.
        for _attempt in range(2):
            before = self.cr.sql_log_count
            with self.assertRaises(LookupError):
                self.plan("cache-nowhere")
            self.assertGreater(self.cr.sql_log_count, before)

    def test_schedule_bookkeeping_keeps_the_caches(self):
        # Every scheduled run writes it: it must not empty the caches of the server.
        self.plan()
        self.config.write({"schedule_last_sync": fields.Datetime.now(),
                           "schedule_last_sync_id": 42})
        self.assertEqual(self.queries_to_read_plan(), 0)

    def test_the_commit_drops_the_plans_again(self):
        # A concurrent request of this worker may cache the old version between
        # the change and its commit.
        postcommit = self.env.cr.postcommit
        postcommit.clear()
        self.config.write({"limit": 9})
        self.config.write({"limit": 8})
        self.plan()
        self.assertEqual(self.queries_to_read_plan(), 0)
        postcommit.run()
        self.assertGreater(self.queries_to_read_plan(), 0)

    def test_trigger_plans_follow_the_filter_domain(self):
        out = self.make_config(request_type="out", trigger_on_write=True)

        def filtered():
            plans = self.Config._bj_plans_for("res.partner", "write")
            return next(bool(evaluate_domain(plan.filter_template, self.env))
                        for plan in plans if plan.config_id == out.id)

        self.assertFalse(filtered())
        out.filter_domain = "[('is_company', '=', True)]"
        self.assertTrue(filtered())
