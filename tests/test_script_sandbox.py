"""Escape and abuse vectors against Python Scripts: each one contained (refused
on save, or refused when it runs with a 400 or a dead job naming the line),
logged, and the worker serving the next call."""

import logging
import time

import psycopg2.extensions

from odoo.api import Transaction
from odoo.exceptions import AccessError, ValidationError
from odoo.sql_db import BaseCursor
from odoo.tests import BaseCase, tagged

from ..core.script_rules import ScriptRefused, check_source
from ..services.quiet_cursor import QuietCursor
from ..services.scripts import IMPORTABLE, ScriptCursor, script_environment
from .common import BjApiHttpCase, BjApiSyncCase, BjOutboundCase

_logger = logging.getLogger(__name__)

# A small budget: a loop stops after one second.
TEST_BUDGETS = {
    "bjet_api_sync.script_time_budget": "1",
}

FORMAT = "str.format and format_map"
FRAME = "out of a script's reach"
TRANSACTION = "shares its request's transaction"
SQL = r"UnsafeStatement: statement \d: (TransactionStmt|VariableSetStmt) "
TIMEOUT = "ran longer than its 1 s budget"
IMPORT = "is not allowed: scripts may import only base64, datetime, dateutil"
STAND_IN = "AttributeError"

# Refused when saved (ValidationError); stored anyway (as before an upgrade),
# they are refused with the same message when they run.
SAVE_VECTORS = [
    ("format walk to the master password",
     "'{0.sudo.__func__.__globals__[odoo].tools.config.options[admin_passwd]}'.format(record)",
     FORMAT),
    ("str.format unbound", "str.format('{0.env.cr}', model)", FORMAT),
    ("map(str.format)", "list(map(str.format, ['{0.env}'], [model]))", FORMAT),
    ("format_map", "'{x.env}'.format_map({'x': model})", FORMAT),
    ("string.Formatter", "Formatter().format('{0.env}', model)", FORMAT),
    ("format builtin", "format(model, '')", FORMAT),
    ("generator frame to caller locals", "(x for x in [1]).gi_frame.f_back.f_locals", FRAME),
    ("f_back", "g = (x for x in [1])\nresult = g.gi_frame.f_back", FRAME),
    ("function globals", "record.sudo.__func__.__globals__", FRAME),
    ("subclasses walk", "().__class__.__bases__[0].__subclasses__()", FRAME),
    ("__builtins__", "__builtins__['open']('/etc/passwd').read()", FRAME),
    ("traceback frame", "try:\n    1 / 0\nexcept Exception as error:\n"
                        "    result = error.__traceback__.tb_frame.f_globals", FRAME),
    ("tb_next", "try:\n    1 / 0\nexcept Exception as error:\n    result = error.tb_next", FRAME),
    ("mro to BaseException", "UserError.mro()", FRAME),
    ("helper globals", "b64encode.__globals__['base64']", FRAME),
    ("generator code", "(x for x in [1]).gi_code", FRAME),
    ("import", "import os\nresult = os.getcwd()", IMPORT),
    ("import sys", "import sys", IMPORT),
    ("import subprocess", "import subprocess", IMPORT),
    ("import importlib", "import importlib", IMPORT),
    ("import builtins", "import builtins", IMPORT),
    ("import odoo", "import odoo", IMPORT),
    ("import ctypes", "import ctypes", IMPORT),
    ("from odoo import", "from odoo.tools import safe_eval", IMPORT),
    ("import a submodule of an allowed one", "import json.decoder", IMPORT),
    ("relative import", "from . import scripts", IMPORT),
    ("star import", "from datetime import *", "name what the script imports"),
    ("from an allowed module, an internal", "from json import decoder",
     "'json' offers scripts no 'decoder'"),
    ("from re, its enum", "from re import enum", "'re' offers scripts no 'enum'"),
    ("__import__", "__import__('os')", FRAME),
    ("import as a dunder", "import re as __builtins__", FRAME),
    ("__name__ overwritten", "__name__ = 'odoo'", FRAME),
    ("pattern class", "import re\nresult = re.compile('x').__class__", FRAME),
    ("datetime subclasses", "datetime.__subclasses__()", FRAME),
    ("datetime mro", "from datetime import datetime\nresult = datetime.mro()", FRAME),
    ("logger's real logger", "import logging\nresult = logging.info.__self__", FRAME),
    ("commit", "env.cr.commit()", TRANSACTION),
    ("rollback", "env.cr.rollback()", TRANSACTION),
    ("raw connection _cnx", "env.cr._cnx.commit", TRANSACTION),
    ("psycopg2 cursor _obj", "env.cr._obj.execute('COMMIT')", TRANSACTION),
    ("connection", "env.cr.connection", TRANSACTION),
    ("second transaction", "env.registry.cursor()", TRANSACTION),
    ("commit through record.env", "record.env.cr.commit()", TRANSACTION),
    ("rollback through model.env", "model.env.cr.rollback()", TRANSACTION),
    ("registry through pool", "model.pool.cursor()", TRANSACTION),
    ("other environments", "list(env.transaction.envs)", TRANSACTION),
    ("postcommit hook", "env.cr.postcommit.add(lambda: None)", TRANSACTION),
    ("executemany", "env.cr.executemany('COMMIT', [()])", TRANSACTION),
    ("syntax error", "result = (", "SyntaxError"),
]

