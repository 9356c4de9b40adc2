import json
import logging
import uuid
from datetime import timedelta

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
# The ids of the jobs queued by the current transaction, in the cursor's
# postcommit data, which Odoo clears when the transaction commits or rolls back
# (not at savepoints, as it does precommit's): the only jobs the direct call may
# take over.  An id of a savepoint rolled back stays, naming no row.
OWN_JOBS_KEY = "bjet_api_sync.own_jobs"
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
        readonly=True,
        groups=MANAGER_GROUP,  # business data, as the log bodies
        help="JSON sent. Built from the records at the first attempt (so that all changes "
        "made until then go out), captured at once for deletions, then kept for retries.",
    )
    last_error = fields.Text(
        readonly=True, help="Why the last attempt failed, in plain words."
    )
    last_status_code = fields.Integer(
        readonly=True, aggregator=None,
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
        readonly=True,
        help="Host, process and thread of the worker that claimed it last.",
    )
    date_done = fields.Datetime(
        string="Delivered At", readonly=True, help="When the external API accepted it."
    )
    retried_job_id = fields.Many2one(
        "bj.api.sync.job", string="Retried As", readonly=True, ondelete="set null",
        help="The delivery that Retry queued for this one, at the back of its records' "
        "queue.",
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
        cr.execute(SQL(
            """
            CREATE TABLE IF NOT EXISTS %s (
                worker varchar PRIMARY KEY,
                started_at timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'))
            """,
            SQL.identifier(delivery_worker.LEASE_TABLE),
        ))

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
        jobs._bj_mark_own()
        self._bj_wake_worker_after_commit()
        return jobs

    def _bj_mark_own(self):
        """Remember these jobs as queued by the current transaction (OWN_JOBS_KEY)."""
        self.env.cr.postcommit.data.setdefault(OWN_JOBS_KEY, set()).update(self.ids)

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

    @api.model
    def _bj_cancel_unborn(self, plan, records):
        """Before ``records`` are deleted: cancel the never-attempted jobs of
        ``plan``'s configuration that this transaction queued for those of
        them it also created (their create job is among them); return the ids
        of these records, whose deletion the external API must not hear of:
        it never received them."""
        own = self.env.cr.postcommit.data.get(OWN_JOBS_KEY)
        if not own:
            return []
        self.env.flush_all()
        self.env.cr.execute(
            """
            SELECT id, event, res_ids FROM bj_api_sync_job
            WHERE config_id = %s AND id = ANY(%s) AND state = 'pending' AND attempt = 0
              AND payload IS NULL AND string_to_array(res_ids, ',')::int[] <@ %s::int[]
            """,
            [plan.config_id, list(own), records.ids],
        )
        rows = [(job_id, event, set(id_list(res_ids)))
                for job_id, event, res_ids in self.env.cr.fetchall()]
        unborn = {i for _job_id, event, ids in rows if event == "create" for i in ids}
        self.browse([job_id for job_id, _event, ids in rows if ids <= unborn])._bj_finish(
            "cancelled", _("The record was deleted in the transaction that created it: the "
                           "external API never received it."))
        return sorted(unborn)

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
        """The delivery scheduled action and its active copies (docs/OPERATIONS.md,
        Scaling delivery): the same model and code."""
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
        ``record_ids``, as ``(job id, its record ids, free)`` in id order,
        from the freshest view there is.

        ``free``: queued by this very transaction (``_bj_enqueue``) and never
        attempted: nobody else sees it, and it vanishes with this transaction
        if it rolls back, so the direct call may send its state under its key.
        Any other one holds its records, as committed now (read on a cursor of
        its own: jobs queued, retried or claimed since this transaction's
        snapshot hold them too, and one finished since does not): a committed
        job was queued by an earlier transaction, and this one's rollback
        would give it back to the queue with its key, never attempted.
        """
        self.env.flush_all()
        own = self.env.cr.postcommit.data.get(OWN_JOBS_KEY, set())
        self.env.cr.execute(
            """
            SELECT id, res_ids, state = 'pending' AND attempt = 0 AND payload IS NULL
            FROM bj_api_sync_job
            WHERE config_id = %s AND state IN ('pending', 'running') AND id = ANY(%s)
              AND string_to_array(res_ids, ',')::int[] && %s::int[]
            """,
            [plan.config_id, list(own), list(record_ids)],
        )
        rows = [(job_id, id_list(res_ids), free) for job_id, res_ids, free
                in self.env.cr.fetchall()]
        with self.env.registry.cursor() as cr:
            cr.execute(
                """
                SELECT id, res_ids FROM bj_api_sync_job
                WHERE config_id = %s AND state IN ('pending', 'running')
                  AND string_to_array(res_ids, ',')::int[] && %s::int[]
                """,
                [plan.config_id, list(record_ids)],
            )
            rows += [(job_id, id_list(res_ids), False) for job_id, res_ids in cr.fetchall()
                     if job_id not in own]
        return sorted(rows)

    def _bj_link_logs(self, log_ids):
        """Link the log rows ``log_ids`` to this job once this transaction has
        committed it.  The direct call writes them on a cursor of their own,
        with no link to its job, which this transaction may have created or
        holds locked: linked now, they would wait for it or roll back with it.
        This transaction cannot link them itself: in REPEATABLE READ it does
        not see rows committed after its snapshot."""
        self.ensure_one()
        log_ids = [log_id for log_id in log_ids if log_id]
        if not log_ids:
            return
        job_id, registry = self.id, self.env.registry

        def link():
            with registry.cursor() as cr:
                cr.execute("UPDATE bj_api_log SET job_id = %s WHERE id = ANY(%s)",
                           [job_id, log_ids])

        self.env.cr.postcommit.add(link)

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

        A job never delivers a state older than one already accepted: the
        record's order is the queue's order (by id), so a retried delivery goes
        to the back of its records' queue, behind the jobs queued since (some
        already carry a payload built before).  Except for deletions, it is a
        new job (new id, new Idempotency-Key: its payload is rebuilt from the
        records as they are now, the cause of the failure having usually been
        fixed), and the old one is cancelled, naming it (``retried_job_id``).
        A deletion keeps its job, key and payload (captured before the record
        disappeared): no younger job of a deleted record exists.
        """
        check_group(self.env, MANAGER_GROUP)
        # Jobs are the addon's bookkeeping (field table): written as superuser,
        # those the user may change.
        self.check_access("write")
        jobs = self.sudo().filtered(
            lambda job: job.state in ("dead", "cancelled") and not job.retried_job_id)
        if not jobs:
            raise UserError(_("Only dead or cancelled deliveries not retried yet can be "
                              "retried."))
        now = self._bj_now()
        for job in jobs:
            values = {
                "state": "pending",
                "next_attempt_at": now,
                "attempt_limit": job.attempt + job.config_id.max_attempts,
                "locked_at": False,
            }
            if job.event == "unlink":
                job.write(values)
                continue
            new = self.sudo().create({
                **values, "config_id": job.config_id.id, "event": job.event,
                "res_model": job.res_model, "res_ids": job.res_ids,
                "attempt_limit": job.config_id.max_attempts,
            })
            new._bj_mark_own()
            job._bj_finish("cancelled", _("Retried as delivery #%(id)s.", id=new.id))
            job.retried_job_id = new
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
