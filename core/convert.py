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
        parsed = parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)
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
    return str(value)


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
