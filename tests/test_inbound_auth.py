import hmac
from unittest.mock import patch

from odoo import Command
from odoo.tests import tagged
from odoo.tests.common import new_test_user

from ..core import inbound
from .common import BjApiHttpCase, basic_auth, bearer_auth, generated_secret


@tagged("post_install", "-at_install")
class TestInboundAuth(BjApiHttpCase):
    """No Auth, Basic and Bearer; constant-time checks; the Run As User's rights."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.login = "erp-connector"
        cls.password = generated_secret("pw")
        cls.token = generated_secret("tok")
        cls.basic = cls.make_partner_config(
            endpoint="auth-basic", authorization_type="basic_auth",
            login=cls.login, password=cls.password,
        )
        cls.bearer = cls.make_partner_config(
            endpoint="auth-bearer", authorization_type="bearer_token", bearer_token=cls.token,
        )
        cls.partner = cls.env["res.partner"].create({"name": "Auth Partner"})

    def assertUnauthorized(self, response, scheme):
        self.assertApiError(response, 401)
        self.assertTrue(response.headers["WWW-Authenticate"].startswith(scheme))

    def test_no_auth(self):
        self.make_partner_config(endpoint="auth-none")
        self.assertApiSuccess(self.api("GET", "auth-none", self.partner.id))

    def test_basic_auth(self):
        ok = basic_auth(self.login, self.password)
        self.assertApiSuccess(self.api("GET", "auth-basic", self.partner.id, headers=ok))
        refused = [
            {},
            basic_auth(self.login, "wrong"),
            basic_auth("someone-else", self.password),
            basic_auth(self.login, self.password + "x"),
            {"Authorization": "Basic not-base64!"},
            {"Authorization": f"Basic {self.password}"},
            bearer_auth(self.password),
        ]
        for headers in refused:
            with self.subTest(headers=headers):
                response = self.api("GET", "auth-basic", self.partner.id, headers=headers)
                self.assertUnauthorized(response, "Basic")

    def test_bearer_token_with_or_without_prefix(self):
        self.assertApiSuccess(
            self.api("GET", "auth-bearer", self.partner.id, headers=bearer_auth(self.token))
        )
        lowercase = {"Authorization": f"bearer {self.token}"}
        self.assertApiSuccess(self.api("GET", "auth-bearer", self.partner.id, headers=lowercase))
        self.bearer.bearer_token = f"Bearer {self.token}"
        self.assertApiSuccess(
            self.api("GET", "auth-bearer", self.partner.id, headers=bearer_auth(self.token))
        )
        for headers in ({}, bearer_auth("nope"), bearer_auth(self.token[:-1]),
                        {"Authorization": self.token}, basic_auth("x", self.token)):
            with self.subTest(headers=headers):
                response = self.api("GET", "auth-bearer", self.partner.id, headers=headers)
                self.assertUnauthorized(response, "Bearer")

    def test_writes_are_refused_before_authentication(self):
        response = self.api("POST", "auth-bearer", body={"name": "Intruder"},
                            headers=bearer_auth("nope"))
        self.assertUnauthorized(response, "Bearer")
        self.assertFalse(self.env["res.partner"].search([("name", "=", "Intruder")]))

    def test_credentials_are_compared_in_constant_time(self):
        compared = []
        compare_digest = hmac.compare_digest

        def spy(given, expected):
            compared.append((given, expected))
            return compare_digest(given, expected)

        with patch.object(inbound.hmac, "compare_digest", side_effect=spy):
            response = self.api("GET", "auth-basic", self.partner.id,
                                headers=basic_auth("someone-else", self.password))
        self.assertEqual(response.status_code, 401)
        ours = [pair for pair in compared
                if pair[1] in (self.login.encode(), self.password.encode())]
        # A wrong login still costs the password comparison: no early exit.
        self.assertEqual(ours, [(b"someone-else", self.login.encode()),
                                (self.password.encode(), self.password.encode())])

    def test_calls_run_as_the_run_as_user(self):
        created = self.assertApiSuccess(
            self.api("POST", "auth-basic", body={"name": "Made by API"},
                     headers=basic_auth(self.login, self.password)),
            201,
        )
        partner = self.env["res.partner"].browse(created["res_id"])
        self.assertEqual(partner.create_uid, self.integration_user)

    def test_access_rights_denial_is_403_and_writes_nothing(self):
        # Employees may read countries but not create them.
        self.make_country_config(endpoint="auth-countries")
        self.assertApiSuccess(self.api("GET", "auth-countries", "BE"))
        response = self.api("POST", "auth-countries", body={"code": "QQ", "name": "Qland"})
        self.assertApiError(response, 403, "Access refused")
        self.assertFalse(self.env["res.country"].search([("code", "=", "QQ")]))
        response = self.api("DELETE", "auth-countries", "BE")
        self.assertApiError(response, 403)
        self.assertTrue(self.env.ref("base.be").exists())

    def test_run_as_user_without_read_access_gets_403(self):
        # Saved while the user could read the model (refused on save otherwise).
        user = new_test_user(self.env, login="bj_auth_params", groups="base.group_system")
        self.make_config(
            model="ir.config_parameter", endpoint="auth-params", run_as_user_id=user.id,
            lines=[("key", "key", {"is_identifier": True}), ("value", "value", None)],
        )
        user.groups_id = [Command.unlink(self.env.ref("base.group_system").id)]
        self.assertApiError(self.api("GET", "auth-params"), 403)
        self.assertApiError(self.api("GET", "auth-params", "web.base.url"), 403)
