from werkzeug.routing import PathConverter

from odoo import models


class ApiPathConverter(PathConverter):
    """A path whose segments may hold any character, a line feed included:
    werkzeug's ``path`` stops at one, and the request would miss the API's route
    (an HTML 404, unlogged) instead of getting its JSON answer."""

    regex = "[^/](?s:.)*?"


class IrHttp(models.AbstractModel):
    _inherit = "ir.http"

    @classmethod
    def _get_converters(cls):
        return {**super()._get_converters(), "bj_api_path": ApiPathConverter}
