"""The original entry point's call: send records now, retry inline within a time
budget, and queue in the outbox whatever could not be delivered.

``bj.api.sync.config._make_outbound_http_request`` runs one ``OutboundCall``.
With T the longest time one attempt may wait for the server
(``retry.attempt_seconds``: connect + read timeouts):

1. every record, or page when paginated, is sent once, in order, whatever
   became of the others: at most T each;
2. then retryable failures (``retry.outcome``) are retried, at most
   ``retry.INLINE_MAX_ATTEMPTS`` attempts per request in all (Maximum Attempts
   when lower), each after its backoff or the server's longer Retry-After, in
   a window of ``retry.INLINE_RETRY_WINDOW`` × T: a retry whose wait and whole
   attempt would end past the window is not made.

A call therefore never waits longer than (requests + INLINE_RETRY_WINDOW) × T.

The call and the Outbound Queue keep one order per record.  Before sending,
the call locks its records' rows (``_bj_lock_records``) and looks at the
unfinished jobs of the configuration that hold them (``_bj_jobs_of_records``,
the freshest view: this transaction's own jobs, the others as committed now):

* a page is *held* when one of them was not queued by the caller's own
  transaction, or has a payload or attempts: it is not sent, and waits in the
  queue behind that job as a job built at its first attempt, which therefore
  carries at least the state the call would have sent.  A committed job,
  however fresh, holds too: were the call to send its state under its key and
  the caller roll back, the job would come back never attempted and send an
  older state under that key;
* otherwise the call takes over the never-attempted jobs of the page's records
  that its own transaction queued (nobody else sees them; they vanish with a
  rollback): its attempts carry the oldest one's Idempotency-Key and
  X-BJET-Event when that job covers exactly the page's records (else a fresh
  key and "manual": a page with a record the remote knows is no creation), that
  job is settled with the outcome, and the others are merged into it, the
  payload sent covering their changes.

The attempts' log rows are written on a cursor of their own with no link to a
job, so that they survive the caller's rollback without waiting; the link to
the job is written once the caller's transaction commits it (a rollback takes
the job away, and the rows stay unlinked).

What was not delivered stays queued under the key and with the payload that
were attempted: retryable failures pending, due when their backoff ends; any
other failure (a 4xx answer, a redirect not followed, a mapping or URL
placeholder error) dead at once, as the queue would leave it, and so is a page
that the Run As User cannot export now (off, or without access to a field or
record), so that it shows in the Outbound Queue with Retry.

Everything is written in the caller's transaction: the jobs commit or roll
back with the changes whose state they carry.
"""

import heapq
import json
import time
import uuid
from datetime import timedelta

from odoo import _
from odoo.exceptions import UserError

from ..core import http_client, retry
from ..core.exceptions import MappingError
from ..core.outbound_result import OutboundResult
from ..core.record_ids import id_list, id_text
from . import outbound
from .delivery_worker import EVENT_HEADER
from .scripts import script_deadline

# What a page's export may fail with: its mapping, or the Run As User (off, or
# without access to a field or record).  The page is dead and queued as such.
EXPORT_ERRORS = (MappingError, UserError)


class Page:
    """One request of the call: its records, its body and what became of it."""

    def __init__(self, records):
        self.records = records
        # The never-attempted jobs of the caller's transaction it took over,
        # oldest first: their state goes out with it.
        self.jobs = None
        # The one of them whose key and event it carries (the oldest, when it
        # covers exactly the page's records): settled with its outcome.
        self.job = None
        self.key = str(uuid.uuid4())
        self.event = "manual"
        self.held_by = []  # older unfinished jobs of its records: it is not sent
        self.payload = None  # JSON object (array when paginated); None: export failed
        self.body = None
        self.attempts = 0
        self.result = None  # HttpResult of the last attempt
        self.verdict = None  # retry.SUCCESS, RETRY or DEAD
        self.error = None  # why it is not delivered, in plain words
        self.due = None  # clock time of its next attempt, after a retryable failure
        self.log_id = False  # log row of its last attempt
        self.log_ids = []  # log rows of its attempts, linked to its job after commit

    @property
    def delivered(self):
        return self.verdict == retry.SUCCESS


