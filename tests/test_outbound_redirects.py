"""Redirects are the receiver's answer: only a 307 or 308 to the request's own
origin is followed, once, with the same method, body and headers; any other
redirect is a failed attempt naming its Location, and nothing leaves for
another origin.  The rules without a database, then the delivery worker, the
entry point and Test Connection against two real servers (two origins)."""

from itertools import product
from types import SimpleNamespace

from odoo import Command
from odoo.tests import BaseCase, tagged

from ..core import http_client, retry
from ..core.masking import MASK
from .common import BjOutboundCase, LocalHttpServer, generated_secret

REDIRECT_STATUSES = (301, 302, 303, 307, 308)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MOVED = "/moved?page=2"


@tagged("post_install", "-at_install")
class TestRedirectRules(BaseCase):
    def test_origin_is_normalised(self):
        table = [
            ("http://h.example/a", ("http", "h.example", 80)),
            ("http://h.example:80/a", ("http", "h.example", 80)),
            ("HTTP://H.Example/a", ("http", "h.example", 80)),
            ("https://h.example", ("https", "h.example", 443)),
            ("https://h.example:443/a?b#c", ("https", "h.example", 443)),
            ("https://h.example:8443/a", ("https", "h.example", 8443)),
            ("https://u:p@h.example/a", ("https", "h.example", 443)),
            ("http://[::1]:8069/a", ("http", "::1", 8069)),
            ("http://127.0.0.1:8069", ("http", "127.0.0.1", 8069)),
        ]
        for url, expected in table:
            self.assertEqual(http_client.origin(url), expected, url)
        for url in ("/a", "h.example/a", "mailto:a@h.example", "http://h.example:port/",
                    "http://h.example:99999/", "http://[::1/", "http:///a", ""):
            with self.assertRaises(ValueError, msg=url):
                http_client.origin(url)

    def test_location_is_resolved_against_the_request_url(self):
        base = "https://api.example/v1/contacts?x=1"
        table = [
            ("/moved", "https://api.example/moved"),
            ("moved", "https://api.example/v1/moved"),
            ("../v2/contacts", "https://api.example/v2/contacts"),
            ("?page=2", "https://api.example/v1/contacts?page=2"),
            ("//other.example/x", "https://other.example/x"),
            ("  http://api.example/x  ", "http://api.example/x"),
            ("https://API.example:443/y", "https://API.example:443/y"),
        ]
        for location, expected in table:
            self.assertEqual(http_client.resolve_location(base, location), expected, location)
        table = [
            (None, "no Location"), ("", "no Location"), ("   ", "no Location"),
            ("http://[::1", "not a valid URL"), ("http://h:port/", "not a valid URL"),
            ("mailto:x@h.example", "not a valid URL"),
        ]
        for location, message in table:
            with self.assertRaisesRegex(ValueError, message, msg=location):
                http_client.resolve_location(base, location)

    def test_only_a_307_or_308_to_the_same_origin_is_followed(self):
        url = "https://api.example/v1"
        same = ["https://api.example/v2", "https://API.EXAMPLE:443/v2", "HTTPS://api.example/",
                "https://u:p@api.example/v2"]
        other = {
            "https://api.example:8443/v1": "another origin",
            "https://other.example/v1": "another origin",
            "https://sub.api.example/v1": "another origin",
            "http://api.example/v1": "leaves https for http",
            "http://api.example:443/v1": "leaves https for http",
            "ftp://api.example/v1": "another origin",
        }
        for status, target in product(REDIRECT_STATUSES, same + list(other)):
            refusal = http_client.redirect_refusal(status, url, target)
            if status in (307, 308) and target in same:
                self.assertIsNone(refusal, (status, target))
            elif status in (307, 308):
                self.assertIn(other[target], refusal, (status, target))
            else:
                self.assertIn(f"a {status} may change the method to GET and drop the body",
                              refusal)
        for status in (300, 304, 305, 306):
            self.assertIn(f"not a {status}",
                          http_client.redirect_refusal(status, url, "https://api.example/v2"))
        # http to https is another origin too: the scheme is part of it.
        self.assertIn("another origin",
                      http_client.redirect_refusal(307, "http://h.example/", "https://h.example/"))
        self.assertIsNone(http_client.redirect_refusal(308, "http://h.example/a",
                                                       "http://h.example:80/b"))

    def test_every_3xx_naming_a_location_is_a_redirect(self):
        """Table: (status, Location) → redirect; 301-308's own statuses are
        redirects even with their Location missing."""
        table = [(status, location, status in REDIRECT_STATUSES or bool(location))
                 for status in range(300, 310) for location in ("", "/x")]
        table += [(200, "/x", False), (201, "/x", False), (404, "/x", False)]
        for status, location, expected in table:
            response = SimpleNamespace(status_code=status,
                                       headers={"Location": location} if location else {})
            self.assertEqual(http_client.is_redirect(response), expected, (status, location))

    def test_a_redirect_not_followed_is_dead_at_once(self):
        """One place decides: a 3xx that reaches the retry policy is a moved URL."""
        for status in REDIRECT_STATUSES:
            self.assertEqual(retry.outcome(status), retry.DEAD, status)


