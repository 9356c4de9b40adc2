"""Python Scripts of configuration lines: compiled once in Odoo's sandbox, run
with the variables the Script dialog documents."""

import base64
import logging

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


def script_context(env, model, record, request_data):
    """The variables a configuration line's Python Script can use."""
    return {
        "env": env,
        "model": model,
        "records": record,
        "record": record,
        "request_data": request_data,
        "time": sandbox.time,
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

    def __call__(self, line, handle, request_data, index):
        script = line.script
        label = line.label
        if script.code is None:
            raise MappingError(f"Script of line {label!r} does not compile: {script.error}",
                               line_id=line.line_id, index=index)
        model = self.env[line.model]
        record = handle if handle is not None else model
        variables = script_context(model.env, model, record, request_data)
        try:
            if script.is_expression:
                return True, eval(script.code, variables)  # noqa: S307 - sandbox-checked code
            exec(script.code, variables)  # noqa: S102 - sandbox-checked code
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