class OutboundCall:
    """One synchronous call of the entry point, in the caller's transaction.

    ``clock`` and ``sleep`` are the call's time: tests replace them so that
    backoff waits cost nothing.
    """

    clock = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    def __init__(self, env, plan, timeout=None):
        self.env = env
        self.plan = plan
        if timeout is None:
            timeout = plan.delivery.timeout
        elif isinstance(timeout, list | tuple):
            timeout = tuple(timeout)
        # Called from a Python Script: no wait outlives the script's time budget
        # (requests' timeouts are not its frames, which alone the budget stops).
        self.deadline = script_deadline()
        if self.deadline is not None:
            left = max(self.deadline - time.monotonic(), 0.001)
            timeout = tuple(min(part, left) for part in (
                timeout if isinstance(timeout, tuple) else (timeout, timeout)))
        self.timeout = timeout
        self.attempt_seconds = retry.attempt_seconds(timeout)
        self.max_attempts = min(plan.delivery.max_attempts, retry.INLINE_MAX_ATTEMPTS)
        self.headers = outbound.request_headers(plan)
        self.log_ids = []

    def run(self, records, skipped):
        """Send ``records`` (in scope; ``skipped`` the ids left out) and return the
        entry point's answer (see ``_make_outbound_http_request``)."""
        answer = OutboundResult(success=False, status_code=None, data=None, error=None,
                                log_id=False, log_ids=self.log_ids, skipped_ids=skipped,
                                unsent_ids=[], held_ids=[], queued_job_ids=[])
        if not records:
            answer["error"] = _(
                "Nothing to send: records %(ids)s do not exist, are outside the Filter Domain "
                "of %(name)r or hidden from its Run As User.", ids=skipped, name=self.plan.name)
            return answer
        pages = self._pages(records)
        self._take_over_jobs(records, pages)
        self._export(records, [page for page in pages if not page.held_by])
        for page in pages:
            if page.body is not None:
                self._attempt(page)
        self._retry(pages)
        undelivered = [page for page in pages if not page.delivered]
        last = (undelivered or pages)[-1]
        answer.update(
            success=not undelivered,
            status_code=last.result.status_code if last.result else None,
            data=self._data(pages[0]) if len(pages) == 1 else [self._data(p) for p in pages],
            error=last.error,
            log_id=last.log_id,
            unsent_ids=[i for page in undelivered for i in page.records.ids],
            held_ids=[i for page in pages if page.held_by for i in page.records.ids],
            queued_job_ids=self._settle(pages).ids,
        )
        return answer

    @staticmethod
    def _data(page):
        return page.result.data if page.result else None

    def _log(self, page, values):
        page.log_id = self.env["bj.api.log"]._bj_write_log(values, self.plan.secrets)
        page.log_ids.append(page.log_id)
        self.log_ids.append(page.log_id)

    def _pages(self, records):
        size = self.plan.batch_size
        return [Page(records[start:start + size]) for start in range(0, len(records), size)]

    def _take_over_jobs(self, records, pages):
        """Lock the records; hold back each page that an older unfinished job
        holds, give the others the jobs they take over (see the module's
        docstring)."""
        jobs_model = self.env["bj.api.sync.job"].sudo()
        jobs_model._bj_lock_records(records)
        unfinished = jobs_model._bj_jobs_of_records(self.plan, records.ids)
        for page in pages:
            ids = set(page.records.ids)
            mine = [(job_id, free and set(job_ids) <= ids)
                    for job_id, job_ids, free in unfinished if ids.intersection(job_ids)]
            # A free job that also holds records of another page stays whole,
            # built at its first attempt: it holds this page like a busy one.
            page.held_by = [job_id for job_id, taken in mine if not taken]
            page.jobs = jobs_model.browse([job_id for job_id, taken in mine if taken])
            page.job = page.jobs[:1].filtered(
                lambda job, ids=ids: set(id_list(job.res_ids)) == ids)
            if page.job and not page.held_by:
                page.key, page.event = page.job.idempotency_key, page.job.event
            if page.held_by:
                page.error = _(
                    "Not sent: older deliveries %(jobs)s of records %(ids)s are unfinished; "
                    "queued behind them.", jobs=page.held_by, ids=page.records.ids)

    def _export(self, records, pages):
        """The bodies of ``pages``; a page whose records cannot be exported is
        dead (and logged), the others are still sent."""
        plan = self.plan
        sent = records.browse([i for page in pages for i in page.records.ids])
        try:
            objects = dict(zip(sent.ids, outbound.export_payloads(self.env, plan, sent),
                               strict=True))
        except EXPORT_ERRORS:
            objects = None  # find the culprit page by page
        for page in pages:
            try:
                chunk = ([objects[i] for i in page.records.ids] if objects is not None
                         else outbound.export_payloads(self.env, plan, page.records))
            except EXPORT_ERRORS as error:
                page.verdict, page.error = retry.DEAD, str(error)
                self._log(page, outbound.log_values(
                    plan, None, records_text=id_text(page.records.ids), error=page.error))
                continue
            page.payload = chunk if plan.is_paginated else chunk[0]
            page.body = json.dumps(page.payload)

    def _attempt(self, page):
        """Send ``page`` once, log the attempt and judge its result."""
        delivery = self.plan.delivery
        page.attempts += 1
        headers = {**self.headers, http_client.IDEMPOTENCY_HEADER: page.key,
                   EVENT_HEADER: page.event}
        result = page.result = http_client.send_json(
            delivery.method, delivery.url, page.body, page.payload, headers, self.timeout,
            dict(delivery.options))
        self._log(page, outbound.log_values(
            self.plan, result, page.body, id_text(page.records.ids), attempt=page.attempts,
            headers=headers))
        page.verdict = retry.outcome(result.status_code, result.transient_error)
        page.error = None if result.ok else (
            result.error or _("HTTP %(status)s", status=result.describe()))
        if page.verdict == retry.RETRY:
            page.due = self.clock() + retry.next_delay(
                page.attempts, delivery.base_delay, delivery.max_delay,
                retry.parse_retry_after(result.header("Retry-After")))

    def _retry(self, pages):
        """Retry the retryable failures, soonest due first, inside the window."""
        window_end = self.clock() + retry.INLINE_RETRY_WINDOW * self.attempt_seconds
        if self.deadline is not None:
            window_end = min(window_end, self.clock() + self.deadline - time.monotonic())
        waiting = [(page.due, index) for index, page in enumerate(pages)
                   if page.verdict == retry.RETRY and page.attempts < self.max_attempts]
        heapq.heapify(waiting)
        while waiting:
            due, index = heapq.heappop(waiting)
            start = max(due, self.clock())
            if start + self.attempt_seconds > window_end:
                break  # nor any later one: they are due later still
            if start > self.clock():
                self.sleep(start - self.clock())
            page = pages[index]
            self._attempt(page)
            if page.verdict == retry.RETRY and page.attempts < self.max_attempts:
                heapq.heappush(waiting, (page.due, index))

    def _settle(self, pages):
        """Settle the jobs the pages took over and queue what was not delivered:
        one job per page, under the key and with the payload attempted, which
        carries the outcome of its inline attempts; return the jobs that wait."""
        jobs_model = self.env["bj.api.sync.job"].sudo()
        jobs, dead = jobs_model.browse(), jobs_model.browse()
        now, wake_at = jobs_model._bj_now(), None
        for page in pages:
            if page.held_by:
                # Behind the older job: built at its first attempt, after it.
                covered = {i for job in page.jobs for i in id_list(job.res_ids)}
                job = page.jobs if covered == set(page.records.ids) else (
                    jobs_model._bj_enqueue(self.plan, page.records, "manual"))
                jobs |= job
                continue
            (page.jobs - page.job)._bj_finish("cancelled", _(
                "Merged into a direct call's delivery, whose payload carries the records' "
                "state including this change."))
            job = page.job
            if not job:
                if page.delivered:
                    continue
                job = jobs_model._bj_enqueue(self.plan, page.records, "manual")
            job._bj_link_logs(page.log_ids)
            values = {
                "attempt": page.attempts,
                "idempotency_key": page.key,
                "payload": page.body,
                "last_error": page.error,
                "last_status_code": (page.result.status_code or 0) if page.result else 0,
            }
            if page.delivered:
                values.update(state="done", date_done=now, locked_at=False,
                              attempt_limit=max(job.attempt_limit, page.attempts))
                job.write(values)
                continue
            if page.verdict == retry.RETRY:
                # A fresh budget of attempts, from when its backoff ends.
                next_at = now + timedelta(seconds=max(page.due - self.clock(), 0))
                values.update(attempt_limit=page.attempts + self.plan.delivery.max_attempts,
                              next_attempt_at=next_at)
                wake_at = min(wake_at or next_at, next_at)
            else:
                values.update(state="dead", attempt_limit=page.attempts)
                dead |= job
            job.write(values)
            jobs |= job
        dead._bj_notify_dead()
        if wake_at and wake_at > now:
            jobs_model._bj_wake_worker(wake_at)
        return jobs
