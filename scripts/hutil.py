"""Small helpers shared by the harness modules (standard library only)."""

from __future__ import annotations

import subprocess
from pathlib import Path

MODULE = "bjet_api_sync"
REPO = Path(__file__).resolve().parent.parent


class HarnessError(Exception):
    """A problem the user has to fix; the message says what to do."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def say(message: str) -> None:
    # Prefixed so harness lines stand out from the Odoo log streamed around them.
    print(f"[harness] {message}", flush=True)


def run_quiet(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    """Run a helper command, capturing its output.

    It gets its own session so that a Ctrl-C on the terminal cannot kill it
    half-way, in particular while cleaning up (pg_ctl stop, DROP DATABASE):
    interrupting is the harness's decision.  If the harness itself is
    interrupted meanwhile, subprocess.run kills the helper.
    """
    return subprocess.run(cmd, capture_output=True, text=True, start_new_session=True, **kwargs)
