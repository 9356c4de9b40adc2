"""The user an integration runs as, in both directions.

Inbound calls, outbound exports (and so the scripts of their lines) run as the
configuration's Run As User, never the superuser: that user's access rights,
field groups and record rules apply.  The user must be active and allowed in
the configuration's company; this is checked on save and again on every call,
since users are archived or moved between companies without the
configuration changing.
"""

from odoo import SUPERUSER_ID
from odoo.exceptions import AccessError, UserError


class RunAsUserError(UserError):
    """The Run As User cannot run the configuration now: the integration is off."""


def user_problem(user, company):
    """Why ``user`` cannot run a configuration of ``company`` (empty: any
    company), in words, or None."""
    env = user.env
    if not user:
        return env._("it needs a Run As User")
    if user.id == SUPERUSER_ID:
        return env._("it cannot run as the superuser")
    if not user.active:
        return env._("its Run As User %(login)s is archived", login=user.login)
    if company and company.id not in user._get_company_ids():
        return env._("its Run As User %(login)s is not allowed in %(company)s",
                     login=user.login, company=company.display_name)
    return None


def check_plan_user(env, plan):
    """Raise ``RunAsUserError`` when ``plan``'s Run As User cannot run it now."""
    user = env["res.users"].sudo().with_context(active_test=False).browse(plan.run_as_uid or ())
    company = env["res.company"].sudo().browse(plan.company_id or ())
    problem = user_problem(user, company)
    if problem:
        raise RunAsUserError(env._("This integration is off: %(problem)s.", problem=problem))


def user_env(env, plan, check=True, **context):
    """``env`` as ``plan``'s Run As User (checked unless ``check`` is false) in
    the configuration's company and the user's language, its context extended
    with ``context``.

    Unchecked, for choosing records: an archived user still sees only what its
    rights and record rules allow, and the export then checks it."""
    if check or not plan.run_as_uid:
        check_plan_user(env, plan)
    uenv = env(user=plan.run_as_uid, su=False)
    company_id = plan.company_id or uenv.user.company_id.id
    if company_id not in uenv.user.sudo()._get_company_ids():
        # Unchecked, and the user was moved out of the company: its own company,
        # where it sees nothing of the configuration's but shared records.
        company_id = uenv.user.company_id.id
    # The user's language, not the caller's (an API client's Accept-Language, a
    # trigger's user): a translated field reads and compares one value per
    # configuration, so an identifier means the same record whoever asks.
    return uenv(context=dict(env.context, allowed_company_ids=[company_id],
                             lang=uenv.user.sudo().lang or env.context.get("lang"), **context))


def field_readable(user, field):
    """Whether ``user`` passes ``field``'s ``groups=``, as the ORM checks it."""
    return not field.groups or user.has_groups(field.groups)


def group_names(env, group_spec):
    """The groups of a ``groups=`` spec, by name, for error messages."""
    if group_spec == ".":
        return env._("no group (always forbidden)")
    names = []
    for name in (part.strip() for part in group_spec.split(",")):
        group = env.ref(name.lstrip("!"), raise_if_not_found=False)
        label = group.sudo().full_name if group else name.lstrip("!")
        names.append(env._("not %(group)s", group=label) if name.startswith("!") else label)
    return ", ".join(names)


def check_readable(plan, records):
    """Raise ``AccessError`` unless ``records``' user may read every field that
    ``plan`` maps and every one of ``records``, Mapping Model records included.

    An export reads values that may already be in the transaction's cache
    (read while finding the records in scope): the ORM then would not check
    the user's access again, so it is checked here."""
    if not records:
        return
    env = records.env
    refused = [line.field for line in plan.lines
               if line.exchanges and not field_readable(env.user, records._fields[line.field])]
    if refused:
        raise AccessError(env._(
            "The Run As User %(login)s may not read the fields %(fields)s of %(model)s.",
            login=env.user.login, fields=", ".join(refused), model=plan.model))
    hidden = records - records.with_context(active_test=False).search(
        [("id", "in", records.ids)])
    if hidden:
        raise AccessError(env._(
            "The Run As User %(login)s may not read %(model)s records %(ids)s (access rights "
            "or record rules).", login=env.user.login, model=plan.model,
            ids=", ".join(str(record_id) for record_id in hidden.ids)))
    for line in plan.lines:
        if line.is_mapping:
            check_readable(line.child, records.sudo()[line.field].with_env(env))
