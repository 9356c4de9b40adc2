"""The original module's documented usage, written as its documentation writes it."""

from odoo import Command
from odoo.tests import tagged

from .common import BjApiHttpCase, basic_auth, generated_secret

# The Filter Domain of the original documentation.
DOCUMENTED_FILTER_DOMAIN = "[('write_date', '>=', datetime.now() - timedelta(days=7))]"


@tagged("post_install", "-at_install")
class TestDocumentedUsage(BjApiHttpCase):
    def test_setup_steps_over_rpc_with_the_documented_filter_domain(self):
        """An In configuration created over JSON-RPC with only the fields the
        original's setup steps name (no Run As User) serves the last 7 days."""
        self.authenticate("admin", "admin")
        password = generated_secret("setup")
        lines = [Command.create({"field_id": self.partner_field(name).id, "value_type": "plain",
                                 "external_key": key, "is_identifier": name == "id"})
                 for name, key in (("id", "id"), ("name", "name"), ("ref", "ref"))]
        config_id = self.make_jsonrpc_request(
            "/web/dataset/call_kw/bj.api.sync.config/create",
            {"model": "bj.api.sync.config", "method": "create", "kwargs": {}, "args": [{
                "name": "Contacts",
                "request_type": "in",
                "model_id": self.partner_model.id,
                "filter_domain": DOCUMENTED_FILTER_DOMAIN,
                "endpoint": "documented-contacts",
                "http_method_ids": [Command.set(self.all_methods.ids)],
                "authorization_type": "basic_auth",
                "login": "crm",
                "password": password,
                "line_ids": lines,
            }]},
        )
        config = self.env["bj.api.sync.config"].browse(config_id)
        self.assertEqual(config.run_as_user_id, self.env.ref("base.user_admin"))
        old, recent = self.env["res.partner"].create(
            [{"name": "Old", "ref": "DOC"}, {"name": "Recent", "ref": "DOC"}])
        self.env.flush_all()
        self.env.cr.execute("UPDATE res_partner SET write_date = now() - interval '8 days' "
                            "WHERE id = %s", [old.id])
        response = self.api("GET", "documented-contacts", params={"ref": "DOC"},
                            headers=basic_auth("crm", password))
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(response.json()["data"], [{"id": recent.id, "name": "Recent",
                                                    "ref": "DOC"}])
