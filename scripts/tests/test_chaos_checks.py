"""The judging side of make chaos (scripts/chaos_checks.py): table-driven, plain Python."""

from __future__ import annotations

import datetime
import unittest
from collections import namedtuple

from chaos_checks import (
    FAULT_GRACE,
    STALL_LIMIT,
    dead_jobs,
    early_retries,
    log_errors,
    outside_windows,
    refused_redirect,
    stalls,
    stream_state,
    uncovered,
)

Seen = namedtuple("Seen", "at stream res_id body key fate")
Job = namedtuple("Job", "id state last_error retried_as", defaults=(None,))
# The addon's messages (services/outbound_call.py, tests/test_outbound_redirects.py).
REFUSED_302 = ("The external API answered 302 Found → Location http://127.0.0.1:1/moved/302/q, "
               "not followed: a 302 may change the method.")
REFUSED_307X = ("The external API answered 307 Temporary Redirect → Location "
                "http://127.0.0.1:2/q, not followed: it leads to another origin.")


def seen(at, res_id=1, ref="0", key="k", fate="ok", stream="queue"):
    return Seen(at, stream, res_id, {"res_id": res_id, "ref": ref}, key, fate)


class TestUncovered(unittest.TestCase):
    CASES = [
        # (name, start, end, windows, longest part outside the windows)
        ("no fault", 0, 40, [], 40),
        ("inside a window and its grace", 10, 20, [(5, 8)], 0),
        ("after the grace", 0, 100, [(10, 20)], 100 - 20 - FAULT_GRACE),
        ("before the window", 0, 50, [(40, 45)], 40),
        ("between two windows", 0, 200, [(0, 10), (100, 110)], 100 - 10 - FAULT_GRACE),
        ("overlapping windows", 0, 60, [(0, 10), (5, 30)], 60 - 30 - FAULT_GRACE),
        ("window after the gap", 0, 30, [(50, 60)], 30),
    ]

    def test_cases(self):
        for name, start, end, windows, expected in self.CASES:
            with self.subTest(name):
                self.assertEqual(uncovered(start, end, windows), expected)


class TestStalls(unittest.TestCase):
    def test_cases(self):
        limit = STALL_LIMIT
        cases = [
            # (name, arrivals, windows, drained, stalls found)
            ("steady", [1, 5, 10, 20], [], True, 0),
            ("one long gap", [1, 3 + limit, 5 + limit], [], True, 1),
            ("a gap covered by a fault", [1, 2 + limit + 1], [(1, 3)], True, 0),
            ("a fault does not excuse what follows its grace",
             [1, 200], [(1, 3)], True, 1),
            ("undrained: the end counts", [1, 2], [], False, 1),
        ]
        for name, arrivals, windows, drained, expected in cases:
            with self.subTest(name):
                found, _longest = stalls([seen(at) for at in arrivals], windows, 0,
                                         arrivals[-1] + limit + 5, drained)
                self.assertEqual(len(found), expected, found)


class TestEarlyRetries(unittest.TestCase):
    ASKED = {"busy": 2, "throttled": 1}
    CASES = [
        # (name, [(at, key, fate)], windows, early, paired)
        ("honoured", [(0, "a", "busy"), (2.0, "a", "ok")], [], 0, 1),
        ("truncated to the second", [(0.9, "a", "busy"), (2.0, "a", "ok")], [], 1, 1),
        ("sub-second", [(0, "a", "throttled"), (0.95, "a", "ok")], [], 1, 1),
        ("within the tolerance", [(0, "a", "throttled"), (0.995, "a", "ok")], [], 0, 1),
        ("other keys do not pair", [(0, "a", "busy"), (0.5, "b", "ok")], [], 0, 0),
        ("no Retry-After", [(0, "a", "error"), (0.1, "a", "ok")], [], 0, 0),
        ("a fault lost the outcome", [(0, "a", "busy"), (0.5, "a", "ok")], [(0.2, 0.3)], 0, 1),
    ]

    def test_cases(self):
        for name, rows, windows, early, paired in self.CASES:
            with self.subTest(name):
                found, count = early_retries(
                    [seen(at, key=key, fate=fate) for at, key, fate in rows], windows,
                    self.ASKED)
                self.assertEqual((len(found), count), (early, paired))


class TestStreamState(unittest.TestCase):
    def test_cases(self):
        odoo = {1: {"res_id": 1, "ref": "2"}}
        cases = [
            # (name, accepted refs in order of arrival, acknowledged, mismatched, lost,
            #  regressions)
            ("in order", ["0", "1", "2"], [0, 1, 2], 0, 0, 0),
            ("an old state accepted last", ["0", "2", "0"], [0, 2], 1, 1, 1),
            ("the newest never accepted", ["0", "1"], [0, 1, 2], 1, 1, 0),
            ("a duplicate of the newest", ["1", "2", "2"], [1, 2], 0, 0, 0),
            ("nothing accepted", [], [0], 1, 1, 0),
        ]
        for name, refs, acknowledged, mismatched, lost, regressions in cases:
            with self.subTest(name):
                accepted = [seen(at, ref=ref) for at, ref in enumerate(refs)]
                accepted.append(seen(99, ref="5", stream="direct"))  # another stream
                _last, differ, strays, lost_count, older = stream_state(
                    "queue", odoo, accepted, {1: acknowledged})
                self.assertEqual((len(differ), lost_count, len(older), strays),
                                 (mismatched, lost, regressions, set()))


