"""The HTTP side of outbound calls: headers, URL placeholders, one request.

Plain Python on top of ``requests``.  ``send`` never raises for network
problems: it returns an ``HttpResult`` whose ``error_kind`` and ``error`` say
in plain words what went wrong, so that callers log and decide instead of
catching a zoo of exceptions.
"""

import base64
import contextlib
import http.cookiejar
import json
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import requests

from .masking import mask_text, mask_url, mask_url_secrets, url_secrets
from .plan import strip_bearer

JSON_CONTENT_TYPE = "application/json"
IDEMPOTENCY_HEADER = "Idempotency-Key"
PLACEHOLDER = re.compile(r"\{([^{}]+)\}")

# Error kinds, each with the plain words shown to the user.
DNS = "dns"
REFUSED = "refused"
TLS = "tls"
CONNECT_TIMEOUT = "connect_timeout"
READ_TIMEOUT = "read_timeout"
CONNECTION = "connection"
INVALID_URL = "invalid_url"
REDIRECT = "redirect"
NETWORK = "network"
ERROR_LABELS = {
    DNS: "DNS: the host name could not be resolved",
    REFUSED: "Connection refused: nothing listens on that host and port",
    TLS: "TLS/SSL error: the secure connection could not be established",
    CONNECT_TIMEOUT: "Timeout: the server did not accept the connection in time",
    READ_TIMEOUT: "Timeout: the server accepted the connection but did not answer in time",
    CONNECTION: "Connection lost: the server closed or reset the connection",
    INVALID_URL: "Invalid URL",
    REDIRECT: "Redirect not followed",
    NETWORK: "Network error",
}
# Failures that may go away by themselves; an invalid URL or a redirect will not.
TRANSIENT_ERRORS = frozenset({DNS, REFUSED, TLS, CONNECT_TIMEOUT, READ_TIMEOUT, CONNECTION,
                              NETWORK})

# A redirect is the receiver's answer, never followed blindly: requests re-sends a
# POST answered 301, and any method but HEAD answered 302 or 303, as a GET without
# its body, and sends every header but Authorization to another host.  Only a 307
# or 308 (method and body kept, RFC 9110 §15.4.8-9) to the request's own origin is
# followed, once.  Every 3xx that names a Location is a redirect (RFC 9110 §15.4:
# a 300's is the server's preferred choice, 305 and 306 are obsolete ones); these
# are one even without it (a redirect whose Location is missing).
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
FOLLOWED_REDIRECT_STATUSES = frozenset({307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}

_local = threading.local()


class PlaceholderError(ValueError):
    """A ``{key}`` of the Request URL cannot be filled from the payload."""


@dataclass
class HttpResult:
    """What became of one request, safe to store and show: its ``url`` (the one
    that gave the answer, after a followed redirect) and ``error`` have their
    credentials masked (``masking``); ``secrets`` are those of the URLs sent and
    of a Location not followed, for whoever stores the body a server answered."""

    method: str
    url: str
    status_code: int | None = None
    reason: str = ""
    data: object = None  # parsed JSON body, or its text when it is not JSON
    text: str = ""
    headers: dict = field(default_factory=dict)
    error_kind: str | None = None
    error: str | None = None
    duration_ms: int = 0
    secrets: tuple = field(default=(), repr=False)

    @property
    def ok(self):
        return self.error_kind is None and self.status_code is not None and (
            200 <= self.status_code < 300
        )

    @property
    def transient_error(self):
        return self.error_kind in TRANSIENT_ERRORS

    @property
    def error_label(self):
        """The error in plain words, without the library's details."""
        return ERROR_LABELS.get(self.error_kind, self.error or "")

    def header(self, name):
        """The answer's header ``name`` (compared case-insensitively), or None."""
        name = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == name),
                    None)

    def describe(self):
        """One line for a notification or a log: status and reason, or the error."""
        if self.status_code is not None:
            return f"{self.status_code} {self.reason}".strip()
        return self.error or ""


# -- headers ---------------------------------------------------------------------


def bearer_value(token):
    """``Bearer <token>``, whether or not the stored token already says "Bearer "."""
    return f"Bearer {strip_bearer(token)}"


def auth_headers(authorization_type, login=None, password=None, bearer_token=None):
    """The Authorization header for a configuration's Authorization Type."""
    if authorization_type == "basic_auth":
        pair = f"{login or ''}:{password or ''}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
    if authorization_type == "bearer_token":
        return {"Authorization": bearer_value(bearer_token)}
    return {}


def merge_headers(*parts):
    """Merge header mappings left to right, names compared case-insensitively."""
    merged = {}
    by_lower = {}
    for part in parts:
        for name, value in (part or {}).items():
            previous = by_lower.pop(name.lower(), None)
            if previous is not None:
                merged.pop(previous)
            merged[name] = value
            by_lower[name.lower()] = name
    return merged


