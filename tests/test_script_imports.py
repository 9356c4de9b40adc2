"""Scripts import from an allowlist of sandbox-safe modules, so the original
documentation's snippets run as written, pasted into a line."""

import base64
import datetime
import hashlib
import hmac
import json
import logging
import math

from odoo.tests import BaseCase, tagged

from ..core.script_budget import CHECKPOINT, Budget
from ..services.script_modules import (
    MODULES,
    SCRIPT_LOGGER,
    SCRIPT_LOGGER_NAME,
    DateTime,
    get_logger,
)
from ..services.scripts import IMPORTABLE, compile_script, script_context, script_import
from .common import BjApiHttpCase


def public_names_of(value):
    return {name for name in dir(value) if not name.startswith("_")}

# The FAQ, "How do I handle different date formats?", as written.
FAQ_DATE_SNIPPET = """from datetime import datetime

def convert_date(date_string):
    # Parse MM/DD/YYYY format
    dt = datetime.strptime(date_string, '%m/%d/%Y')
    # Return Odoo format YYYY-MM-DD
    return dt.strftime('%Y-%m-%d')
"""
# The FAQ, "How do I debug transformation scripts?", as written; ``data`` is
# its name for what the line receives.
FAQ_LOGGING_SNIPPET = """import logging
import math
_logger = logging.getLogger(__name__)
_logger.info(f"Processing data: {data}")
"""
# The SPEC's script examples (section 4): each allowlisted module, datetime.now()
# beside datetime.datetime.now(), and a def helper with a comprehension.
SPEC_SCRIPT = """import datetime as odoo_datetime
from datetime import datetime, timedelta, date
import re, json, math, time, base64, hashlib, hmac
import dateutil
from dateutil.relativedelta import relativedelta
from dateutil import parser

def days_from(start, count):
    return [(start + timedelta(days=n)).isoformat() for n in range(count)]

now = datetime.now()
result = json.dumps({
    "week_before": (datetime.strptime('2024-03-08', '%Y-%m-%d') - timedelta(days=7)).isoformat(),
    "odoo_style": odoo_datetime.datetime.strptime('08/03/2024', '%d/%m/%Y').date().isoformat(),
    "same_clock": abs((odoo_datetime.datetime.now() - now).total_seconds()) < 60,
    "instances": [isinstance(now, datetime), isinstance(now, odoo_datetime.datetime),
                  isinstance(now, odoo_datetime.date)],
    "digits": re.sub(r'\\D', '', request_data['phone']),
    "ceil": math.ceil(2.1),
    "year": time.strftime('%Y', time.strptime('2024', '%Y')),
    "month_end": (date(2024, 1, 31) + relativedelta(months=1)).isoformat(),
    "parsed": parser.parse('2024-05-06T07:08:09').isoformat(),
    "isoparsed": dateutil.parser.isoparse('2024-05-06').isoformat(),
    "b64": base64.b64encode(b'odoo').decode(),
    "sha256": hashlib.sha256(b'odoo').hexdigest(),
    "hmac": hmac.new(b'key', b'odoo', hashlib.sha256).hexdigest(),
    "same_hmac": hmac.compare_digest(hmac.digest(b'key', b'odoo', 'sha256'),
                                     hmac.new(b'key', b'odoo', 'sha256').digest()),
    "days": days_from(date(2024, 2, 28), 3),
})
"""


