"""HTTP-level building blocks of the inbound REST API: no ORM, no UI.

Credentials, client addresses, request signatures, JSON bodies and the shape of
the answers.  The request handling that uses them lives in
``services/inbound_request.py``.
"""

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import re
from dataclasses import dataclass, field

from .convert import unstorable_text
from .plan import BEARER_SCHEME

API_PREFIX = "/bj_api_sync/v1"
# Methods of the contract, per kind of path (collection or single record).
COLLECTION_METHODS = ("GET", "POST", "PUT")
RECORD_METHODS = ("GET", "PUT", "DELETE")
WRITE_METHODS = ("POST", "PUT", "DELETE")

SIGNATURE_HEADER = "X-BJET-Signature"
SIGNATURE_TOLERANCE = 300  # seconds either side of the server clock
IDEMPOTENCY_HEADERS = ("Idempotency-Key", "X-Request-ID")
MAX_IDEMPOTENCY_KEY_LENGTH = 255
REALM = "bjet_api_sync"


class InboundError(Exception):
    """A request that ends with an HTTP error answer.

    ``message`` is meant for the integrator; ``line_id`` and ``index`` point at
    the configuration line and the batch item at fault; ``headers`` are added to
    the answer (``WWW-Authenticate``, ``Allow``, ``Retry-After``...).
    """

    def __init__(self, status, message, line_id=None, index=None, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.line_id = line_id
        self.index = index
        self.headers = dict(headers or {})


def identifier_lock_keys(model, field_name, values):
    """The key rows (signed 64-bit, ``bj.api.identifier.lock``) of the identifier
    ``values`` of ``model``'s field ``field_name``, sorted and without repeats.

    Sorted, so that two batches touch their common keys in one order and never
    deadlock.  A key names the model and field, not the configuration: two
    configurations writing the same field of the same model wait for each
    other too.  Two values sharing a key (a hash collision) only wait for each
    other.  ``repr`` keeps types apart: the identifier 5 and "5" differ.
    """
    keys = set()
    for value in values:
        text = f"{model}\0{field_name}\0{value!r}".encode()
        digest = hashlib.sha256(text).digest()
        keys.add(int.from_bytes(digest[:8], "big", signed=True))
    return sorted(keys)


@dataclass
class InboundResponse:
    status: int
    body: dict
    headers: dict = field(default_factory=dict)
    error: str = ""
    res_model: str = ""
    res_ids: list = field(default_factory=list)
    _encoded: bytes | None = None

    @property
    def is_success(self):
        return 200 <= self.status < 300

    def encode(self):
        """The body as sent (computed once: the log stores the same bytes)."""
        if self._encoded is None:
            self._encoded = json.dumps(self.body, ensure_ascii=False, default=str).encode()
        return self._encoded


@dataclass
class InboundCall:
    """What the controller parsed from one HTTP request.

    ``headers`` keeps the names as received (for the log); lookups go through
    :meth:`header`, which ignores case. ``read_body`` returns the raw body.
    ``target`` is the path and query string as on the request line (signed).
    """

    method: str
    path: str
    endpoint: str
    identifier: str | None
    headers: dict
    query: list
    remote_addr: str
    read_body: object
    target: str
    content_length: int | None = None
    _body: bytes | None = None

    def header(self, name, default=None):
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return default

    def query_dict(self):
        """First value of each query parameter."""
        values = {}
        for key, value in self.query:
            values.setdefault(key, value)
        return values

    @property
    def request_id(self):
        return self.header("X-Request-ID") or False

    def body_if_read(self):
        """The body when the pipeline got that far, for the log; never reads it."""
        return self._body or b""

    def body(self, max_size):
        """The raw body, refusing anything larger than ``max_size`` bytes (413)."""
        if self._body is None:
            too_large = InboundError(
                413, f"The request body is larger than the {max_size} bytes allowed."
            )
            if self.content_length is not None and self.content_length > max_size:
                raise too_large
            self._body = self.read_body() or b""
            if len(self._body) > max_size:
                raise too_large
        return self._body


def check_call_text(call):
    """Refuse (400) a path, query or header that is not storable text."""
    parts = [("path", call.path), ("endpoint", call.endpoint or ""),
             ("identifier", call.identifier or "")]
    parts += [(f"query parameter {key!r}", f"{key}={value}") for key, value in call.query]
    parts += [(f"header {name!r}", f"{name}: {value}") for name, value in call.headers.items()]
    for label, text in parts:
        if unstorable_text(text):
            raise InboundError(400, f"The {label} holds a NUL character or invalid UTF-8.")


# -- answers -------------------------------------------------------------------


def error_body(status, message, line_id=None, index=None):
    """Error body: a superset of every shape the original documents."""
    body = {"status": "error", "error": message, "message": message, "code": status,
            "line_id": line_id, "status_code": status}
    if index is not None:
        body["index"] = index
    return body


def error_response(error):
    return InboundResponse(
        error.status,
        error_body(error.status, error.message, error.line_id, error.index),
        headers=error.headers,
        error=error.message,
    )


def success_body(data, **facts):
    return {"status": "success", "data": data, **facts}


# -- credentials -----------------------------------------------------------------


def constant_time_equal(given, expected):
    """Compare two secrets in time independent of where they differ."""
    return hmac.compare_digest((given or "").encode(), (expected or "").encode())


def parse_authorization(header):
    """Split an ``Authorization`` header into ``(scheme, credentials)``."""
    scheme, _sep, credentials = (header or "").strip().partition(" ")
    return scheme.lower(), credentials.strip()


def basic_credentials(header):
    """``(login, password)`` of a Basic ``Authorization`` header, or None."""
    scheme, credentials = parse_authorization(header)
    if scheme != "basic" or not credentials:
        return None
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    login, sep, password = decoded.partition(":")
    return (login, password) if sep else None


def check_credentials(authorization_type, header, login=None, password=None, token=None):
    """True when ``header`` carries the configured credentials.

    Both halves of a Basic pair are always compared, so a wrong login takes as
    long as a wrong password.
    """
    if authorization_type == "no_auth":
        return True
    if authorization_type == "basic_auth":
        given = basic_credentials(header)
        if given is None or not login or not password:
            return False
        login_ok = constant_time_equal(given[0], login)
        password_ok = constant_time_equal(given[1], password)
        return login_ok and password_ok
    if authorization_type == "bearer_token":
        # ``token`` as the plan keeps it: without the scheme.
        scheme, credentials = parse_authorization(header)
        return scheme == BEARER_SCHEME and bool(token) and constant_time_equal(credentials, token)
    return False


def submitted_secrets(header):
    """The credentials a caller sent, to mask them in the log even when wrong."""
    scheme, credentials = parse_authorization(header)
    found = [header, credentials] if header else []
    if scheme == "basic":
        pair = basic_credentials(header)
        if pair:
            found.append(pair[1])
    return [value for value in found if value]


def challenge(authorization_type):
    scheme = "Basic" if authorization_type == "basic_auth" else "Bearer"
    return f'{scheme} realm="{REALM}"'


# -- client address --------------------------------------------------------------


def client_address(remote_addr, forwarded_for, proxy_mode):
    """The caller's address.

    Behind a proxy (Odoo's ``proxy_mode``) it is the last ``X-Forwarded-For``
    entry, the one our proxy appended: earlier entries come from the caller and
    can be forged.  Without ``proxy_mode`` the header is ignored altogether.
    """
    if proxy_mode and forwarded_for:
        entries = [entry.strip() for entry in forwarded_for.split(",") if entry.strip()]
        if entries:
            return entries[-1]
    return remote_addr


def address_allowed(address, networks):
    """True when ``address`` is in one of ``networks`` (any address if there are none)."""
    if not networks:
        return True
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks if network.version == ip.version)


