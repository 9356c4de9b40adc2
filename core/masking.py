"""Masking and truncation of what goes into the logs.

Secrets must never reach ``bj.api.log``: sensitive headers are masked by name,
and every configured secret value (credentials, Secret headers) is masked
wherever it appears.
"""

import re

MASK = "********"
TRUNCATION_MARK = "… [truncated {omitted} characters]"

SENSITIVE_HEADER_NAMES = frozenset({
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
    "x-bjet-signature",
})
# Header names that look like credentials even when we do not know them.
SENSITIVE_HEADER_PATTERN = re.compile(r"(token|secret|password|api[-_]?key|signature)", re.I)

# Secrets shorter than this are not masked inside free text: masking "a" or
# "1" everywhere would destroy the log without protecting anything.
MIN_MASKED_SECRET_LENGTH = 4


def is_sensitive_header(name):
    lowered = name.lower()
    return lowered in SENSITIVE_HEADER_NAMES or bool(SENSITIVE_HEADER_PATTERN.search(lowered))


def mask_text(text, secrets):
    """Replace every occurrence of every secret in ``text``."""
    if not text:
        return text
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        if len(secret) >= MIN_MASKED_SECRET_LENGTH:
            text = text.replace(secret, MASK)
    return text


def mask_headers(headers, secrets=()):
    """Return a copy of ``headers`` (a mapping) safe to log: a value that is a
    secret is masked whole, however short."""
    whole = {s for s in secrets if s}
    return {
        name: MASK if is_sensitive_header(name) or str(value) in whole
        else mask_text(str(value), secrets)
        for name, value in (headers or {}).items()
    }


def truncate(text, max_size):
    """Cut ``text`` to ``max_size`` characters, saying how much was cut."""
    if not text or max_size is None or max_size <= 0 or len(text) <= max_size:
        return text
    omitted = len(text) - max_size
    return text[:max_size] + TRUNCATION_MARK.format(omitted=omitted)


def storable(text):
    """``text`` as PostgreSQL can store it: NUL characters and lone surrogates
    (undecodable bytes) are shown escaped instead of failing the INSERT."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
