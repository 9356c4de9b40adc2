from odoo import Command
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged
from odoo.tools import convert_file

from ..core import masking
from .common import BjApiHttpCase, basic_auth, bearer_auth, generated_secret

CONFIG_SECRETS = ("password", "bearer_token", "signature_secret", "request_url")
REFUSED = "Missing or invalid credentials"


@tagged("post_install", "-at_install")
class TestSecretReaders(BjApiHttpCase):
    """A configuration's secrets are read only by those who may change it: a
    manager reading an administrator's (or a demo one, running as API
    Integration) gets nothing that opens its endpoint."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.secrets = {}
        cls.admin = new_test_user(cls.env, login="bj_readers_admin", groups="base.group_system")
        export = cls.env.ref("base.group_allow_export")
        (cls.admin | cls.sync_manager).write({"groups_id": [Command.link(export.id)]})
        cls.admins = cls.make_secret_config("readers-admin", cls.admin)
        cls.own = cls.make_secret_config("readers-own", cls.sync_manager)

    @classmethod
    def make_secret_config(cls, endpoint, user):
        values = {
            "bearer_token": generated_secret("tok"),
            "password": generated_secret("pw"), "signature_secret": generated_secret("sig"),
            "request_url": f"https://caller:{generated_secret('url')}@example.com/x"
                           f"?api_key={generated_secret('key')}",
        }
        config = cls.make_partner_config(
            name=endpoint, endpoint=endpoint, authorization_type="bearer_token",
            run_as_user_id=user.id, user_id=user.id, login="caller",
            header_ids=[Command.create({"key": "X-Auth", "value": generated_secret("hdr"),
                                        "is_secret": True})],
            **values)
        # The four fields' values, the header's, then the URL's credentials.
        cls.secrets[config.id] = [*values.values(), config.header_ids.secret_value,
                                  *masking.url_secrets(values["request_url"])]
        return config

    def readings(self, config, user):
        """Everything ``user`` reads of ``config`` over RPC, as text."""
        configs = self.env["bj.api.sync.config"].with_user(user)
        headers = self.env["bj.api.sync.header"].with_user(user)
        self.env.invalidate_all()
        records = configs.browse(config.id)
        return {
            "read": records.read(CONFIG_SECRETS)[0],
            "search_read": configs.search_read([("id", "=", config.id)], CONFIG_SECRETS)[0],
            "web_read": records.web_read(
                {**dict.fromkeys(CONFIG_SECRETS, {}),
                 "header_ids": {"fields": {"secret_value": {}}}})[0],
            "export_data": records.export_data(
                [*CONFIG_SECRETS, "header_ids/secret_value"])["datas"],
            "header read": headers.browse(config.header_ids.ids).read(["secret_value"]),
            "header search_read": headers.search_read([("config_id", "=", config.id)],
                                                      ["secret_value"]),
        }

    def test_a_manager_reads_nothing_of_an_administrators_configuration(self):
        for how, value in self.readings(self.admins, self.sync_manager).items():
            with self.subTest(how=how):
                self.assertNoSecretIn(str(value), *self.secrets[self.admins.id])
        read = self.readings(self.admins, self.sync_manager)["read"]
        self.assertFalse(read["bearer_token"] or read["password"] or read["signature_secret"])
        self.assertEqual(read["request_url"], masking.mask_url(self.admins.request_url))
        # And what was read opens nothing (credentials are checked first).
        self.assertApiError(self.api("GET", "readers-admin",
                                     headers=bearer_auth(read["bearer_token"] or "")),
                            401, REFUSED)
        self.admins.authorization_type = "basic_auth"
        self.assertApiError(self.api("GET", "readers-admin",
                                     headers=basic_auth("caller", read["password"] or "")),
                            401, REFUSED)

    def url_queries(self, user):
        prefix = self.admins.request_url[:20]
        configs = self.env["bj.api.sync.config"].with_user(user)
        return {
            "search": lambda: configs.search([("request_url", "=like", f"{prefix}%")]),
            "a path": lambda: self.env["bj.api.sync.header"].with_user(user).search(
                [("config_id.request_url", ">", prefix)]),
            "order": lambda: configs.search([], order="request_url"),
            "group": lambda: configs.read_group([], ["name"], ["request_url"]),
            "aggregate": lambda: configs._read_group([], [], ["request_url:max"]),
        }

    def test_the_request_url_is_no_oracle(self):
        """Searching, sorting or grouping by the Request URL would tell its
        credentials one comparison at a time."""
        for how, query in self.url_queries(self.sync_manager).items():
            with self.subTest(how=how), self.assertRaisesRegex(AccessError, "Request URL"):
                query()
        for how, query in self.url_queries(self.admin).items():
            with self.subTest(how=how, user="administrator"):
                query()
        self.assertIn(self.admins, self.env["bj.api.sync.config"].with_user(
            self.sync_manager).search([("request_url_masked", "like", "example.com")]))

    def test_administrators_and_the_managers_own_configuration_unchanged(self):
        for config, user in ((self.admins, self.admin), (self.own, self.admin),
                             (self.own, self.sync_manager)):
            with self.subTest(config=config.name, user=user.login):
                read = self.readings(config, user)
                fields, header = self.secrets[config.id][:4], self.secrets[config.id][4]
                for how, value in read.items():
                    for secret in (fields if "header" not in how else ()):
                        self.assertIn(secret, str(value), how)
                    if how not in ("read", "search_read"):
                        self.assertIn(header, str(value), how)
        token = self.readings(self.own, self.sync_manager)["read"]["bearer_token"]
        self.own.with_user(self.sync_manager).signature_secret = False
        self.assertApiSuccess(self.api("GET", "readers-own", headers=bearer_auth(token)))

    def test_a_manager_reads_no_demo_secret(self):
        convert_file(self.env, "bjet_api_sync", "demo/bj_api_sync_demo.xml", {}, mode="init",
                     noupdate=True, kind="demo")
        demo = self.env["ir.model.data"].search(
            [("module", "=", "bjet_api_sync"), ("model", "=", "bj.api.sync.config")])
        for config in self.env["bj.api.sync.config"].browse(demo.mapped("res_id")):
            with self.subTest(config=config.name):
                secrets = [value for value in (config.bearer_token, config.password,
                                               config.signature_secret) if value]
                read = self.readings(config, self.sync_manager)
                for value in read.values():
                    self.assertNoSecretIn(str(value), *secrets)
                if config.request_type == "in" and config.bearer_token:
                    self.assertApiError(self.api(
                        "GET", config.endpoint,
                        headers=bearer_auth(read["read"]["bearer_token"] or "")), 401, REFUSED)
