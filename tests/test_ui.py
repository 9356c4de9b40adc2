from odoo.tests import HttpCase, tagged

from .common import BjApiSyncTestMixin


@tagged("post_install", "-at_install")
class TestConfigurationScreens(BjApiSyncTestMixin, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_bj_fixtures()

    def test_configuration_form_tour(self):
        config = self.make_partner_config(endpoint="tour-partners")
        self.env["bj.api.sync.config.line"].create({
            "config_id": config.id,
            "field_id": self.partner_field("comment").id,
            "value_type": "python_plain",
            "external_key": "notes",
            "python_script": "request_data.get('notes')",
        })
        self.start_tour(
            f"/odoo/action-bjet_api_sync.action_bj_api_sync_config/{config.id}",
            "bjet_api_sync_config_tour",
            login="admin",
        )
