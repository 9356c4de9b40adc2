"""The outbound delivery worker: sends the jobs of ``bj.api.sync.job``.

A plain class, not a model: each call of the delivery cron
(``bj.api.sync.job._cron_deliver_jobs``) runs one ``DeliveryWorker``, as OCA
``queue_job`` separates its runner from its job records.  A run:

* holds a lease for its whole length: a row of ``bj_api_sync_lease`` locked
  (``FOR UPDATE``) by a transaction of its own, kept open on a cursor of its
  own, as OCA ``queue_job`` locks its job rows; the jobs it claims name it.
  The lock ends with that transaction, whatever ends it (the run's end, an
  error, a killed worker or connection), never later: nothing is left on a
  connection that goes back to Odoo's pool;
* gives back the jobs of dead runs: a lease row that this run can lock
  (``SKIP LOCKED``) is a dead run's, so a ``running`` job naming it, or no
  lease at all, has lost its worker (no timer involved);
* claims a few due jobs at a time in a short transaction of its own;
* builds their payloads, one configuration at a time (a configuration whose
  lines run scripts is claimed one job at a time, and the other
  configurations' due jobs are claimed between two of them), each in a
  savepoint of a transaction whose single snapshot serves both the export and
  the merge of younger jobs that the export already covers; a job that fails
  there fails alone, and a job not built in time is given back without
  counting an attempt;
* sends them from a small thread pool (only while its lease holds) and
  commits each outcome within about a second of its answer; every write to a
  claimed job (payload, give-back, outcome) is fenced: only the run's claim of
  that attempt may make it;
* stays within the time limit of the worker it runs in as Odoo's watchdog
  counts it (``services/cron_clock.py``): the cron's (``limit_time_real_cron``,
  else ``limit_time_real``) in a scheduled action, the HTTP worker's
  (``limit_time_real``) outside one (Run Manually, a server action),
  payloads and the requests in flight at their timeouts included, and waits
  for retries that fall due before its end instead of leaving them to the
  next cron tick.
"""

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque, namedtuple
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import datetime, timedelta, timezone

import psycopg2

from odoo import _
from odoo.exceptions import UserError
from odoo.tools import SQL
from odoo.tools import config as odoo_config

from ..core import http_client, retry, watchdog
from ..core.claim import earliest_claimable, select_claimable
from ..core.exceptions import MappingError, ScriptTimedOut
from ..core.record_ids import id_list, id_text
from ..core.transactions import auto_commit
from . import cron_clock, outbound
from .scripts import scripts_end_by

_logger = logging.getLogger("bj.api.outbound")

WORKER_CRON = "bjet_api_sync.ir_cron_bj_api_sync_deliver"
# Jobs claimed (and prepared) at a time, when fewer than a sender's share are ready.
CLAIM_BATCH_SIZE = 64
# Requests a worker sends at the same time.
SEND_CONCURRENCY = 4
# Outcomes are committed within this many seconds of their answer.
RESULTS_COMMIT_INTERVAL = 1
EVENT_HEADER = "X-BJET-Event"
# Candidates considered per job claimed: several workers claim concurrently.
CLAIM_CANDIDATE_FACTOR = 4
# The table of runs' leases (created by the job model's init, dropped by the
# uninstall hook): one row per run.
LEASE_TABLE = "bj_api_sync_lease"
# The cron's watchdog limit when Odoo sets none, and the share of what is left
# of it a run may use: a cron worker runs every due scheduled action in one go
# under that limit, and the others after this one, a copy of the delivery
# action among them (see docs/OPERATIONS.md), need the rest.
DEFAULT_TIME_LIMIT = 120
RUN_SHARE = 0.4
# Seconds kept free before the end of a run, beyond the requests in flight.
RUN_MARGIN = 1
# A request is sent only with at least this many seconds left for it.
MIN_REQUEST_SECONDS = 2
# Odoo's cron workers look for due scheduled actions about once a minute (60 s plus
# up to 10): a retry due later than a run can wait would otherwise wait for that.
CRON_POLL_GAP = 70
# A run with nothing to send waits (polling every IDLE_POLL seconds) for retries
# falling due before the cron would look again; tests turn it off to take one
# step at a time.
WAIT_FOR_RETRIES = True
IDLE_POLL = 1
PARAM_RUN_SECONDS = "bjet_api_sync.delivery_run_seconds"

OUTCOME_COLUMNS = (
    ("state", "varchar"), ("last_status_code", "int"), ("last_error", "text"),
    ("next_attempt_at", "timestamp"), ("date_done", "timestamp"), ("locked_at", "timestamp"),
)
PAYLOAD_COLUMNS = (("payload", "text"), ("res_ids", "varchar"))
OutboundRequest = namedtuple(
    "OutboundRequest", "job_id plan attempt limit res_ids body headers")


