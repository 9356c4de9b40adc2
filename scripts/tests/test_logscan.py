"""The verdict of an Odoo test log: table-driven, plain Python."""

from __future__ import annotations

import unittest

from logscan import LogScanner


def line(level: str, logger: str, msg: str) -> str:
    return f"2026-12-01 01:02:03,456 4242 {level} bjet_test_x {logger}: {msg}"


def summary(failures: int, errors: int, run: int) -> str:
    return line(
        "INFO",
        "odoo.tests.result",
        f"{failures} failed, {errors} error(s) of {run} tests when loading database 'bjet_test_x'",
    )


TEST = "odoo.addons.bjet_api_sync.tests.test_config"
START = line("INFO", TEST, "Starting TestConfig.test_x ...")
LOADED = line("INFO", "odoo.modules.loading", "Module bjet_api_sync loaded in 1.00s")
POST = line("INFO", "odoo.service.server", "Starting post tests")

CASES = [
    # (name, log lines, exit code, passed, failed, reason fragment or None)
    ("clean run", [START, LOADED, summary(0, 0, 12)], 0, 12, 0, None),
    ("failures counted", [START, summary(2, 1, 12)], 1, 9, 3, None),
    (
        "failure echoes are not stray errors",
        [
            START,
            line("ERROR", TEST, "FAIL: TestConfig.test_x"),
            line(
                "ERROR",
                "odoo.modules.loading",
                "Module bjet_api_sync: 1 failures, 0 errors of 5 tests",
            ),
            line(
                "ERROR",
                "odoo.tests.result",
                "1 failed, 0 error(s) of 5 tests when loading database",
            ),
            summary(1, 0, 5),
        ],
        1,
        4,
        1,
        None,
    ),
    ("no summary", [START], 0, 0, 1, "no test summary"),
    ("zero tests", [summary(0, 0, 0)], 0, 0, 1, "zero tests ran"),
    ("crash after a clean summary", [summary(0, 0, 3)], 1, 3, 1, "exited with code 1"),
    (
        "stray ERROR line",
        [START, line("ERROR", "odoo.http", "Exception during request handling"), summary(0, 0, 3)],
        0,
        3,
        1,
        "1 ERROR/CRITICAL",
    ),
    (
        "skipped tests are not passed",
        [START, line("INFO", TEST, "skipped TestX.test_y : not today"), summary(0, 0, 3)],
        0,
        2,
        0,
        None,
    ),
    (
        "a skipped browser tour fails the run",
        [
            START,
            line("INFO", TEST, "skipped TestUi.test_tour : Chrome not found"),
            summary(0, 0, 3),
        ],
        0,
        2,
        1,
        "browser test(s) skipped",
    ),
    (
        "the addon warning while it installs",
        [line("WARNING", "odoo.addons.bjet_api_sync.models.x", "careful"), summary(0, 0, 3)],
        0,
        3,
        1,
        "WARNING(s) about bjet_api_sync during install",
    ),
    (
        "the addon warning inside its tests is fine",
        [START, line("WARNING", "bj.api", "delivery failed"), summary(0, 0, 3)],
        0,
        3,
        0,
        None,
    ),
    (
        "post-install tests are tests too",
        [LOADED, POST, line("WARNING", "bj.api", "delivery failed"), summary(0, 0, 3)],
        0,
        3,
        0,
        None,
    ),
    (
        "tracebacks (continuation lines) are ignored",
        ["Traceback (most recent call last):", '  File "x.py", line 1', summary(0, 0, 3)],
        0,
        3,
        0,
        None,
    ),
]


class TestLogScanner(unittest.TestCase):
    def test_verdicts(self):
        for name, lines, returncode, passed, failed, reason in CASES:
            with self.subTest(name):
                scanner = LogScanner()
                for text in lines:
                    scanner.feed(text)
                verdict = scanner.verdict(returncode)
                self.assertEqual((verdict.passed, verdict.failed), (passed, failed))
                if reason is None:
                    self.assertEqual(verdict.reasons, [])
                else:
                    self.assertTrue(
                        any(reason in text for text in verdict.reasons), verdict.reasons
                    )


if __name__ == "__main__":
    unittest.main()
