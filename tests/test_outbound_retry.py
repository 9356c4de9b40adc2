from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

from odoo.tests import BaseCase, tagged

from ..core import http_client, retry


class FixedRandom:
    """``uniform`` always returns the top (or bottom) of its range."""

    def __init__(self, top):
        self.top = top

    def uniform(self, low, high):
        return high if self.top else low


@tagged("post_install", "-at_install")
class TestRetryPolicy(BaseCase):
    def test_outcome(self):
        for status in (200, 201, 204, 299):
            self.assertEqual(retry.outcome(status), retry.SUCCESS, status)
        for status in (408, 425, 429, 500, 502, 503, 504, 599):
            self.assertEqual(retry.outcome(status), retry.RETRY, status)
        for status in (300, 304, 400, 401, 403, 404, 405, 409, 410, 422):
            self.assertEqual(retry.outcome(status), retry.DEAD, status)
        self.assertEqual(retry.outcome(None, retryable_error=True), retry.RETRY)
        self.assertEqual(retry.outcome(None, retryable_error=False), retry.DEAD)

    def test_backoff_is_exponential_capped_and_jittered(self):
        top, bottom = FixedRandom(True), FixedRandom(False)
        self.assertEqual([retry.backoff_delay(n, 10, 1000, top) for n in (1, 2, 3, 4)],
                         [10, 20, 40, 80])
        # equal jitter: never less than half of the nominal delay
        self.assertEqual([retry.backoff_delay(n, 10, 1000, bottom) for n in (1, 2, 3, 4)],
                         [5, 10, 20, 40])
        self.assertEqual(retry.backoff_delay(30, 10, 1000, top), 1000)
        self.assertEqual(retry.backoff_delay(3, 0, 1000, top), 0)
        delays = {retry.backoff_delay(5, 10, 1000) for _ in range(20)}
        self.assertGreater(len(delays), 1, "jitter spreads the retries")
        self.assertTrue(all(80 <= delay <= 160 for delay in delays))

    def test_retry_after_seconds_and_http_date(self):
        now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
        self.assertEqual(retry.parse_retry_after("120"), 120)
        self.assertEqual(retry.parse_retry_after(" 7 "), 7)
        http_date = format_datetime(now + timedelta(seconds=90), usegmt=True)
        self.assertEqual(retry.parse_retry_after(http_date, now=now), 90)
        past = format_datetime(now - timedelta(hours=1), usegmt=True)
        self.assertEqual(retry.parse_retry_after(past, now=now), 0)
        self.assertEqual(retry.parse_retry_after("9999999999"), retry.MAX_RETRY_AFTER)
        for unusable in (None, "", "soon", "-5", "1.5"):
            self.assertIsNone(retry.parse_retry_after(unusable), unusable)

    def test_next_delay_honours_longer_retry_after(self):
        top = FixedRandom(True)
        self.assertEqual(retry.next_delay(1, 10, 100, None, top), 10)
        self.assertEqual(retry.next_delay(1, 10, 100, 300, top), 300)
        self.assertEqual(retry.next_delay(3, 10, 100, 1, top), 40)

    def test_attempt_seconds_of_a_timeout(self):
        self.assertEqual(retry.attempt_seconds((5, 15)), 20)
        self.assertEqual(retry.attempt_seconds([0.5, 0.5]), 1)
        self.assertEqual(retry.attempt_seconds(10), 20, "requests: one number for both")

    def test_retry_after_header_in_any_case(self):
        result = http_client.HttpResult("POST", "http://x", 503, headers={"retry-after": "3"})
        self.assertEqual(result.header("Retry-After"), "3")
        self.assertIsNone(result.header("X-Missing"))