# -- URL placeholders --------------------------------------------------------------


def placeholders(url):
    return PLACEHOLDER.findall(url or "")


def fill_placeholders(url, payload):
    """Replace each ``{key}`` of ``url`` by the URL-quoted ``payload[key]``."""
    keys = placeholders(url)
    if not keys:
        return url
    if not isinstance(payload, dict):
        raise PlaceholderError(
            f"The Request URL has placeholders ({', '.join(keys)}) but the payload is a list: "
            "placeholders need one record per request (turn off 'Is paginated?')."
        )

    def replace(match):
        key = match.group(1)
        if key not in payload or payload[key] in (None, False, ""):
            raise PlaceholderError(
                f"The Request URL needs {{{key}}} but the payload has no value for {key!r}."
            )
        return quote(str(payload[key]), safe="")

    return PLACEHOLDER.sub(replace, url)


def strip_placeholders(url):
    """``url`` cut before its first path segment or query item with a placeholder.

    Test Connection calls this base URL: it exists without any record.
    """
    parts = urlsplit(url)
    segments = parts.path.split("/")
    for index, segment in enumerate(segments):
        if PLACEHOLDER.search(segment):
            segments = segments[:index]
            break
    query = "&".join(item for item in parts.query.split("&") if item and
                     not PLACEHOLDER.search(item))
    path = "/".join(segments) or "/"
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))


# -- redirects ---------------------------------------------------------------------


def origin(url):
    """``(scheme, host, port)`` of the absolute ``url``, as browsers compare them:
    scheme and host in lower case, the scheme's default port when none is written.
    ValueError when ``url`` has no scheme, no host or an invalid port (its text
    is not quoted: it may carry credentials)."""
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:
        scheme = host = None
    if not scheme or not host:
        raise ValueError("not an absolute URL with a valid host and port")
    return scheme, host, port or DEFAULT_PORTS.get(scheme)


def resolve_location(url, location):
    """The absolute URL that a ``Location`` answered to a request to ``url`` names
    (a relative one is resolved against ``url``); ValueError when it is missing or
    is no absolute URL."""
    location = (location or "").strip()
    if not location:
        raise ValueError("the answer has no Location header")
    try:
        target = urljoin(url, location)
        origin(target)
    except ValueError:
        raise ValueError("the Location is not a valid URL") from None
    return target


def is_redirect(response):
    """True when ``response`` redirects (see REDIRECT_STATUSES)."""
    return response.status_code in REDIRECT_STATUSES or (
        300 <= response.status_code < 400 and bool(response.headers.get("Location")))


def redirect_refusal(status_code, url, target):
    """Why the request to ``url`` answered ``status_code`` towards the absolute
    ``target`` must not be followed, or None when it may be (once)."""
    if status_code in (301, 302, 303):
        return (f"a {status_code} may change the method to GET and drop the body; "
                "only a 307 or 308 to the same origin is followed")
    if status_code not in FOLLOWED_REDIRECT_STATUSES:
        return f"only a 307 or 308 to the same origin is followed, not a {status_code}"
    source, destination = origin(url), origin(target)
    if source[0] == "https" and destination[0] == "http":
        return "it leaves https for http"
    if source != destination:
        return "it leads to another origin (scheme, host or port): no header leaves for it"
    return None


def _followed_url(url, target):
    """``target`` (same origin as ``url``) with ``url``'s own authority, so that
    credentials written in the URL are those of the request, not of the answer."""
    parts, base = urlsplit(target), urlsplit(url)
    return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))


def _time_left(timeout, started):
    """What is left of ``timeout`` (a number or a ``(connect, read)`` pair) since
    ``started``: a followed redirect is part of one attempt, within its time."""
    if timeout is None:
        return None
    connect, read = timeout if isinstance(timeout, list | tuple) else (timeout, timeout)
    left = max(connect + read - (time.monotonic() - started), 0.001)
    connect = min(connect, left / 2)
    return (connect, min(read, left - connect))


def _redirect_error(response, target, refusal):
    """The error of a redirect not followed: its status, its Location (masked:
    a Location may carry credentials) and why."""
    status = f"{response.status_code} {response.reason or ''}".strip()
    return (f"The external API answered {status} → Location {mask_url(target) or '(none)'}, "
            f"not followed: {refusal}.")


# -- sending -----------------------------------------------------------------------


class _Session(requests.Session):
    """A session that never prepares a redirect: ``send`` decides about them.

    Even with ``allow_redirects=False``, requests prepares the request it would
    send next, and a Location it cannot parse raises a ValueError instead of
    giving the answer.
    """

    def get_redirect_target(self, resp):
        return None


