import json
from itertools import permutations

from odoo import Command
from odoo.exceptions import AccessError
from odoo.tests import tagged

from ..core import crypto, masking
from .common import BjApiHttpCase, BjApiSyncCase, BjOutboundCase, bearer_auth, generated_secret

CONFIG_SECRETS = ("password", "bearer_token", "signature_secret")
HEADER_SECRET = "header"


@tagged("post_install", "-at_install")
class TestSecretIndependence(BjApiSyncCase):
    """Writing one secret leaves every other one as it was."""

    def read_secret(self, config, name):
        config.env.invalidate_all()  # as a new request would: nothing in the cache
        if name == HEADER_SECRET:
            return config.header_ids.secret_value
        return config[name]

    def write_secret(self, config, name, value):
        config.env.invalidate_all()
        if name == HEADER_SECRET:
            config.header_ids.write({"secret_value": value})
        else:
            config.write({name: value})

    def test_every_pair(self):
        for first, second in permutations((*CONFIG_SECRETS, HEADER_SECRET), 2):
            with self.subTest(set=first, then_set_and_clear=second):
                config = self.make_config(
                    header_ids=[Command.create({"key": "X-Key", "is_secret": True})])
                kept = generated_secret(first)
                self.write_secret(config, first, kept)
                self.write_secret(config, second, generated_secret(second))
                self.assertEqual(self.read_secret(config, first), kept)
                self.write_secret(config, second, False)
                self.assertFalse(self.read_secret(config, second))
                self.assertEqual(self.read_secret(config, first), kept)


@tagged("post_install", "-at_install")
class TestHeaderSecrets(BjOutboundCase):
    """Headers marked Secret: encrypted, hidden from API Sync Users, sent in clear,
    masked in the logs."""

    def make_secret_header_config(self, value, **values):
        return self.make_out_config(header_ids=[
            Command.create({"key": "X-Tenant", "value": "acme"}),
            Command.create({"key": "X-Partner-Auth", "value": value, "is_secret": True}),
        ], **values)

    def test_encrypted_at_rest_and_hidden_from_users(self):
        value = generated_secret("hdr")
        config = self.make_secret_header_config(value)
        plain, secret = config.header_ids
        self.env.flush_all()
        self.env.cr.execute("SELECT t::text FROM bj_api_sync_header t WHERE config_id = %s",
                            [config.id])
        table = "\n".join(row[0] for row in self.env.cr.fetchall())
        self.assertNotIn(value, table)
        self.assertIn(crypto.CIPHERTEXT_PREFIX, table)
        self.assertEqual((secret.value, secret.secret_value), (False, value))

        as_user = config.with_user(self.sync_user).header_ids
        self.assertEqual(as_user.mapped("value"), ["acme", False])
        for name in ("secret_value", "secret_value_encrypted"):
            with self.subTest(field=name), self.assertRaises(AccessError):
                as_user.read([name])
        form = self.env["bj.api.sync.config"].with_user(self.sync_user).get_views(
            [(False, "form")])
        self.assertNotIn("secret_value", form["views"]["form"]["arch"])
        form = self.env["bj.api.sync.config"].with_user(self.sync_manager).get_views(
            [(False, "form")])
        self.assertIn("secret_value", form["views"]["form"]["arch"])
        self.assertNoSecretIn(repr(config._bj_plan()), value)

    def test_switching_between_plain_and_secret(self):
        config = self.make_out_config(
            header_ids=[Command.create({"key": "X-Partner-Auth", "value": "was-plain"})])
        header = config.header_ids
        header.is_secret = True
        self.assertEqual((header.value, header.secret_value), (False, "was-plain"))
        self.assertTrue(header.secret_value_encrypted)
        # Typing a new value in Value while Secret is on: it is encrypted too.
        header.value = "typed-later"
        self.assertEqual((header.value, header.secret_value), (False, "typed-later"))
        # Back to plain: the value stays, in clear again, and no ciphertext is left.
        header.is_secret = False
        self.assertEqual((header.value, header.secret_value), ("typed-later", False))
        self.assertFalse(header.secret_value_encrypted)
        header.write({"is_secret": True, "value": "both-at-once"})
        self.assertEqual(header.secret_value, "both-at-once")

    def test_copies_carry_no_secret(self):
        config = self.make_secret_header_config(generated_secret("hdr"),
                                                password=generated_secret("pw"))
        copy = config.copy()
        self.assertFalse(copy.password)
        self.assertEqual(copy.header_ids.mapped("is_secret"), [False, True])
        self.assertEqual(copy.header_ids.mapped("value"), ["acme", False])
        self.assertFalse(copy.header_ids[1].secret_value)

    def test_rotation_covers_header_secrets(self):
        value = generated_secret("hdr")
        header = self.make_secret_header_config(value).header_ids[1]
        before = header.secret_value_encrypted
        old_key = self.env["ir.config_parameter"].sudo().get_param(crypto.SYSTEM_PARAMETER)
        header.config_id.action_rotate_encryption_key()
        header.invalidate_recordset()
        self.assertNotEqual(header.secret_value_encrypted, before)
        self.assertEqual(header.secret_value, value)
        with self.assertRaises(crypto.SecretDecryptionError):
            crypto.SecretBox([old_key]).decrypt(header.secret_value_encrypted)

    def assertMaskedRow(self, log, *secret_values):
        text = " ".join(str(log[name] or "") for name in (
            "request_headers", "request_body", "response_body", "error_message", "url"))
        self.assertNoSecretIn(text, *secret_values)

    def test_sent_in_clear_and_masked_in_the_logs(self):
        # Two characters: too short to mask inside text, masked whole as a header.
        short = "k9"
        password, token, value = (generated_secret(p) for p in ("pw", "tok", "hdr"))
        config = self.make_out_config(
            authorization_type="basic_auth", login="odoo", password=password,
            bearer_token=token,
            header_ids=[Command.create({"key": "X-Short", "value": short, "is_secret": True}),
                        Command.create({"key": "X-Partner-Auth", "value": value,
                                        "is_secret": True})],
        )
        partner = self.env["res.partner"].create({"name": f"Echo {value}", "email": "e@x.org"})
        echo = {"echo": [password, token, value]}
        # The queue's worker, then the original entry point, against an echoing server.
        # Refused for good: a job waiting for its retry would hold the record back
        # from the entry point.
        self.server.queue(400, echo)
        self.env["bj.api.sync.config"]._enqueue_outbound_records(partner, config)
        self.deliver()
        self.server.queue(400, echo)
        answer = self.env["bj.api.sync.config"]._make_outbound_http_request(partner, config)
        self.assertFalse(answer["success"])
        for request in self.server.requests:
            self.assertEqual(request.headers["X-Short"], short)
            self.assertEqual(request.headers["X-Partner-Auth"], value)
        logs = self.get_logs(config)
        self.assertEqual(len(logs), 2)
        for log in logs:
            headers = json.loads(log.request_headers)
            self.assertEqual(headers["X-Short"], masking.MASK)
            self.assertEqual(headers["X-Partner-Auth"], masking.MASK)
            self.assertIn("Echo", log.request_body)
            self.assertIn("echo", log.response_body)
            self.assertMaskedRow(log, password, token, value)


