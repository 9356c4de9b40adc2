import json
import uuid

from odoo.tests import tagged
from odoo.tools import convert_file

from .common import BjApiHttpCase, basic_auth, bearer_auth, generated_secret


@tagged("post_install", "-at_install")
class TestPostmanCollection(BjApiHttpCase):
    """The calls of the original module's Postman collection, sent as Postman sends them.

    Against the demo ``partners`` configuration: base URL, Bearer and Basic
    authentication, the CRUD requests and the error scenarios (invalid token 401,
    unknown endpoint 404, PATCH 405, broken JSON 400).
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not cls.env.ref("bjet_api_sync.demo_config_partners", raise_if_not_found=False):
            convert_file(cls.env, "bjet_api_sync", "demo/bj_api_sync_demo.xml", {},
                         mode="init", noupdate=True, kind="demo")
        cls.config = cls.env.ref("bjet_api_sync.demo_config_partners")
        cls.token = generated_secret("postman")
        cls.config.bearer_token = cls.token

    def postman(self, method, path, raw=None, auth=None):
        """A request with the headers Postman adds, ``raw`` as its raw body text."""
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "PostmanRuntime/7.39.0",
            "Postman-Token": str(uuid.uuid4()),
            "Cache-Control": "no-cache",
            **(auth if auth is not None else bearer_auth(self.token)),
        }
        response = self.opener.request(
            method, f"{self.base_url()}/bj_api_sync/v1/{path}",
            data=raw.encode() if raw is not None else None, headers=headers, timeout=30,
        )
        self.assertNotIn("Set-Cookie", response.headers)
        self.env.invalidate_all()
        return response

    def run_crud(self, auth):
        listed = self.postman("GET", "partners", auth=auth)
        self.assertEqual(listed.status_code, 200, listed.text)
        self.assertEqual(listed.json()["status"], "success")
        self.assertIsInstance(listed.json()["data"], list)

        created = self.postman("POST", "partners", auth=auth, raw=(
            '{\n    "name": "John Doe",\n    "email": "john.doe@example.com",\n'
            '    "phone": "+1 555 0100"\n}'
        ))
        self.assertEqual(created.status_code, 201, created.text)
        partner_id = created.json()["data"]["res_id"]
        partner = self.env["res.partner"].browse(partner_id)
        self.assertEqual(partner.email, "john.doe@example.com")

        fetched = self.postman("GET", f"partners/{partner_id}", auth=auth)
        self.assertEqual(fetched.status_code, 200)
        self.assertEqual(fetched.json()["data"]["name"], "John Doe")

        updated = self.postman("PUT", f"partners/{partner_id}", auth=auth,
                               raw=json.dumps({"name": "John Doe Updated", "phone": "+1 555 0199"},
                                              indent=4))
        self.assertEqual(updated.status_code, 200, updated.text)
        self.assertEqual(partner.name, "John Doe Updated")

        deleted = self.postman("DELETE", f"partners/{partner_id}", auth=auth)
        self.assertEqual(deleted.status_code, 200)
        self.assertFalse(partner.exists())

    def test_crud_with_bearer_token(self):
        self.run_crud(bearer_auth(self.token))

    def test_crud_with_basic_auth(self):
        password = generated_secret("pw")
        self.config.write({"authorization_type": "basic_auth", "login": "postman",
                           "password": password})
        self.run_crud(basic_auth("postman", password))

    def test_error_scenarios(self):
        partner = self.env["res.partner"].create({"name": "Postman Target"})
        response = self.postman("GET", "partners", auth=bearer_auth("invalid_token"))
        self.assertApiError(response, 401)
        self.assertIn("WWW-Authenticate", response.headers)

        self.assertApiError(self.postman("GET", "unknown_endpoint"), 404)

        response = self.postman("PATCH", f"partners/{partner.id}", raw='{"name": "Patched"}')
        self.assertApiError(response, 405)
        self.assertEqual(partner.name, "Postman Target")

        broken = '{\n    "name": "Broken",\n    "email": \n}'
        response = self.postman("POST", "partners", raw=broken)
        self.assertApiError(response, 400)
        self.assertFalse(self.env["res.partner"].search([("name", "=", "Broken")]))
