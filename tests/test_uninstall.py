"""Uninstalling the addon leaves none of the tables it makes in SQL."""

import sys
from contextlib import closing

from odoo.modules.module import get_manifest
from odoo.tests import TransactionCase, tagged

from ..services.delivery_worker import LEASE_TABLE

MODULE = "bjet_api_sync"


@tagged("post_install", "-at_install")
class TestUninstall(TransactionCase):
    """Odoo's uninstall steps in its order (``odoo/modules/loading.py``), in a
    savepoint rolled back afterwards: the uninstall hook the manifest names,
    then the deletion of the addon's models, which drops their tables."""

    def table_exists(self, table):
        self.env.cr.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
        return self.env.cr.fetchone()[0]

    def test_no_table_made_in_sql_is_left(self):
        lock_model = self.env["ir.model"]._get("bj.api.identifier.lock")
        lock_table = self.env[lock_model.model]._table
        # Odoo deletes the models that only the uninstalled modules declare.
        declared_by = self.env["ir.model.data"].search(
            [("model", "=", "ir.model"), ("res_id", "=", lock_model.id)]).mapped("module")
        self.assertEqual(declared_by, [MODULE])
        hook = getattr(sys.modules[f"odoo.addons.{MODULE}"], get_manifest(MODULE)["uninstall_hook"])
        tables = (LEASE_TABLE, lock_table)
        self.assertEqual([self.table_exists(table) for table in tables], [True, True])
        with closing(self.env.cr.savepoint()):
            hook(self.env)
            self.assertFalse(self.table_exists(LEASE_TABLE), "the hook drops the lease table")
            lock_model._drop_table()
            self.assertFalse(self.table_exists(lock_table), "Odoo drops the lock rows' table")
        self.assertEqual([self.table_exists(table) for table in tables], [True, True],
                         "rolled back for the tests after this one")
