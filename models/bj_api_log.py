import json
import logging

import psycopg2
import psycopg2.errors

from odoo import api, fields, models, tools

from ..core import masking
from ..services import retention
from .bj_api_secret_mixin import MANAGER_GROUP

_logger = logging.getLogger("bj.api.log")

PARAM_BODY_MAX_SIZE = "bjet_api_sync.log_body_max_size"
DEFAULT_BODY_MAX_SIZE = 10_000
PARAM_RETENTION_DAYS = "bjet_api_sync.log_retention_days"
DEFAULT_RETENTION_DAYS = 30
# A log row written on a cursor of its own gives up after this long rather than
# hold up the call it describes (as odoo/netsvc.py's database log handler).
LOG_STATEMENT_TIMEOUT_MS = 5_000
# Fields that hold a URL, or quote URLs (the library's error texts): stored with
# the URLs' credentials masked, whatever the caller passed.
URL_FIELDS = {"url": masking.mask_url, "error_message": masking.mask_url_secrets}


def get_int_param(env, key, default):
    """An integer system parameter; ``default`` when unset or not a number."""
    return env["bj.api.log"]._bj_int_param(key, default)


def compute_res_model_name(records):
    """``res_model_name`` of log rows and jobs: the model's name as users know it
    ("Contact"), its technical name when the model is gone."""
    ir_model = records.env["ir.model"].sudo()
    for record in records:
        model = ir_model._get(record.res_model) if record.res_model else ir_model
        record.res_model_name = model.name or record.res_model


