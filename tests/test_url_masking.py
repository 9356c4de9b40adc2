"""Credentials in URLs are masked wherever a URL is stored or shown.

The rule (``masking.is_credential_name``) is enumerated by a table of names on
both sides of it; ``mask_url_secrets`` by a table of URLs and of the texts
``requests``/urllib3 quote them in.  Then every exit is walked at once: Test
Connection, the entry point with its inline retries and queued jobs, the
delivery worker and its dead-letter chatter, with the server log captured: no
stored text of any model of the addon (except the configuration's own Request
URL), no message, activity, notification or log record holds a credential.
"""

import socket

from odoo.tests import BaseCase, tagged

from ..core import http_client, masking
from ..core.masking import MASK, is_credential_name, mask_url_secrets
from .common import BjOutboundCase, generated_secret

# Query keys and headers that carry credentials: the list, its variants
# (case, separators, camelCase, prefixes) and the headers masked so far.
CREDENTIAL_NAMES = [
    "api_key", "apikey", "key", "token", "access_token", "secret", "password", "signature",
    "sig", "auth", "API_KEY", "ApiKey", "apiKey", "api-key", "X-Api-Key", "x_api_key", "KEY",
    "Token", "accessToken", "refresh_token", "id_token", "X-Auth-Token", "oauth_token",
    "client_secret", "clientSecret", "app_secret", "Password", "passwd", "pwd", "user_password",
    "X-Amz-Signature", "X-Goog-Signature", "X-Amz-Credential", "Authorization",
    "Proxy-Authorization", "Cookie", "Set-Cookie", "PHPSESSID", "session_id", "sessionToken",
    "X-Bjet-Signature", "private_key", "subscription-key", "Ocp-Apim-Subscription-Key", "jwt",
]
# Names that carry none: their values stay readable.
PLAIN_NAMES = [
    "limit", "offset", "page", "order", "q", "expand", "id", "name", "monkey", "keyword",
    "author", "donkeys", "Content-Type", "Accept", "X-Request-ID", "X-Bjet-Timestamp",
    "User-Agent", "format", "signal", "passage", "hmac_algo", "code",
]
SECRET = "s3cr3t-value"
# (text, masked text)
URL_CASES = [
    ("https://h.example/p?api_key=" + SECRET, f"https://h.example/p?api_key={MASK}"),
    ("https://h.example/p?a=1&TOKEN=" + SECRET + "&b=2",
     f"https://h.example/p?a=1&TOKEN={MASK}&b=2"),
    ("https://h.example/p?limit=5&q=" + SECRET, "https://h.example/p?limit=5&q=" + SECRET),
    ("https://user:" + SECRET + "@h.example/p", f"https://{MASK}@h.example/p"),
    ("https://user:p@ss" + SECRET + "@h.example:8443/p?x=1", f"https://{MASK}@h.example:8443/p?x=1"),
    ("http://" + SECRET + "@h.example", f"http://{MASK}@h.example"),
    ("https://h.example/cb#access_token=" + SECRET + "&state=1",
     f"https://h.example/cb#access_token={MASK}&state=1"),
    ("https://h.example/p;jsessionid=" + SECRET, f"https://h.example/p;jsessionid={MASK}"),
    ("https://h.example/p?api%5Fkey=" + SECRET, f"https://h.example/p?api%5Fkey={MASK}"),
    ("https://h.example/p?apiKey=" + SECRET + ";sig=" + SECRET,
     f"https://h.example/p?apiKey={MASK};sig={MASK}"),
    ("/bj_api_sync/v1/x?token=" + SECRET, f"/bj_api_sync/v1/x?token={MASK}"),
    ("https://h.example/p?email=a@b.example", "https://h.example/p?email=a@b.example"),
    # The texts requests/urllib3 put around a URL.
    ("HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: "
     "/p?token=" + SECRET + " (Caused by NewConnectionError('refused'))",
     "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: "
     f"/p?token={MASK} (Caused by NewConnectionError('refused'))"),
    ("Invalid URL 'http://u:" + SECRET + "@/p?key=" + SECRET + "': No host supplied",
     f"Invalid URL 'http://{MASK}@/p?key={MASK}': No host supplied"),
    ("ProxyError('Cannot connect to proxy.', http://u:" + SECRET + "@proxy:3128)",
     f"ProxyError('Cannot connect to proxy.', http://{MASK}@proxy:3128)"),
    ("", ""),
]


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@tagged("post_install", "-at_install")
class TestUrlMaskingRule(BaseCase):
    def test_credential_names(self):
        for name in CREDENTIAL_NAMES:
            with self.subTest(name=name):
                self.assertTrue(is_credential_name(name))
        for name in PLAIN_NAMES:
            with self.subTest(name=name):
                self.assertFalse(is_credential_name(name))

    def test_every_credential_name_is_masked_in_a_url(self):
        for name in CREDENTIAL_NAMES:
            masked = mask_url_secrets(f"https://h.example/p?a=1&{name}={SECRET}&b=2")
            self.assertEqual(masked, f"https://h.example/p?a=1&{name}={MASK}&b=2")
        for name in PLAIN_NAMES:
            url = f"https://h.example/p?{name}=visible"
            self.assertEqual(mask_url_secrets(url), url)

    def test_urls_and_texts(self):
        for text, masked in URL_CASES:
            with self.subTest(text=text):
                self.assertEqual(mask_url_secrets(text), masked)
                self.assertEqual(mask_url_secrets(masked), masked)

    def test_headers_follow_the_rule(self):
        headers = {name: SECRET for name in CREDENTIAL_NAMES} | {
            "Referer": f"https://h.example/?token={SECRET}", "Accept": "application/json"}
        masked = masking.mask_headers(headers)
        self.assertNotIn(SECRET, repr(masked))
        self.assertEqual(masked["Accept"], "application/json")

    def test_http_results_hold_no_credential(self):
        """What ``requests`` raises quotes the URL: the result never does."""
        port = closed_port()
        for url in (f"http://u:{SECRET}@127.0.0.1:{port}/p?api_key={SECRET}",
                    f"http://u:{SECRET}@/p?token={SECRET}",
                    f"ftp://u:{SECRET}@h.example/p?token={SECRET}"):
            result = http_client.send("GET", url, timeout=2, options={})
            self.assertIsNotNone(result.error_kind, url)
            for text in (result.url, result.error, result.error_label, result.describe()):
                self.assertNotIn(SECRET, text, url)
            self.assertIn(MASK, result.url)


