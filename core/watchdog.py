"""How long a delivery run may last under Odoo's cron watchdog.

Plain Python, no ORM: ``services/cron_clock.py`` measures, this decides.

Odoo's multi-process cron worker (``odoo/service/server.py``, ``WorkerCron``)
pings the master's watchdog once per loop, *before* its idle sleep of
``SLEEP_INTERVAL + pid % 10`` seconds (cut short when a cron trigger is
notified), then runs every due scheduled action of one database in one go;
the master kills it once ``limit_time_real_cron`` seconds have passed since
that ping.  So what a run has used up when it starts is the sleep plus the
scheduled actions run before it in the same go, and after it come the other
actions of that go (a copy of the delivery action among them).
"""


def since_ping(now, batch_start, previous_end, idle_sleep):
    """Upper bound of the seconds since the cron worker's last watchdog ping.

    ``batch_start``: when the worker began the scheduled actions of this go;
    ``previous_end``: when its previous go ended (or the process started), the
    ping coming after it; None when unknown; ``idle_sleep``: the longest idle
    sleep between the ping and this go.  All on one clock.
    """
    bounds = [idle_sleep + now - batch_start]
    if previous_end is not None:
        bounds.append(now - previous_end)
    return max(min(bounds), 0.0)


def run_budget(limit, used, share, margin, configured=0):
    """Seconds a run may last: ``share`` of what the watchdog ``limit`` leaves
    after ``used`` seconds (the rest is for what runs after it in the same
    go), or ``configured`` seconds when set; never past ``limit`` less
    ``margin``.  0 when nothing is left: the run then only asks to be called
    again, by a go that starts with a fresh ping."""
    left = limit - used - margin
    budget = min(configured, left) if configured > 0 else (limit - used) * share
    return max(min(budget, left), 0.0)
