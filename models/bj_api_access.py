"""Access: group checks of the addon's object buttons, and the company that the
records of a configuration follow.

A ``type="object"`` button is a public method: anyone who can read the record
can call it over RPC, whatever ``groups=`` its view sets.  Every ``action_*``
method therefore checks its group first, with :func:`check_group`.
"""

from odoo import _, fields
from odoo.exceptions import AccessError

from .bj_api_secret_mixin import MANAGER_GROUP

USER_GROUP = "bjet_api_sync.group_api_sync_user"

__all__ = ["MANAGER_GROUP", "USER_GROUP", "check_group", "config_company_field"]


def check_group(env, group):
    """Raise AccessError unless the user of ``env`` is in ``group`` (an XML id)."""
    if not (env.su or env.user.has_group(group)):
        raise AccessError(
            _("This action is reserved for the group %(group)s.", group=env.ref(group).name)
        )


def config_company_field():
    """``company_id`` of a model whose records belong to a configuration
    (``config_id``): stored, so that a multi-company record rule can use it."""
    return fields.Many2one(
        related="config_id.company_id", store=True, string="Company",
        help="Company of the configuration; its multi-company record rule applies.",
    )