# -- signatures --------------------------------------------------------------------


# Unix time, in seconds with an optional fraction: identical requests signed
# within the same second then still differ.
SIGNATURE_TIMESTAMP = re.compile(r"\d{1,12}(\.\d{1,9})?")


def signed_message(timestamp, method, target, body):
    """What a signature signs: ``"<t>.<METHOD>.<target>.<raw body>"``.

    ``timestamp`` is the ``t`` of the header as sent; ``target`` is the path and
    query string exactly as on the request line (``/bj_api_sync/v1/partners/7?limit=5``),
    so that a signature binds the method, the record and the query as well as
    the body.
    """
    return f"{timestamp}.{method.upper()}.{target}.".encode() + (body or b"")


def compute_signature(secret, timestamp, method, target, body):
    """Hex HMAC-SHA256 of :func:`signed_message`."""
    message = signed_message(timestamp, method, target, body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret, method, target, body, timestamp):
    """The ``X-BJET-Signature`` value for this request at ``timestamp`` (whole seconds)."""
    timestamp = int(timestamp)
    return f"t={timestamp},v1={compute_signature(secret, timestamp, method, target, body)}"


def signature_error(reason):
    return InboundError(401, reason, headers={"WWW-Authenticate": f'Signature realm="{REALM}"'})


