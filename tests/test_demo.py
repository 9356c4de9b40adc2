from odoo.tests import tagged
from odoo.tools import convert_file

from .common import BjApiSyncCase


@tagged("post_install", "-at_install")
class TestDemoData(BjApiSyncCase):
    """Tests run without demo data; load ours here so `make run` never breaks."""

    def test_demo_configurations_load(self):
        convert_file(self.env, "bjet_api_sync", "demo/bj_api_sync_demo.xml", {}, mode="init",
                     noupdate=True, kind="demo")
        partners = self.env.ref("bjet_api_sync.demo_config_partners")
        self.assertEqual(partners.endpoint, "partners")
        self.assertEqual(partners.authorization_type, "bearer_token")
        self.assertGreaterEqual(len(partners.bearer_token), 40, "a random token was generated")
        self.assertEqual(partners._bj_get_identifier_line().external_key, "res_id")
        outbound = self.env.ref("bjet_api_sync.demo_config_partners_out")
        self.assertEqual(outbound.request_type, "out")
        self.assertEqual(outbound.http_method_ids.name, "POST")
        rows = self.export(partners, self.env.ref("base.main_partner"))
        self.assertEqual(rows[0]["res_id"], self.env.ref("base.main_partner").id)
        # `make run`'s first screen after login is the addon's.
        self.assertEqual(self.env.ref("base.user_admin").action_id.id,
                         self.env.ref("bjet_api_sync.action_bj_api_sync_config").id)
