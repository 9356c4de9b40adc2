"""Access: who may write which field (the table of ``core/field_access.py``,
applied to every create and write), group checks of the addon's object buttons,
and the company that the records of a configuration follow.

A ``type="object"`` button is a public method: anyone who can read the record
can call it over RPC, whatever ``groups=`` its view sets.  Every ``action_*``
method therefore checks its group first, with :func:`check_group`.
"""

from lxml import etree

from odoo import fields
from odoo.exceptions import AccessError

from ..core import field_access
from ..core.field_access import ADMIN_LEVEL, MANAGER_LEVEL, NEVER, NOBODY_LEVEL, USER_LEVEL
from .bj_api_secret_mixin import MANAGER_GROUP

USER_GROUP = "bjet_api_sync.group_api_sync_user"
ADMIN_GROUP = "base.group_system"
# Field types whose empty values (False, "", 0) all mean "no value".
NUMERIC_TYPES = ("integer", "float", "monetary")

__all__ = [
    "ADMIN_GROUP", "MANAGER_GROUP", "USER_GROUP", "check_field_access", "check_group",
    "config_company_field", "field_nodes", "offer_admin_values", "user_level",
]


def check_group(env, group):
    """Raise AccessError unless the user of ``env`` is in ``group`` (an XML id)."""
    if not (env.su or env.user.has_group(group)):
        raise AccessError(
            env._("This action is reserved for the group %(group)s.", group=env.ref(group).name)
        )


def config_company_field():
    """``company_id`` of a model whose records belong to a configuration
    (``config_id``): stored, so that a multi-company record rule can use it."""
    return fields.Many2one(
        related="config_id.company_id", store=True, string="Company",
        help="Company of the configuration; its multi-company record rule applies.",
    )


# -- the field table, on every create and write ------------------------------------


def user_level(env):
    """The level (core/field_access.py) of the user of ``env``."""
    if env.is_system():
        return ADMIN_LEVEL
    user = env.user
    if user.has_group(MANAGER_GROUP):
        return MANAGER_LEVEL
    return USER_LEVEL if user.has_group(USER_GROUP) else NOBODY_LEVEL


def check_field_access(records, vals_list, creating):
    """Raise AccessError naming the first field of ``vals_list`` that the user
    may not give that value, by the table of ``core/field_access.py``.

    ``records``: those written, or an empty recordset of the model created.  The
    superuser (the addon's own code, with ``sudo()``) is not checked.  A value
    equal to the current one (write), or empty or the field's default (create),
    changes nothing and passes: forms send every field they show.
    """
    env = records.env
    if env.su or not field_access.guarded(records._name):
        return
    own_model = records._name.startswith("bj.")
    table = field_access.FIELD_ACCESS.get(records._name, {})
    given = _user_defaults(records) if creating else {}
    level = user_level(env)
    for vals in vals_list:
        for name, value in {**given, **vals}.items():
            field = records._fields.get(name)
            if field is None or not (own_model or name in table):
                continue  # unknown (the ORM refuses it), or Odoo's own field
            rule = field_access.rule_of(records._name, name)
            needed = field_access.needed_level(
                rule, creating=creating,
                names_self=field.type == "many2one" and field.comodel_name == "res.users"
                and value == env.uid,
            )
            if (level < ADMIN_LEVEL and value in rule.admin_values
                    and not _unchanged(records, field, value, creating)):
                raise AccessError(_admin_value_refusal(records, field, value))
            if (level >= needed and not (rule.requires and value)
                    or _unchanged(records, field, value, creating)):
                continue
            if level < needed:
                raise AccessError(_refusal(records, field, rule, needed))
            _check_requirement(records, field, rule.requires, vals, creating)


def _user_defaults(model):
    """Defaults that the user, not the addon, chose: ``default_<field>`` keys of
    the context and the user's ``ir.default`` values (create fills them in
    after this check)."""
    chosen = dict(model.env["ir.default"]._get_model_defaults(model._name))
    prefix = "default_"
    chosen.update({key[len(prefix):]: value for key, value in model.env.context.items()
                   if key.startswith(prefix) and key[len(prefix):] in model._fields})
    return chosen


