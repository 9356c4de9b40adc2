"""Filter Domains are data: a domain literal whose only dynamic parts are date terms.

A Filter Domain is written by API Sync Managers, who may not get code run.  Its text
is therefore never evaluated as Python: it is parsed into a syntax tree, and each
node is matched against the grammar below and turned into a small function of
:class:`DomainContext` (plain values: the clock, the user's day and time zone, the
user and companies).  Nothing reaches an attribute, a method or a callable of any
object: the terms are recognised by their spelling, and their values are computed
here.

The grammar: lists and tuples of literals (strings, numbers, ``True``, ``False``,
``None``) and of these terms:

- ``uid``, ``company_id``, ``company_ids``;
- ``context_today()``, ``datetime.now()``, ``datetime.today()``, ``datetime.utcnow()``
  (also spelled ``datetime.datetime.now()``…), ``datetime.date.today()``;
- ``timedelta(...)`` and ``relativedelta(...)`` with numeric keyword arguments;
- ``datetime.datetime(...)``, ``datetime.date(...)``, ``datetime.time(...)`` of numbers,
  and ``datetime.datetime.combine(<date>, <time>)``;
- a date or datetime plus or minus a delta, a delta plus or minus a delta;
- ``<datetime>.date()``, ``<datetime>.to_utc()`` (from the user's time zone) and
  ``<date or datetime>.strftime('<format>')`` with plain ``%`` directives: what
  Odoo's domain editor writes for "today" and "in the last N days".
"""

import ast
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytz
from dateutil.relativedelta import relativedelta

# Longer texts are refused before parsing: a domain of a few thousand ids fits.
MAX_LENGTH = 65_536
TIMEDELTA_KEYS = frozenset({
    "days", "seconds", "microseconds", "milliseconds", "minutes", "hours", "weeks",
})
RELATIVEDELTA_KEYS = frozenset({
    "years", "months", "days", "leapdays", "weeks", "hours", "minutes", "seconds",
    "microseconds", "year", "month", "day", "weekday", "hour", "minute", "second",
    "microsecond",
})
YEARS = (2, 9998)
# relativedelta's arguments that must be whole numbers, with the range of the
# absolute ones: a fraction or an out-of-range value would fail only on some
# dates (day=30.5 in a 31-day month).
WHOLE_NUMBERS = {
    "years": None, "months": None, "leapdays": None,
    "year": (1, 9999), "month": (1, 12), "day": (1, 31), "weekday": (0, 6),
    "hour": (0, 23), "minute": (0, 59), "second": (0, 59), "microsecond": (0, 999_999),
}
# strftime formats: plain directives only (no widths or flags, which glibc would
# honour with a buffer of that size), short.
STRFTIME_FORMAT = re.compile(r"(?:[^%]|%[aAbBdHIjmMpSuwyYzZ%])*")
STRFTIME_MAX_LENGTH = 64
ALLOWED = (
    "lists and tuples of strings, numbers, True, False and None; uid, company_id, "
    "company_ids; context_today(), datetime.now(), datetime.today(), timedelta(...), "
    "relativedelta(...), datetime.datetime.combine(...), datetime.time(...), their sums and "
    "differences, and .date(), .to_utc() and .strftime('...') of dates"
)

# The kinds of values, known when the text is parsed.
DATE, DATETIME, TIME, DELTA, NUMBER, STRING, CONSTANT, SEQUENCE = (
    "date", "datetime", "time", "delta", "number", "string", "constant", "sequence")
DATES = (DATE, DATETIME)


class DomainRefused(ValueError):
    """The text is not a Filter Domain; the message names the construct and where."""


@dataclass(frozen=True)
class DomainContext:
    """What a Filter Domain's terms read: plain values only."""

    now: dt.datetime  # naive, UTC, like Odoo's datetime fields
    today: dt.date  # today in the user's time zone
    tz: str  # the user's time zone, for to_utc()
    uid: int
    company_id: int
    company_ids: tuple