@tagged("post_install", "-at_install")
class TestUrlMaskingExits(BjOutboundCase):
    """Every place an outbound URL leaves: stored rows, chatter, notifications
    and the server log."""

    def setUp(self):
        super().setUp()
        self.records = self.capture_server_log()

    def test_no_exit_shows_a_credential(self):
        password, key, token = (generated_secret(name) for name in ("pw", "key", "tok"))
        query = f"api_key={key}&limit=5&access_token={token}"
        refused = self.make_out_config(
            name="Refused", request_url=f"http://user:{password}@127.0.0.1:{closed_port()}/in?"
            + query, max_attempts=1)
        refusing = self.make_out_config(name="Refusing", path=f"/contacts?{query}")
        partner = self.env["res.partner"].create({"name": "Masked", "email": "m@example.com"})
        self.server.queue(400, {"error": "no"})  # the Test Connection HEAD
        self.server.queue(400, {"error": "no"})  # the entry point: dead at once
        notifications = [config.action_test_connection()["params"]["message"]
                         for config in (refused, refusing)]
        self.env.flush_all()
        configs = self.env["bj.api.sync.config"]
        answers = [configs._make_outbound_http_request(partner, config.id, timeout=(1, 1))
                   for config in (refused, refusing)]
        jobs = self.get_jobs(refused)
        self.assertEqual(jobs.state, "pending")
        self.pass_time(jobs)
        self.deliver()
        self.env.invalidate_all()
        self.assertEqual(self.get_jobs(refusing).state, "dead")
        self.assertEqual(jobs.state, "dead")
        # The credentials were sent: only what is stored and shown is masked.
        self.assertIn(f"api_key={key}", self.server.requests[-1].path)

        texts = [*notifications, *(answer["error"] or "" for answer in answers)]
        texts += [self.logged_text(record) for record in self.records]
        texts += self.stored_texts()
        messages = self.env["mail.message"].sudo().search([
            ("model", "=", configs._name), ("res_id", "in", (refused | refusing).ids)])
        activities = self.env["mail.activity"].sudo().search([
            ("res_model", "=", configs._name), ("res_id", "in", (refused | refusing).ids)])
        self.assertTrue(messages.filtered(lambda message: "Last error" in str(message.body)))
        texts += [str(message.body) for message in messages]
        texts += [str(activity.note) for activity in activities]
        for text in texts:
            self.assertNoSecretIn(text, password, key, token)
        # Masked, not dropped: what is shown still tells which URL it was.
        logs = self.get_logs(refused) | self.get_logs(refusing)
        self.assertGreaterEqual(len(logs), 5)
        for log in logs:
            self.assertIn(f"api_key={MASK}&limit=5&access_token={MASK}", log.url)
        self.assertIn(f"http://{MASK}@127.0.0.1", self.get_logs(refused)[0].url)
        self.assertIn(f"access_token={MASK}", jobs.last_error)
        self.assertIn(f"api_key={MASK}", notifications[0] + notifications[1])

    def stored_texts(self):
        """Every stored text of every model of the addon, the configurations'
        Request URL excepted (the credential the administrator entered)."""
        texts = []
        for name, model in self.env.registry.items():
            if not name.startswith("bj.") or model._abstract:
                continue
            fields = [field.name for field in model._fields.values() if field.store and
                      field.type in ("char", "text", "html") and
                      (name, field.name) != ("bj.api.sync.config", "request_url")]
            records = self.env[name].sudo().with_context(active_test=False).search([])
            for row in records.read(fields):
                texts += [str(value) for value in row.values() if value]
        return texts

    def test_a_log_row_masks_whatever_its_writer_passes(self):
        token = generated_secret()
        log_id = self.env["bj.api.log"]._bj_write_in_transaction({
            "direction": "in", "state": "error", "method": "GET",
            "url": f"/bj_api_sync/v1/x?token={token}&limit=1",
            "error_message": f"Invalid URL 'http://u:{token}@/p'",
            "request_headers": {"Referer": f"https://h.example/?sig={token}",
                                "Idempotency-Key": token},
        })
        log = self.env["bj.api.log"].browse(log_id)
        self.assertEqual(log.url, f"/bj_api_sync/v1/x?token={MASK}&limit=1")
        for text in (log.url, log.error_message, log.request_headers):
            self.assertNoSecretIn(text, token)