# Saved as a Settings administrator; refused when they run (400, dead job).
RUN_VECTORS = [
    ("COMMIT", "env.cr.execute('COMMIT')", SQL),
    ("ROLLBACK", "env.cr.execute('ROLLBACK')", SQL),
    ("COMMIT after a select", "env.cr.execute('SELECT 1; COMMIT')", SQL),
    ("END", "env.cr.execute('END')", SQL),
    ("ABORT", "env.cr.execute('abort')", SQL),
    ("SAVEPOINT", "env.cr.execute('SAVEPOINT bj')", SQL),
    ("RELEASE", "env.cr.execute('RELEASE SAVEPOINT bj')", SQL),
    ("ROLLBACK TO", "env.cr.execute('ROLLBACK TO SAVEPOINT bj')", SQL),
    ("BEGIN", "env.cr.execute('BEGIN')", SQL),
    ("SET SESSION AUTHORIZATION", "env.cr.execute('SET SESSION AUTHORIZATION DEFAULT')", SQL),
    ("SET ROLE", "env.cr.execute('SET ROLE NONE')", SQL),
    ("PREPARE TRANSACTION", "env.cr.execute(\"PREPARE TRANSACTION 'bj'\")", SQL),
    ("COMMIT behind a comment", "model.env.cr.execute('/* x */ COMMIT')", SQL),
    ("set_config role", "env.cr.execute(\"SELECT set_config('role', 'x', false)\")",
     r"set_config\(\) is VOLATILE in PostgreSQL's catalog"),
    ("commit method at run time", "env.cr.execute('SELECT 1')\nresult = env.cr.fetchall()\n"
                                  "env['res.partner'].env.cr.execute('COMMIT')", SQL),
    ("scheduled action as a limited user",
     "env['ir.cron'].create({'name': 'bj evil', 'model_id': env.ref('base.model_res_partner').id,"
     " 'state': 'code', 'code': 'pass', 'interval_number': 1, 'interval_type': 'minutes'})",
     r"not allowed to create 'Scheduled Actions'"),
    ("server action as a limited user",
     "env['ir.actions.server'].create({'name': 'bj evil', 'state': 'code', 'code': 'pass',"
     " 'model_id': env.ref('base.model_res_partner').id})",
     r"not allowed to create 'Server Action'"),
    ("database secret as a limited user",
     "env['ir.config_parameter'].get_param('database.secret')",
     r"not allowed to access 'System Parameter'"),
    ("sleep", "time.sleep(600)", TIMEOUT),
    ("SQL sleep", "env.cr.execute('SELECT pg_sleep(30)')", TIMEOUT),
    ("endless loop", "while True:\n    pass", TIMEOUT),
    ("loop catching Exception",
     "while True:\n    try:\n        while True:\n            pass\n    except Exception:\n"
     "        pass", TIMEOUT),
    ("endless finally", "try:\n    while True:\n        pass\nfinally:\n    while True:\n"
                        "        pass", TIMEOUT),
    ("recursion bomb", "def f(n):\n    return f(n + 1)\nresult = f(0)", "RecursionError"),
    ("recursion then loop",
     "def f(n):\n    try:\n        return f(n + 1)\n    except Exception:\n        return n\n"
     "depth = f(0)\nwhile True:\n    pass", TIMEOUT),
    ("generator whose finally loops",
     "def g():\n    try:\n        yield 1\n    finally:\n        while True:\n            pass\n"
     "while True:\n    for x in g():\n        break", TIMEOUT),
    ("recursion in finally",
     "def f():\n    try:\n        f()\n    finally:\n        f()\nf()", TIMEOUT),
    ("comprehension over a huge range", "[x for x in range(10 ** 12) if x < 0]", TIMEOUT),
    ("logger manager", "import logging\nresult = logging.getLogger('x').manager", STAND_IN),
    ("logging root", "import logging\nresult = logging.root", STAND_IN),
    ("logger handlers", "import logging\nresult = logging.getLogger(__name__).handlers",
     STAND_IN),
    ("json decoder", "import json\nresult = json.decoder", STAND_IN),
    ("re internals", "import re\nresult = re.enum", STAND_IN),
    ("hashlib internals", "import hashlib\nresult = hashlib._hashlib", STAND_IN),
    ("hmac internals", "import hmac\nresult = hmac._hashopenssl", STAND_IN),
    ("base64 internals", "import base64\nresult = base64.binascii", STAND_IN),
    ("dateutil internals", "import dateutil.tz\nresult = dateutil.tz.tzfile", STAND_IN),
    ("time internals", "import time\nresult = time.get_clock_info('time')", STAND_IN),
    ("a budgeted time.sleep after import", "import time\ntime.sleep(600)", TIMEOUT),
    ("bare except around the stop",
     "while True:\n    try:\n        time.sleep(600)\n    except:\n        pass", TIMEOUT),
    ("continue in finally",
     "while True:\n    try:\n        time.sleep(600)\n    finally:\n        continue", TIMEOUT),
    ("return in finally",
     "def f():\n    try:\n        while True:\n            pass\n    finally:\n        return 1\n"
     "while True:\n    f()", TIMEOUT),
    ("a def helper looping", "def spin():\n    while True:\n        pass\nspin()", TIMEOUT),
    ("nested helpers looping",
     "def inner(n):\n    return [n for _ in range(10 ** 6)]\n"
     "def outer():\n    while True:\n        inner(1)\nouter()", TIMEOUT),
]

