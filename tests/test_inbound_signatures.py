import hashlib
import hmac
import json
import re
import shutil
import subprocess
import time
import unittest

from psycopg2 import errors

from odoo.tests import tagged

from ..core import inbound
from .common import (
    API_REFERENCE,
    SECURITY,
    BjApiHttpCase,
    BjApiSyncCase,
    RacingTransactionsMixin,
    doc_section,
    generated_secret,
)


def readme_block(language):
    """The first ``language`` code block of the API reference's "Request signatures"."""
    section = doc_section(API_REFERENCE, "Request signatures")
    return re.search(rf"```{language}\n(.*?)```", section, re.DOTALL)[1]


@tagged("post_install", "-at_install")
class TestInboundSignatures(BjApiHttpCase):
    """A signature binds the method, path, query and body of one request, once."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.secret = generated_secret("sig")
        cls.token = generated_secret("tok")
        cls.config = cls.make_partner_config(
            endpoint="sig-partners", signature_secret=cls.secret,
            authorization_type="bearer_token", bearer_token=cls.token,
        )
        cls.partner = cls.env["res.partner"].create({"name": "Signed Target"})
        cls.other = cls.env["res.partner"].create({"name": "Signed Other"})
        cls.path = "/bj_api_sync/v1/sig-partners"

    def send(self, method, target, header, body=None):
        """``method`` on ``target`` (path and query, as signed) with this signature."""
        headers = {"Authorization": f"Bearer {self.token}", inbound.SIGNATURE_HEADER: header}
        if body is not None:
            headers["Content-Type"] = "application/json"
        response = self.opener.request(method, self.base_url() + target, data=body,
                                       headers=headers, timeout=30)
        self.env.invalidate_all()
        return response

    def sign(self, method, target, body=b""):
        return inbound.signature_header(self.secret, method, target, body, time.time())

    def assertRefused(self, response, reason):
        self.assertApiError(response, 401, reason)
        self.assertTrue(response.headers["WWW-Authenticate"].startswith("Signature"))

    def test_a_read_signature_cannot_serve_another_method_record_or_query(self):
        target = f"{self.path}/{self.partner.id}"
        header = self.sign("GET", target)
        reuses = {
            "DELETE": ("DELETE", target),
            "another record": ("GET", f"{self.path}/{self.other.id}"),
            "another query": ("GET", f"{target}?limit=1"),
            "the collection": ("GET", self.path),
        }
        for case, (method, other_target) in reuses.items():
            with self.subTest(case=case):
                self.assertRefused(self.send(method, other_target, header), "does not match")
        self.assertTrue(self.partner.exists())
        self.assertApiSuccess(self.send("GET", target, header))
        self.assertRefused(self.send("GET", target, header), "already used")

    def test_query_is_signed_in_the_order_sent(self):
        signed = f"{self.path}?limit=5&offset=0"
        header = self.sign("GET", signed)
        self.assertRefused(self.send("GET", f"{self.path}?offset=0&limit=5", header),
                           "does not match")
        response = self.send("GET", signed, header)
        self.assertEqual(len(self.assertApiSuccess(response)), response.json()["count"])
        self.assertEqual(response.json()["limit"], 5)

    def test_replayed_post_creates_nothing(self):
        body = json.dumps({"name": "Signed Once"}).encode()
        header = self.sign("POST", self.path, body)
        self.assertApiSuccess(self.send("POST", self.path, header, body), 201)
        self.assertRefused(self.send("POST", self.path, header, body), "already used")
        self.assertEqual(len(self.env["res.partner"].search([("name", "=", "Signed Once")])), 1)
        used = self.env["bj.api.signature"].search([("config_id", "=", self.config.id)])
        self.assertEqual(len(used), 1)

    def test_a_failed_request_uses_its_signature_too(self):
        # Replayed later, it might succeed: a DELETE of a record created meanwhile.
        target = f"{self.path}/999999999"
        header = self.sign("DELETE", target)
        self.assertApiError(self.send("DELETE", target, header), 404)
        self.assertRefused(self.send("DELETE", target, header), "already used")

    def test_expired_signatures_are_deleted(self):
        signatures = self.env["bj.api.signature"]
        self.assertTrue(signatures._bj_use(self.config.id, "a" * 64, time.time() - 1))
        self.assertTrue(signatures._bj_use(self.config.id, "b" * 64, time.time() + 300))
        signatures._gc_expired()
        left = signatures.search([("config_id", "=", self.config.id)])
        self.assertEqual(left.mapped("signature"), ["b" * 64])

    def test_readme_python_example(self):
        namespace = {}
        exec(readme_block("python"), namespace)  # noqa: S102 - the README's own example
        send_signed = namespace["send_signed"]
        url = f"{self.base_url()}{self.path}/{self.partner.id}?limit=1"
        auth = {"Authorization": f"Bearer {self.token}"}
        # Twice the same read at once: the fraction of t tells the two apart.
        for _call in range(2):
            response = send_signed(self.opener, self.secret, "GET", url, headers=auth)
            self.assertApiSuccess(response)
        body = json.dumps({"name": "Signed From Readme"}).encode()
        response = send_signed(self.opener, self.secret, "POST", self.base_url() + self.path,
                               body, headers={**auth, "Content-Type": "application/json"})
        self.assertApiSuccess(response, 201)

    @unittest.skipUnless(shutil.which("openssl") and shutil.which("bash"), "needs openssl")
    def test_readme_shell_example(self):
        """The README's openssl pipeline signs requests the server accepts; its
        ``curl`` line is replaced by a function that prints the arguments."""
        body = json.dumps({"name": "Signed From Shell"})
        cases = [("GET", f"{self.path}/{self.partner.id}?limit=1", "", 200),
                 ("POST", self.path, body, 201)]
        for method, target, data, status in cases:
            with self.subTest(method=method):
                script = 'curl() { printf "%s\\n" "$@"; }\n' + readme_block("sh")
                printed = subprocess.run(
                    ["bash", "-e", "-c", script], check=True, capture_output=True, text=True,
                    env={"PATH": "/usr/bin:/bin", "SECRET": self.secret, "TOKEN": self.token,
                         "METHOD": method, "TARGET": target, "BODY": data},
                ).stdout.split("\n")
                headers = dict(
                    printed[index + 1].split(": ", 1)
                    for index, argument in enumerate(printed) if argument == "-H"
                )
                self.assertEqual(printed[:3], ["-X", method, f"https://odoo.example.com{target}"])
                response = self.opener.request(
                    method, self.base_url() + target, headers=headers, timeout=30,
                    data=printed[printed.index("--data-binary") + 1].encode(),
                )
                self.env.invalidate_all()
                self.assertApiSuccess(response, status)
        self.assertTrue(self.env["res.partner"].search([("name", "=", "Signed From Shell")]))


@tagged("post_install", "-at_install")
class TestSignatureReplayRace(RacingTransactionsMixin, BjApiSyncCase):
    """A replay racing the original is refused exactly once: the database decides.

    Two real transactions, as two Odoo workers serving the original and its
    replay at the same moment.
    """

    def use(self, model):
        return model._bj_use(self.config_id, "f" * 64, time.time() + 300)

    def test_replay_waits_then_is_refused_on_odoos_retry(self):
        original, replay = self.worker("bj.api.signature"), self.worker("bj.api.signature")
        replay.env.cr.execute("SELECT 1")  # its snapshot predates the original's commit
        self.assertTrue(self.use(original))
        outcome = {}
        thread = self.in_thread(replay, self.use, outcome)
        thread.join(1)
        self.assertTrue(thread.is_alive(), "the replay waits for the original's transaction")
        original.env.cr.commit()
        thread.join(10)
        self.assertIsInstance(outcome.get("error"), errors.SerializationFailure,
                              "Odoo retries the request on this error")
        self.assertFalse(self.use(replay), "the retry sees the signature used")

    def test_a_rolled_back_original_leaves_the_signature_unused(self):
        # Odoo's own retry of a request after a concurrency failure is not a replay.
        original, retry = self.worker("bj.api.signature"), self.worker("bj.api.signature")
        self.assertTrue(self.use(original))
        outcome = {}
        thread = self.in_thread(retry, self.use, outcome)
        thread.join(1)
        self.assertTrue(thread.is_alive())
        original.env.cr.rollback()
        thread.join(10)
        self.assertIs(outcome.get("result"), True)
        retry.env.cr.rollback()


# What a signed-string description may name, and what each stands for in a request.
SIGNED_PARTS = ("<t>", "<METHOD>", "<path?query>", "<raw body>")


def signed_by_description(template, timestamp, method, target, body):
    """The bytes ``template`` (e.g. ``<t>.<METHOD>.<path?query>.<raw body>``) says to sign."""
    values = dict(zip(SIGNED_PARTS, (timestamp, method, target, body.decode()), strict=True))
    return re.sub("|".join(map(re.escape, SIGNED_PARTS)), lambda m: values[m[0]],
                  template).encode()


@tagged("post_install", "-at_install")
class TestSignatureDocumentation(BjApiSyncCase):
    """An integrator following the Signature Secret's help text, or the API
    reference, signs requests the server accepts."""

    def descriptions(self):
        help_text = self.env["bj.api.sync.config"]._fields["signature_secret"].help
        api = doc_section(API_REFERENCE, "Request signatures")
        security = SECURITY.read_text()
        return {
            "help text": re.search(r"HMAC-SHA256 of '([^']+)'", help_text)[1],
            "API reference": re.search(r'HMAC-SHA256\(secret, "([^"]+)"\)', api)[1],
            "security": re.search(r"the signed string is `([^`]+)`", security)[1],
        }

    def verify(self, template):
        secret, method, target = "documented-secret", "PUT", "/bj_api_sync/v1/partners/7?limit=5"
        body, now = b'{"name": "Ada"}', time.time()
        timestamp = f"{now:.3f}"
        self.assertEqual(set(re.findall(r"<[^>]+>", template)) - set(SIGNED_PARTS), set(),
                         f"{template} names only parts of a request")
        signature = hmac.new(secret.encode(), signed_by_description(
            template, timestamp, method, target, body), hashlib.sha256).hexdigest()
        inbound.verify_signature(secret, f"t={timestamp},v1={signature}", method, target, body,
                                 now)

    def test_every_description_signs_as_the_server_verifies(self):
        for where, template in self.descriptions().items():
            with self.subTest(where=where):
                self.verify(template)

    def test_the_former_description_is_refused(self):
        # The help text once read '<t>.<raw body>': every call signed so got a 401.
        with self.assertRaisesRegex(inbound.InboundError, "does not match"):
            self.verify("<t>.<raw body>")
