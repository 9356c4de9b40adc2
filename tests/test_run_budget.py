"""How long a delivery run may last under Odoo's cron watchdog (core/watchdog.py),
and how the worker measures what the watchdog has counted (services/cron_clock.py)."""

import threading
import time
from unittest.mock import patch

from odoo.tests import BaseCase, tagged

from ..core.watchdog import run_budget, since_ping
from ..services import cron_clock

# (case, now, start of the go, end of the previous go or None, longest idle sleep, bound)
SINCE_PING_CASES = [
    ("first go of the process, unknown past: the whole sleep counts", 100, 95, None, 65, 70),
    ("a go right after the previous one (woken by a trigger)", 100, 99.5, 99, 65, 1),
    ("the previous go ended long ago: the sleep bound is tighter", 1000, 990, 10, 65, 75),
    ("actions run before ours in the same go count", 100, 60, 59, 65, 41),
    ("never negative", 100, 100, 100, 0, 0),
]

# (case, limit, used, share, margin, configured, budget)
BUDGET_CASES = [
    ("a share of the whole limit when nothing is used", 120, 0, 0.4, 1, 0, 48),
    ("a share of what the sleep and earlier actions left", 120, 70, 0.4, 1, 0, 20),
    ("nothing left: 0, the run only asks to be called again", 120, 125, 0.4, 1, 0, 0),
    ("a configured budget, within what is left", 120, 10, 0.4, 1, 30, 30),
    ("a configured budget never passes the limit less the margin", 120, 100, 0.4, 1, 30, 19),
    ("the share never passes the limit less the margin", 10, 0, 1, 1, 0, 9),
]


@tagged("post_install", "-at_install")
class TestRunBudget(BaseCase):
    def test_since_ping(self):
        for case, now, start, previous, sleep, expected in SINCE_PING_CASES:
            with self.subTest(case):
                self.assertAlmostEqual(since_ping(now, start, previous, sleep), expected)

    def test_run_budget(self):
        for case, limit, used, share, margin, configured, expected in BUDGET_CASES:
            with self.subTest(case):
                self.assertAlmostEqual(run_budget(limit, used, share, margin, configured),
                                       expected)

    def run_in_thread(self, function):
        """``function()`` in a fresh thread (the clock is per thread); its result."""
        result = []
        thread = threading.Thread(target=lambda: result.append(function()))
        thread.start()
        thread.join(10)
        return result[0]

    def test_nothing_is_used_outside_a_scheduled_action(self):
        self.assertEqual(self.run_in_thread(cron_clock.seconds_used), 0)

    def test_the_threaded_server_counts_from_the_start_of_the_go(self):
        def measure():
            threading.current_thread().start_time = time.time() - 30
            return cron_clock.seconds_used()

        self.assertAlmostEqual(self.run_in_thread(measure), 30, delta=0.5)

    def test_a_cron_worker_counts_its_sleep_and_the_actions_before(self):
        """In a cron worker process: from the previous go's end when known
        (the ping follows it), else from the process start or the longest sleep."""
        def measure():
            first_go, second_go = object(), object()
            with patch.object(cron_clock, "_process_start", return_value=time.monotonic() - 5):
                cron_clock.job_starts(first_go)
                first = cron_clock.seconds_used()
                time.sleep(0.3)
                cron_clock.job_ended()
                cron_clock.job_starts(first_go)  # the next action of the same go
                same_go = cron_clock.seconds_used()
                cron_clock.job_ended()
                time.sleep(0.2)  # the ping, then a sleep cut short by a trigger
                cron_clock.job_starts(second_go)
                second = cron_clock.seconds_used()
                cron_clock.job_ended()
            return first, same_go, second

        first, same_go, second = self.run_in_thread(measure)
        self.assertAlmostEqual(first, 5, delta=0.2, msg="since the process started")
        self.assertAlmostEqual(same_go, 5.3, delta=0.2, msg="earlier actions of the go count")
        self.assertAlmostEqual(second, 0.2, delta=0.15, msg="since the previous go ended")
