from odoo import api, fields, models

from .bj_api_log import get_int_param
from .bj_api_rate_limit import count_in_window, current_window, delete_past_windows

PARAM_FAILURES_PER_MINUTE = "bjet_api_sync.auth_failures_per_minute"
DEFAULT_FAILURES_PER_MINUTE = 20


class BjApiAuthFailure(models.Model):
    """Failed authentications per client address and minute, all configurations
    together.

    An address over the limit is answered 429 before its credentials are even
    checked, which stops guessing; it is a limit of its own, apart from the
    configuration's Rate Limit (authenticated calls only), so that a stranger
    failing from another address never uses up the real client's calls.
    """

    _name = "bj.api.auth.failure"
    _description = "API Failed Authentications Counter"
    _order = "window_start desc"
    _log_access = False

    address = fields.Char(required=True, help="Client address.")
    window_start = fields.Datetime(
        string="Minute", required=True, help="Start of the minute the failures are counted in."
    )
    hits = fields.Integer(
        string="Failures", required=True, default=0,
        help="Failed authentications from that address during that minute.",
    )

    _sql_constraints = [
        ("window_unique", "unique(address, window_start)", "One counter per address and minute."),
    ]

    @api.model
    def _bj_limit(self):
        """Failed authentications allowed per address and minute; 0: no limit."""
        return get_int_param(self.env, PARAM_FAILURES_PER_MINUTE, DEFAULT_FAILURES_PER_MINUTE)

    @api.model
    def _bj_wait(self, address, now=None):
        """0 when ``address`` may try to authenticate, else the seconds to wait.

        A read of the request's own transaction: cheap, and enough, since the
        counts it compares are committed as soon as they are made.
        """
        limit = self._bj_limit()
        if not limit:
            return 0
        window, wait = current_window(now)
        self.env.cr.execute(
            "SELECT hits FROM bj_api_auth_failure"
            " WHERE address = %s AND window_start = TO_TIMESTAMP(%s) AT TIME ZONE 'UTC'",
            (address, window),
        )
        row = self.env.cr.fetchone()
        return wait if row and row[0] >= limit else 0

    @api.model
    def _bj_fail(self, address, now=None):
        """Count one failed authentication of ``address``."""
        window, _wait = current_window(now)
        count_in_window(self.env.registry, self._table, "address", address, window)

    @api.model
    def _gc_expired(self):
        """Delete counters of past minutes (scheduled action)."""
        delete_past_windows(self)
