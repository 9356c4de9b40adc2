"""The modules Python Scripts may import, as sandbox-safe stand-ins: each one
offers a fixed list of names (``odoo.tools.safe_eval.wrap_module``), never a
real module, whose other attributes (``re.enum``, ``json.decoder``,
``logging.root.manager``…) would lead out of the sandbox.

``time`` is not here: each script run gets its own, whose ``sleep`` obeys that
run's budget (services/scripts.py)."""

import base64
import datetime as _datetime
import hashlib
import hmac
import json
import logging
import math
import re

from odoo.tools import safe_eval as sandbox

# Scripts log under the addon's name; it is also their ``__name__``, so that
# ``logging.getLogger(__name__)`` names this logger.
SCRIPT_LOGGER_NAME = f"{__package__.rpartition('.')[0]}.script"
# What a script's logger offers: the logging calls, not handlers, levels or
# the manager of every logger of the server.
LOGGER_METHODS = ("debug", "info", "warning", "error", "exception", "critical", "log")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class _DateTimeType(type):
    # ``isinstance(value, datetime)`` holds for the plain datetimes the
    # stand-in makes, whichever way the script imported it.
    def __instancecheck__(cls, instance):
        return isinstance(instance, _datetime.datetime)

    def __subclasscheck__(cls, subclass):
        return issubclass(subclass, _datetime.datetime)


class DateTime(_datetime.datetime, metaclass=_DateTimeType):
    """``datetime`` for scripts and Filter Domains: the module and its class at
    once, so that ``datetime.now()`` (the original documentation) and
    ``datetime.datetime.now()`` (Odoo's server actions) both work, as do
    ``from datetime import datetime`` and ``import datetime``.

    Its constructors (``now()``, ``strptime()``, ``datetime(2024, 1, 1)``…)
    return plain ``datetime.datetime`` values, so the ORM and psycopg2 see
    ordinary datetimes (whose ``.date()`` and ``.time()`` are the usual methods).
    The module's names (DATETIME_NAMES) are class attributes."""

    # The class is read from the module at each call, so that a clock frozen
    # by freezegun in tests reaches scripts and Filter Domains too.
    def __new__(cls, *args, **kwargs):
        return _datetime.datetime(*args, **kwargs)

    @classmethod
    def now(cls, tz=None):
        return _datetime.datetime.now(tz)

    @classmethod
    def utcnow(cls):
        return _datetime.datetime.utcnow()

    @classmethod
    def today(cls):
        return _datetime.datetime.today()


# What ``from datetime import …`` may take.
DATETIME_NAMES = ("date", "datetime", "time", "timedelta", "timezone", "tzinfo",
                  "MINYEAR", "MAXYEAR")
for _name in DATETIME_NAMES:
    setattr(DateTime, _name, DateTime if _name == "datetime" else getattr(_datetime, _name))


class ScriptLogger:
    """A logger of scripts: its logging calls only."""

    def __init__(self, name):
        logger = logging.getLogger(name)
        self.name = name
        for method in LOGGER_METHODS:
            setattr(self, method, getattr(logger, method))


SCRIPT_LOGGER = ScriptLogger(SCRIPT_LOGGER_NAME)


def get_logger(name=None):
    """``logging.getLogger`` of scripts: the script logger, or one below it."""
    if name is None or name == SCRIPT_LOGGER_NAME:
        return SCRIPT_LOGGER
    return ScriptLogger(f"{SCRIPT_LOGGER_NAME}.{name}")


def _logging():
    module = sandbox.wrap_module(logging, LOG_LEVELS)
    module.getLogger = get_logger
    # ``logging.info(...)`` writes where the script's logger does.
    for method in LOGGER_METHODS:
        setattr(module, method, getattr(SCRIPT_LOGGER, method))
    return module


# Module name → stand-in.  ``dateutil`` is Odoo's own (parser, relativedelta,
# rrule, tz); its submodules may be imported by name too.
MODULES = {
    "datetime": DateTime,
    "re": sandbox.wrap_module(re, [
        "compile", "escape", "findall", "finditer", "fullmatch", "match", "search", "split",
        "sub", "subn", "error", "A", "ASCII", "I", "IGNORECASE", "M", "MULTILINE", "S",
        "DOTALL", "X", "VERBOSE", "U", "UNICODE", "NOFLAG",
    ]),
    "json": sandbox.wrap_module(json, ["dumps", "loads", "JSONDecodeError"]),
    "math": sandbox.wrap_module(math, [name for name in dir(math) if not name.startswith("_")]),
    "dateutil": sandbox.dateutil,
    "dateutil.parser": sandbox.dateutil.parser,
    "dateutil.relativedelta": sandbox.dateutil.relativedelta,
    "dateutil.rrule": sandbox.dateutil.rrule,
    "dateutil.tz": sandbox.dateutil.tz,
    "base64": sandbox.wrap_module(base64, [
        "b64encode", "b64decode", "urlsafe_b64encode", "urlsafe_b64decode",
        "standard_b64encode", "standard_b64decode", "b32encode", "b32decode",
        "b16encode", "b16decode", "encodebytes", "decodebytes",
    ]),
    "hashlib": sandbox.wrap_module(hashlib, [
        "new", "md5", "sha1", "sha224", "sha256", "sha384", "sha512",
        "sha3_224", "sha3_256", "sha3_384", "sha3_512", "blake2b", "blake2s",
    ]),
    "hmac": sandbox.wrap_module(hmac, ["new", "compare_digest", "digest"]),
    "logging": _logging(),
}


def public_names(stand_in):
    """The names ``from <module> import …`` may take from ``stand_in``."""
    if stand_in is DateTime:
        return frozenset(DATETIME_NAMES)
    return frozenset(name for name in vars(stand_in) if not name.startswith("_"))
