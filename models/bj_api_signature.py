from odoo import api, fields, models


class BjApiSignature(models.Model):
    """A request signature already accepted, refused if it comes again.

    Recorded in the request's own transaction, not on a committed cursor of its
    own, for two reasons.  A replay racing the original waits on the unique
    index until the original commits, then fails to serialize and is retried
    by Odoo, and the retry sees the signature used: refused exactly once.
    And when Odoo replays a request itself after a concurrency failure, the
    rolled-back first try has not used up its signature.  A request that fails
    (4xx) still commits its log row, and with it its signature: a failed request
    cannot be replayed later either, when it might succeed.
    """

    _name = "bj.api.signature"
    _description = "API Request Signature Used"
    _order = "id desc"
    _log_access = False
    _rec_name = "signature"

    config_id = fields.Many2one(
        "bj.api.sync.config",
        string="Configuration",
        required=True,
        ondelete="cascade",
        help="Configuration that accepted the signature.",
    )
    signature = fields.Char(required=True, help="The v1 value accepted.")
    expires_at = fields.Datetime(
        string="Valid Until", required=True,
        help="When the signature's timestamp leaves the tolerance window: it can then no "
             "longer be replayed and the row is deleted.",
    )

    _sql_constraints = [
        ("signature_unique", "unique(config_id, signature)", "A signature is accepted once."),
    ]

    @api.model
    def _bj_use(self, config_id, signature, expires_at):
        """Record ``signature`` as used; False when it already was (a replay).

        ``expires_at``: Unix time after which the signature is stale anyway.
        """
        self.env.cr.execute(
            """
            INSERT INTO bj_api_signature (config_id, signature, expires_at)
            VALUES (%s, %s, TO_TIMESTAMP(%s) AT TIME ZONE 'UTC')
            ON CONFLICT (config_id, signature) DO NOTHING
            RETURNING id
            """,
            (config_id, signature, expires_at),
        )
        return bool(self.env.cr.fetchone())

    @api.model
    def _gc_expired(self):
        """Delete signatures whose window has passed (scheduled action)."""
        self.flush_model(["expires_at"])
        self.env.cr.execute(
            "DELETE FROM bj_api_signature WHERE expires_at < %s", (fields.Datetime.now(),)
        )
