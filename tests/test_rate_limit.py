import threading
import time
from datetime import timedelta
from unittest.mock import patch

from odoo.tests import tagged
from odoo.tools import config as odoo_config

from ..core import inbound
from ..models import bj_api_rate_limit
from ..models.bj_api_auth_failure import PARAM_FAILURES_PER_MINUTE
from .common import (
    BjApiHttpCase,
    BjApiSyncCase,
    RacingTransactionsMixin,
    bearer_auth,
    generated_secret,
)

PARALLEL_CALLS = 40
LIMIT = 20


@tagged("post_install", "-at_install")
class TestRateLimitConcurrency(RacingTransactionsMixin, BjApiSyncCase):
    """Counters are exact under real concurrency: each thread counts on a
    transaction of its own, as the Odoo workers serving parallel calls do."""

    address = "198.51.100.99"

    def setUp(self):
        super().setUp()
        self.addCleanup(self._drop_failures)

    def _drop_failures(self):
        with self.committed_env() as env:
            env.cr.execute("DELETE FROM bj_api_auth_failure WHERE address = %s", (self.address,))

    def in_parallel(self, function):
        """Results of ``function()`` called by PARALLEL_CALLS threads released together."""
        start = threading.Barrier(PARALLEL_CALLS)
        results = []

        def run():
            start.wait(10)
            results.append(function())

        threads = [threading.Thread(target=run) for _thread in range(PARALLEL_CALLS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        self.assertEqual(len(results), PARALLEL_CALLS, "every thread answered")
        return results

    def committed_hits(self, table, column, key):
        with self.committed_env() as env:
            env.cr.execute(f"SELECT hits FROM {table} WHERE {column} = %s", (key,))  # noqa: S608
            return [hits for (hits,) in env.cr.fetchall()]

    def test_parallel_calls_against_a_limit_get_exactly_the_limit(self):
        clock = time.time() // 60 * 60 + 5  # one minute for all of them
        limits = self.env["bj.api.rate.limit"]
        waits = self.in_parallel(lambda: limits._bj_hit(self.config_id, LIMIT, now=clock))
        self.assertEqual(waits.count(0), LIMIT, f"allowed calls of {PARALLEL_CALLS}")
        self.assertEqual(set(waits) - {0}, {55}, "the others wait for the next minute")
        self.assertEqual(self.committed_hits("bj_api_rate_limit", "config_id", self.config_id),
                         [PARALLEL_CALLS])

    def test_parallel_failures_are_all_counted(self):
        failures = self.env["bj.api.auth.failure"]
        self.in_parallel(lambda: failures._bj_fail(self.address))
        self.assertEqual(self.committed_hits("bj_api_auth_failure", "address", self.address),
                         [PARALLEL_CALLS])


@tagged("post_install", "-at_install")
class TestFailedAuthenticationLimit(BjApiHttpCase):
    """Failed authentications are limited per client address; the configuration's
    Rate Limit counts authenticated calls only: strangers cannot lock the client out."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.token = generated_secret("tok")
        cls.config = cls.make_partner_config(
            endpoint="limit-partners", authorization_type="bearer_token", bearer_token=cls.token,
        )
        cls.partner = cls.env["res.partner"].create({"name": "Limited"})
        cls.clock = time.time() // 60 * 60 + 15  # 15 s into a minute

    def setUp(self):
        super().setUp()
        self.startPatcher(patch.object(bj_api_rate_limit, "time",
                                       **{"time.return_value": self.clock}))

    def get(self, token, address=None):
        headers = bearer_auth(token)
        if address:
            headers["X-Forwarded-For"] = address
        return self.api("GET", "limit-partners", self.partner.id, headers=headers)

    def assertThrottled(self, response, message):
        self.assertApiError(response, 429, message)
        self.assertEqual(response.headers["Retry-After"], "45")

    def test_wrong_tokens_get_401_then_429_before_any_check(self):
        statuses = [self.get(f"wrong-{index}").status_code for index in range(30)]
        self.assertEqual(statuses, [401] * 20 + [429] * 10)
        self.assertThrottled(self.get(self.token), "Too many failed authentications from "
                                                   "127.0.0.1")
        failures = self.env["bj.api.auth.failure"].search([("address", "=", "127.0.0.1")])
        self.assertEqual(failures.hits, 20, "refused before the credentials: not counted")
        with patch.object(bj_api_rate_limit, "time", **{"time.return_value": self.clock + 60}):
            self.assertApiSuccess(self.get(self.token))
        failures.window_start -= timedelta(hours=1)
        self.env["bj.api.auth.failure"]._gc_expired()
        self.assertFalse(failures.exists(), "past minutes are deleted")

    def test_a_stranger_cannot_lock_the_client_out(self):
        self.env["ir.config_parameter"].set_param(PARAM_FAILURES_PER_MINUTE, "3")
        self.config.rate_limit_per_minute = 2
        stranger, client = "203.0.113.9", "198.51.100.7"
        with patch.dict(odoo_config.options, {"proxy_mode": True}):
            for _attempt in range(3):
                self.assertApiError(self.get("guess", stranger), 401)
            self.assertThrottled(self.get("guess", stranger), f"from {stranger}")
            self.assertThrottled(self.get(self.token, stranger), f"from {stranger}")
            # The client, elsewhere, has its whole Rate Limit: failures never count there.
            for _call in range(2):
                self.assertApiSuccess(self.get(self.token, client))
            self.assertThrottled(self.get(self.token, client), "More than 2 calls per minute")
        counter = self.env["bj.api.rate.limit"].search([("config_id", "=", self.config.id)])
        self.assertEqual(counter.hits, 3, "the client's authenticated calls only")

    def test_no_limit_when_the_parameter_is_0(self):
        self.env["ir.config_parameter"].set_param(PARAM_FAILURES_PER_MINUTE, "0")
        for _attempt in range(25):
            self.assertApiError(self.get("guess"), 401)
        self.assertApiSuccess(self.get(self.token))

    def test_wrong_signatures_count_as_failures(self):
        self.env["ir.config_parameter"].set_param(PARAM_FAILURES_PER_MINUTE, "2")
        self.make_partner_config(
            endpoint="limit-signed", authorization_type="bearer_token", bearer_token=self.token,
            signature_secret=generated_secret("sig"),
        )
        forged = {inbound.SIGNATURE_HEADER: f"t={int(time.time())},v1={'0' * 64}"}
        # A body too large to check the signature over is no failed authentication.
        self.env["ir.config_parameter"].set_param("bjet_api_sync.inbound_max_body_size", "20")
        response = self.api("POST", "limit-signed", body={"name": "x" * 30},
                            headers={**bearer_auth(self.token), **forged})
        self.assertApiError(response, 413)
        for _attempt in range(2):
            response = self.api("GET", "limit-signed", self.partner.id,
                                headers={**bearer_auth(self.token), **forged})
            self.assertApiError(response, 401, "does not match")
        self.assertThrottled(self.get(self.token), "Too many failed authentications")
