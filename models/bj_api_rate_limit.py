import logging
import time
from datetime import timedelta

from psycopg2 import errors

from odoo import api, fields, models

_logger = logging.getLogger("bj.api.inbound")

WINDOW_SECONDS = 60
# Counter rows older than this are deleted by the scheduled action.
KEEP_SECONDS = 10 * WINDOW_SECONDS
# A short counter transaction that loses a race simply runs again.
MAX_TRIES = 5


class BjApiRateLimit(models.Model):
    """Calls per configuration and minute, shared by every Odoo worker.

    Counting happens in PostgreSQL with one atomic upsert on a cursor of its
    own, committed at once: the count survives the request's rollback and
    never holds a lock longer than that single statement.
    """

    _name = "bj.api.rate.limit"
    _description = "API Rate Limit Counter"
    _order = "window_start desc"
    _log_access = False

    config_id = fields.Many2one(
        "bj.api.sync.config",
        string="Configuration",
        required=True,
        ondelete="cascade",
        help="Configuration whose calls are counted.",
    )
    window_start = fields.Datetime(
        string="Minute", required=True, help="Start of the minute the calls are counted in."
    )
    hits = fields.Integer(
        string="Calls", required=True, default=0, help="Calls received during that minute."
    )

    _sql_constraints = [
        ("window_unique", "unique(config_id, window_start)", "One counter per minute."),
    ]

    @api.model
    def _bj_hit(self, config_id, limit, now=None):
        """Count one call; return 0 when allowed, else the seconds to wait."""
        now = int(now if now is not None else time.time())
        window = now - now % WINDOW_SECONDS
        for attempt in range(1, MAX_TRIES + 1):
            try:
                with self.env.registry.cursor() as cr:
                    cr.execute(
                        """
                        INSERT INTO bj_api_rate_limit (config_id, window_start, hits)
                        VALUES (%s, TO_TIMESTAMP(%s) AT TIME ZONE 'UTC', 1)
                        ON CONFLICT (config_id, window_start)
                        DO UPDATE SET hits = bj_api_rate_limit.hits + 1
                        RETURNING hits
                        """,
                        (config_id, window),
                    )
                    hits = cr.fetchone()[0]
                break
            except errors.SerializationFailure:
                # Another worker bumped the counter after our snapshot: a new
                # transaction sees its row.
                _logger.debug("Rate counter race, try %s", attempt)
        else:
            _logger.warning("Rate counter of configuration %s stayed contended.", config_id)
            return 0
        return 0 if hits <= limit else max(1, window + WINDOW_SECONDS - now)

    @api.model
    def _gc_expired(self):
        """Delete counters of past minutes (scheduled action)."""
        self.flush_model(["window_start"])
        self.env.cr.execute(
            "DELETE FROM bj_api_rate_limit WHERE window_start < %s",
            (fields.Datetime.now() - timedelta(seconds=KEEP_SECONDS),),
        )
