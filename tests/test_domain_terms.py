"""Filter Domains are data (core/domain_terms.py): the grammar's terms, table-driven,
and every way out of it refused, with no database."""

import datetime as dt
import logging
from dataclasses import fields as dataclass_fields

from dateutil.relativedelta import relativedelta

from odoo.tests import BaseCase, tagged

from ..core import domain_terms
from ..core.domain_terms import DomainContext, DomainRefused, parse_domain

_logger = logging.getLogger(__name__)

NOW = dt.datetime(2031, 3, 15, 22, 30, 5)
CONTEXT = DomainContext(now=NOW, today=dt.date(2031, 3, 16), tz="Asia/Tokyo", uid=7,
                        company_id=3, company_ids=(3, 4))
# What Odoo 18's domain editor writes (web/static/src/core/tree_editor/condition_tree.js).
EDITOR_TODAY = "context_today().strftime(\"%Y-%m-%d\")"
EDITOR_NOW = ("datetime.datetime.combine(context_today(), datetime.time(0, 0, 0))"
              ".to_utc().strftime(\"%Y-%m-%d %H:%M:%S\")")
EDITOR_DAYS_AGO = "(context_today() + relativedelta(days=-7)).strftime('%Y-%m-%d')"
EDITOR_DATETIME_DAYS_AGO = (
    "datetime.datetime.combine(context_today() + relativedelta(weeks=-1), "
    "datetime.time(0, 0, 0)).to_utc().strftime(\"%Y-%m-%d %H:%M:%S\")")

ACCEPTED = [
    ("", []),
    ("[]", []),
    ("[('is_company', '=', True)]", [("is_company", "=", True)]),
    ("['|', ('a', '=', None), '!', ('b', 'in', [1, -2, 3.5])]",
     ["|", ("a", "=", None), "!", ("b", "in", [1, -2, 3.5])]),
    ("[['user_id', '=', uid]]", [["user_id", "=", 7]]),
    ("[('company_id', 'in', company_ids), ('x', '=', company_id)]",
     [("company_id", "in", [3, 4]), ("x", "=", 3)]),
    ("[('write_date', '>=', datetime.now() - timedelta(days=7))]",
     [("write_date", ">=", NOW - dt.timedelta(days=7))]),
    ("[('d', '<=', datetime.datetime.now() + datetime.timedelta(hours=1, minutes=2))]",
     [("d", "<=", NOW + dt.timedelta(hours=1, minutes=2))]),
    ("[('d', '=', datetime.today()), ('e', '=', datetime.utcnow())]",
     [("d", "=", NOW), ("e", "=", NOW)]),
    ("[('d', '>=', context_today() - relativedelta(months=1))]",
     [("d", ">=", dt.date(2031, 2, 16))]),
    ("[('d', '>=', relativedelta(day=1) + context_today())]",
     [("d", ">=", dt.date(2031, 3, 1))]),
    ("[('d', '=', datetime.date.today())]", [("d", "=", dt.date(2031, 3, 15))]),
    ("[('d', '=', datetime.now().date())]", [("d", "=", dt.date(2031, 3, 15))]),
    ("[('d', '>', datetime.datetime(2024, 1, 2, 3)), ('e', '<', datetime.date(2024, 5, 6))]",
     [("d", ">", dt.datetime(2024, 1, 2, 3)), ("e", "<", dt.date(2024, 5, 6))]),
    ("[('d', '=', timedelta(days=1) + timedelta(hours=-2) + context_today())]",
     [("d", "=", dt.date(2031, 3, 16))]),
    (f"[('d', '=', {EDITOR_TODAY})]", [("d", "=", "2031-03-16")]),
    # Midnight of the 16th in Tokyo is 15:00 UTC on the 15th.
    (f"[('d', '>=', {EDITOR_NOW})]", [("d", ">=", "2031-03-15 15:00:00")]),
    (f"[('d', '>=', {EDITOR_DAYS_AGO})]", [("d", ">=", "2031-03-09")]),
    (f"[('d', '>=', {EDITOR_DATETIME_DAYS_AGO})]", [("d", ">=", "2031-03-08 15:00:00")]),
]