def now():
    """UTC now as the jobs' Datetime columns hold it, to the microsecond: due
    times are compared and computed with it (Odoo's ``fields.Datetime.now()``
    drops the microseconds, which would send a retry up to a second early)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _send_request(request, timeout):
    """Send one job's request (in a sender thread: no ORM here); its result
    and when it came, from which a retry's delay counts."""
    delivery = request.plan.delivery
    payload = json.loads(request.body) if http_client.placeholders(delivery.url) else None
    result = http_client.send_json(delivery.method, delivery.url, request.body, payload,
                                   request.headers, timeout, dict(delivery.options))
    return result, now()


def time_limit():
    """Seconds Odoo's watchdog allows the work of this thread; None when there
    is no limit.  In a scheduled action, the cron's (``--limit-time-real-cron``,
    -1 meaning ``--limit-time-real``); outside one (Run Manually, a server
    action, any request), the HTTP worker's ``--limit-time-real``."""
    limit = odoo_config["limit_time_real_cron"] if cron_clock.in_scheduled_action() else None
    if limit is None or limit < 0:
        limit = odoo_config["limit_time_real"]
    return limit if limit and limit > 0 else None


def run_budget(configured=0, used=0):
    """Seconds one run may last: a system parameter, else a share of what the
    watchdog's limit leaves after the ``used`` seconds it counted before the
    run started."""
    limit = time_limit() or DEFAULT_TIME_LIMIT
    return watchdog.run_budget(limit, used, RUN_SHARE, RUN_MARGIN, configured)


