"""The Filter Domain: parsed when saved, evaluated whenever the configuration runs.

It is data, not code (core/domain_terms.py): a domain literal whose only dynamic
parts are date terms, so that ``[('write_date', '>=', datetime.now() - timedelta(days=7))]``
means the last seven days of each call, not of the day it was saved.  Parsing
happens once, when the plan is compiled; evaluating it is then cheap.
"""

from odoo import fields
from odoo.exceptions import UserError
from odoo.osv import expression

from ..core.domain_terms import DomainContext, DomainRefused


def domain_context(env):
    """What the terms read, for ``env``'s user now."""
    user = env.user
    return DomainContext(
        now=fields.Datetime.now(),
        today=fields.Date.context_today(user),
        tz=env.context.get("tz") or user.tz or "UTC",
        uid=env.uid,
        company_id=env.company.id,
        company_ids=tuple(env.companies.ids),
    )


def evaluate_domain(template, env):
    """The domain of ``template`` (core.domain_terms.parse_domain) now, as
    ``env``'s user sees the day."""
    return template.evaluate(domain_context(env))


def scope_domain(env, plan):
    """The domain of the records ``plan`` may see now: Filter Domain and company.

    A domain whose date terms have no value now (a date pushed off the calendar
    by the user's time zone) is the configuration's error, answered as such."""
    try:
        domain = evaluate_domain(plan.filter_template, env)
    except DomainRefused as error:
        raise UserError(env._("The Filter Domain of %(name)r cannot be used now: %(error)s",
                              name=plan.name, error=error)) from None
    if plan.company_domain:
        domain = expression.AND([domain, list(plan.company_domain)])
    return domain
