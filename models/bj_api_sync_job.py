import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import psycopg2
from markupsafe import Markup

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..core import http_client, retry
from ..core.exceptions import MappingError
from ..services import outbound

_logger = logging.getLogger("bj.api.outbound")

WORKER_CRON = "bjet_api_sync.ir_cron_bj_api_sync_deliver"
DEAD_ACTIVITY_TYPE = "bjet_api_sync.mail_activity_type_delivery_failed"
# Jobs claimed per transaction: the per-batch work (claim, export, commit) is
# shared, while a crashed worker leaves a bounded number of jobs to reclaim.
CLAIM_BATCH_SIZE = 250
# A worker stops sending the jobs it claimed after this long and hands the rest
# back, so that a job is never held longer than STALE_AFTER (one attempt of the
# slowest allowed timeouts, 60 + 300 s, fits in the difference).
SEND_WINDOW = timedelta(minutes=5)
# A job "running" for longer than this belongs to a worker that died.
STALE_AFTER = timedelta(minutes=15)
# One cron call delivers for at most this long, then reports progress so that
# ir.cron calls again (and other crons get their turn) instead of one endless run.
RUN_TIME_BUDGET = 50  # seconds
POSTCOMMIT_WAKE_KEY = "bjet_api_sync.wake_worker"
# Requests a worker sends at the same time.
SEND_CONCURRENCY = 4
# Results of a worker's requests are committed together, at most this far apart.
RESULTS_COMMIT_INTERVAL = 1  # seconds
EVENT_HEADER = "X-BJET-Event"
# Candidates considered per job claimed: several workers claim concurrently.
CLAIM_CANDIDATE_FACTOR = 4


def _id_list(text):
    return [int(part) for part in (text or "").split(",") if part]


def _id_text(ids):
    return ",".join(str(record_id) for record_id in ids)


OUTCOME_COLUMNS = (
    ("state", "varchar"), ("last_status_code", "int"), ("last_error", "text"),
    ("next_attempt_at", "timestamp"), ("date_done", "timestamp"), ("locked_at", "timestamp"),
)
OutboundRequest = namedtuple(
    "OutboundRequest", "job_id plan attempt limit res_ids body headers")


def _send_request(request, deadline):
    """Send one job's request (in a sender thread: no ORM here); None past ``deadline``."""
    if time.monotonic() > deadline:
        return None
    delivery = request.plan.delivery
    payload = json.loads(request.body) if http_client.placeholders(delivery.url) else None
    return http_client.send_json(delivery.method, delivery.url, request.body, payload,
                                 request.headers, delivery.timeout, dict(delivery.options))


