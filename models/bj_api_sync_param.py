from odoo import api, fields, models

from .bj_api_access import config_company_field

DOMAIN_OPERATORS = [
    ("=", "="),
    ("!=", "!="),
    ("ilike", "contains"),
    ("not ilike", "does not contain"),
    (">", ">"),
    (">=", ">="),
    ("<", "<"),
    ("<=", "<="),
    ("in", "in"),
]


class BjApiSyncParam(models.Model):
    _name = "bj.api.sync.param"
    _inherit = ["bj.api.plan.source.mixin"]
    _description = "API Configuration Parameter"
    _order = "config_id, sequence, id"

    config_id = fields.Many2one(
        "bj.api.sync.config",
        string="Configuration",
        required=True,
        ondelete="cascade",
        index=True,
        help="Configuration this parameter belongs to.",
    )
    company_id = config_company_field()
    sequence = fields.Integer(default=10, help="Order of the parameters.")
    key = fields.Char(
        required=True, help="Name of the query parameter, e.g. res_name."
    )
    model_id = fields.Many2one(related="config_id.model_id", string="Model")
    field_id = fields.Many2one(
        "ir.model.fields",
        string="Field",
        required=True,
        ondelete="cascade",
        domain="[('model_id', '=', model_id)]",
        help="Field the parameter's value is compared with.",
    )
    domain_operator = fields.Selection(
        DOMAIN_OPERATORS,
        required=True,
        default="=",
        help="The query parameter becomes the domain term (Field, operator, value). With "
        "'in', the value is a comma-separated list.",
    )

    @api.depends("key")
    def _compute_display_name(self):
        for param in self:
            param.display_name = param.key or ""