def verify_signature(secret, header, method, target, body, now, tolerance=SIGNATURE_TOLERANCE):
    """``(time, signature)`` when ``header`` signs this request, else a 401.

    ``time`` is the signed Unix time; the signature is the one that matched
    (several may be sent), to be recorded as used.
    """
    if not header:
        raise signature_error(f"The {SIGNATURE_HEADER} header is missing.")
    timestamp, signatures = None, []
    for part in header.split(","):
        name, _sep, value = part.strip().partition("=")
        if name == "t":
            timestamp = value.strip()
        elif name == "v1":
            signatures.append(value.strip().lower())
    if not timestamp or not SIGNATURE_TIMESTAMP.fullmatch(timestamp) or not signatures:
        raise signature_error(
            f"The {SIGNATURE_HEADER} header must look like t=<unix time>,v1=<hex>."
        )
    if abs(now - float(timestamp)) > tolerance:
        raise signature_error(
            f"The {SIGNATURE_HEADER} timestamp is outside the {tolerance} s window."
        )
    expected = compute_signature(secret, timestamp, method, target, body)
    if not any(hmac.compare_digest(expected, signature) for signature in signatures):
        raise signature_error(
            f"The {SIGNATURE_HEADER} signature does not match the method, path, query "
            "and body of this request."
        )
    return float(timestamp), expected


# -- bodies -------------------------------------------------------------------------


def is_json_content_type(content_type):
    mimetype = (content_type or "").split(";")[0].strip().lower()
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def parse_json_body(body, content_type):
    """The JSON value of ``body``: 415 for other media types, 400 for broken JSON.

    A body without a Content-Type is read as JSON: many clients leave it out.
    """
    if content_type and not is_json_content_type(content_type):
        raise InboundError(
            415, f"Content-Type {content_type!r} is not supported: send application/json."
        )
    if not body or not body.strip():
        return None
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as error:
        raise InboundError(400, f"The body is not UTF-8 text: {error.reason}.") from error
    except ValueError as error:
        raise InboundError(400, f"The body is not valid JSON: {error}.") from error
    except RecursionError as error:
        raise InboundError(400, "The body nests JSON too deeply.") from error
    check_json_text(value)
    return value


def check_json_text(value):
    """Refuse (400) JSON whose keys or strings PostgreSQL cannot store (a NUL
    character, a lone surrogate such as "\\ud800")."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str) and unstorable_text(item):
            raise InboundError(400, "The body holds a NUL character or an unpaired surrogate.")


def idempotency_key(call):
    """The caller's idempotency key (Idempotency-Key wins over X-Request-ID)."""
    for name in IDEMPOTENCY_HEADERS:
        value = (call.header(name) or "").strip()
        if value:
            if len(value) > MAX_IDEMPOTENCY_KEY_LENGTH:
                raise InboundError(
                    400, f"{name} is longer than {MAX_IDEMPOTENCY_KEY_LENGTH} characters."
                )
            return value
    return None


def allowed_methods(enabled, has_identifier):
    """The enabled methods that make sense on this kind of path, for ``Allow``."""
    candidates = RECORD_METHODS if has_identifier else COLLECTION_METHODS
    return [method for method in candidates if method in enabled]
