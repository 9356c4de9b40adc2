from datetime import timedelta

from odoo import api, fields, models

from ..core.inbound import InboundError
from .bj_api_access import config_company_field

# How long a stored answer is replayed for a repeated key.
RETENTION = timedelta(hours=24)


class BjApiIdempotency(models.Model):
    """The first answer to an inbound write that carried an idempotency key.

    A key names one request of a configuration: used again with another method,
    path or body it is refused (422), never answered with another request's
    answer.

    A row is claimed (inserted) before the write and completed with the answer
    in the same transaction, so it exists if and only if the write committed.
    The unique constraint makes PostgreSQL, not the workers, decide which of two
    concurrent duplicates runs: the second waits for the first and, once it has
    committed, fails to serialize (REPEATABLE READ) and, replayed by Odoo,
    finds the stored answer.
    """

    _name = "bj.api.idempotency"
    _description = "API Idempotency Key"
    _order = "id desc"
    _rec_name = "key"

    config_id = fields.Many2one(
        "bj.api.sync.config",
        string="Configuration",
        required=True,
        ondelete="cascade",
        help="Configuration that answered the first request.",
    )
    company_id = config_company_field()
    key = fields.Char(required=True, help="Idempotency-Key or X-Request-ID.")
    request_target = fields.Char(
        string="Request", required=True, help="Method and path the key was first used with."
    )
    body_hash = fields.Char(
        string="Body SHA-256", help="SHA-256 of the body the key was first used with."
    )
    status_code = fields.Integer(help="Status of the first answer.")
    response_body = fields.Text(help="Body of the first answer, replayed.")
    res_model = fields.Char(string="Related Model", help="Model of the records written.")
    res_ids = fields.Char(string="Record IDs", help="Ids of the records written.")

    _sql_constraints = [
        (
            "key_unique",
            "unique(config_id, key)",
            "An idempotency key is used once per configuration.",
        ),
    ]

    @api.model
    def _bj_claim(self, config_id, key, request_target, body_hash):
        """Claim ``key`` for a new write, or return the stored first answer.

        Returns ``(claim_id, None)`` when this request may proceed (then call
        :meth:`_bj_complete` before the transaction commits), or ``(None, row)``
        with the committed first answer.  An expired row is taken over.  A key
        first used with another method, path or body is a 422.
        """
        self.env.flush_all()
        self.env.cr.execute(
            """
            INSERT INTO bj_api_idempotency
                (config_id, company_id, key, request_target, body_hash, create_uid,
                 write_uid, create_date, write_date)
            VALUES (%(config)s,
                    (SELECT company_id FROM bj_api_sync_config WHERE id = %(config)s),
                    %(key)s, %(target)s, %(body_hash)s, %(uid)s, %(uid)s,
                    NOW() AT TIME ZONE 'UTC', NOW() AT TIME ZONE 'UTC')
            ON CONFLICT (config_id, key) DO UPDATE
                SET status_code = NULL, response_body = NULL, res_model = NULL,
                    res_ids = NULL, request_target = EXCLUDED.request_target,
                    body_hash = EXCLUDED.body_hash, create_date = EXCLUDED.create_date,
                    write_date = EXCLUDED.write_date
                WHERE bj_api_idempotency.create_date < %(expired)s
            RETURNING id
            """,
            {
                "config": config_id,
                "key": key,
                "target": request_target,
                "body_hash": body_hash,
                "uid": self.env.uid,
                "expired": fields.Datetime.now() - RETENTION,
            },
        )
        row = self.env.cr.fetchone()
        if row:
            self.invalidate_model()
            return row[0], None
        stored = self.sudo().search(
            [("config_id", "=", config_id), ("key", "=", key)], limit=1,
        )
        if stored.request_target != request_target:
            first_use = f"for {stored.request_target}"
        elif stored.body_hash != body_hash:
            first_use = "with another body"
        else:
            return None, stored
        raise InboundError(
            422, f"Idempotency key {key!r} was first used {first_use}: use a new key for "
                 "another request.",
        )

    @api.model
    def _bj_complete(self, claim_id, response):
        """Store the answer of the write that claimed ``claim_id``."""
        self.sudo().browse(claim_id).write({
            "status_code": response.status,
            "response_body": response.encode().decode(),
            "res_model": response.res_model or False,
            "res_ids": ",".join(str(res_id) for res_id in response.res_ids) or False,
        })

    @api.model
    def _gc_expired(self):
        """Forget answers older than the replay window (scheduled action)."""
        self.flush_model(["create_date"])
        self.env.cr.execute(
            "DELETE FROM bj_api_idempotency WHERE create_date < %s",
            (fields.Datetime.now() - RETENTION,),
        )
