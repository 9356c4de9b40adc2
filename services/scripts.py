"""Python Scripts of configuration lines: compiled once in Odoo's sandbox, run
with the variables the Script dialog documents, within a time budget, on a
cursor that cannot end or leave its request's transaction."""

import ast
import base64
import logging
import math
import sys
import threading
import time
from contextlib import contextmanager, suppress
from dis import opmap

from psycopg2.errors import QueryCanceled
from psycopg2.extensions import TRANSACTION_STATUS_INERROR, encodings

from odoo import Command, api
from odoo.exceptions import UserError
from odoo.service.model import PG_CONCURRENCY_EXCEPTIONS_TO_RETRY
from odoo.sql_db import BaseCursor
from odoo.tools import SQL, float_compare
from odoo.tools import safe_eval as sandbox

from ..core.exceptions import MappingError, ScriptTimedOut
from ..core.plan import MODE_EXECUTE, Script
from ..core.script_budget import CHECKPOINT, Budget, ScriptExpired, ScriptTimeout, add_checkpoints
from ..core.script_rules import ScriptRefused, bind_script_name, check_source
from . import script_connection
from .quiet_cursor import share_transaction
from .script_modules import MODULES, SCRIPT_LOGGER_NAME, DateTime, public_names
from .script_sql import check_script_sql

_logger = logging.getLogger("bj.api.mapping")

# Name of the variable a multi-statement Evaluate script assigns its value to.
RESULT_VARIABLE = "result"
# Longer scripts are refused before they are parsed: checking and compiling cost
# time in proportion.
MAX_SCRIPT_LENGTH = 65_536
# File name of compiled scripts: errors give the line number in the script.
SCRIPT_FILENAME = "<configuration line script>"
# Seconds one script may run (a system parameter): past it, the script stops
# with an error naming its line, and its request or job fails alone.
PARAM_SCRIPT_SECONDS = "bjet_api_sync.script_time_budget"
DEFAULT_SCRIPT_SECONDS = 5


class BudgetedTime:
    """The sandbox's ``time`` module, whose ``sleep`` cannot outlast the budget."""

    time = sandbox.time.time
    strptime = sandbox.time.strptime
    strftime = sandbox.time.strftime

    def __init__(self, budget):
        self._budget = budget

    def sleep(self, seconds):
        remaining = self._budget.remaining()
        if seconds <= remaining:
            time.sleep(seconds)
            return
        time.sleep(max(remaining, 0))
        # Past the deadline the checkpoint raises: ScriptTimeout, or ScriptExpired
        # after the run.
        while self._budget.checkpoint():
            time.sleep(0.001)


_running = threading.local()


def script_deadline():
    """The ``time.monotonic()`` deadline of the script running in this thread, or
    None: what the addon does on a script's behalf keeps within its budget."""
    return getattr(_running, "deadline", None)


def run_within(budget, function):
    """``function()`` (a script's run) within ``budget``, a :class:`Budget`: its
    SQL statements end at the deadline too (:class:`ScriptCursor`), and once
    it returns or raises, any code of the script left over stops at its first
    line.  A script that runs another (an export of the records it changed)
    shares its deadline: the budget's bookkeeping is the outermost run's."""
    try:
        if script_deadline() is not None:
            return function()
        _running.deadline = budget.deadline
        _running.statement_timeout = None
        try:
            return function()
        finally:
            _running.deadline = None
            _restore_statement_timeout()
    finally:
        budget.close()


def _budget_statement(cursor, deadline):
    """Bound the next statement on ``cursor`` by the script's remaining time:
    ``statement_timeout``, local to the transaction.  The value it had (a
    smaller one is kept) is read once per run and restored after the run."""
    if _running.statement_timeout is None:
        cursor.execute("SELECT setting::int FROM pg_settings WHERE name = 'statement_timeout'")
        _running.statement_timeout = (cursor, cursor.fetchone()[0])
    previous = _running.statement_timeout[1]
    milliseconds = math.ceil((deadline - time.monotonic()) * 1000)
    if milliseconds <= 0:  # 0 would mean no timeout at all
        raise ScriptTimeout
    if previous:
        milliseconds = min(milliseconds, previous)
    cursor.execute(SQL("SELECT set_config('statement_timeout', %s, true)", str(milliseconds)))


