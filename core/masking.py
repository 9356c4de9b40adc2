"""Masking and truncation of what goes into the logs.

Secrets must never reach ``bj.api.log``: sensitive headers are masked by name,
and every configured secret value (credentials, Secret headers) is masked
wherever it appears.  URLs are stored and shown with their credentials masked
(``mask_url_secrets``): the userinfo and the values of credential-like query
keys, in a URL or in any text that quotes one (the error texts of
``requests``/urllib3).
"""

import re
from urllib.parse import unquote_plus

MASK = "********"
TRUNCATION_MARK = "… [truncated {omitted} characters]"

# A name (query key or header) is credential-like by a rule on its words, not
# by a list of names: a word of its own (``X-Api-Key``, ``apiKey``, ``sig``), or
# a term anywhere in the name once separators are dropped (``access_token``,
# ``clientSecret``, ``Proxy-Authorization``, ``PHPSESSID``).
CREDENTIAL_WORDS = frozenset({"key", "sig", "auth", "pwd", "pw", "jwt"})
CREDENTIAL_TERMS = ("token", "secret", "passw", "apikey", "signature", "credential",
                    "authoriz", "cookie", "session", "sessid")
NAME_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
NON_ALPHANUMERIC = re.compile(r"[^a-z0-9]")
# ``scheme://userinfo@``: up to the authority's last "@", as urllib3 reads it.
URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s'\"<>]*@")
# ``key=value`` after "?", "&", ";" or "#" (query and fragment parameters).
URL_PARAMETER = re.compile(r"(?P<lead>[?&;#])(?P<key>[^=&;#?\s'\"<>]+)=[^&;#\s'\"<>]*")

# Secrets shorter than this are not masked inside free text: masking "a" or
# "1" everywhere would destroy the log without protecting anything.
MIN_MASKED_SECRET_LENGTH = 4


def is_credential_name(name):
    """Whether a query key or header ``name`` looks like it carries a credential."""
    words = {word.lower() for word in NAME_WORD.findall(name)}
    compact = NON_ALPHANUMERIC.sub("", name.lower())
    return bool(words & CREDENTIAL_WORDS) or any(term in compact for term in CREDENTIAL_TERMS)


def mask_url_secrets(text):
    """``text`` (a URL, or any text quoting URLs) with its URLs' credentials
    masked: the userinfo, and the value of every credential-like parameter."""
    if not text:
        return text
    text = URL_USERINFO.sub(lambda match: f"{match['scheme']}{MASK}@", text)

    def parameter(match):
        if not is_credential_name(unquote_plus(match["key"])):
            return match[0]
        return f"{match['lead']}{match['key']}={MASK}"

    return URL_PARAMETER.sub(parameter, text)


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
        name: MASK if is_credential_name(name) or str(value) in whole
        else mask_url_secrets(mask_text(str(value), secrets))
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