def session():
    """A ``_Session`` per thread, so that keep-alive connections are reused.

    It does not read the environment at every request (proxies, CA bundle:
    a noticeable share of a request's cost); ``send`` passes what
    ``environment_options`` read instead.  It keeps no cookies: the thread
    serves every configuration, and a cookie one API set must not go out
    with another configuration's requests to that host.
    """
    current = getattr(_local, "session", None)
    if current is None:
        current = _local.session = _Session()
        current.trust_env = False
        current.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=()))
    return current


def environment_options(url):
    """What ``requests`` takes from the environment for ``url``: proxies, CA bundle."""
    return requests.Session().merge_environment_settings(url, {}, None, None, None)


def _causes(error):
    """``error`` and everything it wraps: requests/urllib3 nest the real cause."""
    seen = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg,
                                                                                BaseException))
        pending.extend((getattr(current, "reason", None), current.__cause__,
                        current.__context__))


def classify_error(error):
    """The error kind of an exception raised by ``requests``."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return CONNECT_TIMEOUT
    if isinstance(error, requests.exceptions.Timeout):
        return READ_TIMEOUT
    if isinstance(error, requests.exceptions.SSLError):
        return TLS
    if isinstance(error, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                          requests.exceptions.InvalidSchema, requests.exceptions.URLRequired)):
        return INVALID_URL
    for cause in _causes(error):
        if isinstance(cause, socket.gaierror) or type(cause).__name__ == "NameResolutionError":
            return DNS
        if isinstance(cause, ConnectionRefusedError):
            return REFUSED
        if isinstance(cause, ssl.SSLError):
            return TLS
        if isinstance(cause, socket.timeout):
            return READ_TIMEOUT
    if isinstance(error, requests.exceptions.ConnectionError):
        return CONNECTION
    return NETWORK


def _parse_body(response):
    text = response.text
    if not text:
        return None, text
    content_type = response.headers.get("Content-Type", "")
    if "json" in content_type or text.lstrip()[:1] in ("{", "["):
        with contextlib.suppress(ValueError):  # not JSON after all: the text
            return json.loads(text), text
    return text, text


def _request(result, method, url, body, headers, timeout, options):
    """One request, redirects not followed; None when it got no answer (``result``
    then says why)."""
    try:
        return session().request(method, url, data=body, headers=headers, timeout=timeout,
                                 allow_redirects=False, **options)
    except requests.exceptions.RequestException as error:
        result.error_kind = classify_error(error)
        # The library's text quotes the URL (path and query, or whole).
        result.error = mask_url_secrets(mask_text(
            f"{ERROR_LABELS[result.error_kind]} ({error})", result.secrets))
        return None


def send(method, url, *, body=None, headers=None, timeout=None, options=None):
    """Send one request and describe its result; never raises for network errors.

    ``body`` is bytes or str sent as is; ``timeout`` a number or a
    ``(connect, read)`` pair of seconds; ``options`` the ``environment_options``
    of the URL's host when the caller has them already.

    A 307 or 308 to the same origin is followed once with the same method, body
    and headers (``url`` is then the URL that gave the final answer); any other
    redirect is a failed result (``REDIRECT``) whose error names its Location.
    """
    result = HttpResult(method=method, url=mask_url(url), secrets=url_secrets(url))
    options = options if options is not None else environment_options(url)
    started = time.monotonic()
    response = _request(result, method, url, body, headers, timeout, options)
    current, followed = url, False
    while response is not None and is_redirect(response):
        location = response.headers.get("Location")
        try:
            target = resolve_location(current, location)
            refusal = ("a second redirect is not followed" if followed else
                       redirect_refusal(response.status_code, current, target))
        except ValueError as error:
            target, refusal = location or "", str(error)
        if refusal is not None:
            result.secrets += url_secrets(target)  # the answer's body may quote it
            result.error_kind = REDIRECT
            result.error = mask_text(_redirect_error(response, target, refusal),
                                     result.secrets)
            break
        current, followed = _followed_url(current, target), True
        result.url = mask_url(current)
        result.secrets += url_secrets(current)
        response = _request(result, method, current, body, headers,
                            _time_left(timeout, started), options)
    if response is not None:
        result.status_code = response.status_code
        result.reason = response.reason or ""
        result.headers = dict(response.headers)
        result.data, result.text = _parse_body(response)
    result.duration_ms = round((time.monotonic() - started) * 1000)
    return result


def send_json(method, url_template, body, payload, headers, timeout, options=None):
    """Send the JSON text ``body`` to ``url_template`` filled from ``payload``.

    A ``{key}`` that ``payload`` cannot fill gives a failed result (never sent),
    not an exception.
    """
    try:
        url = fill_placeholders(url_template, payload)
    except PlaceholderError as error:
        return HttpResult(method=method, url=mask_url(url_template),
                          error_kind=INVALID_URL, error=str(error))
    return send(method, url, body=body.encode(), headers=headers, timeout=timeout,
                options=options)
