import time
from datetime import timedelta

from odoo import api, fields, models
from odoo.tools import SQL

WINDOW_SECONDS = 60
# Counter rows older than this are deleted by the scheduled action.
KEEP_SECONDS = 10 * WINDOW_SECONDS


def current_window(now=None):
    """``(start of the current minute, seconds until the next one)``, in Unix time."""
    now = int(now if now is not None else time.time())
    window = now - now % WINDOW_SECONDS
    return window, max(1, window + WINDOW_SECONDS - now)


def count_in_window(registry, table, key_column, key, window):
    """Add one to the counter of ``key`` for the minute ``window``; return the new count.

    One upsert on a cursor of its own, committed at once: the count survives
    the request's rollback and holds the row lock for that statement only.
    READ COMMITTED, unlike Odoo's REPEATABLE READ, makes concurrent upserts of
    one row queue on its lock and each add to the count the one before left,
    instead of failing to serialize: the count is exact under any concurrency.
    Test mode shares the test's cursor, whose isolation cannot change (tests
    send their requests one at a time).
    """
    with registry.cursor() as cr:
        if not registry.in_test_mode():
            cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        cr.execute(SQL(
            """
            INSERT INTO %(table)s (%(key)s, window_start, hits)
            VALUES (%(value)s, TO_TIMESTAMP(%(window)s) AT TIME ZONE 'UTC', 1)
            ON CONFLICT (%(key)s, window_start)
            DO UPDATE SET hits = %(table)s.hits + 1
            RETURNING hits
            """,
            table=SQL.identifier(table), key=SQL.identifier(key_column), value=key,
            window=window,
        ))
        return cr.fetchone()[0]


def delete_past_windows(model):
    """Delete ``model``'s counters of past minutes (scheduled actions)."""
    model.flush_model(["window_start"])
    model.env.cr.execute(SQL(
        "DELETE FROM %s WHERE window_start < %s",
        SQL.identifier(model._table), fields.Datetime.now() - timedelta(seconds=KEEP_SECONDS),
    ))


class BjApiRateLimit(models.Model):
    """Authenticated calls per configuration and minute, shared by every Odoo
    worker (see :func:`count_in_window`)."""

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
        window, wait = current_window(now)
        hits = count_in_window(self.env.registry, self._table, "config_id", config_id, window)
        return 0 if hits <= limit else wait

    @api.model
    def _gc_expired(self):
        """Delete counters of past minutes (scheduled action)."""
        delete_past_windows(self)
