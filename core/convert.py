"""Conversion of single values between JSON and Odoo field types.

``to_json`` turns a field value as ``read()`` returns it (many2one: an id or
False; x2many: a list of ids) into a JSON-ready value; ``from_json``
turns what an external system sent into what the ORM accepts, and raises
``ValueError`` with a message an integrator can act on when it cannot.
Relational values are plain ids here: following relations through another
configuration is the mapping engine's job.
"""

import base64
import binascii
import datetime as dt
import re

from dateutil import parser as date_parser

from .plan import X2MANY_TYPES

TEXT_TYPES = ("char", "text", "html")
NUMBER_TYPES = ("float", "monetary")
TRUE_STRINGS = ("true", "1", "yes")
FALSE_STRINGS = ("false", "0", "no")
INTEGER_PATTERN = re.compile(r"^[+-]?\d+$")
# PostgreSQL int4 bounds: larger values would fail in the database instead of here.
INTEGER_MIN, INTEGER_MAX = -(2**31), 2**31 - 1


def unstorable_text(text):
    """True for text PostgreSQL cannot store: a NUL character, or a lone
    surrogate (what undecodable bytes become)."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _describe(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def to_json(ttype, value):
    """Return the JSON form of ``value``, the read value of a field of type ``ttype``."""
    if ttype == "boolean":
        return bool(value)
    if ttype == "many2one":
        return value or None
    if ttype in X2MANY_TYPES:
        return list(value or ())
    if value is False or value is None:
        return None
    if ttype == "date":
        return value.isoformat()
    if ttype == "datetime":
        return value.replace(microsecond=0).isoformat() + "Z"
    if ttype == "binary":
        return value.decode() if isinstance(value, bytes) else value
    if ttype == "many2one_reference":
        return value or None
    return value


def parse_datetime(value):
    """Parse ISO 8601 into a naive UTC datetime (Odoo's storage convention)."""
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 date-time string, got {_describe(value)}")
    try:
        parsed = date_parser.isoparse(value)
    except (ValueError, OverflowError) as error:
        raise ValueError(f"{_describe(value)} is not an ISO 8601 date-time") from error
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)
        except OverflowError as error:  # 9999-12-31T23:00:00-05:00 is past year 9999 in UTC
            raise ValueError(f"{_describe(value)} is out of range in UTC") from error
    return parsed


def parse_date(value):
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 date string, got {_describe(value)}")
    try:
        return date_parser.isoparse(value).date()
    except (ValueError, OverflowError) as error:
        raise ValueError(f"{_describe(value)} is not an ISO 8601 date") from error


def parse_integer(value):
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {_describe(value)}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and INTEGER_PATTERN.match(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int):
        raise ValueError(f"expected an integer, got {_describe(value)}")
    if not INTEGER_MIN <= value <= INTEGER_MAX:
        raise ValueError(f"{value} is out of the integer range")
    return value


def parse_float(value):
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {_describe(value)}")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError as error:
            raise ValueError(f"expected a number, got {_describe(value)}") from error
    if isinstance(value, int):
        try:
            value = float(value)
        except OverflowError as error:  # 1 followed by 400 zeros
            raise ValueError(f"{_describe(value)} is too large for a number") from error
    if not isinstance(value, (int, float)) or value != value or value in (
        float("inf"), float("-inf")
    ):
        raise ValueError(f"expected a finite number, got {_describe(value)}")
    return float(value)


def parse_boolean(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_STRINGS + FALSE_STRINGS:
        return value.strip().lower() in TRUE_STRINGS
    raise ValueError(f"expected true or false, got {_describe(value)}")


def parse_binary(value):
    if not isinstance(value, str):
        raise ValueError(f"expected a base64 string, got {_describe(value)}")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError("the value is not valid base64") from error
    return value


def parse_text(value):
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected a string, got {_describe(value)}")
    value = str(value)
    if unstorable_text(value):
        raise ValueError("the text holds a NUL character or an unpaired surrogate")
    return value


def parse_id(value):
    value = parse_integer(value)
    if value <= 0:
        raise ValueError(f"expected a record id (a positive integer), got {value}")
    return value


def parse_selection(value, keys):
    if value not in (keys or ()):
        raise ValueError(
            f"{_describe(value)} is not one of the allowed values: "
            + ", ".join(repr(key) for key in keys)
        )
    return value


def parse_id_list(value):
    if not isinstance(value, list):
        raise ValueError(f"expected a list of record ids, got {_describe(value)}")
    return [parse_id(item) for item in value]


PARSERS = {
    "char": parse_text,
    "text": parse_text,
    "html": parse_text,
    "integer": parse_integer,
    "float": parse_float,
    "monetary": parse_float,
    "boolean": parse_boolean,
    "date": parse_date,
    "datetime": parse_datetime,
    "binary": parse_binary,
    "many2one": parse_id,
    "many2one_reference": parse_id,
    "one2many": parse_id_list,
    "many2many": parse_id_list,
}


def from_json(ttype, value, selection=None):
    """Return the ORM value for the JSON ``value`` of a field of type ``ttype``.

    ``None`` empties the field; ``selection`` holds a selection field's keys.
    Raises ``ValueError`` for anything the field cannot hold.
    """
    if value is None:
        if ttype == "boolean":
            return False
        if ttype in X2MANY_TYPES:
            return []
        return False
    if ttype == "selection":
        return parse_selection(value, selection)
    parser = PARSERS.get(ttype)
    if parser is None:
        raise ValueError(f"fields of type {ttype} cannot be set through the API")
    return parser(value)


def is_command_list(value):
    """True for a list of ORM x2many commands: ``(code, id[, values])`` tuples."""
    return isinstance(value, list | tuple) and bool(value) and all(
        isinstance(command, list | tuple) and len(command) in (2, 3)
        and type(command[0]) is int and 0 <= command[0] <= 6
        for command in value
    )


def from_script(ttype, value, selection=None):
    """Return the ORM value of what a script returned for a field of type ``ttype``.

    Scripts may return the field's own Python values (dates, datetimes) or
    anything :func:`from_json` accepts; ``False`` empties the field.  Anything
    else raises ``ValueError`` here, where the ORM would fail later with an error
    that names neither the line nor the value.  Fields the API does not map
    (reference, json...) take the value as it is.  Records and ORM commands are
    the engine's to handle.
    """
    if ttype == "date" and isinstance(value, dt.date):
        return value.date() if isinstance(value, dt.datetime) else value
    if ttype == "datetime" and isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = parse_datetime(value.isoformat())
        return value
    if ttype not in PARSERS and ttype != "selection":
        return value
    if value is False and ttype != "boolean":
        value = None
    return from_json(ttype, value, selection=selection)
