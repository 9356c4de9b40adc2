from odoo import fields
from odoo.tests import tagged

from ..core.inbound import InboundError
from .common import BjApiSyncCase


@tagged("post_install", "-at_install")
class TestCachedSpecs(BjApiSyncCase):
    """Inbound and trigger specs are cached in the registry: reading one costs no
    query, and any change of what they are built from drops them."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Config = cls.env["bj.api.sync.config"]
        cls.config = cls.make_partner_config(endpoint="cache-partners")

    def spec(self):
        return self.Config._inbound_spec("cache-partners")

    def queries_to_read_spec(self):
        before = self.cr.sql_log_count
        self.spec()
        return self.cr.sql_log_count - before

    def test_a_cached_spec_costs_no_query(self):
        self.spec()
        self.assertEqual(self.queries_to_read_spec(), 0)

    def test_every_change_of_its_sources_drops_the_spec(self):
        email_line = self.config.line_ids.filtered(lambda line: line.external_key == "email")
        changes = {
            "configuration": (lambda: self.config.write({"limit": 7}),
                              lambda spec: spec.limit == 7),
            "line": (lambda: email_line.write({"external_key": "mail"}),
                     lambda spec: spec.line("mail")),
            "new parameter": (
                lambda: self.env["bj.api.sync.param"].create({
                    "config_id": self.config.id, "key": "q",
                    "field_id": self.partner_field("name").id,
                }),
                lambda spec: spec.params == (("q", "name", "="),)),
            "parameter": (lambda: self.config.param_ids.write({"domain_operator": "ilike"}),
                          lambda spec: spec.params == (("q", "name", "ilike"),)),
            "HTTP method": (lambda: self.method_delete.write({"name": "PURGE"}),
                            lambda spec: "PURGE" in spec.methods),
            "deleted line": (lambda: email_line.unlink(), lambda spec: not spec.line("mail")),
        }
        for name, (change, seen) in changes.items():
            with self.subTest(change=name):
                self.spec()
                change()
                self.assertGreater(self.queries_to_read_spec(), 0)
                self.assertTrue(seen(self.spec()))

    def test_archived_configuration_is_unknown_at_once(self):
        self.spec()
        self.config.active = False
        with self.assertRaises(InboundError) as caught:
            self.spec()
        self.assertEqual(caught.exception.status, 404)

    def test_unknown_endpoints_are_not_cached(self):
        # Callers choose the endpoint: caching misses would let them fill the cache.
        for _attempt in range(2):
            before = self.cr.sql_log_count
            with self.assertRaises(InboundError):
                self.Config._inbound_spec("cache-nowhere")
            self.assertGreater(self.cr.sql_log_count, before)

    def test_schedule_bookkeeping_keeps_the_caches(self):
        # Every scheduled run writes it: it must not empty the caches of the server.
        self.spec()
        self.config.write({"schedule_last_sync": fields.Datetime.now(),
                           "schedule_last_sync_id": 42})
        self.assertEqual(self.queries_to_read_spec(), 0)

    def test_the_commit_drops_the_specs_again(self):
        # A concurrent request of this worker may cache the old version between
        # the change and its commit.
        postcommit = self.env.cr.postcommit
        postcommit.clear()
        self.config.write({"limit": 9})
        self.config.write({"limit": 8})
        self.spec()
        self.assertEqual(self.queries_to_read_spec(), 0)
        postcommit.run()
        self.assertGreater(self.queries_to_read_spec(), 0)

    def test_trigger_specs_follow_the_filter_domain(self):
        out = self.make_config(request_type="out", trigger_on_write=True)

        def filtered():
            specs = self.Config._bj_trigger_specs()[("res.partner", "write")]
            return next(spec.filtered for spec in specs if spec.target.config_id == out.id)

        self.assertFalse(filtered())
        out.filter_domain = "[('is_company', '=', True)]"
        self.assertTrue(filtered())