class DeliveryWorker:
    """One run of the delivery cron on ``env``'s database: the addon's tables
    as superuser, the exports as each configuration's Run As User.

    The job model keeps the record-level steps the worker calls: ``_bj_now``,
    ``_bj_release``, ``_bj_finish``, ``_bj_notify_dead`` and ``_bj_wake_worker``.
    """

    def __init__(self, env):
        self.env = env(su=True)
        self.jobs = self.env["bj.api.sync.job"]
        self.commit = auto_commit()
        thread = threading.current_thread().name
        # Unique per run: fencing tells this run's claims from any other's.
        self.name = f"{socket.gethostname()}:{os.getpid()}:{thread}:{uuid.uuid4().hex[:8]}"
        configured = self.env["bj.api.log"]._bj_int_param(PARAM_RUN_SECONDS, 0)
        self.budget = run_budget(configured, cron_clock.seconds_used())
        self.deadline = time.monotonic() + self.budget
        # No payload is built once a request could no longer follow it; and once
        # one has been built, the others only in the first half of the run, so
        # that the requests get the other half.  The first one gets all it can:
        # a payload slower than half a run still goes out, or dies of its own
        # attempts, instead of going back to the queue forever.
        self.build_end = self.deadline - RUN_MARGIN - MIN_REQUEST_SECONDS
        self.prepare_deadline = min(time.monotonic() + self.budget / 2, self.build_end)
        self.built = False
        self.built_ids = set()  # jobs whose payload this run wrote, fenced
        self.lease_cr = None  # the cursor whose open transaction holds this run's lease
        self.lease_lost = False
        # The attempt of each job this run claimed: every write to a claimed job
        # is fenced on it (``_update_rows``), as another run may have taken the
        # job over since (this run's lease lost, the job reclaimed, claimed again).
        self.claims = {}
        # The configuration of this run's last claim when its lines run scripts.
        self.scripted_claim = None

    # -- the run ---------------------------------------------------------------

    def run(self):
        """Deliver due jobs until none is left or the run's budget is spent."""
        done = 0
        ready = deque()  # prepared requests waiting for a free sender
        try:
            self._take_lease()
            self._reclaim_abandoned_jobs()
            self._commit()
            self._wake_sibling_workers()
            with ThreadPoolExecutor(SEND_CONCURRENCY, thread_name_prefix="bj-api-send") as pool:
                in_flight, answered, stored_at = {}, [], time.monotonic()
                while True:
                    if len(ready) < SEND_CONCURRENCY and self._time_left() > RUN_MARGIN:
                        ready.extend(self._next_requests())
                    if ready and len(in_flight) < SEND_CONCURRENCY and not self._lease_alive():
                        # Another run may be taking these jobs: none goes out from here.
                        self._give_back(self.jobs.browse([request.job_id for request in ready]))
                        ready.clear()
                    while ready and len(in_flight) < SEND_CONCURRENCY:
                        request = ready.popleft()
                        timeout = self._timeout_left(request)
                        if timeout is None:
                            ready.appendleft(request)
                            break
                        in_flight[pool.submit(_send_request, request, timeout)] = request
                    if not in_flight:
                        if ready or not self._wait_for_work():
                            break
                        continue
                    finished, _pending = wait(in_flight, timeout=RESULTS_COMMIT_INTERVAL,
                                              return_when=FIRST_COMPLETED)
                    answered += [(in_flight.pop(future), *future.result())
                                 for future in finished]
                    # Outcomes together, at most a second after their answer: a
                    # commit per request would cost more than the request.
                    if not in_flight or time.monotonic() - stored_at >= RESULTS_COMMIT_INTERVAL:
                        done += len(answered)
                        self._store_results(answered)
                        answered, stored_at = [], time.monotonic()
                self._give_back(self.jobs.browse([request.job_id for request in ready]))
                self._commit()
        finally:
            self._release_lease()
        # In a scheduled action, Odoo ends it by deleting the cron's triggers
        # made before the action started, the one that woke this run and any
        # that a change committed meanwhile relied on (``_bj_crons_to_wake``):
        # the queue is looked at again once that delete is committed.
        if not cron_clock.after_action(self._schedule_next_run_after_cron):
            self._schedule_next_run()
        return done

    def _time_left(self):
        return self.deadline - time.monotonic()

    def _commit(self):
        if self.commit:
            self.env.cr.commit()  # a run commits its own steps; pylint: disable=invalid-commit

    def _next_requests(self):
        """Claim a few due jobs, build their payloads, and return the requests
        that fit in the run's remaining time (the others go back to the queue).
        A claim whose jobs all finished while preparing (cancelled, dead,
        retried later) is followed by the next one.  Nothing more is claimed
        once the lease is lost: another run may be taking this run's jobs."""
        while self._prepare_time_left() > 0 and self._lease_alive():
            claimed = self._claim(CLAIM_BATCH_SIZE)
            if not claimed:
                break
            requests = [self._outbound_request(job) for job in self._prepare_payloads(claimed)]
            self._commit()
            if requests:
                return requests
        return []

    def _prepare_time_left(self):
        return (self.prepare_deadline if self.built else self.build_end) - time.monotonic()

    def _wait_for_work(self):
        """With nothing on the wire: wait for the next retry, polling every
        IDLE_POLL seconds (for jobs queued meanwhile), when it falls due before
        the cron would look again after this run.  False when the run should
        end now.
        """
        left = self._time_left() - RUN_MARGIN
        next_due = self._seconds_to_next_due()
        if not WAIT_FOR_RETRIES or next_due is None or left <= 0:
            return False
        if next_due > left + CRON_POLL_GAP:
            return False  # the next run is triggered in time for it
        self._commit()  # no snapshot held while waiting
        time.sleep(min(next_due, IDLE_POLL, left))
        return True

    def _seconds_to_next_due(self):
        """Seconds until the next job that can be claimed falls due, or None.

        A job held back by an older unfinished job of its record is not
        waited for: it cannot go before that one, whose own due time counts,
        and the run that finishes that one goes on with it (or wakes the
        cron).  A job due now that the claim did not take (another worker is
        taking it) counts as due in IDLE_POLL seconds.
        """
        cr = self.env.cr
        cr.execute(
            """
            SELECT job.id, job.config_id, job.res_ids, job.state = 'pending', job.next_attempt_at
            FROM bj_api_sync_job job
            JOIN bj_api_sync_config config ON config.id = job.config_id AND config.active
            WHERE job.state IN ('pending', 'running')
            """
        )
        next_at = earliest_claimable(
            [(job_id, config_id, id_list(res_ids), pending, due)
             for job_id, config_id, res_ids, pending, due in cr.fetchall()])
        if next_at is None:
            return None
        seconds = (next_at - self.jobs._bj_now()).total_seconds()
        return seconds if seconds > 0 else IDLE_POLL

    def _schedule_next_run_after_cron(self):
        """``_schedule_next_run`` on a cursor of its own, after the scheduled
        action's end is committed (the run's own cursor is closed by then)."""
        try:
            with self.env.registry.cursor() as cr:
                self.env = self.env(cr=cr)
                self.jobs = self.jobs.with_env(self.env)
                self._schedule_next_run()
        except Exception:  # noqa: BLE001 - the cron's interval picks the work up anyway
            _logger.warning("Could not schedule the next outbound delivery run", exc_info=True)

    def _schedule_next_run(self):
        """Wake the cron again for the work left: early enough that the run
        started then (within CRON_POLL_GAP of the wake-up) can wait for it —
        at once when that is now, so runs follow each other while retries are
        close; no busy loop, since such a run waits out its budget."""
        seconds = self._seconds_to_next_due()
        if seconds is None:
            return
        lead = CRON_POLL_GAP + self.budget
        self.jobs._bj_wake_worker(
            self.jobs._bj_now() + timedelta(seconds=max(seconds - lead, 0))
        )
        self._commit()

    # -- claiming and giving back ----------------------------------------------------

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
        """Mark up to ``limit`` due jobs as running for this run and return them.

        A job is not due while an older unfinished job of its configuration
        shares one of its records: changes of a record go out in the order they
        happened.  ``FOR UPDATE SKIP LOCKED`` lets several workers claim at the
        same time without waiting for or taking each other's jobs.  The jobs
        name this run, whose lease is held before the claim commits, so a
        claimed job is never seen running without a live lease.  Archived
        configurations keep their jobs waiting.
        """
        self.env.flush_all()
        # The locking SELECT is a MATERIALIZED CTE, run once: as ``id IN
        # (subquery)``, a plan that rescans the subquery (table statistics
        # decide) skips the rows just updated at each rescan and claims far
        # more than ``limit``.
        if self.commit:
            # A short transaction of its own: in READ COMMITTED, SKIP LOCKED passes
            # over rows that another worker claimed meanwhile, where Odoo's
            # REPEATABLE READ would fail to serialize.
            self.env.cr.commit()  # pylint: disable=invalid-commit
            self.env.cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        ids, scripted = self._claimable_ids(limit * CLAIM_CANDIDATE_FACTOR)
        rows = self._lock_rows(
            """
            WITH claimed AS MATERIALIZED (
                SELECT id FROM bj_api_sync_job
                 WHERE id = ANY(%(ids)s) AND state = 'pending'
                 ORDER BY id LIMIT %(limit)s
                 FOR UPDATE SKIP LOCKED)
            UPDATE bj_api_sync_job AS job SET state = 'running', attempt = job.attempt + 1,
                   locked_at = %(now)s, worker = %(worker)s,
                   write_date = %(now)s, write_uid = %(uid)s
              FROM claimed WHERE job.id = claimed.id
            RETURNING job.id, job.attempt
            """,
            {"now": self.jobs._bj_now(), "worker": self.name, "uid": self.env.uid,
             # A scripted configuration's jobs one at a time (see _scripts_claimed_alone).
             "limit": 1 if scripted else limit,
             # More candidates than wanted: other workers may be taking the first ones.
             "ids": ids},
        )
        if rows:
            self.scripted_claim = scripted
        self.claims.update(rows or ())
        ids = sorted(row[0] for row in rows or ())
        self._commit()
        jobs = self.jobs.browse(ids)
        jobs.invalidate_recordset(["state", "attempt", "locked_at", "worker"])
        return jobs

    def _claimable_ids(self, wanted):
        """Ids of up to ``wanted`` due jobs that no older unfinished job holds
        back, and the scripted configuration they belong to, if any.

        After a claim of a scripted configuration's job, that configuration's
        jobs are looked at only when no other configuration has a job due, so
        that between two of its builds the run claims and sends the others'.
        """
        if self.scripted_claim:
            found = self._claimable_ids_but(wanted, self.scripted_claim)
            if found[0]:
                return found
        return self._claimable_ids_but(wanted, 0)

    def _claimable_ids_but(self, wanted, skipped_config):
        """``_claimable_ids`` without the due jobs of ``skipped_config``.

        Reads the unfinished jobs in id order, a window at a time, for
        ``select_claimable`` to decide.  Done in Python on plain index scans:
        an anti-join on record overlap would leave the plan to the table
        statistics, which a queue that fills and drains fast outdates.  Rows
        locked by another worker are read too (no SKIP LOCKED here): they
        still hold back younger jobs of their records.
        """
        cr, now = self.env.cr, self.jobs._bj_now()
        seen, chosen, after, configs = set(), [], 0, {}
        while len(chosen) < wanted:
            cr.execute(
                """
                SELECT job.id, job.config_id, job.res_ids FROM bj_api_sync_job job
                JOIN bj_api_sync_config config ON config.id = job.config_id AND config.active
                WHERE job.state = 'pending' AND job.next_attempt_at <= %s AND job.id > %s
                  AND job.config_id != %s
                ORDER BY job.id LIMIT %s
                """,
                [now, after, skipped_config, wanted],
            )
            due = cr.fetchall()
            if not due:
                break
            configs.update((job_id, config_id) for job_id, config_id, _res_ids in due)
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
        return self._scripts_claimed_alone(chosen, configs)

    def _scripts_claimed_alone(self, ids, configs):
        """``ids`` (in id order; ``configs`` maps them to their configuration)
        narrowed so that a configuration whose lines run scripts is claimed
        alone, and its scripted configuration (else None).  Its scripts run
        in this worker: one that runs past Odoo's worker limits gets the
        worker killed, and the attempt the claim counted is then lost by that
        configuration's job only (the claim takes one).  Right after such a
        claim, the other configurations' jobs go first."""
        if not ids:
            return ids, None
        config_model = self.env["bj.api.sync.config"]
        scripted = {config_id for config_id in {configs[i] for i in ids}
                    if config_model.browse(config_id)._bj_plan().has_scripts}
        plain = [i for i in ids if configs[i] not in scripted]
        first = configs[ids[0]]
        if first in scripted and not (self.scripted_claim and plain):
            return [i for i in ids if configs[i] == first], first
        return plain, None

    def _take_lease(self):
        """Lock this run's lease row in a transaction kept open on a cursor of
        its own until the run ends.  The row is committed first (other runs
        must see it to know the run is alive), then locked; a run that meets
        it unlocked in between takes it for a dead run's and deletes it, so
        it is written again until the lock holds a row."""
        self.lease_cr = self.env.registry.cursor()
        cr = self.lease_cr
        while True:
            cr.execute(f"INSERT INTO {LEASE_TABLE} (worker) VALUES (%s) "  # noqa: S608
                       "ON CONFLICT DO NOTHING", [self.name])
            cr.commit()  # the lease is seen by other runs; pylint: disable=invalid-commit
            if self.commit:  # (a test's cursor shares the test's transaction)
                cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            cr.execute(f"SELECT 1 FROM {LEASE_TABLE} WHERE worker = %s FOR UPDATE",  # noqa: S608
                       [self.name])
            if cr.fetchone():
                return

    def _lease_alive(self):
        """Whether this run still holds its lease (its transaction is alive)."""
        if self.lease_lost:
            return False
        try:
            self.lease_cr.execute("SELECT 1", log_exceptions=False)
            return True
        except psycopg2.Error as error:
            self.lease_lost = True
            _logger.warning("Outbound delivery run %s lost its lease (%s): it claims nothing "
                            "more, and the next run takes its unfinished jobs",
                            self.name, str(error).strip())
            return False

    def _release_lease(self):
        """End the lease with its transaction, whatever happened; the row goes
        too (a row left behind is a dead run's, deleted by the next reclaim)."""
        cr, self.lease_cr = self.lease_cr, None
        if cr is None:
            return
        try:
            if not self.lease_lost:
                cr.execute(f"DELETE FROM {LEASE_TABLE} WHERE worker = %s",  # noqa: S608
                           [self.name], log_exceptions=False)
                cr.commit()  # pylint: disable=invalid-commit
        except psycopg2.Error:
            _logger.info("Could not delete the lease of outbound delivery run %s", self.name,
                         exc_info=True)
        finally:
            try:
                cr.close()  # rolls back: the lock ends here at the latest
            except psycopg2.Error:
                _logger.info("Closing the lease cursor of %s failed", self.name, exc_info=True)

    def _give_back(self, jobs, due_at=None):
        """Claimed jobs this run will not send: pending again (due at
        ``due_at``, else when they were), the attempt undone (fenced)."""
        if jobs:
            self.env.flush_all()
            self.env.cr.execute(
                """
                UPDATE bj_api_sync_job AS job SET state = 'pending', attempt = job.attempt - 1,
                       locked_at = NULL, next_attempt_at = COALESCE(%s, job.next_attempt_at)
                FROM unnest(%s::int[], %s::int[]) AS claim(id, attempt)
                WHERE job.id = claim.id AND job.state = 'running' AND job.worker = %s
                  AND job.attempt = claim.attempt
                """,
                [due_at, jobs.ids, [self.claims.get(job_id, 0) for job_id in jobs.ids],
                 self.name],
            )
            jobs.invalidate_recordset(["state", "attempt", "locked_at", "next_attempt_at"])

    def _reclaim_abandoned_jobs(self):
        """Give back the jobs of runs that died (or were killed) mid-attempt.

        A lease row this run can lock belongs to a run that ended without
        deleting it (its transaction, hence its lock, is gone); a running job
        naming such a run, or a run without a lease row, has lost its worker.
        Its attempt was cut short: it is logged as such, and the job is
        retried (or dead-lettered when it has no attempt left).  The dead
        leases are deleted with the reclaim.
        """
        self.env.flush_all()
        if self.commit:
            # READ COMMITTED: a lease or claim committed after this transaction
            # began must be seen (a live run), not fail to serialize.
            self.env.cr.commit()  # pylint: disable=invalid-commit
            self.env.cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        dead = [row[0] for row in self._lock_rows(
            f"SELECT worker FROM {LEASE_TABLE} WHERE worker != %s "  # noqa: S608
            "FOR UPDATE SKIP LOCKED", [self.name]) or ()]
        rows = self._lock_rows(
            f"""
            SELECT id FROM bj_api_sync_job job
            WHERE state = 'running' AND (worker = ANY(%s) OR NOT EXISTS (
                SELECT 1 FROM {LEASE_TABLE} lease WHERE lease.worker = job.worker))
            FOR UPDATE OF job SKIP LOCKED
            """,  # noqa: S608
            [dead],
        )
        abandoned = self.jobs.browse(sorted(row[0] for row in rows or ()))
        if abandoned:
            self._give_back_abandoned(abandoned)
        if dead:
            self.env.cr.execute(f"DELETE FROM {LEASE_TABLE} WHERE worker = ANY(%s)",  # noqa: S608
                                [dead])
        return abandoned

    def _give_back_abandoned(self, abandoned):
        _logger.warning("Reclaiming %s outbound jobs left running by a stopped worker: %s",
                        len(abandoned), abandoned.ids)
        # The claim committed the attempt before the payload was built: a job
        # without one lost its worker while its export and scripts ran.
        reasons = {
            False: _("The worker stopped while building this delivery's payload: its export "
                     "or a script of its lines ran past Odoo's worker limits (time or memory), "
                     "or the server stopped."),
            True: _("The worker sending this delivery stopped before recording the result."),
        }
        log_model = self.env["bj.api.log"]
        for job in abandoned:
            plan = job.config_id._bj_plan()
            log_model._bj_write_in_transaction(
                outbound.log_values(plan, None, records_text=job.res_ids, attempt=job.attempt,
                                    error=_("Attempt %(attempt)s cut short: %(message)s",
                                            attempt=job.attempt,
                                            message=reasons[bool(job.payload)]),
                                    job_id=job.id),
                plan.secrets,
            )
        dead = self.jobs.browse()
        for built, jobs in abandoned.grouped(lambda job: bool(job.payload)).items():
            exhausted = jobs.filtered(lambda job: job.attempt >= job.attempt_limit)
            (jobs - exhausted)._bj_release(reasons[built])
            exhausted._bj_finish("dead", reasons[built])
            dead |= exhausted
        dead._bj_notify_dead()

    def _count_due(self):
        return self.jobs.search_count([("state", "=", "pending"),
                                       ("next_attempt_at", "<=", self.jobs._bj_now()),
                                       ("config_id.active", "=", True)])

    def _wake_sibling_workers(self):
        """With a backlog, wake the other delivery crons (copies of ours) too.

        One ir.cron runs in one thread at a time; administrators scale delivery
        out by duplicating the delivery scheduled action (see docs/OPERATIONS.md).
        """
        if self._count_due() <= CLAIM_BATCH_SIZE:
            return
        main = self.env.ref(WORKER_CRON, raise_if_not_found=False)
        for cron in self.jobs._bj_delivery_crons().filtered(lambda cron: cron != main):
            cron._trigger()

    # -- payloads ----------------------------------------------------------------------

    def _prepare_payloads(self, jobs):
        """Build the payload of claimed ``jobs`` that have none yet; return those to send.

        This transaction begins with the export, so the export and the merge of
        younger jobs see one snapshot: a younger job merged here was committed
        before the records were read, and its change is in the payload; a change
        committed after the read keeps its job.  One export per configuration
        (per job when its lines run scripts, whose time adds up), in a
        savepoint: whatever fails there (a script, a value JSON cannot encode,
        an access or database error) fails that configuration's jobs alone, job
        by job.  The run's budget covers this: scripts stop at the end of the
        time left for building, and the jobs not built by then go back to the
        queue, their attempt not counted.  A part's records are share-locked
        (``_defer_records_in_use``) just before it is built, until its payload
        commits: a scripted job's payload commits as soon as it is built, so
        that a user's save of a record waits at most for its own job's script,
        never for the other jobs' (each scripted job is a transaction of its
        own, its merge seeing the snapshot its export read).
        """
        # Jobs claimed again with the payload of an earlier attempt are sent as they are.
        prebuilt = jobs.filtered("payload")
        for config, unbuilt in (jobs - prebuilt).grouped("config_id").items():
            plan = config._bj_plan()
            for claimed in list(unbuilt) if plan.has_scripts else [unbuilt]:
                if self._prepare_time_left() <= 0:
                    self._give_back(claimed)
                    continue
                part = self._defer_records_in_use(plan, claimed)
                if not part:
                    continue
                try:
                    with self.env.cr.savepoint(), scripts_end_by(
                            time.monotonic() + self._prepare_time_left()):
                        rows = self._write_payloads(self._build_payloads(plan, part))
                        if rows:
                            self._merge_younger_jobs(
                                plan, [i for row in rows for i in id_list(row[2])])
                except Exception as error:  # noqa: BLE001 - find the culprit job by job
                    self.env.invalidate_all()
                    if len(part) == 1:
                        self._payload_failed(plan, part, error)
                    else:
                        for job in part:
                            self._build_alone(plan, job)
                self.built = True
                if plan.has_scripts:
                    self._commit()  # its records' share locks end with its payload
        return jobs.filtered(lambda job: job.id in self.built_ids or (
            job in prebuilt and job.state == "running"))

    def _write_payloads(self, rows):
        """Write built ``(id, payload, res_ids)`` rows, fenced; return those
        written: only they are sent."""
        written = self._update_rows(PAYLOAD_COLUMNS, rows, fence=True) if rows else set()
        self.built_ids |= written
        return [row for row in rows if row[0] in written]

    def _defer_records_in_use(self, plan, jobs):
        """Give back, due again in IDLE_POLL seconds and without counting the
        attempt, the unbuilt ``jobs`` whose records another open transaction
        has locked or changed since this one's snapshot (a direct call of the
        entry point sending them, a write not committed yet): a payload read
        now would miss that state, which may go out first.  The others' rows
        stay share-locked until the payloads are committed, so that no direct
        call sends them meanwhile (the caller builds them at once, then
        commits).  Returns the others."""
        ids = list({i for job in jobs for i in id_list(job.res_ids)})
        table = SQL.identifier(self.env[plan.model]._table)
        rows = self._lock_rows(
            SQL("SELECT id FROM %s WHERE id = ANY(%s) FOR SHARE SKIP LOCKED", table, ids), None)
        self.env.cr.execute(SQL("SELECT id FROM %s WHERE id = ANY(%s)", table, ids))
        # Records gone stay with their jobs: the build cancels those.
        in_use = {row[0] for row in self.env.cr.fetchall()} - {row[0] for row in rows or ()}
        busy = jobs.filtered(lambda job: in_use.intersection(id_list(job.res_ids)))
        self._give_back(busy, self.jobs._bj_now() + timedelta(seconds=IDLE_POLL))
        return jobs - busy

    def _build_payloads(self, plan, jobs):
        """``(id, payload, res_ids)`` of the ``jobs`` of one configuration."""
        records, _skipped = outbound.records_in_scope(
            self.env, plan, list(dict.fromkeys(i for job in jobs for i in id_list(job.res_ids))))
        objects = dict(zip(records.ids, outbound.export_payloads(self.env, plan, records),
                           strict=True))
        rows = []
        for job in jobs:
            ids = [i for i in id_list(job.res_ids) if i in objects]
            if not ids:
                self._finish(job, "cancelled", _("The records no longer exist, are outside "
                                                 "the Filter Domain or hidden from the Run As "
                                                 "User: nothing to send."))
                continue
            items = [objects[i] for i in ids]
            payload = items if plan.is_paginated or len(items) > 1 else items[0]
            rows.append((job.id, json.dumps(payload), id_text(ids)))
        return rows

    def _build_alone(self, plan, job):
        """Build one job's payload in a savepoint; on failure, record why."""
        try:
            with self.env.cr.savepoint(), scripts_end_by(
                    time.monotonic() + self._prepare_time_left()):
                self._write_payloads(self._build_payloads(plan, job))
        except Exception as error:  # noqa: BLE001 - one job's failure is its own
            self.env.invalidate_all()
            self._payload_failed(plan, job, error)

    def _payload_failed(self, plan, job, error):
        """A payload that cannot be built: a mapping error is final (dead); a
        script out of time and anything else is retried by the policy, like a
        failed request.  Out of the run's time after another payload took it,
        the job goes back unattempted (a script stopped by the run's end, not
        by its own budget)."""
        if self.built and self._prepare_time_left() <= 0:
            self._give_back(job)
            return
        final = isinstance(error, MappingError) and not isinstance(error, ScriptTimedOut)
        attempt = self.claims[job.id]
        if isinstance(error, MappingError):
            message = str(error)
        elif isinstance(error, UserError):
            # The Run As User is off or may not read what the export needs: said
            # plainly; retried by the policy, as an administrator may fix it.
            message = _("Cannot build the payload: %(error)s", error=error)
        else:
            _logger.warning("Outbound job %s: cannot build its payload", job.id, exc_info=True)
            # Not an f-string inside _(): Babel's extractor would skip the whole file.
            reason = f"{type(error).__name__}: {error}"
            message = _("Cannot build the payload: %(error)s", error=reason)
        self.env["bj.api.log"]._bj_write_in_transaction(
            outbound.log_values(plan, None, records_text=job.res_ids, attempt=attempt,
                                error=message, job_id=job.id),
            plan.secrets,
        )
        if final or attempt >= job.attempt_limit:
            self._finish(job, "dead", message)._bj_notify_dead()
        else:
            delay = retry.next_delay(attempt, plan.delivery.base_delay,
                                     plan.delivery.max_delay)
            self._update_rows(OUTCOME_COLUMNS, [(
                job.id, "pending", 0, message,
                self.jobs._bj_now() + timedelta(seconds=delay), None, None)], fence=True)

    def _finish(self, job, state, error):
        """End a claimed ``job`` without sending it (fenced); the job when written."""
        written = self._update_rows(OUTCOME_COLUMNS, [(
            job.id, state, 0, error, self.jobs._bj_now(), None, None)], fence=True)
        return job if written else self.jobs.browse()

    def _merge_younger_jobs(self, plan, ids):
        """Cancel younger pending jobs of these records that were never attempted:
        the payload just built carries their change (same snapshot).  Jobs that
        another transaction holds locked (another run claiming them) are
        skipped, not waited for."""
        self.env.flush_all()
        merged = self._lock_rows(
            """
            UPDATE bj_api_sync_job SET state = 'cancelled', last_error = %s
            WHERE id IN (SELECT id FROM bj_api_sync_job
                         WHERE config_id = %s AND state = 'pending' AND attempt = 0
                           AND payload IS NULL
                           AND string_to_array(res_ids, ',')::int[] <@ %s::int[]
                         FOR UPDATE SKIP LOCKED)
            RETURNING id
            """,
            [_("Merged into an older delivery, which sent the record's state including "
               "this change."), plan.config_id, ids],
        )
        self.jobs.browse([row[0] for row in merged or ()]).invalidate_recordset(
            ["state", "last_error"])

    def _outbound_request(self, job):
        """The ``OutboundRequest`` of a prepared job (plans are cached: the
        worker's commits do not make it read the configurations again)."""
        plan = job.config_id._bj_plan()
        return OutboundRequest(
            job.id, plan, self.claims[job.id], job.attempt_limit, job.res_ids, job.payload,
            {**outbound.request_headers(plan),
             http_client.IDEMPOTENCY_HEADER: job.idempotency_key, EVENT_HEADER: job.event},
        )

    def _timeout_left(self, request):
        """``(connect, read)`` seconds for sending ``request`` now: the
        configuration's, cut down to what the run has left; None when less
        than two seconds are left."""
        left = self._time_left() - RUN_MARGIN
        if left < MIN_REQUEST_SECONDS:
            return None
        connect, read = request.plan.delivery.timeout
        connect = min(connect, left / 2)
        return (connect, min(read, left - connect))

    # -- outcomes ------------------------------------------------------------------------

    def _store_results(self, results):
        """Write the outcomes of answered requests and commit."""
        if results:
            self._record_results(results)
            self._commit()

    def _record_results(self, results):
        """Write the jobs' outcomes and one log row per attempt, in bulk.

        Fenced: an outcome is written only while the job is still this run's
        claim of that attempt (a job given back and claimed again is not).
        ``results`` are ``(request, result, answered at)``: a retry's delay
        counts from its answer.
        """
        log_model = self.env["bj.api.log"]
        # In the worker's transaction: a log row commits with the outcome it records.
        max_size = log_model._bj_body_max_size()
        log_model._bj_insert_rows(self.env.cr, [log_model._bj_prepare_log_values(
            outbound.log_values(request.plan, result, body=request.body,
                                records_text=request.res_ids, attempt=request.attempt,
                                headers=request.headers, job_id=request.job_id),
            request.plan.secrets, max_size) for request, result, _at in results])
        rows, dead, wake_at = [], [], None
        for request, result, answered_at in results:
            verdict = retry.outcome(result.status_code, result.transient_error)
            error = None if verdict == retry.SUCCESS else (result.error or _(
                "The external API answered %(status)s.", status=result.describe()))
            next_at = done_at = None
            if verdict == retry.SUCCESS:
                state, done_at = "done", answered_at
            elif verdict == retry.RETRY and request.attempt < request.limit:
                # Counted from the answer, as next_at is: a date is never met early.
                retry_after = retry.parse_retry_after(
                    result.header("Retry-After"), answered_at.replace(tzinfo=timezone.utc))
                delay = retry.next_delay(request.attempt, request.plan.delivery.base_delay,
                                         request.plan.delivery.max_delay, retry_after)
                state, next_at = "pending", answered_at + timedelta(seconds=delay)
                wake_at = min(wake_at or next_at, next_at)
            else:
                state = "dead"
                dead.append(request.job_id)
            rows.append((request.job_id, state, result.status_code or 0, error,
                         next_at or answered_at, done_at, None))
        written = self._update_rows(OUTCOME_COLUMNS, rows, fence=True)
        if wake_at:
            self.jobs._bj_wake_worker(wake_at)
        self.jobs.browse([job_id for job_id in dead if job_id in written])._bj_notify_dead()

    def _update_rows(self, columns, rows, fence=False):
        """One UPDATE for many jobs: ``rows`` are ``(id, *values)`` for ``columns``,
        pairs of (column, SQL type) named in this module; with ``fence``, only
        rows still claimed by this run for the attempt it claimed change (a
        job given back and claimed again, by this run or another, is not).
        Returns the ids written."""
        self.env.flush_all()  # ORM writes of these jobs first
        if fence:
            rows = [(*row, self.claims.get(row[0], 0)) for row in rows]
        names = [name for name, _type in columns]
        types = [sql_type for _name, sql_type in columns] + (["int"] if fence else [])
        row_sql = "(%s::int, " + ", ".join(f"%s::{sql_type}" for sql_type in types) + ")"
        aliases = names + (["attempt"] if fence else [])
        condition = ("AND job.state = 'running' AND job.worker = %s AND job.attempt = new.attempt"
                     if fence else "")
        self.env.cr.execute(
            """
            UPDATE bj_api_sync_job AS job SET {}, write_date = %s, write_uid = %s
            FROM (VALUES {}) AS new(id, {}) WHERE job.id = new.id {}
            RETURNING job.id
            """.format(", ".join(f"{name} = new.{name}" for name in names),
                       ", ".join([row_sql] * len(rows)), ", ".join(aliases), condition),
            [self.jobs._bj_now(), self.env.uid, *(value for row in rows for value in row),
             *([self.name] if fence else [])],
        )
        written = {row[0] for row in self.env.cr.fetchall()}
        self.jobs.browse(list(written)).invalidate_recordset(
            [*names, "write_date", "write_uid"])
        return written