def _restore_statement_timeout():
    """After a run, the ``statement_timeout`` from before it.  A failed
    transaction is left as it is: the rollback it needs restores the value."""
    budgeted, _running.statement_timeout = _running.statement_timeout, None
    if budgeted:
        cursor, previous = budgeted
        if cursor.connection.info.transaction_status != TRANSACTION_STATUS_INERROR:
            cursor.execute(SQL("SELECT set_config('statement_timeout', %s, true)", str(previous)))


class ScriptSavepoint:
    """A savepoint opened by a script (or the ORM code it calls): Odoo's own
    savepoint on the real cursor, kept out of the script's reach."""

    def __init__(self, savepoint):
        self.__savepoint = savepoint

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.__savepoint.__exit__(exc_type, exc_value, traceback)

    @property
    def closed(self):
        return self.__savepoint.closed

    def close(self, *, rollback=True):
        self.__savepoint.close(rollback=rollback)

    def rollback(self):
        self.__savepoint.rollback()


class ScriptCursor(BaseCursor):
    """The cursor of scripts' environments: the request's (or job's) cursor and
    transaction, offering only what reads results (OFFERED: no commit, rollback,
    close, raw connection, nor what a later Odoo or psycopg2 adds), and
    whose ``execute`` runs only the SQL :mod:`.script_sql` allows (judged on
    the text PostgreSQL receives, or on the query with its placeholders when
    that is the same verdict) and, while a script runs, stops a statement at
    the script's deadline like its Python; the connection is checked after the
    script (:mod:`.script_connection`).

    The real cursor sits in a name the sandbox refuses (it contains ``__``)."""

    # Besides execute, savepoint, flush and the transaction's hooks (this
    # cursor's own), what scripts and the ORM code they call use of a cursor.
    OFFERED = frozenset({
        "fetchone", "fetchmany", "fetchall", "dictfetchone", "dictfetchmany", "dictfetchall",
        "rowcount", "description", "statusmessage", "dbname", "cache", "now", "readonly",
        "closed", "split_for_in_conditions", "mogrify", "IN_MAX",
    })

    def __init__(self, cursor):  # pylint: disable=super-init-not-called
        share_transaction(self, cursor)
        self.__cursor = cursor

    def execute(self, query, params=None, log_exceptions=True):
        code, values = (query.code, query.params) if isinstance(query, SQL) else (query, params)
        check_script_sql(self.__cursor, code, values, lambda: self.__text(code, values))
        deadline = script_deadline()
        if deadline is None:  # the script's records, used after it
            return self.__cursor.execute(query, params, log_exceptions)
        script_connection.note(self.__cursor)
        _budget_statement(self.__cursor, deadline)
        try:
            # Not logged as a bad query: a failure is the script's error, reported as such.
            return self.__cursor.execute(query, params, log_exceptions=False)
        except QueryCanceled:
            if time.monotonic() < deadline:
                raise  # cancelled by someone else
            raise ScriptTimeout from None

    def __text(self, query, params):
        """The text PostgreSQL receives for ``execute(query, params)``: the
        parameters interpolated as Odoo's cursor and psycopg2 do."""
        cursor = self.__cursor._obj
        return cursor.mogrify(query, params or None).decode(encodings[cursor.connection.encoding])

    def savepoint(self, flush=True):
        return ScriptSavepoint(self.__cursor.savepoint(flush))

    def __getattr__(self, name):
        if name not in self.OFFERED:
            raise AttributeError(f"Scripts cannot use cr.{name}: the transaction belongs to "
                                 "the request or the job.")
        return getattr(self.__cursor, name)

    def clear(self):
        # BaseCursor's: it would drop the request's pending writes.
        self.__getattr__("clear")

    reset = clear