class BjApiLog(models.Model):
    """One row per inbound request and per outbound attempt.

    Written on every API call: only the indexes the screens and the retention
    cron need (two-valued columns like state or direction are not worth one).
    """

    _name = "bj.api.log"
    _description = "API Log"
    _order = "id desc"
    _rec_name = "url"

    config_id = fields.Many2one(
        "bj.api.sync.config",
        string="Configuration",
        ondelete="set null",
        index=True,
        help="Configuration that handled the call; empty for unknown endpoints.",
    )
    direction = fields.Selection(
        [("in", "In"), ("out", "Out")],
        required=True,
        help="In: an external system called Odoo. Out: Odoo called an external API.",
    )
    method = fields.Char(help="HTTP method of the call.")
    url = fields.Char(string="URL", help="Endpoint path (In) or Request URL (Out).")
    request_headers = fields.Text(help="Headers, secrets masked.")
    # Bodies carry the business data exchanged: for API Sync Managers only.
    request_body = fields.Text(
        groups=MANAGER_GROUP, help="Body sent, truncated."
    )
    # Group rows must not add codes or attempt numbers up.
    status_code = fields.Integer(aggregator=None, help="HTTP status code.")
    response_body = fields.Text(
        groups=MANAGER_GROUP, help="Body received, truncated."
    )
    duration_ms = fields.Integer(
        string="Duration (ms)", aggregator="avg", help="Time the call took."
    )
    state = fields.Selection(
        [("success", "Success"), ("error", "Error")],
        required=True,
        help="Success for 2xx answers, Error otherwise.",
    )
    error_message = fields.Text(string="Error", help="What went wrong, in plain words.")
    res_model = fields.Char(string="Related Model", help="Model of the records concerned.")
    res_model_name = fields.Char(
        string="Related Model Name",
        compute=compute_res_model_name,
        help="Name of the model of the records concerned.",
    )
    res_ids = fields.Char(string="Record IDs", help="Ids of the records concerned.")
    request_id = fields.Char(
        string="Request ID",
        index="btree_not_null",
        help="X-Request-ID of the call, when given.",
    )
    attempt = fields.Integer(
        default=1, aggregator=None, help="Delivery attempt number."
    )
    job_id = fields.Many2one(
        "bj.api.sync.job",
        string="Outbound Job",
        ondelete="set null",
        index="btree_not_null",
        help="Outbound queue job this attempt belongs to.",
    )
    company_id = fields.Many2one(
        "res.company",
        string="Company",
        help="Company of the configuration (kept when the configuration is deleted); its "
        "multi-company record rule applies.",
    )

    @api.model
    @tools.ormcache("key", "default")
    def _bj_int_param(self, key, default):
        # Read on every API call; changing a system parameter clears the cache.
        value = self.env["ir.config_parameter"].sudo().get_param(key)
        try:
            return int(value) if value else default
        except ValueError:
            return default

    @api.model
    def _bj_body_max_size(self):
        return get_int_param(self.env, PARAM_BODY_MAX_SIZE, DEFAULT_BODY_MAX_SIZE)

    @api.model
    def _bj_prepare_log_values(self, values, secrets=(), max_size=None):
        """Mask secrets and truncate bodies of raw log ``values``.

        ``request_headers`` may be a mapping; bodies may be bytes, str or any
        JSON-serialisable value.  ``max_size`` (default: ``_bj_body_max_size``) is
        for callers preparing many rows.
        """
        values = dict(values)
        if max_size is None:
            max_size = self._bj_body_max_size()
        headers = values.get("request_headers")
        if headers is not None and not isinstance(headers, str):
            values["request_headers"] = json.dumps(
                masking.mask_headers(dict(headers), secrets), indent=1, ensure_ascii=False
            )
        for name in ("request_body", "response_body", "error_message", "url"):
            text = values.get(name)
            if text is None or text is False:
                continue
            if isinstance(text, bytes):
                text = text.decode("utf-8", errors="replace")
            elif not isinstance(text, str):
                text = json.dumps(text, ensure_ascii=False, default=str)
            text = masking.mask_text(text, secrets)
            if name in URL_FIELDS:
                text = URL_FIELDS[name](text)
            values[name] = masking.truncate(text, max_size) if name != "url" else text
        if isinstance(values.get("res_ids"), list | tuple):
            values["res_ids"] = ",".join(str(i) for i in values["res_ids"])
        return {name: masking.storable(value) if isinstance(value, str) else value
                for name, value in values.items()}

    def _bj_insert_rows(self, cr, values_list):
        """Insert rows of prepared ``values_list`` (see ``_bj_prepare_log_values``)
        on Odoo cursor ``cr`` and return their ids.

        This runs for every API call and every delivery attempt, so it skips the
        ORM: no default_get, no cache, one statement for the whole batch.
        """
        now = fields.Datetime.now()
        audit = {"create_uid": self.env.uid, "create_date": now,
                 "write_uid": self.env.uid, "write_date": now}
        rows = [{"attempt": 1, **values, **audit} for values in values_list]
        names = list(dict.fromkeys(name for row in rows for name in row))
        for name in names:
            if not self._fields[name].store:
                raise KeyError(f"{self._name}.{name} is not a stored field")
        # Plain text and parameters: composing one SQL object per value would
        # cost more than the INSERT itself.  Column names are checked above.
        columns = ", ".join(f'"{name}"' for name in names)
        row_placeholders = "(" + ", ".join(["%s"] * len(names)) + ")"
        query = (f'INSERT INTO "{self._table}" ({columns}) '
                 f"VALUES {', '.join([row_placeholders] * len(rows))} RETURNING id")

        params = [None if row.get(name, False) is False else row[name]
                  for row in rows for name in names]
        cr.execute(query, params, log_exceptions=False)
        return [row[0] for row in cr.fetchall()]

    @api.model
    def _bj_write_in_transaction(self, values, secrets=(), max_size=None):
        """Write one log row in the caller's transaction and return its id.

        For inbound calls, after the savepoint that held the business work: the
        row commits with the request whether the work succeeded or was undone.
        """
        prepared = self._bj_prepare_log_values(values, secrets, max_size)
        return self._bj_insert_in_transaction(prepared)

    def _bj_insert_in_transaction(self, prepared):
        # Odoo's savepoint, not SQL of ours: the cursor may be a script's, which
        # runs no transaction control (an entry point called from a script).
        try:
            with self.env.cr.savepoint(flush=False):
                return self._bj_insert_rows(self.env.cr, [prepared])[0]
        except psycopg2.Error:
            # Logging must never break the call it describes.
            _logger.exception("Could not write the API log row for %s", prepared.get("url"))
            return False

    @api.model
    def _bj_write_log(self, values, secrets=(), max_size=None):
        """Write one log row in a transaction of its own and return its id.

        For calls made inside a transaction that may roll back (a synchronous
        outbound request, Test Connection): the row survives it.  A pooled
        cursor with a short statement timeout, as Odoo's database log handler.
        """
        values = self._bj_prepare_log_values(values, secrets, max_size)
        try:
            with self.env.registry.cursor() as cr:
                cr.execute("SET LOCAL statement_timeout = %s", [LOG_STATEMENT_TIMEOUT_MS])
                return self._bj_insert_rows(cr, [values])[0]
        except (psycopg2.errors.ForeignKeyViolation, psycopg2.errors.QueryCanceled):
            # A record the row refers to was created, or is locked, by the caller's
            # still open transaction, which the other cursor cannot see or must
            # wait for: keep the row in the caller's transaction rather than lose it.
            return self._bj_insert_in_transaction(values)
        except psycopg2.Error:
            _logger.exception("Could not write the API log row for %s", values.get("url"))
            return False

    @api.autovacuum
    def _gc_old_logs(self):
        """Delete log rows older than the retention period, in committed batches."""
        days = get_int_param(self.env, PARAM_RETENTION_DAYS, DEFAULT_RETENTION_DAYS)
        retention.delete_older_than(self, days, "create_date")
