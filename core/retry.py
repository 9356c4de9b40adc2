"""Retry policy of outbound deliveries: what to retry, and when.

Plain Python, no ORM: the delivery worker asks ``outcome()`` what an attempt's
result means and ``next_delay()`` how long to wait before the next one; the
synchronous entry point also asks ``attempt_seconds()`` how long one attempt
may take, to keep its inline retries within its time budget.
"""

import random
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

SUCCESS = "success"
RETRY = "retry"
DEAD = "dead"

# Statuses that say "try again later": request timeout, too early, too many
# requests; every 5xx is added by ``outcome``.
RETRYABLE_STATUS_CODES = frozenset({408, 425, 429})
SERVER_ERROR_MIN = 500
SERVER_ERROR_MAX = 599
SUCCESS_MIN = 200
SUCCESS_MAX = 299

DEFAULT_BASE_DELAY = 30  # seconds before the second attempt
DEFAULT_MAX_DELAY = 3600  # no wait between two attempts is longer, unless Retry-After says so
BACKOFF_FACTOR = 2
# A Retry-After above this is a server bug or hostile: waiting a day is enough.
MAX_RETRY_AFTER = 24 * 3600
# The synchronous entry point retries a failed request inline at most this many
# attempts in all (fewer when the configuration's Maximum Attempts is lower)...
INLINE_MAX_ATTEMPTS = 3
# ...and only inside a window of this many whole attempts (attempt_seconds)
# after every request was tried once.
INLINE_RETRY_WINDOW = 3


def outcome(status_code=None, retryable_error=False):
    """``SUCCESS``, ``RETRY`` or ``DEAD`` for one attempt.

    ``status_code`` is the HTTP status received (None when no answer came);
    ``retryable_error`` says that the failure happened before any answer and may
    go away by itself (connection refused, timeout, DNS, TLS...).

    A 3xx reaches here only as a redirect ``http_client.send`` did not follow
    (or a 300/304 no request of ours asks for): the URL moved, a configuration
    problem that waiting does not fix: ``DEAD`` at once, as a 4xx is.
    """
    if status_code is None:
        return RETRY if retryable_error else DEAD
    if SUCCESS_MIN <= status_code <= SUCCESS_MAX:
        return SUCCESS
    if status_code in RETRYABLE_STATUS_CODES or SERVER_ERROR_MIN <= status_code <= SERVER_ERROR_MAX:
        return RETRY
    return DEAD


def backoff_delay(attempt, base_delay=DEFAULT_BASE_DELAY, max_delay=DEFAULT_MAX_DELAY, rng=random):
    """Seconds to wait after failed attempt number ``attempt`` (1 for the first).

    Exponential (``base * 2**(attempt-1)``, capped at ``max_delay``) with "equal
    jitter": a random half of the delay is added to the other half, so that
    deliveries that failed together do not all come back at the same second,
    while each still waits at least half of its nominal delay.
    """
    exponent = max(attempt - 1, 0)
    nominal = min(max(base_delay, 0) * BACKOFF_FACTOR ** exponent, max(max_delay, 0))
    half = nominal / 2
    return half + rng.uniform(0, half)


def parse_retry_after(value, now=None):
    """Seconds a ``Retry-After`` header asks to wait, or None when it is unusable.

    The header is either a number of seconds or an HTTP-date (RFC 9110 §10.2.3);
    a date in the past means "now" (0), absurd values are capped.  ``now``
    (aware) is when the answer arrived, from which the caller counts the
    delay: a date is then met to the microsecond, however late the caller
    computes it.
    """
    if value is None:
        return None
    value = str(value).strip()
    if not value:
        return None
    if value.isdigit():
        return float(min(int(value), MAX_RETRY_AFTER))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT; obsolete forms may omit it
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return float(min(max((when - now).total_seconds(), 0), MAX_RETRY_AFTER))


def next_delay(attempt, base_delay, max_delay, retry_after=None, rng=random):
    """Seconds before the next attempt: the backoff, or longer when the server asks."""
    delay = backoff_delay(attempt, base_delay, max_delay, rng)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def attempt_seconds(timeout):
    """Longest time one attempt waits for the server with ``timeout``: connect +
    read seconds of a ``(connect, read)`` pair; a single number is both, as in
    ``requests``."""
    if isinstance(timeout, list | tuple):
        connect, read = timeout
        return float(connect + read)
    return 2.0 * timeout