@dataclass(frozen=True)
class DomainTemplate:
    """A parsed Filter Domain; :meth:`evaluate` gives its domain at one moment."""

    text: str
    _value: Callable

    def evaluate(self, context):
        """The domain as a list; raises DomainRefused when a date leaves the
        calendar (``context_today() + timedelta(days=10**9)``)."""
        try:
            domain = list(self._value(context))
        except Exception as error:  # noqa: BLE001 - the terms' own arithmetic, on data
            raise DomainRefused(f"a date term has no value now: {error}") from None
        check_patterns(domain)
        return domain


# Operators whose value PostgreSQL reads as a LIKE pattern, and whether Odoo
# wraps that value in % (odoo.osv.expression) before it does.
LIKE_OPERATORS = {
    "=like": False, "=ilike": False,
    "like": True, "ilike": True, "not like": True, "not ilike": True,
}


def unterminated_escape(pattern):
    """Whether the LIKE ``pattern`` ends with its escape character ``\\``."""
    index = 0
    while index < len(pattern):
        if pattern[index] == "\\":
            if index + 1 == len(pattern):
                return True
            index += 1
        index += 1
    return False


def check_patterns(domain):
    """Refuse a LIKE pattern of ``domain`` (``any`` sub-domains included) that
    ends with its escape character.

    PostgreSQL refuses such a pattern only when it compares it with a row, so
    its refusal depends on the records: on a record the user may not read,
    reached because the conditions before it hold (record rules are tested
    after them), it would tell the user that those conditions hold.  Every
    other value of a domain is judged when PostgreSQL parses the query,
    whatever the records (``TestDomainOracle`` walks every operator and field
    kind)."""
    for leaf in domain:
        if not isinstance(leaf, (list, tuple)) or len(leaf) != 3:
            continue
        _path, operator, value = leaf
        if operator in ("any", "not any") and isinstance(value, (list, tuple)):
            check_patterns(value)
        if operator not in LIKE_OPERATORS:
            continue
        for text in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(text, str) and unterminated_escape(
                    f"%{text}%" if LIKE_OPERATORS[operator] else text):
                raise DomainRefused(
                    f"the pattern {text!r} of {operator!r} ends with the escape "
                    "character \\ (write \\\\ for a backslash)")


def _refuse(node, what):
    where = f" (line {node.lineno}, column {node.col_offset + 1})" if hasattr(
        node, "lineno") else ""
    raise DomainRefused(f"{what} is not allowed in a Filter Domain{where}: it may contain "
                        f"only {ALLOWED}")


def _check_text(node, text):
    """Strings go to PostgreSQL as they are: no NUL, nothing UTF-8 cannot encode."""
    if "\x00" in text:
        _refuse(node, "a NUL character")
    try:
        text.encode()
    except UnicodeEncodeError:
        _refuse(node, "a character UTF-8 cannot encode (a lone surrogate)")


def _constant(kind, value):
    return kind, lambda _context: value


def _dotted(node):
    """``a.b.c`` for a chain of plain names, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _number(node):
    """The value of a literal number, signed or not."""
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        sign = -1 if isinstance(node.op, ast.USub) else 1
        node = node.operand
    if not (isinstance(node, ast.Constant) and isinstance(node.value, int | float)
            and not isinstance(node.value, bool)):
        _refuse(node, "an argument that is not a literal number")
    return sign * node.value


def _numbers(node, positional_max, keys=frozenset()):
    """The literal numbers of a call's arguments (positional, keyword)."""
    if len(node.args) > positional_max:
        _refuse(node, f"{len(node.args)} positional arguments")
    kwargs = {}
    for keyword in node.keywords:
        if keyword.arg not in keys:
            _refuse(node, f"the argument {keyword.arg or '**'}")
        kwargs[keyword.arg] = _number(keyword.value)
    return [_number(arg) for arg in node.args], kwargs


