"""The outbound delivery worker: sends the jobs of ``bj.api.sync.job``.

A plain class, not a model: each call of the delivery cron
(``bj.api.sync.job._cron_deliver_jobs``) runs one ``DeliveryWorker``.
"""

import json
import logging
import os
import socket
import threading
import time
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import psycopg2

from odoo import _

from ..core import http_client, retry
from ..core.claim import select_claimable
from ..core.exceptions import MappingError
from ..core.record_ids import id_list, id_text
from . import outbound

_logger = logging.getLogger("bj.api.outbound")

WORKER_CRON = "bjet_api_sync.ir_cron_bj_api_sync_deliver"
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
# Requests a worker sends at the same time.
SEND_CONCURRENCY = 4
# Results of a worker's requests are committed together, at most this far apart.
RESULTS_COMMIT_INTERVAL = 1  # seconds
EVENT_HEADER = "X-BJET-Event"
# Candidates considered per job claimed: several workers claim concurrently.
CLAIM_CANDIDATE_FACTOR = 4

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


class DeliveryWorker:
    """One run of the delivery cron on ``env``'s database, as superuser.

    The job model keeps the record-level steps the worker calls: ``_bj_now``,
    ``_bj_release``, ``_bj_finish``, ``_bj_notify_dead`` and ``_bj_wake_worker``.
    """

    def __init__(self, env):
        self.env = env(su=True)
        self.jobs = self.env["bj.api.sync.job"]
        self.commit = _auto_commit()
        self.name = f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"

    def run(self):
        """Deliver due jobs until none is left or the run's time budget is spent."""
        started = time.monotonic()
        self._reclaim_stale_jobs()
        self._commit()
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
                    jobs = self._prepare_payloads(self._claim(CLAIM_BATCH_SIZE))
                    requests = self._outbound_requests(jobs)  # before the commit
                    self._commit()                            # empties the cache
                results, expired = self._await_results(in_flight)
                done += len(in_flight) - len(expired)
                # Stop when nothing was claimed nor collected: results just collected
                # may release jobs that they held back.
                if not requests and not in_flight:
                    break
                # The next batch goes on the wire before this one's results are
                # written: a claim never holds a job younger than a running one
                # of the same record, so the order per record holds.
                in_flight = self._submit(senders, requests)
                self._store_results(results, expired)
        remaining = self._count_due()
        if remaining:
            # Jobs queued while this run ended: make sure a run follows.
            self.jobs._bj_wake_worker()
        self.env["ir.cron"]._notify_progress(done=done, remaining=remaining)
        return done

    def _commit(self):
        if self.commit:
            self.env.cr.commit()

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

    def _claim(self, limit):
        """Mark up to ``limit`` due jobs as running for this worker and return them.

        A job is not due while an older unfinished job of its configuration
        shares one of its records: changes of a record go out in the order they
        happened.  ``FOR UPDATE SKIP LOCKED`` lets several workers claim at the
        same time without waiting for or taking each other's jobs.  Archived
        configurations keep their jobs waiting.
        """
        self.env.flush_all()
        if self.commit:
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
            {"now": self.jobs._bj_now(), "worker": self.name, "uid": self.env.uid, "limit": limit,
             # More candidates than wanted: other workers may be taking the first ones.
             "ids": self._claimable_ids(limit * CLAIM_CANDIDATE_FACTOR)},
        )
        jobs = self.jobs.browse(sorted(row[0] for row in rows or ()))
        jobs.invalidate_recordset(["state", "attempt", "locked_at", "worker"])
        return jobs

    def _claimable_ids(self, wanted):
        """Ids of up to ``wanted`` due jobs that no older unfinished job holds back.

        Reads the unfinished jobs in id order, a window at a time, for
        ``select_claimable`` to decide.  Done in Python on plain index scans:
        an anti-join on record overlap would leave the plan to the table
        statistics, which a queue that fills and drains fast outdates.  Rows
        locked by another worker are read too (no SKIP LOCKED here): they
        still hold back younger jobs of their records.
        """
        cr, now = self.env.cr, self.jobs._bj_now()
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
            rows = [(job_id, config_id, id_list(res_ids), is_due)
                    for found, is_due in ((due, True), (cr.fetchall(), False))
                    for job_id, config_id, res_ids in found]
            picked, pairs = select_claimable(rows, wanted - len(chosen), seen)
            chosen += picked
            seen |= pairs
            if len(due) < wanted:
                break
            after = due[-1][0]
        return chosen

    def _reclaim_stale_jobs(self):
        """Give back jobs left running by a worker that died (or was killed)."""
        self.env.flush_all()
        cutoff = self.jobs._bj_now() - STALE_AFTER
        rows = self._lock_rows(
            "SELECT id FROM bj_api_sync_job WHERE state = 'running' AND locked_at < %s "
            "FOR UPDATE SKIP LOCKED",
            [cutoff],
        )
        stale = self.jobs.browse([row[0] for row in rows or ()])
        if not stale:
            return stale
        _logger.warning("Reclaiming %s outbound jobs left running by a stopped worker: %s",
                        len(stale), stale.ids)
        message = _("The worker sending this delivery stopped before recording the result.")
        exhausted = stale.filtered(lambda job: job.attempt >= job.attempt_limit)
        (stale - exhausted)._bj_release(message)
        exhausted._bj_finish("dead", message)
        exhausted._bj_notify_dead()
        return stale

    def _count_due(self):
        return self.jobs.search_count([("state", "=", "pending"),
                                       ("next_attempt_at", "<=", self.jobs._bj_now()),
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

    def _outbound_requests(self, jobs):
        """The ``OutboundRequest`` of each prepared job (plans are cached: the
        worker's commits do not make it read the configurations again)."""
        requests = []
        for job in jobs:
            plan = job.config_id._bj_plan()
            requests.append(OutboundRequest(
                job.id, plan, job.attempt, job.attempt_limit, job.res_ids, job.payload,
                {**outbound.request_headers(plan),
                 http_client.IDEMPOTENCY_HEADER: job.idempotency_key, EVENT_HEADER: job.event},
            ))
        return requests

    def _submit(self, senders, requests):
        """Hand ``requests`` to the sender threads; return them in flight.

        A claim never holds two jobs of one record, so sending them
        SEND_CONCURRENCY at a time keeps the per-record order.
        """
        deadline = time.monotonic() + SEND_WINDOW.total_seconds()
        return [(request, senders.submit(_send_request, request, deadline))
                for request in requests]

    def _await_results(self, in_flight):
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
                self._store_results(results, [])
                results, last_commit = [], time.monotonic()
        return results, expired

    def _store_results(self, results, expired):
        """Write ``results``, put the ``expired`` jobs back in the queue, commit."""
        self._record_results(results)
        self.jobs.browse(expired)._bj_release()
        self._commit()

    def _prepare_payloads(self, jobs):
        """Build the payload of claimed ``jobs`` that have none yet; return those to send.

        One export per configuration for the whole claim.  Younger jobs that
        were never attempted and only hold records exported here are merged:
        the payload built now already carries their changes.
        """
        for config, unbuilt in jobs.filtered(lambda job: not job.payload).grouped(
                "config_id").items():
            plan = config._bj_plan()
            records, _skipped = outbound.records_in_scope(
                self.env, plan,
                list(dict.fromkeys(i for job in unbuilt for i in id_list(job.res_ids))))
            try:
                objects = dict(zip(records.ids, outbound.export_payloads(self.env, plan, records),
                                   strict=True))
            except MappingError:
                objects = None  # find the culprit job by job
            present = set(records.ids)
            rows = [row for job in unbuilt
                    if (row := self._build_payload(job, plan, records, present, objects))]
            if rows:
                self._update_rows((("payload", "text"), ("res_ids", "varchar")), rows)
                self._merge_younger_jobs(config, [i for row in rows for i in id_list(row[2])])
        return jobs.filtered(lambda job: job.state == "running")

    def _build_payload(self, job, plan, records, present, objects):
        """``(id, payload, res_ids)`` of ``job``, or None when it is not to be sent.

        ``records`` are the exported records in scope, ``present`` their ids and
        ``objects`` their JSON objects by id (None: export job by job).
        """
        ids = [i for i in id_list(job.res_ids) if i in present]
        if not ids:
            job._bj_finish("cancelled", _("The records no longer exist or are outside the "
                                       "Filter Domain: nothing to send."))
            return None
        try:
            items = ([objects[i] for i in ids] if objects is not None
                     else outbound.export_payloads(self.env, plan, records.browse(ids)))
        except MappingError as error:
            self.env["bj.api.log"]._bj_write_in_transaction(
                outbound.log_values(plan, None, records_text=id_text(ids),
                                    attempt=job.attempt, error=str(error), job_id=job.id),
                plan.secrets)
            job._bj_finish("dead", str(error))
            job._bj_notify_dead()
            return None
        payload = items if plan.is_paginated or len(items) > 1 else items[0]
        return (job.id, json.dumps(payload), id_text(ids))

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
        self.jobs.browse([row[0] for row in merged or ()]).invalidate_recordset(
            ["state", "last_error"])

    def _record_results(self, results):
        """Write the jobs' outcomes and one log row per attempt, in bulk."""
        if not results:
            return
        log_model = self.env["bj.api.log"].sudo()
        # In the worker's transaction: a log row commits with the outcome it records.
        max_size = log_model._bj_body_max_size()
        log_model._bj_insert_rows(self.env.cr, [log_model._bj_prepare_log_values(
            outbound.log_values(request.plan, result, body=request.body,
                                records_text=request.res_ids, attempt=request.attempt,
                                headers=request.headers, job_id=request.job_id),
            request.plan.secrets, max_size) for request, result in results])
        now = self.jobs._bj_now()
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
            self.jobs._bj_wake_worker(wake_at)
        self.jobs.browse(dead)._bj_notify_dead()

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
            [self.jobs._bj_now(), self.env.uid, *(value for row in rows for value in row)],
        )
        self.jobs.browse([row[0] for row in rows]).invalidate_recordset(
            [*names, "write_date", "write_uid"])
