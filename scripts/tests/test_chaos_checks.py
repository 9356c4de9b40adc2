"""The judging side of make chaos (scripts/chaos_checks.py): table-driven, plain Python."""

from __future__ import annotations

import unittest
from collections import namedtuple

from chaos_checks import FAULT_GRACE, STALL_LIMIT, early_retries, stalls, stream_state, uncovered

Seen = namedtuple("Seen", "at stream res_id body key fate")


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


if __name__ == "__main__":
    unittest.main()