@tagged("post_install", "-at_install")
class TestOutboundRedirects(BjOutboundCase):
    """``self.server`` is the configured origin, ``self.other`` another one (another
    port of 127.0.0.1)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.other = LocalHttpServer().start()
        cls.addClassCleanup(cls.other.stop)
        methods = cls.env["bj.http.method"].search([("name", "in", METHODS)])
        methods |= cls.env["bj.http.method"].create([
            {"name": name} for name in set(METHODS) - set(methods.mapped("name"))])
        cls.api_key = generated_secret("apikey")
        cls.configs = {
            method.name: cls.make_out_config(
                name=f"Redirected {method.name}", max_attempts=3,
                http_method_ids=[Command.set(method.ids)],
                header_ids=[Command.create({"key": "X-Api-Key", "is_secret": True,
                                            "secret_value": cls.api_key})])
            for method in methods
        }

    def setUp(self):
        super().setUp()
        self.other.clear()

    def scenarios(self):
        """Every redirect status, to the same origin and to another, for each
        method: ``(status, method, location, followed)``."""
        for status, where, method in product(REDIRECT_STATUSES, ("same", "other"), METHODS):
            server = self.server if where == "same" else self.other
            yield (status, method, server.url + MOVED,
                   status in (307, 308) and where == "same")

    def partner(self):
        # One record per scenario: a job never waits behind another one's.
        return self.env["res.partner"].create({"name": "Redirected", "email": "r@example.com"})

    def redirect_next(self, status, location, body=None):
        """Empty both servers; the configured origin answers the next request
        with a ``status`` to ``location``."""
        self.server.clear()
        self.other.clear()
        self.server.queue(status, body, headers={"Location": location})

    def through_the_worker(self, config):
        job = self.env["bj.api.sync.config"]._enqueue_outbound_records(self.partner(), config)
        self.deliver()
        return job

    def call_the_entry_point(self, config):
        return self.env["bj.api.sync.config"]._make_outbound_http_request(
            self.partner(), config.id, timeout=(2, 2))

    def through_the_entry_point(self, config):
        answer = self.call_the_entry_point(config)
        return self.env["bj.api.sync.job"].browse(answer["queued_job_ids"])

    def assertNotFollowed(self, status, location, error):
        """Only the configured origin was called, once; ``error`` names the Location."""
        self.assertEqual(len(self.server.requests), 1)
        self.assertEqual(self.other.requests, [], "nothing leaves for another origin")
        self.assertIn(f"answered {status} ", error)
        self.assertIn(f"→ Location {location}, not followed: ", error)

    def assertFollowed(self, method):
        """The same request went to the configured origin's new path, once more."""
        first, second = self.server.requests
        self.assertEqual(self.other.requests, [])
        self.assertEqual((first.method, second.method), (method, method))
        self.assertEqual((first.path, second.path), ("/contacts", MOVED))
        self.assertTrue(first.body)
        self.assertEqual(second.body, first.body)
        for name in ("X-Api-Key", "Content-Type", "Idempotency-Key", "X-BJET-Event"):
            self.assertEqual(second.headers.get(name), first.headers.get(name), name)
        self.assertEqual(second.headers["X-Api-Key"], self.api_key)
        return first, second

    def test_the_delivery_worker(self):
        for status, method, location, followed in self.scenarios():
            with self.subTest(status=status, method=method, location=location):
                self.redirect_next(status, location, {"moved": True})
                job = self.through_the_worker(self.configs[method])
                log = job.log_ids
                self.assertEqual(len(log), 1, "one attempt, one log row")
                if followed:
                    first, _second = self.assertFollowed(method)
                    self.assertEqual(first.headers["Idempotency-Key"], job.idempotency_key)
                    self.assertEqual((job.state, job.last_status_code), ("done", 200))
                    self.assertEqual((log.state, log.status_code, log.url),
                                     ("success", 200, self.server.url + MOVED))
                else:
                    self.assertNotFollowed(status, location, job.last_error)
                    self.assertEqual((job.state, job.attempt, job.last_status_code),
                                     ("dead", 1, status))
                    self.assertEqual((log.state, log.status_code, log.error_message),
                                     ("error", status, job.last_error))

    def test_the_entry_point(self):
        for status, method, location, followed in self.scenarios():
            with self.subTest(status=status, method=method, location=location):
                self.redirect_next(status, location, {"moved": True})
                answer = self.call_the_entry_point(self.configs[method])
                log = self.env["bj.api.log"].browse(answer["log_id"])
                if followed:
                    self.assertFollowed(method)
                    self.assertEqual((answer["success"], answer["status_code"]), (True, 200))
                    self.assertEqual((log.status_code, log.url), (200, self.server.url + MOVED))
                else:
                    self.assertNotFollowed(status, location, answer["error"])
                    self.assertEqual((answer["success"], answer["status_code"]),
                                     (False, status))
                    job = self.env["bj.api.sync.job"].browse(answer["queued_job_ids"])
                    self.assertEqual((job.state, job.last_error), ("dead", answer["error"]))
                    self.assertEqual((log.status_code, log.error_message),
                                     (status, answer["error"]))

    def test_test_connection(self):
        config = self.configs["POST"]
        for status, where in product(REDIRECT_STATUSES, ("same", "other")):
            server = self.server if where == "same" else self.other
            location = server.url + MOVED
            with self.subTest(status=status, location=location):
                self.redirect_next(status, location)
                params = config.action_test_connection()["params"]
                log = self.get_logs(config)[-1]
                if status in (307, 308) and where == "same":
                    first, second = self.server.requests
                    self.assertEqual((first.method, second.method), ("HEAD", "HEAD"))
                    self.assertEqual(second.path, MOVED)
                    self.assertEqual(second.headers["X-Api-Key"], self.api_key)
                    self.assertEqual(params["title"], "Connection successful")
                    self.assertIn(f"HEAD {location} answered 200", params["message"])
                    self.assertEqual((log.status_code, log.url), (200, location))
                else:
                    self.assertNotFollowed(status, location, params["message"])
                    self.assertEqual((params["type"], params["title"]),
                                     ("warning", "Redirect not followed"))
                    self.assertTrue(params["message"].endswith(
                        "Update the Request URL if the API moved."), params["message"])
                    self.assertEqual((log.state, log.status_code), ("error", status))
                    self.assertIn(location, log.error_message)

    def test_test_connection_of_an_in_configuration(self):
        """Its own endpoint behind a redirect (a proxy sending http to https): the
        fix is Odoo's address, not a Request URL."""
        self.env["ir.config_parameter"].sudo().set_param("web.base.url", self.server.url)
        config = self.make_config(name="Inbound behind a redirect")
        location = "https://127.0.0.1/odoo"
        self.server.queue(301, {}, headers={"Location": location})
        params = config.action_test_connection()["params"]
        self.assertNotFollowed(301, location, params["message"])
        self.assertEqual(params["title"], "Redirect not followed")
        self.assertTrue(params["message"].endswith(
            "Check web.base.url, the address Odoo is reached at."), params["message"])

    def test_a_second_redirect_is_not_followed(self):
        """A loop, a second 307 to the same origin or one to another origin: the
        first redirect was followed, the second fails, naming its Location."""
        config = self.configs["PUT"]
        again = self.server.url + "/again"
        for (second_status, location), deliver in product(
                ((307, self.server.url + MOVED), (308, again), (307, self.other.url + "/x"),
                 (301, again)),
                (self.through_the_worker, self.through_the_entry_point)):
            with self.subTest(path=deliver.__name__, status=second_status, location=location):
                self.server.clear()
                self.other.clear()
                self.server.queue(307, {}, headers={"Location": MOVED})
                self.server.queue(second_status, {}, headers={"Location": location})
                job = deliver(config)
                self.assertEqual([request.method for request in self.server.requests],
                                 ["PUT", "PUT"])
                self.assertEqual(self.other.requests, [])
                self.assertEqual((job.state, job.last_status_code), ("dead", second_status))
                self.assertIn(f"→ Location {location}, not followed: a second redirect",
                              job.last_error)
            with self.subTest(path="Test Connection", status=second_status, location=location):
                self.server.clear()
                self.server.queue(307, {}, headers={"Location": MOVED})
                self.server.queue(second_status, {}, headers={"Location": location})
                params = config.action_test_connection()["params"]
                self.assertEqual(len(self.server.requests), 2)
                self.assertEqual(params["title"], "Redirect not followed")
                self.assertIn("a second redirect is not followed", params["message"])

    def test_a_bad_location_is_a_failed_attempt(self):
        config = self.configs["POST"]
        for headers, reason in (({}, "the answer has no Location header"),
                                ({"Location": " "}, "the answer has no Location header"),
                                ({"Location": "http://[::1"}, "the Location is not a valid URL"),
                                ({"Location": "mailto:x@example.com"},
                                 "the Location is not a valid URL")):
            with self.subTest(headers=headers):
                self.server.clear()
                self.server.queue(307, {}, headers=headers)
                job = self.through_the_worker(config)
                self.assertEqual(len(self.server.requests), 1)
                self.assertEqual((job.state, job.last_status_code), ("dead", 307))
                self.assertIn(f"not followed: {reason}.", job.last_error)

    def test_a_location_with_credentials_is_masked(self):
        """A Location may carry credentials: the error shows it masked, and the
        answer's body quoting it is masked in the log."""
        password, token = generated_secret("pw"), generated_secret("tok")
        location = self.other.url.replace("://", f"://u:{password}@") + f"/x?token={token}"
        self.server.queue(308, {"see": location}, headers={"Location": location})
        job = self.through_the_worker(self.configs["POST"])
        self.assertEqual(self.other.requests, [])
        masked = self.other.url.replace("://", f"://{MASK}@") + f"/x?token={MASK}"
        self.assertIn(f"→ Location {masked}, not followed", job.last_error)
        for text in (job.last_error, job.log_ids.error_message, job.log_ids.response_body):
            self.assertNoSecretIn(text, password, token)

    def test_a_followed_redirect_stays_within_the_attempts_timeouts(self):
        """The second request gets what the first left of connect + read: 3 s in
        all, 1.2 s used, so 0.9 s to read an answer that takes 1.4 s (within the
        full 2 s read timeout, it would have come)."""
        self.server.queue(307, {}, headers={"Location": MOVED}, delay=1.2)
        self.server.queue(200, {}, delay=1.4)
        result = http_client.send("POST", self.server.url + "/contacts", body=b"{}",
                                  timeout=(1, 2))
        self.assertEqual(len(self.server.requests), 2)
        self.assertEqual((result.error_kind, result.url),
                         (http_client.READ_TIMEOUT, self.server.url + MOVED))
        self.assertLess(result.duration_ms, 3000)

    def test_every_redirection_status_with_a_location_names_it(self):
        """300 Multiple Choices (its Location is the server's preferred choice,
        RFC 9110 §15.4.1), the deprecated 305 and the unused 306 are redirects
        too: not followed, and the failed attempt's message names the Location,
        as for any redirect not followed."""
        location = self.other.url + MOVED
        for status in (300, 305, 306):
            with self.subTest(status=status):
                self.redirect_next(status, location)
                job = self.through_the_worker(self.configs["POST"])
                self.assertNotFollowed(status, location, job.last_error or "")
                self.assertEqual((job.state, job.last_status_code), ("dead", status))
            with self.subTest(status=status, path="Test Connection"):
                # Not "Connection successful" for an API whose every delivery dies.
                self.server.clear()
                self.server.queue(status, {}, headers={"Location": location})
                params = self.configs["POST"].action_test_connection()["params"]
                self.assertEqual(params["title"], "Redirect not followed", params["message"])