# Each is refused when parsed, before anything is evaluated.
REFUSED = [
    # The reviewers' vector: a format walk through a callable of the context.
    "[('id', '=', int('{0.__globals__[sandbox].odoo.tools.config.options[admin_passwd]}'"
    ".format(context_today)))]",
    "[('id', '=', '{0.__globals__}'.format(context_today))]",
    "[('id', '=', '{0.__class__}'.format(uid))]",
    "[('id', '=', '{0:%Y}'.format(context_today()))]",
    "[('id', '=', '%s' % uid)]",
    "[('id', '=', f'{uid}')]",
    "[('name', '=', env.user.name)]",
    "[('name', '=', ().__class__)]",
    "[('name', '=', context_today)]",
    "[('name', '=', datetime)]",
    "[('name', '=', timedelta)]",
    "[('name', '=', relativedelta)]",
    "[('name', '=', context_today().__class__)]",
    "[('name', '=', context_today().replace(year=1))]",
    "[('name', '=', context_today().isoformat())]",
    "[('name', '=', context_today().strftime('%Y').upper())]",
    "[('name', '=', context_today().strftime('%999999999Y'))]",
    "[('name', '=', context_today().strftime('%-d'))]",
    "[('name', '=', context_today().strftime(uid))]",
    "[('name', '=', datetime.now().strftime(fmt='%Y'))]",
    "[('name', '=', datetime.now.__self__)]",
    "[('name', '=', datetime.datetime.combine(uid, datetime.time()))]",
    "[('name', '=', datetime.strptime('2024', '%Y'))]",
    "[('name', '=', datetime.fromtimestamp(0))]",
    "[('name', '=', timedelta(days=uid))]",
    "[('name', '=', timedelta(7, *[1]))]",
    "[('name', '=', timedelta(**{'days': 1}))]",
    "[('name', '=', timedelta(years=1))]",
    "[('name', '=', relativedelta(dt1=context_today()))]",
    "[('name', '=', context_today() + 1)]",
    "[('name', '=', context_today() * 2)]",
    "[('name', '=', context_today() - context_today())]",
    "[('name', '=', 10 ** 10 ** 10)]",
    "[('name', '=', 'a' * 10 ** 9)]",
    "[('name', '=', 1 + 1)]",
    "[('name', '=', not uid)]",
    "[('name', '=', uid if uid else 0)]",
    "[('name', '=', [x for x in company_ids])]",
    "[('name', '=', (lambda: 1)())]",
    "[('name', '=', {'a': 1})]",
    "[('name', '=', {1, 2})]",
    "[('name', '=', b'bytes')]",
    "[('name', '=', ...)]",
    "[('name', '=', company_ids[0])]",
    "[('name', '=', (x := 1))]",
    "[('name', '=', __import__('os'))]",
    "[('name', '=', getattr(uid, 'real'))]",
    "[('name', '=', str(uid))]",
    "[('name', '=', int('1'))]",
    "[('name', '=', eval('1'))]",
    "[('name', '=', uid.real)]",
    "[('name', '=', (yield))]",
    "[('name', '=', await x)]",
    "[('name', '=', uid < 1)]",
    "('is_company', '=', True)",
    "not a domain",
    "[(]",
    "uid",
    "[('a', '=', 1)]; import os",
    "[" * 5000 + "]" * 5000,
    # Values PostgreSQL cannot take, and arguments valid on some dates only.
    "[('name', '=', 'a\\x00b')]",
    "[('name', '=', '\\ud800')]",
    "[('name', '=', context_today().strftime('%Y\\x00'))]",
    "[('d', '=', context_today() + relativedelta(months=2, day=30.5))]",
    "[('d', '=', context_today() + relativedelta(year=2020.5))]",
    "[('d', '=', context_today() + relativedelta(hour=1.5))]",
    "[('d', '=', context_today() + relativedelta(weekday=1.5))]",
    "[('d', '=', context_today() + relativedelta(weekday=7))]",
    "[('d', '=', context_today() + relativedelta(weekday=-8))]",
    "[('d', '=', context_today() + relativedelta(month=13))]",
    "[('d', '=', context_today() + relativedelta(years=1.5))]",
    "[('d', '=', datetime.datetime(1, 1, 1).to_utc())]",
    "[('d', '=', datetime.date(9999, 12, 31))]",
    "[" + "1, " * 40_000 + "]",
]