class TestRefusedRedirect(unittest.TestCase):
    CASES = [
        ("a 302 refused", REFUSED_302, True),
        ("a 307 to another origin refused", REFUSED_307X, True),
        ("a 503", "The external API answered 503 Service Unavailable.", False),
        ("a timeout", "Read timed out. (read timeout=2)", False),
        ("no error", None, False),
        ("the Location without the refusal", "→ Location http://h/x, followed", False),
    ]

    def test_cases(self):
        for name, error, expected in self.CASES:
            with self.subTest(name):
                self.assertEqual(refused_redirect(error), expected)


class TestDeadJobs(unittest.TestCase):
    CASES = [
        # (name, jobs after the Retry and the drain, retried ids, other dead, undelivered)
        ("retried in place and delivered", [Job(1, "done", REFUSED_302)], {1}, [], []),
        ("retried as a new job, delivered",
         [Job(1, "cancelled", "Retried as delivery #2.", 2), Job(2, "done", None)], {1}, [], []),
        ("retried as a new job, dead again",
         [Job(1, "cancelled", "Retried as delivery #2.", 2), Job(2, "dead", REFUSED_302)],
         {1}, [], [1, 2]),
        ("retried as a new job, merged into an older one's delivery",
         [Job(1, "cancelled", "Retried as delivery #3.", 3), Job(2, "done", None),
          Job(3, "cancelled", "Merged into an older delivery, which sent the record's state")],
         {1}, [], []),
        ("retried as a new job, cancelled for another reason",
         [Job(1, "cancelled", "Retried as delivery #2.", 2),
          Job(2, "cancelled", "The records no longer exist")], {1}, [], [1]),
        ("retried twice, the last delivered",
         [Job(1, "cancelled", "Retried", 2), Job(2, "cancelled", "Retried", 3),
          Job(3, "done", None)], {1}, [], []),
        ("nothing dead", [Job(1, "done", None), Job(2, "cancelled", "Merged")], set(), [], []),
        ("dead from a 503", [Job(1, "dead", "answered 503")], set(), [1], []),
        ("a redirect death not retried", [Job(1, "dead", REFUSED_307X)], set(), [], [1]),
        ("retried, dead again", [Job(1, "dead", REFUSED_302)], {1}, [], [1]),
        ("retried, still pending", [Job(1, "pending", None)], {1}, [], [1]),
        ("retried, dead of something else", [Job(1, "dead", "answered 500")], {1}, [1], [1]),
        ("a mix", [Job(1, "done", None), Job(2, "dead", "timeout"),
                   Job(3, "dead", REFUSED_302)], {1}, [2], [3]),
    ]

    def test_cases(self):
        for name, jobs, retried, other, undelivered in self.CASES:
            with self.subTest(name):
                self.assertEqual(dead_jobs(jobs, retried), (other, undelivered))


def at(text):
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


class TestLogErrors(unittest.TestCase):
    LOG = [
        "2026-12-07 22:00:00,100 11 INFO db odoo.modules: loading",
        "2026-12-07 22:00:01,200 12 ERROR db odoo.sql_db: bad query: SELECT 1",
        "ERROR: canceling statement due to user request",
        "2026-12-07 22:00:02,000 12 WARNING db odoo.http: trying without",
        "  a continued warning",
        "2026-12-07 22:00:03,500 13 CRITICAL ? odoo.service.server: Failed",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in <module>',
        "psycopg2.OperationalError: terminating connection",
    ]

    def test_records(self):
        found = log_errors(self.LOG)
        self.assertEqual([(when, len(lines)) for when, lines in found],
                         [(at("2026-12-07 22:00:01,200"), 2), (at("2026-12-07 22:00:03,500"), 4)])
        self.assertTrue(found[1][1][-1].startswith("psycopg2.OperationalError"))

    def test_nothing(self):
        self.assertEqual(log_errors(["2026-12-07 22:00:00,100 11 INFO db x: y", "free text"]),
                         [])


class TestOutsideWindows(unittest.TestCase):
    CASES = [
        # (name, record times, windows, times outside)
        ("no window", [5], [], [5]),
        ("inside", [12], [(10, 20)], []),
        ("within the grace", [20 + FAULT_GRACE], [(10, 20)], []),
        ("after the grace", [20 + FAULT_GRACE + 1], [(10, 20)], [20 + FAULT_GRACE + 1]),
        ("before the window", [9], [(10, 20)], [9]),
        ("the second window", [5, 105], [(0, 1), (100, 110)], []),
    ]

    def test_cases(self):
        for name, times, windows, expected in self.CASES:
            with self.subTest(name):
                found = outside_windows([(when, ["line"]) for when in times], windows)
                self.assertEqual([when for when, _lines in found], expected)


if __name__ == "__main__":
    unittest.main()
