import json

from odoo.tests import HttpCase, tagged

from .common import BjApiSyncTestMixin, LocalServerMixin

TOUR = "bjet_api_sync_config_tour"
START_URL = "/odoo/action-bjet_api_sync.action_bj_api_sync_config"
# The tour reads the local server's URL here (static/tests/tours/...: SINK_URL_KEY).
SINK_URL_KEY = "bjet_api_sync.tour_sink_url"


@tagged("post_install", "-at_install")
class TestConfigurationScreens(BjApiSyncTestMixin, LocalServerMixin, HttpCase):
    """An administrator builds an In and an Out configuration from scratch in
    Chromium: every Value Calculation Type, scripts written in the Script dialog
    on new lines, a Mapping Model, Test Connection against a local server, a log row."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_bj_fixtures()

    def test_configuration_form_tour(self):
        options = {"stepDelay": 0, "startUrl": START_URL}
        code = (f"localStorage.setItem({SINK_URL_KEY!r}, {json.dumps(self.server.url)}); "
                f"odoo.startTour({TOUR!r}, {json.dumps(options)})")
        self.start_tour(START_URL, TOUR, login="admin", code=code, timeout=300)

        configs = self.env["bj.api.sync.config"].search([("name", "like", "Tour Contacts")])
        config_in = configs.filtered(lambda c: c.request_type == "in")
        config_out = configs.filtered(lambda c: c.request_type == "out")
        self.assertEqual(config_in.endpoint, "tour-contacts")
        self.assertEqual(config_in.authorization_type, "bearer_token")
        self.assertGreaterEqual(len(config_in.bearer_token), 40)
        self.assertEqual(config_in.run_as_user_id, self.env.ref("base.user_admin"))
        self.assertEqual(config_out.request_url, f"{self.server.url}/contacts")
        lines = (config_in | config_out).line_ids
        self.assertEqual(
            {(line.config_id.request_type, line.field_id.name, line.value_type, line.external_key,
              line.is_identifier) for line in lines},
            {
                ("in", "ref", "plain", "ref", True),
                ("in", "comment", "python_plain", "notes", False),
                ("in", "category_id", "relational_python", "tags", False),
                ("out", "ref", "plain", "ref", True),
                ("out", "email", "python_plain", "email", False),
                ("out", "parent_id", "relational_mapping", "company", False),
                ("out", "category_id", "relational_python", "tag_names", False),
            },
        )
        scripts = {line.external_key: line.python_script for line in lines if line.python_script}
        self.assertEqual(scripts["notes"],
                         "(request_data.get('notes') or '').strip() or 'Created through the API'")
        self.assertEqual(scripts["email"], "(record.email or '').lower()")
        self.assertEqual(scripts["tag_names"], "result = record.category_id.mapped('name')")
        self.assertIn("result = tags.ids", scripts["tags"])
        mapping = config_out.line_ids.filtered(lambda line: line.value_type == "relational_mapping")
        self.assertEqual(mapping.mapping_config_id, config_in)
        # Test Connection reached the local server and left the log row the tour opened.
        self.assertTrue(self.server.requests)
        self.assertEqual(self.get_logs(config_out).status_code, 200)


class FilterDomainFitCase(BjApiSyncTestMixin, HttpCase):
    """The Filter Domain fits beside the chatter: a long domain's text and the
    count of matching records stay inside the form, which does not scroll sideways."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_bj_fixtures()
        cls.config = cls.make_partner_config(filter_domain=(
            "[('commercial_company_name', 'not ilike', 'Internal test company'), "
            "('write_date', '>=', datetime.datetime.now() - timedelta(days=7)), "
            "('email', 'not ilike', 'no-reply-with-a-long-address@internal-test.example')]"))

    def assert_filter_domain_fits(self):
        self.start_tour(f"{START_URL}/{self.config.id}", "bjet_api_sync_domain_fit_tour",
                        login="admin")


@tagged("post_install", "-at_install")
class TestFilterDomainFit(FilterDomainFitCase):
    def test_filter_domain_fits_at_1366_px(self):
        self.assert_filter_domain_fits()


@tagged("post_install", "-at_install")
class TestFilterDomainFitWide(FilterDomainFitCase):
    browser_size = "1600x900"  # the chatter sits beside the form from 1534 px

    def test_filter_domain_fits_at_1600_px(self):
        self.assert_filter_domain_fits()
