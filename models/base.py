"""Native outbound triggers: create, write and unlink of any model queue deliveries;
and the field table (``core/field_access.py``) on every create and write.

base_automation patches the model classes in ``_register_hook`` instead, but its
``_unregister_hook`` deletes *every* ``create``/``write``/``unlink`` attribute of
every model whenever an automation rule changes (our "Create Trigger Action"
button creates one), which would silently drop patches of ours in that worker.
Overriding ``base`` is immune to that, and costs one cached dictionary look-up
per call on models without outbound configurations.  The look-up is cleared in
every worker when a configuration changes (``registry.clear_cache()``).
"""

from odoo import api, models

from ..services.inbound_request import note_written
from .bj_api_access import check_field_access


class Base(models.AbstractModel):
    _inherit = "base"

    def _bj_outbound_plans(self, event):
        """Plans of the Out configurations ``event`` on these records fires (usually none)."""
        # Not while modules load (registry not ready): installs and upgrades send nothing.
        if not self or self._transient or not self.pool.ready:
            return ()
        return self.env["bj.api.sync.config"]._bj_plans_for(self._name, event)

    @api.model_create_multi
    def create(self, vals_list):
        # Every create and write of the addon's models, RPC's load(), copy and
        # one2many commands included, passes the field table first.
        check_field_access(self.browse(), vals_list, creating=True)
        records = super().create(vals_list)
        plans = records._bj_outbound_plans("create")
        if plans:
            self.env["bj.api.sync.config"]._bj_queue_changes(plans, records, "create")
        return records

    def write(self, vals):
        check_field_access(self, [vals], creating=False)
        plans = self._bj_outbound_plans("write")
        if not plans:
            return super().write(vals)
        watched = {name for plan in plans for name in plan.triggers.watched if name in vals}
        before = {
            record.id: {name: record[name] for name in watched}
            for record in self.sudo().with_context(active_test=False).with_prefetch()
        } if watched else {}
        result = super().write(vals)
        self.env["bj.api.sync.config"]._bj_queue_changes(plans, self, "write", vals, before)
        return result

    # The lowest level of every create and of every flushed write, recomputed
    # stored fields included: an inbound request checks the identifiers of all
    # the records it changed (InboundRequest._settle).
    def _create(self, data_list):
        records = super()._create(data_list)
        note_written(records)
        return records

    def _write_multi(self, vals_list):
        note_written(self)
        return super()._write_multi(vals_list)

    def unlink(self):
        plans = self._bj_outbound_plans("unlink")
        if plans:
            # Before the deletion: the payload is exported from the records.
            self.env["bj.api.sync.config"]._bj_queue_changes(plans, self, "unlink")
        return super().unlink()