# Written by an API Sync Manager who is not a Settings administrator.
MANAGER_VECTORS = [
    ("superuser environment", "env(su=True)['res.users'].search([]).mapped('login')"),
    ("sudo", "record.sudo().env.su"),
    ("harmless looking", "'x'"),
]

SAFE_SCRIPT = "(request_data.get('code') or '').upper()"

# (source, refused): the rules on the syntax tree.
SOURCES = [
    ("record.name.upper()", False),
    ("f'{record.name}'", False),
    ("'%s' % record.name", False),
    ("cursor = 1\nresult = cursor", False),
    ("try:\n    pass\nexcept Exception:\n    pass", False),
    ("try:\n    pass\nfinally:\n    for x in []:\n        break", False),
    ("try:\n    pass\nfinally:\n    def f():\n        return 1", False),
    ("'{}'.format(1)", True),
    ("format(1, '')", True),
    ("env.cr.commit()", True),
    # The stop of the time budget fires again at the next line: nothing to refuse.
    ("try:\n    pass\nexcept:\n    pass", False),
    ("while True:\n    try:\n        pass\n    finally:\n        break", False),
    ("def f():\n    try:\n        pass\n    finally:\n        return 1", False),
    ("global __builtins__", False),  # left to the sandbox's own name check
    ("import re\nresult = re.sub('a', 'b', 'a')", False),
    ("from datetime import datetime, timedelta\nresult = datetime.now()", False),
    ("import datetime as dt", False),
    ("import dateutil.parser\nfrom dateutil.relativedelta import relativedelta", False),
    ("import logging\n_logger = logging.getLogger(__name__)", False),
    ("def f(x):\n    return [y * x for y in range(3)]", False),
    ("import os", True),
    ("import re, os", True),
    ("from os import path", True),
    ("from datetime import *", True),
    ("from . import x", True),
    ("from json import decoder", True),
    ("import re as __r", True),
    ("__name__ = 'x'", True),
    ("del __name__", True),
]


