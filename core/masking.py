"""Masking and truncation of what goes into the logs.

Secrets must never reach ``bj.api.log``: sensitive headers are masked by name,
and every configured secret value (credentials, Secret headers) is masked
wherever it appears.  URLs are stored and shown with their credentials masked
(``mask_url``, from a parse of the URL): the userinfo and the values of
credential-like query keys.  Texts that may quote a URL (the error texts of
``requests``/urllib3) are masked by rule (``mask_url_secrets``) and, since a
rule over free text cannot know where a value ends, by the credentials of the
URL that was configured or sent (``url_secrets``), as every other secret.
"""

import re
from urllib.parse import quote, quote_plus, unquote, unquote_plus

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
# The start of a URL: its scheme (with or without "//", as a userinfo without
# "//" reads as a scheme) and its userinfo up to the last "@" before a "/",
# whatever the userinfo holds: a password with an unencoded "?" or "#" ends the
# authority for urllib3, not for whoever wrote it; masking too much beats
# showing the rest.
URL_START = re.compile(r"(?P<lead>[A-Za-z][A-Za-z0-9+.-]*:(?://)?|//)(?P<userinfo>[^/]*@)?")
# The rest, split as RFC 3986 (appendix B) does, keeping every character:
# urlsplit drops tabs and newlines, so its parts are not what was sent.
URL_REST = re.compile(r"(?P<path>[^?#]*)(?:\?(?P<query>[^#]*))?(?:#(?P<fragment>.*))?", re.DOTALL)
# The same in free text: after "scheme://", up to the last "@" before a "/" or a
# blank; after "scheme:" alone, up to an "@" before any ":".  A scheme starts a
# run of scheme characters, and each "@" is looked for in one stretch of text:
# linear in the length of the text, however it repeats itself.
URL_USERINFO = re.compile(r"(?<![A-Za-z0-9+.-])(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*:(?://)?)"
                          r"(?:(?<=//)[^/\s]*|[^/\s@:]*)@")
# ``key=`` after "?", "&", ";" or "#" (query and fragment parameters).  The value
# ends only at "&", "#" or a blank (the end of the URL in a text): quotes, "<",
# ">" or ";" inside a value do not end it early.
URL_KEY = re.compile(r"(?P<lead>[?&;#])(?P<key>[^=&;#?\s'\"<>]+)=")
URL_VALUE_END = re.compile(r"[&#\s]|\Z")
# Characters requests leaves unquoted when it sends a URL (requests.utils.requote_uri).
SENT_UNQUOTED = "!#$%&'()*+,/:;=?@[]~"

# Secrets shorter than this are not masked inside free text: masking "a" or
# "1" everywhere would destroy the log without protecting anything.
MIN_MASKED_SECRET_LENGTH = 4


def is_credential_name(name):
    """Whether a query key or header ``name`` looks like it carries a credential,
    whatever its case or percent-encoding (``kEy``, ``%6BEY``)."""
    name = unquote(name)
    lowered = name.lower()
    words = {word.lower() for word in NAME_WORD.findall(name)}
    words.update(NON_ALPHANUMERIC.split(lowered))
    compact = NON_ALPHANUMERIC.sub("", lowered)
    return bool(words & CREDENTIAL_WORDS) or any(term in compact for term in CREDENTIAL_TERMS)


def _split(url):
    """(lead, userinfo, path, query, fragment) of ``url``; None for absent parts."""
    start = URL_START.match(url)
    rest = URL_REST.fullmatch(url[start.end():] if start else url)
    lead, userinfo = start.group("lead", "userinfo") if start else ("", None)
    return (lead, userinfo and userinfo[:-1], *rest.group("path", "query", "fragment"))


def _parameters(text):
    """(key, value) of each ``key=value`` item of a query, a fragment or a path
    (``;jsessionid=``)."""
    for item in re.split("[&;]", text or ""):
        key, equals, value = item.partition("=")
        if equals:
            yield key, value


def url_secrets(url):
    """The credentials written in ``url``: its userinfo (whole, the password or
    the user when there is no password, and their pieces between "/", "?" and
    "#", which urllib3 quotes apart) and the values of its credential-like
    parameters; each as written, decoded and encoded as ``requests`` sends it,
    so that they are masked wherever a server or a library quotes them back."""
    if not url:
        return ()
    _lead, userinfo, path, query, fragment = _split(url)
    found = []
    if userinfo:
        user, colon, password = userinfo.partition(":")
        credential = password if colon else user
        found += [userinfo, credential, *re.split("[/?#]", credential)]
    found += [value for part in (path, query, fragment) for key, value in _parameters(part)
              if is_credential_name(unquote_plus(key))]
    variants = set()
    for value in filter(None, found):
        for decoded in (value, unquote(value), unquote_plus(value)):
            variants |= {decoded, quote(decoded, safe=""), quote_plus(decoded, safe=""),
                         quote(decoded, safe=SENT_UNQUOTED)}
    return tuple(sorted(variants))


def is_ambiguous_url(url):
    """Whether ``url``'s userinfo holds an unencoded "?" or "#" (or an "@"
    follows its host): urllib3 would read another host and query than the
    author meant, and quote the rest of the password as a query."""
    userinfo = _split(url)[1]
    return bool(userinfo) and any(mark in userinfo for mark in "?#")


def mask_url(url):
    """``url`` with its credentials masked, from a parse of the URL: the whole
    userinfo, and the whole value of each credential-like parameter."""
    if not url:
        return url
    lead, userinfo, path, query, fragment = _split(url)
    shown = lead + (f"{MASK}@" if userinfo is not None else "") + mask_url_secrets(path)
    for mark, part in (("?", query), ("#", fragment)):
        if part is not None:
            shown += mark + "&".join(_mask_item(item) for item in part.split("&"))
    return shown


def _mask_item(item):
    key, equals, _value = item.partition("=")
    if equals and is_credential_name(unquote_plus(key)):
        return f"{key}={MASK}"
    return mask_url_secrets(item)


def mask_url_secrets(text):
    """``text`` (a URL, or any text quoting URLs) with its URLs' credentials
    masked: the userinfo, and the value of every credential-like parameter."""
    if not text:
        return text
    text = URL_USERINFO.sub(lambda match: f"{match['scheme']}{MASK}@", text)
    # The value of a plain key is read on: it may hold ``;key=value`` items.
    shown, position = [], 0
    for match in URL_KEY.finditer(text):
        if match.start() >= position and is_credential_name(unquote_plus(match["key"])):
            shown += [text[position:match.end()], MASK]
            position = URL_VALUE_END.search(text, match.end()).start()
    return "".join(shown) + text[position:]


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