@tagged("post_install", "-at_install")
class TestDomainTerms(BaseCase):
    def test_accepted_domains_and_their_values(self):
        for text, expected in ACCEPTED:
            with self.subTest(text=text):
                self.assertEqual(parse_domain(text).evaluate(CONTEXT), expected)

    def test_refused_before_evaluation(self):
        _logger.info("filter domain vectors: %s refused, %s accepted", len(REFUSED),
                     len(ACCEPTED))
        for text in REFUSED:
            with self.subTest(text=text[:80]), self.assertRaises(DomainRefused) as caught:
                parse_domain(text)
            self.assertIn("Filter Domain", str(caught.exception))

    def test_the_message_names_the_construct_and_where(self):
        with self.assertRaisesRegex(DomainRefused, r"reading \.__globals__ .*line 1, column"):
            parse_domain("[('a', '=', context_today.__globals__)]")
        with self.assertRaisesRegex(DomainRefused, r"calling int"):
            parse_domain("[('a', '=', int('1'))]")

    def test_every_attribute_of_every_term_is_refused(self):
        """Each term's value has attributes (methods, dunders): the grammar reads
        none but its own, spelled out, whatever a probe tries."""
        allowed = {"strftime", "to_utc", "date"}
        terms = [name for name in domain_terms.NAMED_VALUES] + [
            f"{name}()" for name in domain_terms.CLOCKS] + [
            "timedelta(days=1)", "relativedelta(days=1)", "datetime.time(1)",
            "datetime.datetime(2024, 1, 1)", "'text'", "1", "True", "None", "[1]", "(1,)"]
        walked = 0
        for term in terms:
            value = parse_domain(f"[{term}]").evaluate(CONTEXT)[0]
            for attr in set(dir(value)) | {"__globals__", "__self__", "__func__"}:
                for text in (f"[({term}).{attr}]", f"[({term}).{attr}()]",
                             f"['{{0.{attr}}}'.format({term})]"):
                    if attr in allowed and "format" not in text:
                        continue
                    with self.subTest(text=text), self.assertRaises(DomainRefused):
                        parse_domain(text)
                    walked += 1
        _logger.info("filter domain attribute walk: %s texts over %s terms, all refused",
                     walked, len(terms))

    def test_the_context_is_plain_data(self):
        """Nothing a term reads is a callable or an object with a way out."""
        plain = (int, str, tuple, dt.date, dt.datetime)
        for field in dataclass_fields(DomainContext):
            value = getattr(CONTEXT, field.name)
            with self.subTest(field=field.name):
                self.assertIsInstance(value, plain)
                self.assertFalse(callable(value))

    def test_dates_that_leave_the_calendar(self):
        template = parse_domain("[('d', '>', context_today() + relativedelta(years=9000))]")
        with self.assertRaisesRegex(DomainRefused, "no value"):
            template.evaluate(CONTEXT)
        with self.assertRaisesRegex(DomainRefused, "has no value"):
            parse_domain("[('d', '>', datetime.time(25))]")

    def test_relativedelta_and_timedelta_keywords_are_theirs(self):
        for key in domain_terms.RELATIVEDELTA_KEYS:
            value = 1 if key not in ("weekday",) else 0
            with self.subTest(key=key):
                delta = parse_domain(f"[relativedelta({key}={value})]").evaluate(CONTEXT)[0]
                self.assertIsInstance(delta, relativedelta)
        for key in domain_terms.TIMEDELTA_KEYS:
            with self.subTest(key=key):
                delta = parse_domain(f"[timedelta({key}=1)]").evaluate(CONTEXT)[0]
                self.assertIsInstance(delta, dt.timedelta)

    def test_each_evaluation_reads_its_context(self):
        template = parse_domain("[('d', '>=', datetime.now() - timedelta(days=1))]")
        later = DomainContext(now=NOW + dt.timedelta(days=30), today=CONTEXT.today, tz="UTC",
                              uid=1, company_id=1, company_ids=(1,))
        self.assertEqual(template.evaluate(CONTEXT)[0][2], NOW - dt.timedelta(days=1))
        self.assertEqual(template.evaluate(later)[0][2], NOW + dt.timedelta(days=29))
