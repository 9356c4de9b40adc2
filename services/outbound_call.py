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
What was not delivered is queued as ``bj.api.sync.job`` rows (event "manual"):
retryable failures pending, due when their backoff ends; any other failure
(a 4xx answer, a redirect not followed, a mapping or URL placeholder error)
dead at once, as the queue would leave it, and so is a page that the Run As
User cannot export now (off, or without access to a field or record), so that
it shows in the Outbound Queue with Retry.
"""

import heapq
import json
import time
from datetime import timedelta

from odoo import _
from odoo.exceptions import UserError

from ..core import http_client, retry
from ..core.exceptions import MappingError
from ..core.outbound_result import OutboundResult
from ..core.record_ids import id_text
from . import outbound
from .scripts import script_deadline

# What a page's export may fail with: its mapping, or the Run As User (off, or
# without access to a field or record).  The page is dead and queued as such.
EXPORT_ERRORS = (MappingError, UserError)


class Page:
    """One request of the call: its records, its body and what became of it."""

    def __init__(self, records):
        self.records = records
        self.payload = None  # JSON object (array when paginated); None: export failed
        self.body = None
        self.attempts = 0
        self.result = None  # HttpResult of the last attempt
        self.verdict = None  # retry.SUCCESS, RETRY or DEAD
        self.error = None  # why it is not delivered, in plain words
        self.due = None  # clock time of its next attempt, after a retryable failure
        self.log_id = False  # log row of its last attempt

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
                                unsent_ids=[], queued_job_ids=[])
        if not records:
            answer["error"] = _(
                "Nothing to send: records %(ids)s do not exist, are outside the Filter Domain "
                "of %(name)r or hidden from its Run As User.", ids=skipped, name=self.plan.name)
            return answer
        pages = self._pages(records)
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
            queued_job_ids=self._queue(undelivered).ids,
        )
        return answer

    @staticmethod
    def _data(page):
        return page.result.data if page.result else None

    def _log(self, page, values):
        page.log_id = self.env["bj.api.log"]._bj_write_log(values, self.plan.secrets)
        self.log_ids.append(page.log_id)

    def _pages(self, records):
        """The call's pages with their bodies; a page whose records cannot be
        exported is dead (and logged), the others are still sent."""
        plan = self.plan
        size = plan.batch_size
        pages = [Page(records[start:start + size]) for start in range(0, len(records), size)]
        try:
            objects = outbound.export_payloads(self.env, plan, records)
        except EXPORT_ERRORS:
            objects = None  # find the culprit page by page
        for index, page in enumerate(pages):
            try:
                chunk = (objects[index * size:(index + 1) * size] if objects is not None
                         else outbound.export_payloads(self.env, plan, page.records))
            except EXPORT_ERRORS as error:
                page.verdict, page.error = retry.DEAD, str(error)
                self._log(page, outbound.log_values(
                    plan, None, records_text=id_text(page.records.ids), error=page.error))
                continue
            page.payload = chunk if plan.is_paginated else chunk[0]
            page.body = json.dumps(page.payload)
        return pages

    def _attempt(self, page):
        """Send ``page`` once, log the attempt and judge its result."""
        delivery = self.plan.delivery
        page.attempts += 1
        result = page.result = http_client.send_json(
            delivery.method, delivery.url, page.body, page.payload, self.headers, self.timeout,
            dict(delivery.options))
        self._log(page, outbound.log_values(
            self.plan, result, page.body, id_text(page.records.ids), attempt=page.attempts,
            headers=self.headers))
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

    def _queue(self, pages):
        """Queue the undelivered ``pages``: one job each, which carries the outcome
        of its inline attempts; return the jobs."""
        jobs_model = self.env["bj.api.sync.job"].sudo()
        jobs, dead = jobs_model.browse(), jobs_model.browse()
        now, wake_at = jobs_model._bj_now(), None
        for page in pages:
            job = jobs_model._bj_enqueue(self.plan, page.records, "manual")
            values = {
                "attempt": page.attempts,
                "last_error": page.error,
                "last_status_code": (page.result.status_code or 0) if page.result else 0,
            }
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
