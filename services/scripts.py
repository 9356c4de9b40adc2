"""Python Scripts of configuration lines: compiled once in Odoo's sandbox, run
with the variables the Script dialog documents."""

import base64
import logging
import sys
import time

from psycopg2 import OperationalError

from odoo import Command
from odoo.exceptions import UserError
from odoo.tools import float_compare
from odoo.tools import safe_eval as sandbox

from ..core.exceptions import MappingError
from ..core.plan import MODE_EXECUTE, Script

_logger = logging.getLogger("bj.api.mapping")

# Name of the variable a multi-statement Evaluate script assigns its value to.
RESULT_VARIABLE = "result"
# Seconds one script may run (a system parameter): past it, the script stops
# with an error naming its line, and its request or job fails alone.
PARAM_SCRIPT_SECONDS = "bjet_api_sync.script_time_budget"
DEFAULT_SCRIPT_SECONDS = 5


class ScriptTimeout(BaseException):
    """Raised inside a script past its budget.  A BaseException, so that the
    script's own ``except Exception`` cannot swallow it."""


class BudgetedTime:
    """The sandbox's ``time`` module, whose ``sleep`` cannot outlast the budget."""

    def __init__(self, deadline):
        self.deadline = deadline
        self.time = sandbox.time.time
        self.strptime = sandbox.time.strptime
        self.strftime = sandbox.time.strftime

    def sleep(self, seconds):
        remaining = self.deadline - time.monotonic()
        if seconds > remaining:
            time.sleep(max(remaining, 0))
            raise ScriptTimeout
        time.sleep(seconds)


def run_within(seconds, function):
    """``function()``, stopped by ScriptTimeout after ``seconds`` of running
    Python lines (a trace function of this thread, removed afterwards)."""
    deadline = time.monotonic() + seconds

    def tracer(_frame, _event, _arg):
        if time.monotonic() > deadline:
            raise ScriptTimeout
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        return function()
    finally:
        sys.settrace(previous)


def compile_script(source, mode):
    """A :class:`Script`: the sandbox checks the opcodes once, here."""
    code_text = (source or "").strip()
    try:
        if mode != MODE_EXECUTE:
            try:
                code = sandbox.test_expr(code_text, sandbox._SAFE_OPCODES, mode="eval")
                return Script(mode, code, True)
            except SyntaxError:
                pass  # statements, not an expression
        code = sandbox.test_expr(code_text, sandbox._SAFE_OPCODES, mode="exec")
        return Script(mode, code, False)
    except (SyntaxError, ValueError, NameError) as error:
        return Script(mode, None, False, error=f"{type(error).__name__}: {error}")


def script_context(env, model, record, request_data, deadline):
    """The variables a configuration line's Python Script can use."""
    return {
        "env": env,
        "model": model,
        "records": record,
        "record": record,
        "request_data": request_data,
        "time": BudgetedTime(deadline),
        "datetime": sandbox.datetime,
        "dateutil": sandbox.dateutil,
        "timezone": sandbox.pytz.timezone,
        "float_compare": float_compare,
        "b64encode": base64.b64encode,
        "b64decode": base64.b64decode,
        "UserError": UserError,
        "Command": Command,
        "__builtins__": dict(sandbox._BUILTINS),
    }


class ScriptRunner:
    """Runs lines' scripts in ``env`` (the Run As User's, or the configuration's
    delivery environment); the engine's ``scripts`` callable."""

    def __init__(self, env):
        self.env = env
        self.seconds = env["bj.api.log"].sudo()._bj_int_param(
            PARAM_SCRIPT_SECONDS, DEFAULT_SCRIPT_SECONDS)

    def __call__(self, line, handle, request_data, index):
        script = line.script
        label = line.label
        if script.code is None:
            raise MappingError(f"Script of line {label!r} does not compile: {script.error}",
                               line_id=line.line_id, index=index)
        model = self.env[line.model]
        record = handle if handle is not None else model
        variables = script_context(model.env, model, record, request_data,
                                   time.monotonic() + self.seconds)
        try:
            if script.is_expression:
                # noqa: S307 - sandbox-checked code
                return True, run_within(self.seconds, lambda: eval(script.code, variables))
            run_within(self.seconds, lambda: exec(script.code, variables))  # noqa: S102
        except ScriptTimeout:
            raise MappingError(
                f"Script of line {label!r} ran longer than its {self.seconds} s budget "
                f"(system parameter {PARAM_SCRIPT_SECONDS}).",
                line_id=line.line_id, index=index,
            ) from None
        except OperationalError:
            raise  # concurrency failures: Odoo retries the whole request
        except UserError as error:
            raise MappingError(f"Script of line {label!r}: {error.args[0]}",
                               line_id=line.line_id, index=index) from error
        except Exception as error:  # noqa: BLE001 - any script failure is the caller's error
            _logger.info("Script of configuration line %s failed: %s", line.line_id, error)
            raise MappingError(
                f"Script of line {label!r} failed: {type(error).__name__}: {error}",
                line_id=line.line_id, index=index,
            ) from error
        if script.evaluates:
            return RESULT_VARIABLE in variables, variables.get(RESULT_VARIABLE)
        return False, None
