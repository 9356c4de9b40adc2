"""Judge an Odoo test run from its log, line by line (standard library only)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hutil import MODULE

# Loggers owned by the addon: they must not warn while the module installs.
ADDON_LOGGERS = (f"odoo.addons.{MODULE}", "bj.api")

# Odoo's format (odoo/netsvc.py): "%(asctime)s %(pid)s %(levelname)s %(dbname)s
# %(name)s: %(message)s %(perf_info)s"; continuation lines (tracebacks) do not match.
LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \d+ (?P<level>[A-Z]+) (?P<db>\S+) "
    r"(?P<logger>[^\s:]+): (?P<msg>.*)$"
)
# odoo/service/server.py logs OdooTestResult.__str__ (odoo/tests/result.py) once
# per database at the very end, cumulating at_install and post_install tests.
SUMMARY = re.compile(
    r"^(?P<failures>\d+) failed, (?P<errors>\d+) error\(s\) of (?P<run>\d+) tests "
    r"when loading database '(?P<db>[^']*)'"
)
# OdooTestResult.addSkip; skipped tests are counted in "tests run" too.
SKIP = re.compile(r"^skipped (?P<test>.+?) : (?P<reason>.*)$")
# SkipTest reasons raised by ChromeBrowser / _find_executable (odoo/tests/common.py).
BROWSER_SKIP = re.compile(r"chrom|websocket|devtools", re.IGNORECASE)
# The "Starting <test> ..." line of OdooTestResult.startTest.
TEST_START = re.compile(r"^Starting \S+ \.\.\.")
# ERROR lines that merely restate failures already counted in the summary, by logger.
FAILURE_ECHOES = {
    "odoo.modules.loading": re.compile(
        r"^(Module \S+: \d+ failures, \d+ errors of \d+ tests"
        r"|At least one test failed when loading the modules)"
    ),
    "odoo.tests.result": re.compile(r"^(\d+ failed, \d+ error\(s\) of|Test suite halted)"),
}
TEST_FAILURE = re.compile(r"^(FAIL|ERROR): ")  # OdooTestResult.logError
TEST_LOGGER = re.compile(r"^odoo\.addons\.[^.]+\.tests(\.|$)")


def is_test_logger(logger: str) -> bool:
    # OdooTestResult logs on the test's module logger; class-level errors are
    # reported on unittest's; HttpCase browser console errors on "<test>.browser".
    return bool(TEST_LOGGER.match(logger)) or logger.startswith("unittest")


@dataclass
class TestVerdict:
    passed: int
    failed: int
    reasons: list[str]


@dataclass
class LogScanner:
    """Reads Odoo's test-run output line by line and judges it."""

    failures: int = 0
    errors: int = 0
    run: int = 0
    summary_seen: bool = False
    skipped: list[str] = field(default_factory=list)
    browser_skips: list[str] = field(default_factory=list)
    error_lines: list[tuple[str, str, str]] = field(default_factory=list)  # logger, msg, line
    install_warnings: list[str] = field(default_factory=list)
    in_tests: bool = False

    def feed(self, line: str) -> None:
        match = LOG_LINE.match(line)
        if not match:
            return
        level, logger, msg = match["level"], match["logger"], match["msg"]
        self._track_phase(logger, msg)
        if logger == "odoo.tests.result" and (summary := SUMMARY.match(msg)):
            self.summary_seen = True
            self.failures = int(summary["failures"])
            self.errors = int(summary["errors"])
            self.run = int(summary["run"])
        if level == "INFO" and (skip := SKIP.match(msg)):
            self.skipped.append(skip["test"])
            if BROWSER_SKIP.search(skip["reason"]):
                self.browser_skips.append(f"{skip['test']}: {skip['reason']}")
        if level in ("ERROR", "CRITICAL"):
            self.error_lines.append((logger, msg, line))
        if level == "WARNING" and not self.in_tests and self._about_addon(logger, msg):
            self.install_warnings.append(line)

    def _track_phase(self, logger: str, msg: str) -> None:
        # Tests may legitimately make the addon warn; the install must not.
        # at_install tests run inside the module's loading, which ends with
        # "Module <name> loaded in"; then the registry is finalised (still
        # install) until odoo/service/server.py logs "Starting post tests".
        if TEST_START.match(msg) and is_test_logger(logger):
            self.in_tests = True
        elif logger == "odoo.modules.loading" and msg.startswith(f"Module {MODULE} loaded in"):
            self.in_tests = False
        elif logger == "odoo.service.server" and msg.startswith("Starting post tests"):
            self.in_tests = True

    @staticmethod
    def _about_addon(logger: str, msg: str) -> bool:
        if logger.startswith(f"odoo.addons.{MODULE}.tests"):
            return False
        if any(logger == name or logger.startswith(name + ".") for name in ADDON_LOGGERS):
            return True
        # Module loading only warns about manifests and modules, and ours is the
        # only non-core one installed, e.g. "python external dependency on 'x'
        # does not appear to be a valid PyPI package" (odoo.modules.module).
        if logger.startswith("odoo.modules."):
            return True
        # Other core loggers warning about the addon, e.g. py.warnings with a
        # path inside it, or "The models [...] have no access rules in module ...".
        return MODULE in msg

    def verdict(self, returncode: int) -> TestVerdict:
        counted = self.failures + self.errors
        reasons = []
        if not self.summary_seen:
            reasons.append("Odoo printed no test summary line (it crashed or was interrupted)")
        elif self.run == 0:
            reasons.append(
                "zero tests ran: check TEST_TAGS, the module name, and that tests/ is imported"
            )
        if returncode != 0 and counted == 0:
            reasons.append(f"Odoo exited with code {returncode}")
        stray = [
            line
            for logger, msg, line in self.error_lines
            if not (counted and self._is_failure_echo(logger, msg))
        ]
        if stray:
            reasons.append(f"{len(stray)} ERROR/CRITICAL log line(s), first: {stray[0]}")
        if self.browser_skips:
            reasons.append(f"browser test(s) skipped: {'; '.join(self.browser_skips)}")
        if self.install_warnings:
            reasons.append(
                f"{len(self.install_warnings)} WARNING(s) about {MODULE} during install, "
                f"first: {self.install_warnings[0]}"
            )
        passed = max(self.run - counted - len(self.skipped), 0)
        return TestVerdict(passed, counted + (1 if reasons else 0), reasons)

    @staticmethod
    def _is_failure_echo(logger: str, msg: str) -> bool:
        if is_test_logger(logger):
            return bool(TEST_FAILURE.match(msg)) or logger.endswith(".browser")
        pattern = FAILURE_ECHOES.get(logger)
        return bool(pattern and pattern.match(msg))