@tagged("post_install", "-at_install")
class TestLogBodyAccess(BjApiSyncCase):
    """API Sync Users open logs and jobs; only managers read the business data."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.config = cls.make_config(request_type="out")
        cls.log = cls.env["bj.api.log"].create({
            "config_id": cls.config.id, "direction": "out", "state": "error",
            "method": "POST", "url": "http://127.0.0.1:9/sink", "status_code": 500,
            "request_headers": '{"Content-Type": "application/json"}',
            "request_body": '{"email": "private@example.com"}',
            "response_body": '{"detail": "private answer"}', "error_message": "HTTP 500",
        })
        partner = cls.env["res.partner"].create({"name": "Queued"})
        cls.job = cls.env["bj.api.sync.config"]._enqueue_outbound_records(partner, cls.config)
        cls.job.payload = '{"email": "private@example.com"}'

    def open_as(self, user, records):
        """What the web client does: load the list and form views, read their fields."""
        model = records.with_user(user)
        views = model.get_views([(False, "list"), (False, "form")])
        names = list(views["models"][records._name]["fields"])
        rows = model.search_read([("id", "in", records.ids)], names)
        return views, rows

    def test_user_opens_logs_without_bodies(self):
        views, rows = self.open_as(self.sync_user, self.log)
        self.assertEqual(rows[0]["error_message"], "HTTP 500")
        self.assertIn("Content-Type", rows[0]["request_headers"])
        for name in ("request_body", "response_body"):
            self.assertNotIn(name, rows[0])
            self.assertNotIn(name, views["views"]["form"]["arch"])
            with self.subTest(field=name), self.assertRaises(AccessError):
                self.log.with_user(self.sync_user).read([name])

    def test_manager_reads_bodies(self):
        views, rows = self.open_as(self.sync_manager, self.log)
        self.assertEqual(rows[0]["request_body"], '{"email": "private@example.com"}')
        self.assertEqual(rows[0]["response_body"], '{"detail": "private answer"}')
        self.assertIn("response_body", views["views"]["form"]["arch"])

    def test_job_payload_for_managers_only(self):
        _views, rows = self.open_as(self.sync_user, self.job)
        self.assertNotIn("payload", rows[0])
        with self.assertRaises(AccessError):
            self.job.with_user(self.sync_user).read(["payload"])
        _views, rows = self.open_as(self.sync_manager, self.job)
        self.assertEqual(rows[0]["payload"], '{"email": "private@example.com"}')


@tagged("post_install", "-at_install")
class TestInboundSecrets(BjApiHttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.token = generated_secret("tok")
        cls.config = cls.make_partner_config(
            endpoint="secret-partners", authorization_type="bearer_token",
            bearer_token=cls.token,
        )

    def test_clearing_the_signature_secret_keeps_the_token(self):
        for value in (generated_secret("sig"), False):
            self.env.invalidate_all()  # each save is a request of its own
            self.config.write({"signature_secret": value})
        self.env.invalidate_all()
        self.assertEqual(self.config.bearer_token, self.token)
        self.assertApiSuccess(self.api("GET", "secret-partners", headers=bearer_auth(self.token)))

    def test_secret_header_values_are_masked(self):
        short, value = "k9", generated_secret("hdr")
        self.config.header_ids = [
            Command.create({"key": "X-Short", "value": short, "is_secret": True}),
            Command.create({"key": "X-Partner-Auth", "value": value, "is_secret": True}),
        ]
        headers = {**bearer_auth(self.token), "X-Short": short, "X-Partner-Auth": value}
        self.api("POST", "secret-partners", headers=headers, body={"name": value})
        self.api("POST", "secret-partners", headers=headers, body={"name": value, "email": []})
        logs = self.get_logs(self.config)
        self.assertEqual(logs.mapped("status_code"), [201, 400])
        for log in logs:
            recorded = json.loads(log.request_headers)
            self.assertEqual((recorded["X-Short"], recorded["X-Partner-Auth"]),
                             (masking.MASK, masking.MASK))
            text = " ".join(str(log[name] or "") for name in (
                "request_headers", "request_body", "response_body", "error_message"))
            self.assertNoSecretIn(text, self.token, value)
