"""What uninstalling the addon removes that Odoo does not know of."""

from odoo.tools import SQL

from .services.delivery_worker import LEASE_TABLE


def uninstall_hook(env):
    """Drop the delivery runs' lease table: the job model's ``init`` makes it in
    SQL and no model owns it.  The identifier lock rows' table belongs to their
    model (``bj.api.identifier.lock``): Odoo drops it with the model."""
    env.cr.execute(SQL("DROP TABLE IF EXISTS %s", SQL.identifier(LEASE_TABLE)))
