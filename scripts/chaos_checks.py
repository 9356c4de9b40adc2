"""The judging side of ``make chaos`` (scripts/chaos.py): plain Python on what the
sink recorded, tested without Odoo in scripts/tests/test_chaos_checks.py.

A request the sink recorded has at least ``at`` (epoch seconds of arrival),
``stream``, ``res_id``, ``body``, ``key`` (its Idempotency-Key) and ``fate``.
A fault's window is ``(start, end)`` in epoch seconds.
"""

import collections
import datetime
import json
import re

# A retry sooner than its Retry-After minus this is early (seconds).
EARLY_TOLERANCE = 0.01
# Delivery stalls: no request reaches the sink for this long while jobs are
# unfinished, outside a fault's window (its duration plus FAULT_GRACE).
STALL_LIMIT = 25
FAULT_GRACE = 15
# The addon's message for a redirect it refuses to follow (a dead job's last error).
REFUSED_REDIRECT = re.compile(r"→ Location \S+, not followed")
# An Odoo log record's first line: its time (local time, as Odoo's logging writes it) and level.
LOG_RECORD = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \d+ (\w+) ")


def version_of(body):
    try:
        return int(body.get("ref"))
    except (AttributeError, TypeError, ValueError):
        return None


def canonical(body):
    return json.dumps(body, sort_keys=True)


def overlaps(start, end, windows):
    return any(start <= w_end + FAULT_GRACE and end >= w_start for w_start, w_end in windows)


def stream_state(stream, records, accepted, acknowledged):
    """The sink's state of each record of a stream (the body of the last request it
    accepted for it, in order of arrival) against Odoo's."""
    last, highest, regressions = {}, {}, []
    for delivery in accepted:
        if delivery.stream != stream:
            continue
        version = version_of(delivery.body)
        top = highest.get(delivery.res_id)
        if top is not None and (version is None or version < top):
            regressions.append(delivery)
        highest[delivery.res_id] = max(top or 0, version or 0)
        last[delivery.res_id] = delivery
    mismatched = [rid for rid, state in records.items()
                  if rid not in last or last[rid].body != state]
    strays = {rid for rid in last if rid not in records}
    lost = 0
    for rid, versions in acknowledged.items():
        got = version_of(last[rid].body) if rid in last else -1
        lost += sum(1 for version in versions if version > (got if got is not None else -1))
    return last, mismatched, strays, lost, regressions


def early_retries(primary, windows, asked_for):
    """Attempts sent sooner after an answer than the Retry-After it asked for (sink
    clock), outside a fault's window: ([(gap, asked)], attempts that followed such
    an answer).  ``asked_for`` maps a fate to the Retry-After of its answers."""
    by_key = collections.defaultdict(list)
    for delivery in primary:
        if delivery.key:
            by_key[delivery.key].append(delivery)
    early, paired = [], 0
    for deliveries in by_key.values():
        for first, then in zip(deliveries, deliveries[1:], strict=False):
            asked = asked_for.get(first.fate)
            if asked is None:
                continue
            paired += 1
            gap = then.at - first.at
            if gap < asked - EARLY_TOLERANCE and not overlaps(first.at, then.at, windows):
                early.append((gap, asked))
    return early, paired


def uncovered(start, end, windows):
    """The longest part of [start, end] outside every fault's window (plus its grace)."""
    longest, cursor = 0, start
    for w_start, w_end in sorted(windows):
        if w_start >= end or w_end + FAULT_GRACE <= cursor:
            continue
        longest = max(longest, w_start - cursor)
        cursor = max(cursor, w_end + FAULT_GRACE)
    return max(longest, end - cursor)


def stalls(primary, windows, started, ended, drained):
    """Stretches longer than STALL_LIMIT without a request reaching the sink while
    jobs were unfinished, outside the faults' windows; and the longest stretch."""
    moments = [started] + sorted(d.at for d in primary if started <= d.at <= ended)
    if not drained:
        moments.append(ended)
    found = [(uncovered(first, then, windows), first)
             for first, then in zip(moments, moments[1:], strict=False)]
    return ([(gap, first) for gap, first in found if gap > STALL_LIMIT],
            max(found, default=(0, started)))


def refused_redirect(error):
    return bool(REFUSED_REDIRECT.search(error or ""))


def merged(job):
    """Whether ``job`` was cancelled as merged: an older job's payload, built
    after it was queued, carried its change (``_merge_younger_jobs``)."""
    return job.state == "cancelled" and (job.last_error or "").startswith("Merged")


def delivered(job):
    """Whether ``job``'s change reached the sink: sent, or carried by an older job."""
    return job.state == "done" or merged(job)


def last_retry(by_id, job):
    """The job at the end of ``job``'s chain of Retries (``by_id``: jobs by id)."""
    seen = set()
    while job.retried_as in by_id and job.id not in seen:
        seen.add(job.id)
        job = by_id[job.retried_as]
    return job


def dead_jobs(jobs, retried):
    """After the operator's Retry: (ids of jobs dead for another reason than a refused
    redirect, ids of jobs dead from a refused redirect not retried and delivered: the
    last job of its chain of Retries is ``delivered``).
    ``jobs`` have ``id``, ``state``, ``last_error`` and ``retried_as`` (the job a
    Retry queued in its place, else None); ``retried`` holds ids."""
    by_id = {job.id: job for job in jobs}
    other = [job.id for job in jobs
             if job.state == "dead" and not refused_redirect(job.last_error)]
    undelivered = [job.id for job in jobs
                   if (job.id in retried and not delivered(last_retry(by_id, job)))
                   or (job.id not in retried and job.state == "dead"
                       and refused_redirect(job.last_error))]
    return other, undelivered


def log_errors(lines):
    """The ERROR and CRITICAL records of an Odoo log: [(epoch, [their lines])], a
    record's traceback being the lines up to the next record."""
    found, current = [], None
    for line in lines:
        match = LOG_RECORD.match(line)
        if match:
            current = None
            if match.group(2) in ("ERROR", "CRITICAL"):
                at = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
                current = [line]
                found.append((at.timestamp(), current))
        elif current is not None:
            current.append(line)
    return found


def outside_windows(records, windows):
    """The (epoch, ...) records outside every fault's window (plus its grace)."""
    return [record for record in records
            if not any(start <= record[0] <= end + FAULT_GRACE for start, end in windows)]