def _cache_value(field, value, record):
    """``value`` in a comparable form: no value at all is None, whatever its type."""
    cached = field.convert_to_cache(value, record, validate=False)
    if not cached and field.type not in NUMERIC_TYPES:
        return None
    return cached


def _unchanged(records, field, value, creating):
    if field.type in ("one2many", "many2many"):
        return not value  # no command
    if creating:
        if not value:
            return True
        default = field.default(records) if field.default else None
        return _cache_value(field, value, records) == _cache_value(field, default, records)
    given = _cache_value(field, value, records)
    return all(_cache_value(field, record[field.name], record) == given for record in records)


def _check_requirement(records, field, requires, vals, creating):
    """The condition of the view's readonly attribute, on the records as written."""
    name, wanted = requires
    condition = records._fields[name]
    if name in vals:
        values = [vals[name]]
    elif creating:
        values = [condition.default(records) if condition.default else None]
    else:
        values = [record[name] for record in records]
    _ = records.env._  # the user's language: no env in this frame for odoo's _
    label = {"field": field.string, "name": field.name, "model": records._description,
             "condition": condition.string}
    for value in values:
        cached = _cache_value(condition, value, records)
        if wanted is None and cached is None:
            raise AccessError(_("%(field)s (%(name)s) of %(model)s can only be set once "
                                "%(condition)s is chosen.", **label))
        if wanted is not None and cached != wanted:
            choices = dict(condition._description_selection(records.env))
            raise AccessError(_("%(field)s (%(name)s) of %(model)s can only be set when "
                                "%(condition)s is %(value)s.", value=choices[wanted], **label))


def _admin_value_refusal(records, field, value):
    _ = records.env._  # the user's language: no env in this frame for odoo's _
    return _("Only Settings administrators may choose %(value)s as %(field)s (%(name)s) of "
             "%(model)s.", value=dict(field._description_selection(records.env))[value],
             field=field.string, name=field.name, model=records._description)


def _refusal(records, field, rule, needed):
    _ = records.env._  # the user's language: no env in this frame for odoo's _
    label = {"field": field.string, "name": field.name, "model": records._description}
    if needed == NEVER and rule.create_only:
        return _("%(field)s (%(name)s) of %(model)s is set when the record is created and "
                 "cannot be changed.", **label)
    if needed == NEVER:
        return _("%(field)s (%(name)s) of %(model)s is maintained by the application and "
                 "cannot be written.", **label)
    if rule.names_self:
        return _("Only Settings administrators may choose another user than themselves as "
                 "%(field)s (%(name)s) of %(model)s.", **label)
    if needed == ADMIN_LEVEL:
        return _("Only Settings administrators may change %(field)s (%(name)s) of "
                 "%(model)s.", **label)
    return _("Only API Sync Managers may change %(field)s (%(name)s) of %(model)s.", **label)


# -- the table in the forms ------------------------------------------------------------

ADMIN_VALUES_WIDGET = "bj_admin_values"


def field_nodes(node, model):
    """(model, field node) of every field of ``node`` (a view's arch): the fields
    of x2many sub-views with their comodel."""
    for child in node.iterchildren(tag=etree.Element):
        if child.tag != "field":
            yield from field_nodes(child, model)
            continue
        yield model, child
        field = model._fields.get(child.get("name"))
        if field is not None and field.relational:
            yield from field_nodes(child, model.env[field.comodel_name])


def offer_admin_values(arch, model):
    """Give every field of the view with values only Settings administrators may
    choose the selection widget that offers those values to them alone
    (static/src/config_form/admin_values_field.js), so that a change the server
    would refuse cannot be made on screen."""
    for owner, node in field_nodes(arch, model):
        values = field_access.rule_of(owner._name, node.get("name")).admin_values
        if values:
            node.set("widget", ADMIN_VALUES_WIDGET)
            node.set("options", repr({"admin_values": list(values)}))
