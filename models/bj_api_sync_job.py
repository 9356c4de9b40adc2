import json
import logging
import uuid
from datetime import timedelta

import psycopg2
from markupsafe import Markup

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL

from ..core.record_ids import id_list, id_text
from ..services import delivery_worker, retention
from ..services.delivery_worker import WORKER_CRON, DeliveryWorker
from .bj_api_access import MANAGER_GROUP, USER_GROUP, check_group
from .bj_api_log import compute_res_model_name, get_int_param

_logger = logging.getLogger("bj.api.outbound")

DEAD_ACTIVITY_TYPE = "bjet_api_sync.mail_activity_type_delivery_failed"
POSTCOMMIT_WAKE_KEY = "bjet_api_sync.wake_worker"
# A due trigger of a delivery cron made within this many seconds (after the
# second it is rounded to) means a wake-up is on its way: a burst of commits
# notifies the cron workers at most about once per WAKE_GRACE + 1 seconds.
WAKE_GRACE = 1
PARAM_RETENTION_DAYS = "bjet_api_sync.job_retention_days"
DEFAULT_RETENTION_DAYS = 30
# Jobs that retention deletes: finished for good.  Pending and running jobs are
# still to be sent; dead ones wait for a Retry or a Cancel.
FINISHED_STATES = ("done", "cancelled")


