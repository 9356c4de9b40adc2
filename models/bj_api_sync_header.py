from odoo import api, fields, models

from .bj_api_access import config_company_field
from .bj_api_secret_mixin import secret_fields


class BjApiSyncHeader(models.Model):
    _name = "bj.api.sync.header"
    # Plans hold the headers; secret values are encrypted like the configuration's.
    _inherit = ["bj.api.secret.mixin", "bj.api.plan.source.mixin"]
    _description = "API Configuration Header"
    _order = "config_id, sequence, id"

    _bj_secret_fields = ("secret_value",)

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
    key = fields.Char(required=True, help="HTTP header name, e.g. X-Tenant.")
    value = fields.Char(help="HTTP header value, when not secret.")
    is_secret = fields.Boolean(
        string="Secret",
        help="The value is an API key or another credential: stored encrypted, masked in "
        "the logs and shown to API Sync Managers only.",
    )
    secret_value, secret_value_encrypted = secret_fields(
        "secret_value",
        "Secret Value",
        "HTTP header value of a secret header.",
    )

    @api.model_create_multi
    def create(self, vals_list):
        headers = super().create(vals_list)
        headers._bj_move_values()
        return headers

    def write(self, vals):
        result = super().write(vals)
        if {"is_secret", "value", "secret_value"} & set(vals):
            self._bj_move_values()
        return result

    def _bj_move_values(self):
        """Keep each value in the field of its kind: a header made secret has its
        value encrypted; a header made plain again gets its value back in clear
        (the manager chose to show it)."""
        for header in self.sudo():
            if header.is_secret and header.value:
                header.write({"secret_value": header.value, "value": False})
            elif not header.is_secret and header.secret_value:
                header.write({"value": header.value or header.secret_value,
                              "secret_value": False})

    def _bj_sent_value(self):
        """The value sent on the wire, decrypted."""
        self.ensure_one()
        header = self.sudo()
        return (header.secret_value if header.is_secret else header.value) or ""