# Module name → names ``from <module> import`` may take, for the rules.
IMPORTABLE = {name: public_names(module) for name, module in MODULES.items()}
IMPORTABLE["time"] = public_names(BudgetedTime)
IMPORT_ERROR = "scripts may import only " + ", ".join(sorted(IMPORTABLE))

# Odoo's sandbox opcodes, plus imports (the rules and the script's __import__
# admit only the stand-ins) and closures (a ``def`` helper's comprehension or
# inner function reading its variables), which reach nothing but the
# script's own variables.
SCRIPT_OPCODES = sandbox._SAFE_OPCODES | {opmap[name] for name in (
    "IMPORT_NAME", "IMPORT_FROM", "MAKE_CELL", "LOAD_CLOSURE", "LOAD_DEREF", "STORE_DEREF",
    "DELETE_DEREF", "COPY_FREE_VARS",
) if name in opmap}


def script_import(time_module):
    """The ``__import__`` of a script run: the stand-ins, its budgeted ``time``."""

    def _import(name, _globals=None, _locals=None, fromlist=(), level=0):
        if not level and name in IMPORTABLE:
            module = time_module if name == "time" else MODULES[name]
            if fromlist:
                return module
            # ``import dateutil.parser`` binds ``dateutil``.
            top = name.partition(".")[0]
            return time_module if top == "time" else MODULES[top]
        if not level and name in sys.modules:
            # C code (datetime.strptime) imports _strptime for its side effect,
            # as in Odoo's sandbox: it gets nothing.
            return None
        raise ImportError(f"import of {name!r} is not allowed: {IMPORT_ERROR}")

    return _import


def _script_line(error):
    """Line of the script where ``error`` was raised, if it was raised there."""
    traceback, lineno = error.__traceback__, None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == SCRIPT_FILENAME:
            lineno = traceback.tb_lineno
        traceback = traceback.tb_next
    return lineno


def compile_script(source, mode):
    """A :class:`Script`: the rules and the sandbox check the source once, here.
    Errors name the rule and the line, never the source."""
    code_text = (source or "").strip()
    if len(code_text) > MAX_SCRIPT_LENGTH:
        return Script(mode, None, False,
                      error=f"a script has at most {MAX_SCRIPT_LENGTH} characters")
    try:
        check_source(code_text, sandbox._UNSAFE_ATTRIBUTES, IMPORTABLE)
        if mode != MODE_EXECUTE:
            with suppress(SyntaxError):  # statements, not an expression
                return Script(mode, _compile(code_text, "eval"), True)
        return Script(mode, _compile(code_text, "exec"), False)
    except SyntaxError as error:
        # Its text would be the offending source line.
        return Script(mode, None, False, error=f"SyntaxError: {error.msg} (line {error.lineno})")
    except ScriptRefused as error:
        return Script(mode, None, False, error=str(error))
    except (RecursionError, MemoryError):
        return Script(mode, None, False, error="the script nests too deeply to compile")
    except NameError:
        # Names the rules do not see (``global __x``); the message quotes the source.
        return Script(mode, None, False, error="NameError: the script uses a forbidden name")
    except ValueError as error:
        # The sandbox's message quotes the source: keep the opcodes it names.
        opcodes = str(error).rsplit(": ", 1)[-1]
        return Script(mode, None, False, error=f"forbidden operation(s): {opcodes}")


def _compile(code_text, mode):
    """The sandbox-checked code of ``code_text``, whose ``__name__`` is the
    script logger's name, with the budget's checkpoints."""
    tree = add_checkpoints(bind_script_name(ast.parse(code_text, SCRIPT_FILENAME, mode),
                                            SCRIPT_LOGGER_NAME))
    code = compile(tree, SCRIPT_FILENAME, mode)
    sandbox.assert_valid_codeobj(SCRIPT_OPCODES, code, code_text)
    return code


def script_environment(env):
    """``env`` on a :class:`ScriptCursor` over its cursor (same transaction)."""
    cursor = env.cr if isinstance(env.cr, ScriptCursor) else ScriptCursor(env.cr)
    return api.Environment(cursor, env.uid, env.context, env.su)


