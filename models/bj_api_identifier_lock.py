from odoo import api, fields, models
from odoo.tools import SQL

from ..core.transactions import auto_commit
from ..services.retention import BATCH_SIZE

# Key rows untouched for this long are deleted by the autovacuum once no snapshot
# predates their last touch (see _gc_old_keys).
KEEP_SECONDS = 3600


class BjApiIdentifierLock(models.Model):
    """One row per identifier value (``core.inbound.identifier_lock_keys``) that
    an inbound create or update touched: the rows PostgreSQL checks so that two
    requests of one identifier value never both commit work decided on the same
    snapshot (see ``_bj_touch``).

    Written only by SQL: the table is made by ``init``, its ``id`` the key (a
    bigint, which no ORM field type gives).
    """

    _name = "bj.api.identifier.lock"
    _description = "API Identifier Lock"
    _auto = False
    _log_access = False

    touched_at = fields.Datetime(
        readonly=True,
        help="When a request last touched this identifier value's key (the id).")

    def init(self):
        self.env.cr.execute(SQL(
            """
            CREATE TABLE IF NOT EXISTS %s (
                id bigint PRIMARY KEY,
                touched_at timestamp without time zone NOT NULL
            )
            """,
            SQL.identifier(self._table),
        ))

    @api.model
    def _bj_touch(self, keys):
        """Touch the rows of ``keys`` (sorted: two requests take them in one order
        and never deadlock) in the transaction of this model's cursor.

        A concurrent toucher of a key waits for the row lock until the first
        one ends; under Odoo's REPEATABLE READ a transaction touching a row that
        another one touched and committed after its snapshot (a new row
        included) fails to serialize, and Odoo replays its request on a fresh
        snapshot, which sees what the other one committed."""
        if not keys:
            return
        self.env.cr.execute(SQL(
            """
            INSERT INTO %(table)s (id, touched_at)
            SELECT key, clock_timestamp() AT TIME ZONE 'UTC'
              FROM unnest(%(keys)s::bigint[]) AS key ORDER BY key
            ON CONFLICT (id) DO UPDATE SET touched_at = EXCLUDED.touched_at
            """,
            table=SQL.identifier(self._table), keys=sorted(keys),
        ))

    @api.autovacuum
    def _gc_old_keys(self):
        """Delete the key rows untouched for KEEP_SECONDS, in committed batches.

        A row matters to a transaction whose snapshot does not see the row's
        last writer as committed: that one must fail to serialize when it
        touches the row, and would not once the row is deleted and inserted
        afresh.  So a row is deleted only when its last writer (``xmin``) is
        older than the snapshot horizon (``backend_xmin`` in
        ``pg_stat_activity``, all databases) of every other backend, however
        long its transaction has lasted.  This transaction's own snapshot needs
        no such care: it deletes only the row versions it sees, and a version
        written after its snapshot makes the DELETE fail to serialize.
        KEEP_SECONDS only keeps recently touched rows out of the batches.
        Rows being touched now are skipped.  The batch is a MATERIALIZED CTE,
        selected once: as `id IN (subquery)` a plan that rescans it would
        delete more than a batch."""
        commit = auto_commit()
        while True:
            self.env.cr.execute(SQL(
                """
                WITH batch AS MATERIALIZED (
                    SELECT id FROM %(table)s
                     WHERE touched_at < (now() AT TIME ZONE 'UTC') - make_interval(secs => %(keep)s)
                       AND NOT EXISTS (
                           SELECT FROM pg_stat_activity AS snapshot
                            WHERE snapshot.pid <> pg_backend_pid()
                              AND age(snapshot.backend_xmin) >= age(%(table)s.xmin))
                     LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
                DELETE FROM %(table)s WHERE id IN (SELECT id FROM batch)
                """,
                table=SQL.identifier(self._table), keep=KEEP_SECONDS, batch=BATCH_SIZE,
            ))
            if self.env.cr.rowcount < BATCH_SIZE:
                return
            if commit:
                self.env.cr.commit()  # a batch at a time; pylint: disable=invalid-commit
