"""Credentials in URLs are masked wherever a URL is stored or shown.

The rule (``masking.is_credential_name``) is enumerated by a table of names on
both sides of it; ``mask_url_secrets`` by a table of URLs and of the texts
``requests``/urllib3 quote them in.  Then every exit is walked at once: Test
Connection, the entry point with its inline retries and queued jobs, the
delivery worker and its dead-letter chatter, with the server log captured: no
stored text of any model of the addon (except the configuration's own Request
URL), no message, activity, notification or log record holds a credential.
"""

import json
import socket
import time
from urllib.parse import unquote

import requests

from odoo.exceptions import AccessError, ValidationError
from odoo.tests import BaseCase, tagged

from ..core import http_client, masking
from ..core.masking import (
    CREDENTIAL_TERMS,
    CREDENTIAL_WORDS,
    MASK,
    is_credential_name,
    mask_url_secrets,
)
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
    # A value ends only at "&", "#" or the end of the URL: ";" does not end it.
    ("https://h.example/p?apiKey=" + SECRET + ";sig=" + SECRET, f"https://h.example/p?apiKey={MASK}"),
    ("https://h.example/p?a=1;sig=" + SECRET, f"https://h.example/p?a=1;sig={MASK}"),
    # Quotes, "<", ">" inside a value do not end it either.
    ('http://127.0.0.1:9/x?token="' + SECRET + '"', f"http://127.0.0.1:9/x?token={MASK}"),
    ("http://127.0.0.1:9/x?token='" + SECRET + "'&b=2", f"http://127.0.0.1:9/x?token={MASK}&b=2"),
    ("http://127.0.0.1:9/x?key=<" + SECRET + ">", f"http://127.0.0.1:9/x?key={MASK}"),
    ('http://u:"' + SECRET + '"@127.0.0.1:9/x', f"http://{MASK}@127.0.0.1:9/x"),
    # A password with an unencoded "?" or "#": urllib3 reads another host; the
    # userinfo runs to the last "@" before a "/", whoever reads it how.
    ("http://user:p?" + SECRET + "@127.0.0.1:9/x", f"http://{MASK}@127.0.0.1:9/x"),
    ("http://user:p#" + SECRET + "@127.0.0.1:9/x?a=1", f"http://{MASK}@127.0.0.1:9/x?a=1"),
    ("http://user:p?q@" + SECRET + "@127.0.0.1:9/x", f"http://{MASK}@127.0.0.1:9/x"),
    # Without "//", the user name reads as a scheme.
    ("u:" + SECRET + "@127.0.0.1:9/x", f"u:{MASK}@127.0.0.1:9/x"),
    ("/bj_api_sync/v1/x?token=" + SECRET, f"/bj_api_sync/v1/x?token={MASK}"),
    ("https://h.example/p?email=a@b.example", "https://h.example/p?email=a@b.example"),
    # The texts requests/urllib3 put around a URL.
    ("HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: "
     "/p?token=" + SECRET + " (Caused by NewConnectionError('refused'))",
     "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: "
     f"/p?token={MASK} (Caused by NewConnectionError('refused'))"),
    # In a text, a value runs to the next blank: the quote after it goes too.
    ("Invalid URL 'http://u:" + SECRET + "@/p?key=" + SECRET + "': No host supplied",
     f"Invalid URL 'http://{MASK}@/p?key={MASK} No host supplied"),
    ("ProxyError('Cannot connect to proxy.', http://u:" + SECRET + "@proxy:3128)",
     f"ProxyError('Cannot connect to proxy.', http://{MASK}@proxy:3128)"),
    ("", ""),
]
# URLs whose whole value a text cannot delimit (a blank or a tab inside it):
# the URL itself is masked from a parse (masking.mask_url), and the texts that
# quote it by its own credentials (masking.url_secrets), as written or encoded.
SPLIT = ("SEC1half", "RET2half")
PARSED_URL_CASES = [
    (f"http://127.0.0.1:9/x?api_key={SPLIT[0]} {SPLIT[1]}&a=1",
     f"http://127.0.0.1:9/x?api_key={MASK}&a=1"),
    (f"http://127.0.0.1:9/x?token={SPLIT[0]}\t{SPLIT[1]}", f"http://127.0.0.1:9/x?token={MASK}"),
    (f"http://u:{SPLIT[0]} {SPLIT[1]}@127.0.0.1:9/x", f"http://{MASK}@127.0.0.1:9/x"),
    (f"http://127.0.0.1:9/x#sig={SPLIT[0]}'{SPLIT[1]}", f"http://127.0.0.1:9/x#sig={MASK}"),
    (f"/bj_api_sync/v1/x?limit=1&token={SPLIT[0]}%20{SPLIT[1]}",
     f"/bj_api_sync/v1/x?limit=1&token={MASK}"),
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

    def test_every_case_and_encoding_of_every_credential_name(self):
        """The names of the rule, in every case mix and percent-encoded: as
        servers read query keys, case-insensitively."""
        for base in sorted(CREDENTIAL_WORDS | set(CREDENTIAL_TERMS)):
            mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(base))
            variants = {base, base.upper(), base.title(), mixed, mixed.swapcase(),
                        "".join(f"%{ord(c):02X}" for c in base), f"%{ord(base[0]):02X}{base[1:]}",
                        f"x-{mixed}", f"{mixed}_value"}
            for name in variants:
                with self.subTest(name=name):
                    self.assertTrue(is_credential_name(name))
                    url = f"http://127.0.0.1:9/x?{name}=S3cretValue9&page=2"
                    self.assertNotIn("S3cretValue9", mask_url_secrets(url))
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

    def test_urls_from_a_parse(self):
        for url, masked in PARSED_URL_CASES + [case for case in URL_CASES if " " not in case[0]]:
            with self.subTest(url=url):
                self.assertEqual(masking.mask_url(url), masked)
                self.assertEqual(masking.mask_url(masked), masked)

    def test_a_url_credentials_are_masked_wherever_they_are_quoted(self):
        """What a server or a library may quote back: the value as written,
        decoded, or encoded as requests sends it, in a JSON body or a text."""
        urls = [url for url, masked in PARSED_URL_CASES + URL_CASES
                if url.startswith(("http", "/", "u:")) and SECRET not in masked]
        for url in urls:
            secrets = masking.url_secrets(url)
            try:
                sent = requests.Request("GET", url).prepare().url
            except requests.RequestException:  # never sent as such
                sent = url
            for quoted in (url, sent, unquote(sent), json.dumps({"error": f"bad {sent}"}),
                           json.dumps({"error": f"bad {unquote(sent)}"})):
                with self.subTest(url=url, quoted=quoted):
                    text = masking.mask_url_secrets(masking.mask_text(quoted, secrets))
                    for secret in (SECRET, *SPLIT):
                        self.assertNotIn(secret, text)

    def test_texts_that_repeat_themselves(self):
        """Masking is linear in the text: runs of scheme-like words, of keys and
        of "@" cost no more than their length (a quadratic scan took 15 s for
        100,000 characters of "a:"), and nested items no recursion."""
        tail = f"&token={SECRET}"
        for unit in ("a:", "a.", "a:b@", "?a=", "x;y=", "http://a", "h://x@", "?token="):
            text = unit * (200_000 // len(unit)) + tail
            with self.subTest(unit=unit):
                started = time.monotonic()
                for mask in (mask_url_secrets, masking.mask_url, masking.url_secrets):
                    self.assertNotIn(SECRET, str(mask(text)) if mask is not masking.url_secrets
                                     else masking.mask_text(text, mask(text)))
                self.assertLess(time.monotonic() - started, 5)

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
                    f"ftp://u:{SECRET}@h.example/p?token={SECRET}",
                    f'http://127.0.0.1:{port}/x?token="{SECRET}"',
                    f"http://127.0.0.1:{port}/x?api_key={SPLIT[0]} {SPLIT[1]}",
                    f"http://user:p?{SECRET}@127.0.0.1:{port}/x",
                    f"http://user:p#{SECRET}@127.0.0.1:{port}/x",
                    f"u:{SECRET}@127.0.0.1:{port}/x"):
            result = http_client.send("GET", url, timeout=2, options={})
            self.assertIsNotNone(result.error_kind, url)
            for text in (result.url, result.error, result.error_label, result.describe()):
                for secret in (SECRET, *SPLIT):
                    self.assertNotIn(secret, text, url)
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
        self.assertTrue(messages.filtered(lambda message: "Last error" in str(message.body)))
        texts += self.chatter_texts(refused | refusing)
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

    def test_bodies_quoting_the_url_are_masked(self):
        """A server that echoes the URL it was sent, directly or after a
        redirect: the log rows, the job and the chatter show no credential."""
        key, password = generated_secret("echo"), generated_secret("pw")

        def echo(request):
            return {"error": f"bad request for {request.path} {unquote(request.path)}"}

        config = self.make_out_config(
            name="Echoed", max_attempts=1,
            request_url=self.server.url.replace("://", f"://u:{password}@")
            + f"/echo?api_key={key}&limit=5")
        partner = self.env["res.partner"].create({"name": "Echoed", "email": "e@example.com"})
        self.server.queue(400, echo)  # Test Connection's HEAD: no body
        self.server.queue(307, {}, headers={"Location": f"/moved?api_key={key}"})
        self.server.queue(400, echo)
        notification = config.action_test_connection()["params"]["message"]
        answer = self.env["bj.api.sync.config"]._make_outbound_http_request(
            partner, config.id, timeout=(1, 1))
        self.env.flush_all()
        self.assertEqual(self.server.requests[-1].path, f"/moved?api_key={key}")
        logs = self.get_logs(config)
        self.assertTrue(any("bad request for /moved?api_key=" in log.response_body
                            for log in logs), logs.mapped("response_body"))
        # The answer's data is the server's, for the calling code: its error is ours.
        texts = [notification, answer["error"], *self.stored_texts()]
        texts += [self.logged_text(record) for record in self.records]
        texts += self.chatter_texts(config)
        for text in texts:
            self.assertNoSecretIn(text, key, password)

    def chatter_texts(self, configs):
        """Messages, tracking values and activities of ``configs``."""
        messages = self.env["mail.message"].sudo().search([
            ("model", "=", configs._name), ("res_id", "in", configs.ids)])
        activities = self.env["mail.activity"].sudo().search([
            ("res_model", "=", configs._name), ("res_id", "in", configs.ids)])
        tracking = messages.sudo().tracking_value_ids
        return [*(str(message.body) for message in messages),
                *(str(activity.note) for activity in activities),
                *(str(value) for row in tracking.read() for value in row.values())]

    def test_the_chatter_tracks_the_masked_url(self):
        key, password = generated_secret("key"), generated_secret("pw")
        # The manager's own configuration (one running as another user is locked).
        config = self.make_out_config(name="Tracked", run_as_user_id=self.sync_manager.id)
        config = config.with_user(self.sync_manager).with_context(tracking_disable=False)
        for url in (f"https://u:{password}@h.example/a?api_key={key}",
                    f"https://h.example/b?token={key}&page=1",
                    f"https://u:{password}@h.example/c"):
            config.write({"request_url": url})
            self.env.flush_all()
            self.env.cr.precommit.run()
        tracked = config.message_ids.sudo().tracking_value_ids
        self.assertEqual(len(tracked), 3)
        self.assertIn(f"https://h.example/b?token={MASK}&page=1",
                      tracked.mapped("new_value_char"))
        for text in self.chatter_texts(config):
            self.assertNoSecretIn(text, key, password)

    def test_no_tracked_field_holds_a_credential(self):
        """Every tracked field of the addon, decided: a new one fails until it is."""
        tracked = {(name, field.name) for name, model in self.env.registry.items()
                   if name.startswith("bj.") for field in model._fields.values()
                   if getattr(field, "tracking", False)}
        self.assertEqual(tracked, {("bj.api.sync.config", name) for name in (
            "name", "active", "request_type", "model_id", "endpoint", "request_url_masked",
            "authorization_type", "run_as_user_id", "user_id", "send_inbound_changes",
            "trigger_on_schedule")})

    def test_users_see_the_masked_url(self):
        key, password = generated_secret("key"), generated_secret("pw")
        config = self.make_out_config(
            name="Read", request_url=f"https://u:{password}@h.example/p?api_key={key}")
        masked = f"https://{MASK}@h.example/p?api_key={MASK}"
        as_user = config.with_user(self.sync_user)
        with self.assertRaises(AccessError):
            as_user.read(["request_url"])
        self.assertEqual(as_user.read(["request_url_masked"])[0]["request_url_masked"], masked)
        self.assertNotIn("request_url", as_user.fields_get())
        self.assertNoSecretIn(str(as_user.read()), key, password)
        for user, shown, hidden in ((self.sync_user, "request_url_masked", "request_url"),
                                    (self.sync_manager, "request_url", None)):
            Configs = self.env["bj.api.sync.config"].with_user(user)
            for view in ("form", "list"):
                arch = Configs.get_views([(False, view)])["views"][view]["arch"]
                self.assertIn("request_url", arch)
                if hidden:
                    self.assertNotIn(f'name="{hidden}"', arch)
            form = Configs.get_views([(False, "form")])["views"]["form"]["arch"]
            self.assertIn(f'name="{shown}"', form)
        self.assertEqual(config.with_user(self.sync_manager).request_url_masked, masked)

    def test_a_refused_request_url_is_not_quoted(self):
        secret = generated_secret()
        config = self.make_out_config(
            name="Refused URL", run_as_user_id=self.sync_manager.id).with_user(self.sync_manager)
        for url in (f"u:{secret}@127.0.0.1:9/x", f"http://user:p?{secret}@127.0.0.1:9/x",
                    f"http://user:p#{secret}@127.0.0.1:9/x", f"http://user:?{secret}@127.0.0.1:9/x",
                    f"ftp://u:{secret}@h.example/x", f"http://h.example:{secret}/x"):
            with self.subTest(url=url), self.assertRaises(ValidationError) as caught:
                config.write({"request_url": url})
            self.assertNoSecretIn(str(caught.exception), secret)
        for text in (self.logged_text(record) for record in self.records):
            self.assertNoSecretIn(text, secret)