def script_budget(seconds):
    """The :class:`Budget` of a run starting now; a script run by a running
    script (an export of the records it changed) gets that one's deadline;
    none ends after the work this thread must finish by (:func:`scripts_end_by`)."""
    deadline = script_deadline()
    if deadline is None:
        deadline = time.monotonic() + seconds
        end = getattr(_running, "end", None)
        if end is not None:
            deadline = min(deadline, end)
    return Budget(deadline)


@contextmanager
def scripts_end_by(deadline):
    """Scripts run in this thread meanwhile stop at ``deadline`` (a
    ``time.monotonic()`` value) at the latest: the delivery run's budget
    covers the payloads it builds."""
    previous = getattr(_running, "end", None)
    _running.end = deadline if previous is None else min(previous, deadline)
    try:
        yield
    finally:
        _running.end = previous


def script_context(env, model, record, request_data, budget):
    """The variables a configuration line's Python Script can use, and the
    checkpoint of ``budget`` (a :class:`Budget`), out of the script's reach."""
    budgeted_time = BudgetedTime(budget)
    return {
        "env": env,
        "model": model,
        "records": record,
        "record": record,
        "request_data": request_data,
        "time": budgeted_time,
        "datetime": DateTime,
        "dateutil": MODULES["dateutil"],
        "timezone": sandbox.pytz.timezone,
        "float_compare": float_compare,
        "b64encode": base64.b64encode,
        "b64decode": base64.b64decode,
        "UserError": UserError,
        "Command": Command,
        "__builtins__": {**sandbox._BUILTINS, **budget.builtins(),
                         "__import__": script_import(budgeted_time)},
        CHECKPOINT: budget.checkpoint,
    }


class ScriptRunner:
    """Runs lines' scripts in ``env`` (the Run As User's, or the configuration's
    delivery environment), on a :class:`ScriptCursor`; the engine's ``scripts``
    callable."""

    def __init__(self, env):
        self.env = script_environment(env)
        log = env["bj.api.log"].sudo()
        self.seconds = log._bj_int_param(PARAM_SCRIPT_SECONDS, DEFAULT_SCRIPT_SECONDS)

    def __call__(self, line, handle, request_data, index):
        script = line.script

        def failure(what, error_class=MappingError):
            return error_class(f"Script of line {line.label!r}{what}",
                               line_id=line.line_id, index=index)

        if script.code is None:
            raise failure(f" does not compile: {script.error}")
        model = self.env[line.model]
        record = handle.with_env(self.env) if handle is not None else model
        budget = script_budget(self.seconds)
        variables = script_context(self.env, model, record, request_data, budget)
        # The one evaluator of administrators' scripts (sandbox-checked by compile_script).
        # pylint: disable-next=eval-used
        run = (lambda: eval(script.code, variables)) if script.is_expression else (  # noqa: S307
            lambda: exec(script.code, variables))  # noqa: S102 - sandbox-checked code
        try:
            with script_connection.connection_kept():
                value = run_within(budget, run)
        except ScriptTimeout:
            raise failure(f" ran longer than its {self.seconds} s budget "
                          f"(system parameter {PARAM_SCRIPT_SECONDS}).", ScriptTimedOut) from None
        except ScriptExpired as error:  # its budget's end met in code it left behind
            raise failure(f" failed: {type(error).__name__}: {error}", ScriptTimedOut) from error
        except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
            raise  # concurrency failures: Odoo retries the whole request
        except UserError as error:
            raise failure(f": {error.args[0]}") from error
        except Exception as error:  # noqa: BLE001 - any script failure is the caller's error
            where = _script_line(error)
            where = f" at line {where}" if where else ""
            _logger.info("Script of line %r (id %s) failed%s: %s",
                         line.label, line.line_id, where, error)
            raise failure(f" failed{where}: {type(error).__name__}: {error}") from error
        if script.is_expression:
            return True, value
        if script.evaluates:
            return RESULT_VARIABLE in variables, variables.get(RESULT_VARIABLE)
        return False, None