def _auto_commit():
    # Odoo's idiom (see mail.mail.process_email_queue): the worker commits after
    # every job, except inside tests whose transaction must stay open.
    return not getattr(threading.current_thread(), "testing", False)


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
    res_ids = fields.Char(
        string="Record IDs", readonly=True, help="Ids of the records sent, comma separated."
    )
    payload = fields.Text(
        string="Payload",
        readonly=True,
        help="JSON sent. Built from the records at the first attempt (so that all changes "
        "made until then go out), captured at once for deletions, then kept for retries.",
    )
    last_error = fields.Text(
        string="Last Error", readonly=True, help="Why the last attempt failed, in plain words."
    )
    last_status_code = fields.Integer(
        string="Last Status Code", readonly=True,
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

    @api.depends("config_id.name", "event")
    def _compute_display_name(self):
        events = dict(self._fields["event"]._description_selection(self.env))
        for job in self:
            job.display_name = f"{job.config_id.name} #{job.id} ({events.get(job.event)})"

    # -- queueing ----------------------------------------------------------------

    @api.model
    def _enqueue(self, plan, records, event, payloads=None):
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
        now = self._now()
        rows = []
        size = plan.batch_size
        for start in range(0, len(ids), size):
            payload = None
            if payloads is not None:
                objects = payloads[start:start + size]
                payload = json.dumps(objects if plan.is_paginated else objects[0])
            rows.append((
                plan.config_id, plan.company_id, event, plan.model,
                _id_text(ids[start:start + size]), payload, plan.delivery.max_attempts,
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
        self._wake_worker_after_commit()
        return jobs

    def _wake_worker_after_commit(self):
        """Trigger the delivery cron once the transaction has committed.

        Only when no wake-up is pending already: ir.cron's trigger notifies the
        cron threads through a new connection, which would cost more than the
        change itself if done for every commit of a burst.
        """
        postcommit = self.env.cr.postcommit
        if not postcommit.data.get(POSTCOMMIT_WAKE_KEY):
            postcommit.data[POSTCOMMIT_WAKE_KEY] = True
            postcommit.add(self._wake_worker_unless_pending)

    def _wake_worker_unless_pending(self):
        # Runs right after the commit, so this query starts a new transaction,
        # which sees the latest triggers.  (_xmlid_to_res_id is cached, env.ref
        # would query.)
        try:
            cron_id = self.env["ir.model.data"]._xmlid_to_res_id(WORKER_CRON,
                                                                  raise_if_not_found=False)
            if not cron_id or self._wake_pending(cron_id):
                return
            with self.env.registry.cursor() as cr:
                self.env(cr=cr, su=True)["ir.cron"].browse(cron_id)._trigger()
        except Exception:  # noqa: BLE001 - the change is committed: never fail its caller
            # The worker's own interval picks the jobs up anyway.
            _logger.warning("Could not wake the outbound delivery worker", exc_info=True)

    def _wake_pending(self, cron_id):
        """Whether the delivery cron already has a trigger due (it was woken)."""
        # call_at is set from Python's clock by ir.cron._trigger: compare with it.
        self.env.cr.execute(
            "SELECT 1 FROM ir_cron_trigger WHERE cron_id = %s AND call_at <= %s LIMIT 1",
            [cron_id, self._now()],
        )
        return bool(self.env.cr.fetchone())

    @api.model
    def _wake_worker(self, at=None):
        cron = self.env.ref(WORKER_CRON, raise_if_not_found=False)
        if cron:
            cron.sudo()._trigger(at)

    def _lock_rows(self, query, params):
        """Rows of a ``... FOR UPDATE SKIP LOCKED`` (or an UPDATE), or None.

        Odoo transactions are REPEATABLE READ: locking a row that another
        transaction changed and committed after ours began fails instead of
        skipping it.  Such a row is not ours to take either, so this returns
        None (the savepoint keeps the transaction usable).
        """
        try:
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute(query, params, log_exceptions=False)
                return self.env.cr.fetchall()
        except psycopg2.errors.SerializationFailure:
            return None

    # -- the delivery worker -----------------------------------------------------------

    @api.model
    def _cron_deliver_jobs(self):
        """Deliver due jobs until none is left or the run's time budget is spent."""
        self = self.sudo()
        commit = _auto_commit()
        started = time.monotonic()
        worker = f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"
        self._reclaim_stale_jobs()
        self._commit(commit)
        self._wake_sibling_workers()
        done = 0
        in_flight = []
        with ThreadPoolExecutor(SEND_CONCURRENCY, thread_name_prefix="bj-api-send") as senders:
            while True:
                # Claim and prepare the next batch while the previous one is on the wire.
                requests = []
                if time.monotonic() - started < RUN_TIME_BUDGET:
                    # One transaction: should preparing fail, the claim is undone
                    # with it rather than left running until reclaimed.
                    jobs = self._claim(worker, CLAIM_BATCH_SIZE, commit)._prepare_payloads()
                    requests = jobs._outbound_requests()  # before the commit
                    self._commit(commit)                          # empties the cache
                results, expired = self._await_results(in_flight, commit)
                done += len(in_flight) - len(expired)
                # Stop when nothing was claimed nor collected: results just collected
                # may release jobs that they held back.
                if not requests and not in_flight:
                    break
                # The next batch goes on the wire before this one's results are
                # written: a claim never holds a job younger than a running one
                # of the same record, so the order per record holds.
                in_flight = self._submit(senders, requests)
                self._store_results(results, expired, commit)
        remaining = self._count_due()
        if remaining:
            # Jobs queued while this run ended: make sure a run follows.
            self._wake_worker()
        self.env["ir.cron"]._notify_progress(done=done, remaining=remaining)
        return done

    def _commit(self, commit):
        if commit:
            self.env.cr.commit()

    def _now(self):
        return fields.Datetime.now()

    def _claim(self, worker, limit, commit):
        """Mark up to ``limit`` due jobs as running for ``worker`` and return them.

        A job is not due while an older unfinished job of its configuration
        shares one of its records: changes of a record go out in the order they
        happened.  ``FOR UPDATE SKIP LOCKED`` lets several workers claim at the
        same time without waiting for or taking each other's jobs.  Archived
        configurations keep their jobs waiting.
        """
        self.env.flush_all()
        if commit:
            # A fresh transaction of our own: in READ COMMITTED, SKIP LOCKED passes
            # over rows that another worker claimed meanwhile, where Odoo's
            # REPEATABLE READ would fail to serialize.
            self.env.cr.commit()
            self.env.cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        rows = self._lock_rows(
            """
            UPDATE bj_api_sync_job SET state = 'running', attempt = attempt + 1,
                   locked_at = %(now)s, worker = %(worker)s,
                   write_date = %(now)s, write_uid = %(uid)s
            WHERE id IN (SELECT id FROM bj_api_sync_job
                         WHERE id = ANY(%(ids)s) AND state = 'pending'
                         ORDER BY id LIMIT %(limit)s
                         FOR UPDATE SKIP LOCKED)
            RETURNING id
            """,
            {"now": self._now(), "worker": worker, "uid": self.env.uid, "limit": limit,
             # More candidates than wanted: other workers may be taking the first ones.
             "ids": self._claimable_ids(limit * CLAIM_CANDIDATE_FACTOR)},
        )
        jobs = self.browse(sorted(row[0] for row in rows or ()))
        jobs.invalidate_recordset(["state", "attempt", "locked_at", "worker"])
        return jobs

    def _claimable_ids(self, wanted):
        """Ids of up to ``wanted`` due jobs that no older unfinished job holds back.

        Walks the unfinished jobs in id order, a window at a time, remembering
        the (configuration, record) pairs seen so far.  Done in Python on plain
        index scans: an anti-join on record overlap would leave the plan to the
        table statistics, which a queue that fills and drains fast outdates.
        Rows locked by another worker are read too (no SKIP LOCKED here): they
        still hold back younger jobs of their records.
        """
        cr, now = self.env.cr, self._now()
        seen, chosen, after = set(), [], 0
        while len(chosen) < wanted:
            cr.execute(
                """
                SELECT job.id, job.config_id, job.res_ids FROM bj_api_sync_job job
                JOIN bj_api_sync_config config ON config.id = job.config_id AND config.active
                WHERE job.state = 'pending' AND job.next_attempt_at <= %s AND job.id > %s
                ORDER BY job.id LIMIT %s
                """,
                [now, after, wanted],
            )
            due = cr.fetchall()
            if not due:
                break
            cr.execute(
                """
                SELECT id, config_id, res_ids FROM bj_api_sync_job
                WHERE state IN ('pending', 'running') AND id > %s AND id < %s
                  AND NOT (state = 'pending' AND next_attempt_at <= %s)
                """,
                [after, due[-1][0], now],
            )
            rows = sorted([(*row, True) for row in due] + [(*row, False) for row in cr.fetchall()])
            for job_id, config_id, res_ids, is_due in rows:
                keys = {(config_id, record_id) for record_id in _id_list(res_ids)}
                if is_due and len(chosen) < wanted and not keys & seen:
                    chosen.append(job_id)
                seen |= keys
            if len(due) < wanted:
                break
            after = due[-1][0]
        return chosen

    def _reclaim_stale_jobs(self):
        """Give back jobs left running by a worker that died (or was killed)."""
        self.env.flush_all()
        cutoff = self._now() - STALE_AFTER
        rows = self._lock_rows(
            "SELECT id FROM bj_api_sync_job WHERE state = 'running' AND locked_at < %s "
            "FOR UPDATE SKIP LOCKED",
            [cutoff],
        )
        stale = self.browse([row[0] for row in rows or ()])
        if not stale:
            return stale
        _logger.warning("Reclaiming %s outbound jobs left running by a stopped worker: %s",
                        len(stale), stale.ids)
        message = _("The worker sending this delivery stopped before recording the result.")
        exhausted = stale.filtered(lambda job: job.attempt >= job.attempt_limit)
        (stale - exhausted)._release(message)
        exhausted._finish("dead", message)
        exhausted._notify_dead()
        return stale

    def _release(self, message=False):
        """Put claimed jobs back in the queue, due now."""
        self.write({
            "state": "pending",
            "locked_at": False,
            "next_attempt_at": self._now(),
            "last_error": message,
        })

    def _count_due(self):
        return self.search_count([("state", "=", "pending"), ("next_attempt_at", "<=", self._now()),
                                  ("config_id.active", "=", True)])

    def _wake_sibling_workers(self):
        """With a backlog, wake the other delivery crons (copies of ours) too.

        One ir.cron runs in one thread at a time; administrators scale delivery
        out by duplicating the delivery scheduled action (see README).
        """
        main = self.env.ref(WORKER_CRON, raise_if_not_found=False)
        if not main or self._count_due() <= CLAIM_BATCH_SIZE:
            return
        siblings = self.env["ir.cron"].search([
            ("id", "!=", main.id), ("model_id", "=", main.model_id.id), ("code", "=", main.code),
        ])
        for cron in siblings:
            cron._trigger()

    def _outbound_requests(self):
        """The ``OutboundRequest`` of each prepared job (plans are cached, so the
        worker's commits do not make it read the configurations again)."""
        requests = []
        for job in self:
            plan = job.config_id._plan()
            requests.append(OutboundRequest(
                job.id, plan, job.attempt, job.attempt_limit, job.res_ids, job.payload,
                {**outbound.request_headers(plan),
                 http_client.IDEMPOTENCY_HEADER: job.idempotency_key, EVENT_HEADER: job.event},
            ))
        return requests

    @api.model
    def _submit(self, senders, requests):
        """Hand ``requests`` to the sender threads; return them in flight.

        A claim never holds two jobs of one record, so sending them
        SEND_CONCURRENCY at a time keeps the per-record order.
        """
        deadline = time.monotonic() + SEND_WINDOW.total_seconds()
        return [(request, senders.submit(_send_request, request, deadline))
                for request in requests]

    def _await_results(self, in_flight, commit):
        """Wait for the requests in flight; return the ``(request, result)`` pairs
        not stored yet, and the ids of the jobs whose send window expired.

        Results are written and committed together, at most RESULTS_COMMIT_INTERVAL
        apart: a commit per request would cost more than the request.  A worker
        that dies loses at most those results; its jobs are reclaimed and sent
        again with the same Idempotency-Key.
        """
        last_commit = time.monotonic()
        results, expired = [], []
        for request, future in in_flight:
            result = future.result()
            if result is None:
                expired.append(request.job_id)
            else:
                results.append((request, result))
            if time.monotonic() - last_commit > RESULTS_COMMIT_INTERVAL:
                self._store_results(results, [], commit)
                results, last_commit = [], time.monotonic()
        return results, expired

    def _store_results(self, results, expired, commit):
        """Write ``results``, put the ``expired`` jobs back in the queue, commit."""
        self._record_results(results)
        self.browse(expired)._release()
        self._commit(commit)

    def _prepare_payloads(self):
        """Build the payload of claimed jobs that have none yet; return those to send.

        One export per configuration for the whole claim.  Younger jobs that
        were never attempted and only hold records exported here are merged:
        the payload built now already carries their changes.
        """
        for config, jobs in self.filtered(lambda job: not job.payload).grouped(
                "config_id").items():
            plan = config._plan()
            records, _skipped = outbound.records_in_scope(
                self.env, plan,
                list(dict.fromkeys(i for job in jobs for i in _id_list(job.res_ids))))
            try:
                objects = dict(zip(records.ids, outbound.export_payloads(self.env, plan, records),
                                   strict=True))
            except MappingError:
                objects = None  # find the culprit job by job
            present = set(records.ids)
            rows = [row for job in jobs
                    if (row := job._build_payload(plan, records, present, objects))]
            if rows:
                self._update_rows((("payload", "text"), ("res_ids", "varchar")), rows)
                self._merge_younger_jobs(config, [i for row in rows for i in _id_list(row[2])])
        return self.filtered(lambda job: job.state == "running")

    def _build_payload(self, plan, records, present, objects):
        """``(id, payload, res_ids)`` of this job, or None when it is not to be sent.

        ``records`` are the exported records in scope, ``present`` their ids and
        ``objects`` their JSON objects by id (None: export job by job).
        """
        ids = [i for i in _id_list(self.res_ids) if i in present]
        if not ids:
            self._finish("cancelled", _("The records no longer exist or are outside the "
                                        "Filter Domain: nothing to send."))
            return None
        try:
            items = ([objects[i] for i in ids] if objects is not None
                     else outbound.export_payloads(self.env, plan, records.browse(ids)))
        except MappingError as error:
            self.env["bj.api.log"].sudo()._write_in_transaction(
                outbound.log_values(plan, None, records_text=_id_text(ids),
                                    attempt=self.attempt, error=str(error), job_id=self.id),
                plan.secrets)
            self._finish("dead", str(error))
            self._notify_dead()
            return None
        payload = items if plan.is_paginated or len(items) > 1 else items[0]
        return (self.id, json.dumps(payload), _id_text(ids))

    def _merge_younger_jobs(self, config, ids):
        self.env.flush_all()
        merged = self._lock_rows(
            """
            UPDATE bj_api_sync_job SET state = 'cancelled', last_error = %s
            WHERE config_id = %s AND state = 'pending' AND attempt = 0 AND payload IS NULL
              AND string_to_array(res_ids, ',')::int[] <@ %s::int[]
            RETURNING id
            """,
            [_("Merged into an older delivery, which sent the record's state including "
               "this change."), config.id, ids],
        )
        self.browse([row[0] for row in merged or ()]).invalidate_recordset(
            ["state", "last_error"])

    def _record_results(self, results):
        """Write the jobs' outcomes and one log row per attempt, in bulk."""
        if not results:
            return
        log_model = self.env["bj.api.log"].sudo()
        # In the worker's transaction: a log row commits with the outcome it records.
        max_size = log_model._body_max_size()
        log_model._insert_rows(self.env.cr, [log_model._prepare_log_values(
            outbound.log_values(request.plan, result, body=request.body,
                                records_text=request.res_ids, attempt=request.attempt,
                                headers=request.headers, job_id=request.job_id),
            request.plan.secrets, max_size) for request, result in results])
        now = self._now()
        rows, dead, wake_at = [], [], None
        for request, result in results:
            verdict = retry.outcome(result.status_code, result.transient_error)
            error = None if verdict == retry.SUCCESS else (result.error or _(
                "The external API answered %(status)s.", status=result.describe()))
            next_at = done_at = None
            if verdict == retry.SUCCESS:
                state, done_at = "done", now
            elif verdict == retry.RETRY and request.attempt < request.limit:
                retry_after = retry.parse_retry_after(result.headers.get("Retry-After"))
                delay = retry.next_delay(request.attempt, request.plan.delivery.base_delay,
                                         request.plan.delivery.max_delay, retry_after)
                state, next_at = "pending", now + timedelta(seconds=delay)
                wake_at = min(wake_at or next_at, next_at)
            else:
                state = "dead"
                dead.append(request.job_id)
            rows.append((request.job_id, state, result.status_code or 0, error,
                         next_at or now, done_at, None))
        self._update_rows(OUTCOME_COLUMNS, rows)
        if wake_at:
            self._wake_worker(wake_at)
        self.browse(dead)._notify_dead()

    def _update_rows(self, columns, rows):
        """One UPDATE for many jobs: ``rows`` are ``(id, *values)`` for ``columns``,
        pairs of (column, SQL type) named in this module."""
        names = [name for name, _type in columns]
        row_sql = "(%s::int, " + ", ".join(f"%s::{sql_type}" for _name, sql_type in columns) + ")"
        self.env.cr.execute(
            """
            UPDATE bj_api_sync_job AS job SET {}, write_date = %s, write_uid = %s
            FROM (VALUES {}) AS new(id, {}) WHERE job.id = new.id
            """.format(", ".join(f"{name} = new.{name}" for name in names),
                       ", ".join([row_sql] * len(rows)), ", ".join(names)),
            [self._now(), self.env.uid, *(value for row in rows for value in row)],
        )
        self.browse([row[0] for row in rows]).invalidate_recordset(
            [*names, "write_date", "write_uid"])

    def _finish(self, state, error):
        self.write({
            "state": state,
            "last_error": error,
            "locked_at": False,
            "date_done": self._now() if state == "done" else False,
        })

    def _notify_dead(self):
        for config in self.config_id:
            try:
                with self.env.cr.savepoint():
                    config._bj_notify_dead_job()
            except Exception:  # noqa: BLE001 - a notification must never undo a delivery's result
                _logger.warning("Could not notify %s of dead deliveries", config.display_name,
                                exc_info=True)

    # -- user actions ---------------------------------------------------------------------

    def action_retry(self):
        """Queue dead or cancelled jobs again, with a fresh budget of attempts.

        Except for deletions (whose payload was captured before the record
        disappeared), the payload is rebuilt from the records as they are now:
        the cause of the failure (a wrong value, a mapping) has usually been
        fixed in the meantime.  A rebuilt payload is a new request, hence a new
        Idempotency-Key.
        """
        jobs = self.filtered(lambda job: job.state in ("dead", "cancelled"))
        if not jobs:
            raise UserError(_("Only dead or cancelled deliveries can be retried."))
        for job in jobs:
            values = {
                "state": "pending",
                "next_attempt_at": self._now(),
                "attempt_limit": job.attempt + job.config_id.max_attempts,
                "locked_at": False,
            }
            if job.event != "unlink":
                values.update(payload=False, idempotency_key=str(uuid.uuid4()))
            job.write(values)
        self._wake_worker()
        return True

    def action_cancel(self):
        jobs = self.filtered(lambda job: job.state in ("pending", "dead"))
        if not jobs:
            raise UserError(_("Only pending or dead deliveries can be cancelled."))
        jobs._finish("cancelled", _("Cancelled by %(user)s.", user=self.env.user.name))
        return True

    def action_view_logs(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("bjet_api_sync.action_bj_api_log")
        action["domain"] = [("job_id", "=", self.id)]
        return action

    def _dead_summary(self):
        """Chatter text about these dead jobs (newest first): how many, the last error."""
        return Markup("%s<br/>%s") % (
            _("%(count)s outbound deliveries failed for good and wait in the Outbound Queue "
              "(Dead): fix the cause, then Retry them.", count=len(self)),
            _("Last error: %(error)s", error=self[:1].last_error or "?"),
        )