def _build(node, kind, factory, positional_max, keys=frozenset()):
    """A constant built from literal numbers, checked now (at save)."""
    args, kwargs = _numbers(node, positional_max, keys)
    if factory in (dt.datetime, dt.date) and args and not (
            YEARS[0] <= args[0] <= YEARS[1]):
        # A day from the calendar's ends would leave it in another time zone.
        _refuse(node, f"the year {args[0]} (from {YEARS[0]} to {YEARS[1]})")
    if factory is relativedelta:
        for key, value in kwargs.items():
            bounds = WHOLE_NUMBERS.get(key, ())
            if bounds == () or (isinstance(value, int) and (
                    bounds is None or bounds[0] <= value <= bounds[1])):
                continue
            _refuse(node, f"relativedelta({key}={value!r}): {key} takes a whole number"
                    + (f" from {bounds[0]} to {bounds[1]}" if bounds else ""))
    try:
        return _constant(kind, factory(*args, **kwargs))
    except (TypeError, ValueError, OverflowError, IndexError) as error:
        raise DomainRefused(f"{_dotted(node.func)}(...) has no value: {error}") from None


def _now(context):
    return context.now


def _today(context):
    return context.today


def _server_today(context):
    return context.now.date()


CLOCKS = {
    "context_today": (DATE, _today),
    "datetime.now": (DATETIME, _now),
    "datetime.today": (DATETIME, _now),
    "datetime.utcnow": (DATETIME, _now),
    "datetime.datetime.now": (DATETIME, _now),
    "datetime.datetime.today": (DATETIME, _now),
    "datetime.datetime.utcnow": (DATETIME, _now),
    "datetime.date.today": (DATE, _server_today),
}
# Constructors of literal numbers: name -> (kind, factory, positional, keywords).
CONSTRUCTORS = {
    "timedelta": (DELTA, dt.timedelta, 0, TIMEDELTA_KEYS),
    "datetime.timedelta": (DELTA, dt.timedelta, 0, TIMEDELTA_KEYS),
    "relativedelta": (DELTA, relativedelta, 0, RELATIVEDELTA_KEYS),
    "datetime": (DATETIME, dt.datetime, 7, frozenset()),
    "datetime.datetime": (DATETIME, dt.datetime, 7, frozenset()),
    "datetime.date": (DATE, dt.date, 3, frozenset()),
    "datetime.time": (TIME, dt.time, 4, frozenset()),
}
COMBINE = ("datetime.combine", "datetime.datetime.combine")


def _call(node):
    if any(isinstance(arg, ast.Starred) for arg in node.args):
        _refuse(node, "*arguments")
    name = _dotted(node.func)
    if name in CLOCKS:
        if node.args or node.keywords:
            _refuse(node, f"arguments to {name}()")
        return CLOCKS[name]
    if name in CONSTRUCTORS:
        kind, factory, positional, keys = CONSTRUCTORS[name]
        return _build(node, kind, factory, positional, keys)
    if name in COMBINE:
        if len(node.args) != 2 or node.keywords:
            _refuse(node, f"{name}() without exactly a date and a time")
        (date_kind, date_value), (time_kind, time_value) = map(_compile, node.args)
        if date_kind != DATE or time_kind != TIME:
            _refuse(node, f"{name}() of a {date_kind} and a {time_kind}")
        return DATETIME, lambda context: dt.datetime.combine(date_value(context),
                                                             time_value(context))
    if isinstance(node.func, ast.Attribute) and name is None:
        return _method(node)
    _refuse(node, f"calling {name or 'an expression'}")


def _method(node):
    """``.date()``, ``.to_utc()`` and ``.strftime(format)`` of a date term."""
    method = node.func.attr
    kind, value = _compile(node.func.value)
    if node.keywords:
        _refuse(node, f".{method}() with keyword arguments")
    if method == "date" and kind == DATETIME and not node.args:
        return DATE, lambda context: value(context).date()
    if method == "to_utc" and kind == DATETIME and not node.args:
        def to_utc(context):
            zone = pytz.timezone(context.tz) if context.tz in pytz.all_timezones_set else pytz.utc
            return zone.localize(value(context)).astimezone(pytz.utc).replace(tzinfo=None)
        return DATETIME, to_utc
    if method == "strftime" and kind in DATES and len(node.args) == 1:
        fmt = node.args[0]
        if isinstance(fmt, ast.Constant) and isinstance(fmt.value, str):
            _check_text(fmt, fmt.value)
        if not (isinstance(fmt, ast.Constant) and isinstance(fmt.value, str)
                and len(fmt.value) <= STRFTIME_MAX_LENGTH
                and STRFTIME_FORMAT.fullmatch(fmt.value)):
            _refuse(fmt, "this strftime format (plain %-directives, at most "
                    f"{STRFTIME_MAX_LENGTH} characters)")
        return STRING, lambda context: value(context).strftime(fmt.value)
    _refuse(node, f".{method}() of a {kind}")


