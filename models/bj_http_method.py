from odoo import fields, models


class BjHttpMethod(models.Model):
    _name = "bj.http.method"
    _inherit = ["bj.api.plan.source.mixin"]  # plans hold the allowed methods
    _description = "HTTP Method"
    _order = "sequence, id"

    name = fields.Char(required=True, help="HTTP verb, in capitals (GET, POST, PUT, DELETE).")
    sequence = fields.Integer(default=10, help="Order of the methods in lists.")

    _sql_constraints = [
        ("name_unique", "unique(name)", "An HTTP method with this name already exists."),
    ]
