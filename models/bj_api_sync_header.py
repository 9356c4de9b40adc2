from odoo import fields, models

from .bj_api_access import config_company_field


class BjApiSyncHeader(models.Model):
    _name = "bj.api.sync.header"
    _inherit = ["bj.api.plan.source.mixin"]  # plans hold the headers
    _description = "API Configuration Header"
    _order = "config_id, sequence, id"

    config_id = fields.Many2one(
        "bj.api.sync.config",
        string="Configuration",
        required=True,
        ondelete="cascade",
        index=True,
        help="Configuration this header belongs to.",
    )
    company_id = config_company_field()
    sequence = fields.Integer(default=10, help="Order of the headers.")
    key = fields.Char(string="Key", required=True, help="HTTP header name, e.g. X-Tenant.")
    value = fields.Char(string="Value", help="HTTP header value.")