def _binary(node):
    left_kind, left = _compile(node.left)
    right_kind, right = _compile(node.right)
    add = isinstance(node.op, ast.Add)
    if not (add or isinstance(node.op, ast.Sub)):
        _refuse(node, f"the operator {type(node.op).__name__}")
    kinds = (left_kind, right_kind)
    if kinds in ((DATE, DELTA), (DATETIME, DELTA), (DELTA, DELTA)):
        kind = left_kind
    elif add and left_kind == DELTA and right_kind in DATES:
        kind = right_kind
    else:
        _refuse(node, f"{'adding' if add else 'subtracting'} a {right_kind} "
                f"{'to' if add else 'from'} a {left_kind}")
    if add:
        return kind, lambda context: left(context) + right(context)
    return kind, lambda context: left(context) - right(context)


def _sequence(node):
    items = [_compile(item)[1] for item in node.elts]
    build = list if isinstance(node, ast.List) else tuple
    return SEQUENCE, lambda context: build(item(context) for item in items)


NAMED_VALUES = {
    "uid": (NUMBER, lambda context: context.uid),
    "company_id": (NUMBER, lambda context: context.company_id),
    "company_ids": (SEQUENCE, lambda context: list(context.company_ids)),
}


def _name(node):
    if node.id not in NAMED_VALUES:
        _refuse(node, f"the name {node.id!r}")
    return NAMED_VALUES[node.id]


def _literal(node):
    value = node.value
    if isinstance(value, bool) or value is None:
        return _constant(CONSTANT, value)
    if isinstance(value, int | float):
        return _constant(NUMBER, value)
    if isinstance(value, str):
        _check_text(node, value)
        return _constant(STRING, value)
    _refuse(node, f"a {type(value).__name__} literal")


def _unary(node):
    kind, value = _compile(node.operand)
    if kind != NUMBER or not isinstance(node.op, ast.USub | ast.UAdd):
        _refuse(node, f"the operator {type(node.op).__name__}")
    if isinstance(node.op, ast.USub):
        return NUMBER, lambda context: -value(context)
    return NUMBER, value


COMPILERS = {
    ast.Constant: _literal,
    ast.List: _sequence,
    ast.Tuple: _sequence,
    ast.Name: _name,
    ast.UnaryOp: _unary,
    ast.BinOp: _binary,
    ast.Call: _call,
}


def _compile(node):
    """(kind, function of a DomainContext) of one node."""
    compiler = COMPILERS.get(type(node))
    if compiler is None:
        _refuse(node, _describe(node))
    return compiler(node)


def _describe(node):
    if isinstance(node, ast.Attribute):
        return f"reading .{node.attr}"
    return f"a {type(node).__name__} expression"


def parse_domain(text):
    """The :class:`DomainTemplate` of ``text`` (an empty text is the empty domain).

    Raises DomainRefused (a ValueError) naming what is not allowed and where."""
    text = (text or "").strip() or "[]"
    if len(text) > MAX_LENGTH:
        raise DomainRefused(f"a Filter Domain has at most {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text, "<filter domain>", mode="eval")
    except (SyntaxError, MemoryError, RecursionError) as error:
        line = getattr(error, "lineno", None)
        raise DomainRefused("the Filter Domain is not a Python literal" + (
            f" (line {line})" if line else "")) from None
    if not isinstance(tree.body, ast.List):
        raise DomainRefused("a Filter Domain is a list, like [('is_company', '=', True)]")
    try:
        return DomainTemplate(text, _compile(tree.body)[1])
    except RecursionError:
        raise DomainRefused("the Filter Domain nests too deeply") from None