class BjApiSyncJob(models.Model):
    _name = "bj.api.sync.job"
    _description = "Outbound Delivery"
    _order = "id desc"

    config_id = fields.Many2one(
        "bj.api.sync.config",
        string="Configuration",
        required=True,
        ondelete="cascade",
        index=True,
        readonly=True,
        help="Outbound configuration that sends this delivery.",
    )
    company_id = fields.Many2one(
        related="config_id.company_id", store=True, index=True, string="Company"
    )
    state = fields.Selection(
        [
            ("pending", "Pending"),
            ("running", "Running"),
            ("done", "Done"),
            ("dead", "Dead"),
            ("cancelled", "Cancelled"),
        ],
        string="State",
        required=True,
        default="pending",
        index=True,
        readonly=True,
        help="Pending: waiting for its next attempt. Running: a worker is sending it. "
        "Done: the external API accepted it. Dead: rejected for good or out of attempts; "
        "use Retry once the cause is fixed. Cancelled: will not be sent.",
    )
    event = fields.Selection(
        [
            ("create", "Create"),
            ("write", "Update"),
            ("unlink", "Delete"),
            ("manual", "Manual"),
            ("schedule", "Schedule"),
        ],
        string="Event",
        required=True,
        readonly=True,
        help="What queued this delivery. Sent to the external API as X-BJET-Event.",
    )
    attempt = fields.Integer(
        string="Attempts",
        default=0,  # a column default: the claim query increments it in SQL
        readonly=True,
        aggregator=None,
        help="Attempts made so far, the current one included.",
    )
    attempt_limit = fields.Integer(
        string="Attempt Limit",
        readonly=True,
        help="The job is dead once this many attempts have failed (Maximum Attempts of the "
        "configuration, renewed by Retry).",
    )
    next_attempt_at = fields.Datetime(
        string="Next Attempt",
        default=fields.Datetime.now,
        required=True,
        readonly=True,
        help="Not sent before this time (backoff after a failure).",
    )
    idempotency_key = fields.Char(
        string="Idempotency Key",
        required=True,
        readonly=True,
        copy=False,
        default=lambda self: str(uuid.uuid4()),
        help="Sent as the Idempotency-Key header, the same on every attempt, so that the "
        "external API can recognise a repeated delivery.",
    )
    res_model = fields.Char(string="Model", readonly=True, help="Model of the records sent.")
    res_model_name = fields.Char(
        string="Model Name",
        compute=compute_res_model_name,
        help="Name of the model of the records sent.",
    )
    res_ids = fields.Char(
        string="Record IDs", readonly=True, help="Ids of the records sent, comma separated."
    )
    payload = fields.Text(
        string="Payload",
        readonly=True,
        groups=MANAGER_GROUP,  # business data, as the log bodies
        help="JSON sent. Built from the records at the first attempt (so that all changes "
        "made until then go out), captured at once for deletions, then kept for retries.",
    )
    last_error = fields.Text(
        string="Last Error", readonly=True, help="Why the last attempt failed, in plain words."
    )
    last_status_code = fields.Integer(
        string="Last Status Code", readonly=True, aggregator=None,
        help="HTTP status of the last answer; 0 when no answer came.",
    )
    log_ids = fields.One2many(
        "bj.api.log", "job_id", string="Attempts Log", readonly=True,
        help="One log row per attempt.",
    )
    locked_at = fields.Datetime(
        string="Claimed At", readonly=True, help="When a worker claimed it for sending."
    )
    worker = fields.Char(
        string="Worker", readonly=True,
        help="Host, process and thread of the worker that claimed it last.",
    )
    date_done = fields.Datetime(
        string="Delivered At", readonly=True, help="When the external API accepted it."
    )

    def init(self):
        cr = self.env.cr
        # The claim walks unfinished jobs in id order, never delivered ones.
        cr.execute(
            """
            CREATE INDEX IF NOT EXISTS bj_api_sync_job_unfinished_idx
            ON bj_api_sync_job (id) WHERE state IN ('pending', 'running')
            """
        )
        cr.execute(
            """
            CREATE UNIQUE INDEX IF NOT EXISTS bj_api_sync_job_idempotency_key_idx
            ON bj_api_sync_job (idempotency_key)
            """
        )
        # The delivery runs' leases (services/delivery_worker.py): a row per
        # run, locked by a transaction of the run for as long as it lives.  No
        # model: only the worker reads or writes it, in SQL.
        cr.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {delivery_worker.LEASE_TABLE} (
                worker varchar PRIMARY KEY,
                started_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'))
            """
        )

    @api.depends("config_id.name", "event")
    def _compute_display_name(self):
        events = dict(self._fields["event"]._description_selection(self.env))
        for job in self:
            job.display_name = f"{job.config_id.name} #{job.id} ({events.get(job.event)})"

    # -- queueing ----------------------------------------------------------------

    @api.model
    def _bj_enqueue(self, plan, records, event, payloads=None):
        """Queue ``records`` in the caller's transaction; return the jobs.

        ``plan`` is the configuration's compiled plan, so that triggers, which
        run inside every create/write/unlink, need not read the configuration.
        One job per record, or per Page Size records
        when paginated.  Without ``payloads`` the payload is built at the first
        attempt, from the records as they are then; ``payloads`` (one object per
        record, captured before a deletion) are sent as given.  A rollback
        leaves no job behind.  One plain INSERT, for the same reason: jobs have
        no computed fields to maintain.
        """
        if not records:
            return self.browse()
        ids = records.ids
        now = self._bj_now()
        rows = []
        size = plan.batch_size
        for start in range(0, len(ids), size):
            payload = None
            if payloads is not None:
                objects = payloads[start:start + size]
                payload = json.dumps(objects if plan.is_paginated else objects[0])
            rows.append((
                plan.config_id, plan.company_id, event, plan.model,
                id_text(ids[start:start + size]), payload, plan.delivery.max_attempts,
                now, str(uuid.uuid4()), self.env.uid, now, self.env.uid, now,
            ))
        self.env.cr.execute(
            """
            INSERT INTO bj_api_sync_job (config_id, company_id, event, res_model, res_ids,
                payload, attempt_limit, next_attempt_at, idempotency_key, create_uid,
                create_date, write_uid, write_date, state, attempt)
            VALUES {}
            RETURNING id
            """.format(", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                                  "'pending', 0)"] * len(rows))),
            [value for row in rows for value in row],
        )
        jobs = self.browse(sorted(row[0] for row in self.env.cr.fetchall()))
        self._bj_wake_worker_after_commit()
        return jobs

    @api.model
    def _bj_writes_become_create(self, plan, records):
        """Make the write jobs of ``records``, queued while they were being
        created, their create jobs; return the ids of the records they hold.

        Records created just now have no job but those of this transaction,
        none attempted yet."""
        self.env.flush_all()
        self.env.cr.execute(
            """
            UPDATE bj_api_sync_job SET event = 'create'
            WHERE config_id = %s AND event = 'write' AND state = 'pending' AND attempt = 0
              AND string_to_array(res_ids, ',')::int[] <@ %s::int[]
            RETURNING res_ids
            """,
            [plan.config_id, records.ids],
        )
        rows = self.env.cr.fetchall()
        self.invalidate_model(["event"])
        return [i for (res_ids,) in rows for i in id_list(res_ids)]

    def _bj_wake_worker_after_commit(self):
        """Trigger the delivery crons once the transaction has committed.

        Only those not woken a moment ago: ir.cron's trigger notifies the cron
        threads through a new connection, which would cost more than the change
        itself if done for every commit of a burst.
        """
        postcommit = self.env.cr.postcommit
        if not postcommit.data.get(POSTCOMMIT_WAKE_KEY):
            postcommit.data[POSTCOMMIT_WAKE_KEY] = True
            postcommit.add(self._bj_wake_worker_unless_pending)

    def _bj_wake_worker_unless_pending(self):
        # Runs right after the commit, so these queries start a new transaction,
        # which sees the latest triggers.
        try:
            crons = self._bj_crons_to_wake()
            if not crons:
                return
            with self.env.registry.cursor() as cr:
                for cron in crons.with_env(self.env(cr=cr, su=True)):
                    cron._trigger()
        except Exception:  # noqa: BLE001 - the change is committed: never fail its caller
            # The worker's own interval picks the jobs up anyway.
            _logger.warning("Could not wake the outbound delivery worker", exc_info=True)

    def _bj_delivery_crons(self):
        """The delivery scheduled action and its active copies (README, Scaling
        delivery): the same model and code."""
        main = self.env.ref(WORKER_CRON, raise_if_not_found=False)
        if not main:
            return self.env["ir.cron"]
        return self.env["ir.cron"].sudo().search([
            ("model_id", "=", main.model_id.id), ("code", "=", main.code),
        ])

    def _bj_crons_to_wake(self):
        """The delivery crons without a trigger made due within the last
        WAKE_GRACE seconds (one is on its way).  An older due trigger does not
        count: it is left by a cron still running (Odoo deletes triggers when
        a run ends) or by workers all busy, and the new change must not wait
        for them when another delivery cron could take it.

        Skipping is safe even when the run that trigger woke has already
        looked at the queue for the last time: Odoo's end of that run deletes
        the trigger, and the run looks at the queue again once that delete is
        committed (``DeliveryWorker._schedule_next_run_after_cron``)."""
        crons = self._bj_delivery_crons()
        if not crons:
            return crons
        # call_at is set from Python's clock, to the second, by ir.cron._trigger.
        now = fields.Datetime.now()
        self.env.cr.execute(
            """
            SELECT DISTINCT cron_id FROM ir_cron_trigger
            WHERE cron_id = ANY(%s) AND call_at BETWEEN %s AND %s
            """,
            [crons.ids, now - timedelta(seconds=WAKE_GRACE), now],
        )
        return crons.browse(set(crons.ids) - {row[0] for row in self.env.cr.fetchall()})

    @api.model
    def _bj_wake_worker(self, at=None):
        cron = self.env.ref(WORKER_CRON, raise_if_not_found=False)
        if cron:
            cron.sudo()._trigger(at)

    # -- the direct call: one order with the queue (services/outbound_call.py) -----

    @api.model
    def _bj_lock_records(self, records):
        """Lock ``records``' rows until this transaction ends, in id order.

        Nobody writes them meanwhile, so the state this transaction sends is
        the record's latest.  In Odoo's REPEATABLE READ, a row that another
        transaction changed and committed after this one began fails with the
        serialization error Odoo retries the request on: this transaction's
        state of it is stale and must not be sent.
        """
        self.env.flush_all()
        self.env.cr.execute(
            SQL("SELECT id FROM %s WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE",
                SQL.identifier(records._table), records.ids))

    @api.model
    def _bj_jobs_of_records(self, plan, record_ids):
        """The unfinished jobs of ``plan``'s configuration that hold one of
        ``record_ids``, as ``(job id, its record ids, free)`` in id order.

        ``free``: pending and never attempted (no payload: built at its first
        attempt) and now locked by this transaction, which the worker's claim
        (``FOR UPDATE SKIP LOCKED``) and merge then skip until it ends.  Any
        other one holds its records: it has a payload or attempts, runs, or
        another transaction locked or changed it since this one's snapshot (a
        worker claiming or merging it), or committed it since (queued, retried
        or claimed meanwhile).
        """
        self.env.flush_all()
        self.env.cr.execute(
            """
            SELECT id, res_ids, state = 'pending' AND attempt = 0 AND payload IS NULL
            FROM bj_api_sync_job
            WHERE config_id = %s AND state IN ('pending', 'running')
              AND string_to_array(res_ids, ',')::int[] && %s::int[]
            ORDER BY id
            """,
            [plan.config_id, list(record_ids)],
        )
        rows = [(job_id, id_list(res_ids), never_attempted and self._bj_lock_job(job_id))
                for job_id, res_ids, never_attempted in self.env.cr.fetchall()]
        seen = {row[0] for row in rows}
        return sorted(rows + [(job_id, job_ids, False) for job_id, job_ids
                              in self._bj_committed_jobs_of_records(plan, record_ids)
                              if job_id not in seen])

    @api.model
    def _bj_committed_jobs_of_records(self, plan, record_ids):
        """``(job id, record ids)`` of the unfinished jobs holding ``record_ids``
        as committed now, read on a cursor of its own: jobs committed after
        this transaction's snapshot (queued, retried or claimed meanwhile)
        hold the records too."""
        with self.env.registry.cursor() as cr:
            cr.execute(
                """
                SELECT id, res_ids FROM bj_api_sync_job
                WHERE config_id = %s AND state IN ('pending', 'running')
                  AND string_to_array(res_ids, ',')::int[] && %s::int[]
                """,
                [plan.config_id, list(record_ids)],
            )
            return [(job_id, id_list(res_ids)) for job_id, res_ids in cr.fetchall()]

    def _bj_lock_job(self, job_id):
        """Whether this transaction now holds the row lock of job ``job_id``:
        not when another transaction holds it, or changed the row after this
        transaction's snapshot (REPEATABLE READ)."""
        try:
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute(
                    "SELECT id FROM bj_api_sync_job WHERE id = %s FOR UPDATE NOWAIT",
                    [job_id], log_exceptions=False)
                return bool(self.env.cr.fetchone())
        except (psycopg2.errors.LockNotAvailable, psycopg2.errors.SerializationFailure):
            return False

    # -- delivery: the cron entry, and the steps the worker calls per job -----------

    @api.model
    def _cron_deliver_jobs(self):
        """Deliver due jobs until none is left or the run's time budget is spent;
        return how many were sent (see ``DeliveryWorker``)."""
        return DeliveryWorker(self.env).run()

    def _bj_now(self):
        return delivery_worker.now()

    def _bj_release(self, message=False):
        """Put claimed jobs back in the queue, due now."""
        self.write({
            "state": "pending",
            "locked_at": False,
            "next_attempt_at": self._bj_now(),
            "last_error": message,
        })

    def _bj_finish(self, state, error):
        self.write({
            "state": state,
            "last_error": error,
            "locked_at": False,
            "date_done": self._bj_now() if state == "done" else False,
        })

    def _bj_notify_dead(self):
        for config in self.config_id:
            try:
                with self.env.cr.savepoint():
                    config._bj_notify_dead_job()
            except Exception:  # noqa: BLE001 - a notification must never undo a delivery's result
                _logger.warning("Could not notify %s of dead deliveries", config.display_name,
                                exc_info=True)

    # -- retention ------------------------------------------------------------------------

    @api.autovacuum
    def _gc_finished_jobs(self):
        """Delete done and cancelled jobs (their payloads carry personal data) last
        changed more than ``bjet_api_sync.job_retention_days`` ago, in committed
        batches.  Their log rows stay, without the link (``job_id`` is set null);
        the log's own retention removes them."""
        days = get_int_param(self.env, PARAM_RETENTION_DAYS, DEFAULT_RETENTION_DAYS)
        retention.delete_older_than(self, days, "write_date", [("state", "in", FINISHED_STATES)])

    # -- user actions ---------------------------------------------------------------------

    def action_retry(self):
        """Queue dead or cancelled jobs again, with a fresh budget of attempts.

        Except for deletions (whose payload was captured before the record
        disappeared), the payload is rebuilt from the records as they are now:
        the cause of the failure (a wrong value, a mapping) has usually been
        fixed in the meantime.  A rebuilt payload is a new request, hence a new
        Idempotency-Key.
        """
        check_group(self.env, MANAGER_GROUP)
        # Jobs are the addon's bookkeeping (field table): written as superuser,
        # those the user may change.
        self.check_access("write")
        jobs = self.sudo().filtered(lambda job: job.state in ("dead", "cancelled"))
        if not jobs:
            raise UserError(_("Only dead or cancelled deliveries can be retried."))
        for job in jobs:
            values = {
                "state": "pending",
                "next_attempt_at": self._bj_now(),
                "attempt_limit": job.attempt + job.config_id.max_attempts,
                "locked_at": False,
            }
            if job.event != "unlink":
                values.update(payload=False, idempotency_key=str(uuid.uuid4()))
            job.write(values)
        self._bj_wake_worker()
        return True

    def action_cancel(self):
        check_group(self.env, MANAGER_GROUP)
        self.check_access("write")
        jobs = self.sudo().filtered(lambda job: job.state in ("pending", "dead"))
        if not jobs:
            raise UserError(_("Only pending or dead deliveries can be cancelled."))
        jobs._bj_finish("cancelled", _("Cancelled by %(user)s.", user=self.env.user.name))
        return True

    def action_view_logs(self):
        check_group(self.env, USER_GROUP)
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("bjet_api_sync.action_bj_api_log")
        action["domain"] = [("job_id", "=", self.id)]
        return action

    def _bj_dead_summary(self):
        """Chatter text about these dead jobs (newest first): how many, the last error."""
        return Markup("%s<br/>%s") % (
            _("1 outbound delivery failed for good and waits in the Outbound Queue "
              "(Dead): fix the cause, then Retry it.") if len(self) == 1 else
            _("%(count)s outbound deliveries failed for good and wait in the Outbound Queue "
              "(Dead): fix the cause, then Retry them.", count=len(self)),
            _("Last error: %(error)s", error=self[:1].last_error or "?"),
        )