def statement_timeout(cr):
    cr.execute("SHOW statement_timeout")
    return cr.fetchone()[0]


@tagged("post_install", "-at_install")
class TestScriptRules(BaseCase):
    """The source rules as plain functions (no database)."""

    def test_source_rules(self):
        for source, refused in SOURCES:
            with self.subTest(source=source):
                if refused:
                    with self.assertRaises(ScriptRefused) as caught:
                        check_source(source, importable=IMPORTABLE)
                    self.assertRegex(str(caught.exception), r"^line \d+: ")
                else:
                    check_source(source, importable=IMPORTABLE)

    def test_imports_are_refused_without_an_allowlist(self):
        with self.assertRaisesRegex(ScriptRefused, "'re' is not allowed: scripts may not import"):
            check_source("import re")


@tagged("post_install", "-at_install")
class TestScriptSandbox(BjApiHttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for key, value in TEST_BUDGETS.items():
            cls.env["ir.config_parameter"].set_param(key, value)
        cls.config = cls.make_config(endpoint="sandbox", lines=[
            ("id", "res_id", {"is_identifier": True}),
            ("name", "name", None),
            ("ref", "code", {"value_type": "python_plain", "python_script": SAFE_SCRIPT}),
        ])
        cls.line = cls.config.line_ids.filtered(lambda line: line.external_key == "code")
        cls.contained = 0

    @classmethod
    def tearDownClass(cls):
        _logger.info("sandbox vectors: %s contained", cls.contained)
        super().tearDownClass()

    def store(self, code, mode="execute"):
        """Put ``code`` in the line as a script saved before the rules would be."""
        self.env.cr.execute(
            "UPDATE bj_api_sync_config_line SET python_script = %s, script_mode = %s "
            "WHERE id = %s", (code, mode, self.line.id))
        self.env.invalidate_all()
        self.env.registry.clear_cache()

    def assertContainedAtRun(self, name, code, message):
        crons = self.env["ir.cron"].search_count([])
        actions = self.env["ir.actions.server"].search_count([])
        logs = len(self.get_logs(self.config))
        response = self.api("POST", "sandbox", body={"name": f"Vector {name}", "code": "x"})
        body = self.assertApiError(response, 400, message, line_id=self.line.id)
        self.assertIn("'code'", body["message"], "the message names the line")
        self.assertNotIn(code, response.text, "never the script's source")
        self.assertFalse(self.env["res.partner"].search([("name", "=", f"Vector {name}")]))
        self.assertEqual(self.env["ir.cron"].search_count([]), crons)
        self.assertEqual(self.env["ir.actions.server"].search_count([]), actions)
        log = self.get_logs(self.config)[logs:]
        self.assertEqual(len(log), 1, "the refused call is logged")
        self.assertEqual(log.status_code, 400)
        self.assertRegex(log.error_message, message)
        self.assertNotIn(code, log.error_message)

    def assertStillServing(self):
        self.line.write({"python_script": SAFE_SCRIPT, "script_mode": "evaluate"})
        created = self.assertApiSuccess(
            self.api("POST", "sandbox", body={"name": "Still serving", "code": "ok"}), 201)
        self.assertEqual(created["code"], "OK")
        # A normal script may still select, and see what the request wrote.
        self.assertEqual(self.env["res.partner"].browse(created["res_id"]).ref, "OK")

    def test_vectors_refused_on_save_and_at_run(self):
        for name, code, message in SAVE_VECTORS:
            with self.subTest(vector=name):
                mode = "execute" if "\n" in code else "evaluate"
                with self.assertRaisesRegex(ValidationError, message):
                    self.line.write({"python_script": code, "script_mode": mode})
                self.store(code, mode)
                self.assertContainedAtRun(name, code, message)
                self.assertStillServing()
                type(self).contained += 1

    def test_vectors_refused_at_run(self):
        for name, code, message in RUN_VECTORS:
            with self.subTest(vector=name):
                self.line.write({"python_script": code,
                                 "script_mode": "execute" if "\n" in code else "evaluate"})
                self.assertContainedAtRun(name, code, message)
                self.assertStillServing()
                type(self).contained += 1

    def test_managers_cannot_write_scripts(self):
        line = self.line.with_user(self.sync_manager)
        for name, code in MANAGER_VECTORS:
            with self.subTest(vector=name):
                with self.assertRaisesRegex(AccessError, "Only Settings administrators"):
                    line.write({"python_script": code})
                self.assertEqual(self.line.python_script, SAFE_SCRIPT)
                self.assertStillServing()
                type(self).contained += 1

    def test_trusted_scripts_keep_sql_sudo_and_savepoints(self):
        self.line.write({"script_mode": "evaluate", "python_script": (
            "env.cr.execute('SELECT %s', ['commit; rollback'])\n"
            "selected = env.cr.fetchone()[0]\n"
            "savepoint = env.cr.savepoint()\n"
            "env['res.partner.category'].create({'name': 'bj undone'})\n"
            "savepoint.close(rollback=True)\n"
            "result = '%s %s %s' % (selected, env.su, model.sudo().env.su)"
        )})
        created = self.assertApiSuccess(
            self.api("POST", "sandbox", body={"name": "Trusted", "code": "x"}), 201)
        self.assertEqual(created["code"], "commit; rollback False True")
        self.assertFalse(self.env["res.partner.category"].search([("name", "=", "bj undone")]))

    def test_sql_stops_at_the_budget_and_the_timeout_comes_back(self):
        # The request shares the test's transaction: the value before it is ours.
        self.env.cr.execute("SET LOCAL statement_timeout = '7s'")
        code = "env.cr.execute('SELECT pg_sleep(30)')"
        self.line.write({"python_script": code, "script_mode": "evaluate"})
        started = time.monotonic()
        self.assertContainedAtRun("SQL sleep", code, TIMEOUT)
        elapsed = time.monotonic() - started
        _logger.info("SQL sleep stopped after %.2f s with a 1 s budget", elapsed)
        self.assertLess(elapsed, 2)
        self.assertEqual(statement_timeout(self.env.cr), "7s", "restored by the request's rollback")
        self.assertStillServing()
        # A normal script's statements run within the budget, under a smaller
        # timeout if one was set; the value comes back after the script.
        self.line.write({"script_mode": "evaluate", "python_script": (
            "env.cr.execute('SHOW statement_timeout')\nresult = env.cr.fetchone()[0]")})
        for before, during in (("7s", r"^(\d{3}ms|1s)$"), ("300ms", r"^300ms$")):
            with self.subTest(before=before):
                self.env.cr.execute("SELECT set_config('statement_timeout', %s, true)", [before])
                created = self.assertApiSuccess(
                    self.api("POST", "sandbox", body={"name": f"Timeout {before}", "code": ""}),
                    201)
                self.assertRegex(created["code"], during)
                self.assertEqual(statement_timeout(self.env.cr), before)


@tagged("post_install", "-at_install")
class TestOutboundScriptSandbox(BjOutboundCase):
    """Outbound jobs whose script is refused die with a message naming the line;
    the next job is delivered."""

    OUT_VECTORS = [
        ("sleep", "time.sleep(600)", TIMEOUT),
        ("SQL sleep", "env.cr.execute('SELECT pg_sleep(30)')", TIMEOUT),
        ("endless loop", "while True:\n    pass", TIMEOUT),
        ("COMMIT", "env.cr.execute('COMMIT')", SQL),
        ("ROLLBACK TO", "env.cr.execute('ROLLBACK TO SAVEPOINT x')", SQL),
        ("generator whose finally loops",
         "def g():\n    try:\n        yield 1\n    finally:\n        while True:\n"
         "            pass\nwhile True:\n    for x in g():\n        break", TIMEOUT),
        ("recursion bomb", "def f(n):\n    return f(n + 1)\nresult = f(0)", "RecursionError"),
    ]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for key, value in TEST_BUDGETS.items():
            cls.env["ir.config_parameter"].set_param(key, value)
        cls.config = cls.make_out_config()
        cls.config.line_ids.filtered(lambda line: line.external_key == "phone").write({
            "value_type": "python_plain", "python_script": "record.name.upper()"})
        cls.line = cls.config.line_ids.filtered(lambda line: line.external_key == "phone")
        cls.contained = 0

    @classmethod
    def tearDownClass(cls):
        _logger.info("sandbox vectors through outbound jobs: %s contained", cls.contained)
        super().tearDownClass()

    def test_refused_script_fails_its_job_and_the_next_one_goes(self):
        before = statement_timeout(self.env.cr)
        for name, code, message in self.OUT_VECTORS:
            with self.subTest(vector=name):
                self.line.write({"python_script": code,
                                 "script_mode": "execute" if "\n" in code else "evaluate"})
                partner = self.env["res.partner"].create({"name": f"out {name}"})
                job = self.enqueue(partner)
                started = time.monotonic()
                self.deliver()
                # A budget of 1 s per try: the worker tries a failed export once more alone.
                self.assertLess(time.monotonic() - started, 5)
                # Out of time may be the load of the moment: retried by the policy.
                self.assertEqual(job.state, "pending" if message == TIMEOUT else "dead")
                self.assertRegex(job.last_error, message)
                self.assertIn("'phone'", job.last_error, "the message names the line")
                self.assertNotIn(code, job.last_error, "never the script's source")
                self.assertRegex(job.log_ids[-1:].error_message, message)
                self.assertFalse(self.server.requests)
                self.assertEqual(statement_timeout(self.env.cr), before)
                self.line.write({"python_script": "record.name.upper()",
                                 "script_mode": "evaluate"})
                healthy = self.enqueue(self.env["res.partner"].create({"name": "healthy"}))
                self.deliver()
                self.assertEqual(healthy.state, "done")
                self.assertEqual(self.bodies()[-1]["phone"], "HEALTHY")
                self.server.clear()
                type(self).contained += 1

    def enqueue(self, records):
        return self.env["bj.api.sync.config"]._enqueue_outbound_records(records, self.config)


@tagged("post_install", "-at_install")
class TestScriptCursorSurface(BjApiSyncCase):
    """Every name of the cursors under a script's ``env.cr`` (Odoo's, psycopg2's, the
    inbound request's quiet wrapper), whatever a later version adds: a script reaches
    only the offered ones, and none of them hands out a cursor, a connection or the
    transaction."""

    def script_cursors(self):
        quiet = QuietCursor(self.env.cr)
        return {"job": script_environment(self.env).cr,
                "inbound request": script_environment(self.env(cr=quiet)).cr}

    def names(self):
        raw = self.env.cr
        names = set(dir(raw)) | set(vars(raw)) | set(dir(raw._obj)) | set(dir(QuietCursor)) | set(
            vars(QuietCursor(raw)))
        return sorted(name for name in names if "__" not in name)

    def test_only_the_offered_names_reach_the_request_cursor(self):
        own = {"execute", "savepoint", "flush", "transaction", "precommit", "postcommit",
               "prerollback", "postrollback", "OFFERED"}
        dangerous = (BaseCursor, psycopg2.extensions.connection, psycopg2.extensions.cursor,
                     Transaction)
        for where, cursor in self.script_cursors().items():
            for name in self.names():
                with self.subTest(where=where, name=name):
                    if name in ScriptCursor.OFFERED or name in own:
                        value = getattr(cursor, name)
                        if name not in own:
                            self.assertNotIsInstance(value, dangerous)
                        continue
                    with self.assertRaisesRegex(AttributeError, "Scripts cannot use"):
                        getattr(cursor, name)()

    def test_clear_and_reset_keep_the_request_pending_writes(self):
        cursor = script_environment(self.env).cr
        for name in ("clear", "reset"):
            with self.subTest(name=name), self.assertRaisesRegex(AttributeError,
                                                                 "Scripts cannot use"):
                getattr(cursor, name)()
