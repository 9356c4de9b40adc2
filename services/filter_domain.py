"""The Filter Domain: checked when saved, evaluated whenever the configuration runs.

Its text may use ``datetime`` (the scripts' module-and-class stand-in: the
original documentation writes ``datetime.now()``, Odoo ``datetime.datetime.now()``),
``timedelta``, ``relativedelta`` and ``context_today()``,
so that ``[('write_date', '>=', datetime.now() - timedelta(days=7))]`` means the
last seven days of each call, not of the day it was saved.  The sandbox checks
the text once, when the plan is compiled; evaluating the code is then cheap.
"""

from dateutil.relativedelta import relativedelta

from odoo import fields
from odoo.osv import expression
from odoo.tools import safe_eval as sandbox

from .script_modules import DateTime


def compile_domain(source):
    """The sandbox-checked code of a Filter Domain's text (None when empty).

    Raises SyntaxError, ValueError (forbidden opcodes) or NameError."""
    text = (source or "").strip()
    return sandbox.test_expr(text, sandbox._SAFE_OPCODES, mode="eval") if text else None


def evaluate_domain(code, env):
    """The domain of ``code`` now, as ``env``'s user sees the day; raises
    ValueError when it is not a list, or whatever its expression raises."""
    if code is None:
        return []
    names = {
        "datetime": DateTime,
        "timedelta": DateTime.timedelta,
        "relativedelta": relativedelta,
        "context_today": lambda: fields.Date.context_today(env.user),
        "__builtins__": dict(sandbox._BUILTINS),
    }
    domain = eval(code, names)  # noqa: S307 - code checked by the sandbox's test_expr
    if not isinstance(domain, list | tuple):
        raise ValueError("a domain must be a list")
    return list(domain)


def scope_domain(env, plan):
    """The domain of the records ``plan`` may see now: Filter Domain and company."""
    domain = evaluate_domain(plan.filter_code, env)
    if plan.company_domain:
        domain = expression.AND([domain, list(plan.company_domain)])
    return domain
