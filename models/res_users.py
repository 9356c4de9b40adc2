from odoo import models

# Changes of a user that may turn off the integrations running as it.
RUN_AS_FIELDS = frozenset({"active", "company_ids"})


class ResUsers(models.Model):
    _inherit = "res.users"

    def write(self, vals):
        result = super().write(vals)
        if RUN_AS_FIELDS.intersection(vals):
            self.env["bj.api.sync.config"].sudo().search(
                [("run_as_user_id", "in", self.ids)]
            )._bj_notify_run_as_off()
        return result