@tagged("post_install", "-at_install")
class TestScriptImports(BjApiHttpCase):
    """The documentation's snippets over a real inbound call."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.config = cls.make_config(endpoint="documented-scripts", lines=[
            ("id", "res_id", {"is_identifier": True}),
            ("function", "log", {"value_type": "python_plain", "script_mode": "execute",
                                 "python_script": "data = request_data\n" + FAQ_LOGGING_SNIPPET}),
            ("name", "name", None),
            ("ref", "birthday", {"value_type": "python_plain", "python_script": (
                FAQ_DATE_SNIPPET + "\nresult = convert_date(request_data['birthday'])")}),
        ])

    def test_faq_date_conversion(self):
        created = self.assertApiSuccess(self.api(
            "POST", "documented-scripts", body={"name": "FAQ dates", "birthday": "12/31/2024"}),
            201)
        self.assertEqual(self.env["res.partner"].browse(created["res_id"]).ref, "2024-12-31")

    def test_faq_logging_writes_to_the_server_log(self):
        # The number: Odoo names its level 25 "INFO" too.
        with self.assertLogs(SCRIPT_LOGGER_NAME, logging.INFO) as logs:
            self.assertApiSuccess(self.api(
                "POST", "documented-scripts",
                body={"name": "FAQ logs", "birthday": "01/02/2024"}), 201)
        self.assertEqual(logs.output, [
            f"INFO:odoo.addons.bjet_api_sync.script:Processing data: "
            f"{ {'name': 'FAQ logs', 'birthday': '01/02/2024'} }",
        ])
        self.assertEqual(logs.records[0].pathname, "<configuration line script>")

    def test_spec_script_examples(self):
        self.make_config(endpoint="spec-scripts", lines=[
            ("id", "res_id", {"is_identifier": True}),
            ("name", "name", None),
            ("ref", "checks", {"value_type": "python_plain", "python_script": SPEC_SCRIPT}),
        ])
        created = self.assertApiSuccess(self.api(
            "POST", "spec-scripts", body={"name": "SPEC", "phone": "+32 (2) 555-00-00"}), 201)
        checks = json.loads(self.env["res.partner"].browse(created["res_id"]).ref)
        self.assertEqual(checks, {
            "week_before": "2024-03-01T00:00:00",
            "odoo_style": "2024-03-08",
            "same_clock": True,
            "instances": [True, True, True],
            "digits": "3225550000",
            "ceil": 3,
            "year": "2024",
            "month_end": "2024-02-29",
            "parsed": "2024-05-06T07:08:09",
            "isoparsed": "2024-05-06T00:00:00",
            "b64": base64.b64encode(b"odoo").decode(),
            "sha256": hashlib.sha256(b"odoo").hexdigest(),
            "hmac": hmac.new(b"key", b"odoo", hashlib.sha256).hexdigest(),
            "same_hmac": True,
            "days": ["2024-02-28", "2024-02-29", "2024-03-01"],
        })


@tagged("post_install", "-at_install")
class TestScriptModules(BaseCase):
    """The stand-ins and the scripts' ``__import__`` as plain objects (no database)."""

    def test_datetime_is_module_and_class_making_plain_values(self):
        values = [DateTime.now(), DateTime.datetime.now(), DateTime.utcnow(), DateTime.today(),
                  DateTime(2024, 1, 2), DateTime.strptime("12/31/2024", "%m/%d/%Y"),
                  DateTime.fromisoformat("2024-01-01T10:00:00"),
                  DateTime.combine(datetime.date(2024, 1, 1), datetime.time(1)),
                  DateTime.now(datetime.timezone.utc)]
        for value in values:
            with self.subTest(value=value):
                self.assertIs(type(value), datetime.datetime)
                self.assertIsInstance(value, DateTime)
        self.assertIs(DateTime.datetime, DateTime)
        self.assertIs(DateTime.timedelta, datetime.timedelta)
        self.assertIs(DateTime.date, datetime.date)
        self.assertEqual(DateTime(2024, 1, 2, 3).date(), datetime.date(2024, 1, 2))
        self.assertEqual(IMPORTABLE["datetime"], frozenset({
            "date", "datetime", "time", "timedelta", "timezone", "tzinfo", "MINYEAR",
            "MAXYEAR"}))

    def test_scripts_datetime_and_dateutil_are_the_stand_ins(self):
        variables = script_context(None, None, None, {}, Budget(0))
        self.assertIs(variables["datetime"], DateTime)
        self.assertIs(variables["dateutil"], MODULES["dateutil"])

    def test_import_binds_stand_ins_only(self):
        time_module = object()
        do_import = script_import(time_module)
        self.assertIs(do_import("datetime", None, None, ("datetime",), 0), DateTime)
        self.assertIs(do_import("time", None, None, None, 0), time_module)
        self.assertIs(do_import("dateutil.parser", None, None, None, 0), MODULES["dateutil"])
        self.assertIs(do_import("dateutil.parser", None, None, ("parse",), 0),
                      MODULES["dateutil.parser"])
        for module in MODULES.values():
            with self.subTest(module=module):
                self.assertNotIsInstance(module, type(json))
        # C code (datetime.strptime) imports _strptime for its side effect.
        self.assertIsNone(do_import("_strptime", None, None, [], 0))
        for name, level in (("no_such_module", 0), ("json", 1)):
            with self.subTest(name=name), self.assertRaisesRegex(
                    ImportError, "scripts may import only base64, datetime, dateutil"):
                do_import(name, None, None, None, level)

    def test_scripts_read_their_name_and_define_helpers(self):
        script = compile_script("__name__", "evaluate")
        # Runs the compiled code as the runner does; pylint: disable-next=eval-used
        self.assertEqual(eval(script.code, {"__builtins__": {}}), SCRIPT_LOGGER_NAME)  # noqa: S307
        self.assertEqual(SCRIPT_LOGGER_NAME, "odoo.addons.bjet_api_sync.script")
        script = compile_script("def outer(n):\n    def inner():\n        return n * 2\n"
                                "    return [inner() + m for m in range(n)]\n"
                                "result = outer(2)", "evaluate")
        self.assertFalse(script.error)
        variables = {"__builtins__": {"range": range}, CHECKPOINT: Budget(math.inf).checkpoint}
        exec(script.code, variables)  # noqa: S102 - checked by compile_script
        self.assertEqual(variables["result"], [4, 5])

    def test_classes_and_with_stay_refused(self):
        for source in ("class A:\n    pass", "with x:\n    pass"):
            with self.subTest(source=source):
                self.assertIn("forbidden operation(s)", compile_script(source, "execute").error)

    def test_script_loggers_are_under_the_addons_name(self):
        self.assertIs(get_logger(), SCRIPT_LOGGER)
        self.assertIs(get_logger(SCRIPT_LOGGER_NAME), SCRIPT_LOGGER)
        self.assertIs(MODULES["logging"].getLogger, get_logger)
        self.assertEqual(get_logger("orders").name, "odoo.addons.bjet_api_sync.script.orders")
        self.assertEqual(public_names_of(SCRIPT_LOGGER),
                         {"name", "debug", "info", "warning", "error", "exception", "critical",
                          "log"})
