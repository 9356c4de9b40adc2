"""What Odoo's cron watchdog has counted when a scheduled action starts.

``ir.cron._process_job`` (models/ir_cron.py) tells this module when each
scheduled action of a cron worker's go starts and ends; the delivery worker
asks :func:`seconds_used` how much of the watchdog's limit is already spent.

The most faithful measure available in the worker process: the master's
watchdog clock lives in another process, and Odoo records neither the ping
nor the end of the idle sleep.  What is known here is when the current go
began (its first scheduled action, milliseconds after the sleep ended), when
the previous go ended (the ping follows it) or the process started, and the
longest idle sleep, ``SLEEP_INTERVAL + pid % 10`` (plus Odoo's < 0.1 s
jitter).  The threaded server counts from the start of the go
(``thread.start_time``), without sleep.  Outside a scheduled action (Run
Manually, a server action, any request), the watchdog is the HTTP worker's:
the threaded server counts from the request's start (``thread.start_time``,
set by Odoo for every request thread); elsewhere (a multi-process HTTP
worker, a shell, a test) nothing is known to be spent.
"""

import os
import threading
import time

import psutil

from odoo.service.server import SLEEP_INTERVAL

from ..core.watchdog import since_ping

# Odoo's cron worker sleeps pid / 100 % 0.1 s more after its select().
SLEEP_JITTER = 0.1

_state = threading.local()


def job_starts(batch):
    """A scheduled action starts in this thread; ``batch`` is the cursor of
    the go it belongs to (``ir.cron._process_jobs`` opens one per go)."""
    if getattr(_state, "batch", None) is not batch:
        _state.batch = batch
        _state.batch_start = time.monotonic()
        _state.previous_end = getattr(_state, "last_end", None)
    _state.running = True


def job_ended():
    _state.running = False
    _state.last_end = time.monotonic()


def in_scheduled_action():
    """Whether this thread runs a scheduled action (``ir.cron._process_job``)."""
    return getattr(_state, "running", False)


def after_action(callback):
    """Call ``callback`` once the current scheduled action has ended: after
    Odoo's end of it (``_reschedule_later``: the delete of the cron's past
    triggers) is committed.  False, and nothing registered, outside one."""
    if not in_scheduled_action():
        return False
    _state.batch.postcommit.add(callback)
    return True


def _process_start():
    """When this process started, on the monotonic clock."""
    age = time.time() - psutil.Process(os.getpid()).create_time()
    return time.monotonic() - age


def seconds_used():
    """Seconds of the watchdog's limit already spent at this point: of the
    current scheduled action's go, or of the threaded server's request (0
    when unknown)."""
    thread = threading.current_thread()
    started = getattr(thread, "start_time", None)
    if started:  # threaded server: its limit counts from the go's or request's start
        return max(time.time() - started, 0.0)
    if not in_scheduled_action():
        return 0.0
    previous_end = getattr(_state, "previous_end", None)
    if previous_end is None:
        previous_end = _process_start()
    return since_ping(time.monotonic(), _state.batch_start, previous_end,
                      SLEEP_INTERVAL + os.getpid() % 10 + SLEEP_JITTER)
