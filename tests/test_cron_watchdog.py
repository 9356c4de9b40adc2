"""A delivery run fits Odoo's cron watchdog as Odoo counts it, with a real
multi-process Odoo: ``odoo-bin --workers=1 --max-cron-threads=1`` and a small
``--limit-time-real-cron`` on this database, a slow script in the payloads and
a slow API that sometimes asks to retry.  The watchdog never kills the cron
worker, and every job is delivered, none lost.

Odoo's idle cron worker sleeps 60 to 69 s after its ping: with a limit below
that, Odoo kills it while it sleeps, whatever runs in it.  So the test keeps
cron triggers coming (a notification every NOTIFY_EVERY seconds, as a busy
database does), which cuts the sleeps short; the sleep's share of a run's
budget is tested in test_run_budget.py.

Tagged ``bjet_watchdog`` too: ``TEST_TAGS=/bjet_api_sync:TestCronWatchdog``
runs it alone; ``make test`` runs it with the rest (about 40 s).  Built all in
one run, as before the run's budget covered payloads, the scripts alone would
outlast the limit.
"""

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import odoo
from odoo import Command, fields
from odoo.sql_db import db_connect
from odoo.tests import BaseCase, get_db_name, tagged
from odoo.tools import config as odoo_config

from ..services.delivery_worker import WORKER_CRON
from .common import CommittedDataMixin

_logger = logging.getLogger(__name__)

CRON_LIMIT = 20  # --limit-time-real-cron: the watchdog's limit, in seconds
JOBS = 8
SCRIPT_SECONDS = 3  # each payload's script sleeps this long: 24 s in all, past the limit
API_SECONDS = 1  # each answer takes this long
STARTUP_TIMEOUT = 60
NOTIFY_EVERY = 2
DELIVERY_TIMEOUT = 120


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@tagged("post_install", "-at_install", "bjet_watchdog")
class TestCronWatchdog(CommittedDataMixin, BaseCase):
    server_default = (200, None, {"ok": True}, API_SECONDS)

    def setUp(self):
        super().setUp()
        self.queued_ids = []
        with self.committed_env() as env:
            # Only the delivery action is due in the cron worker's goes: the
            # others are not this test's to time (they are put back afterwards).
            delivery = env.ref(WORKER_CRON)
            others = env["ir.cron"].search([("id", "!=", delivery.id)])
            self.nextcalls = {cron.id: cron.nextcall for cron in others}
            others.write({"nextcall": fields.Datetime.now() + timedelta(days=1)})
            config = self.committed_out_config(env, {
                "name": "Watchdog test",
                "retry_base_delay": 1,
                "retry_max_delay": 1,
                "line_ids": [
                    Command.create({"field_id": env["ir.model.fields"]._get("res.partner", "id").id,
                                    "external_key": "id", "value_type": "plain",
                                    "is_identifier": True, "sequence": 0}),
                    Command.create({
                        "field_id": env["ir.model.fields"]._get("res.partner", "name").id,
                        "external_key": "name", "value_type": "python_plain", "sequence": 1,
                        "python_script": f"time.sleep({SCRIPT_SECONDS})\nresult = record.name",
                    }),
                ],
            })
            partners = env["res.partner"].create([{"name": f"Watchdog {n}"} for n in range(JOBS)])
            self.config_id, self.partner_ids = config.id, partners.ids
        self.addCleanup(self.delete_data)
        # The slow API also asks for a retry now and then.
        for _n in range(3):
            self.server.queue(503, {}, headers={"Retry-After": "1"}, delay=API_SECONDS)

    def delete_data(self):
        self.delete_committed(self.config_id, self.partner_ids)
        with self.committed_env() as env:
            for cron_id, nextcall in self.nextcalls.items():
                env["ir.cron"].browse(cron_id).nextcall = nextcall

    def start_odoo(self, log_path, *options):
        """odoo-bin on this database in multi-process mode, with ``options``."""
        odoo_bin = Path(odoo.__file__).resolve().parent.parent / "odoo-bin"
        cmd = [
            sys.executable, str(odoo_bin),
            f"--addons-path={odoo_config['addons_path']}",
            f"--data-dir={odoo_config['data_dir']}",
            f"--database={get_db_name()}",
            "--http-interface=127.0.0.1", f"--http-port={free_port()}",
            f"--gevent-port={free_port()}",
            "--workers=1", "--log-level=info", *options,
        ]
        if odoo_config.rcfile and os.path.exists(odoo_config.rcfile):
            cmd.append(f"--config={odoo_config.rcfile}")
        log = log_path.open("w")
        self.addCleanup(log.close)
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        self.addCleanup(self.stop_odoo, process)
        return process

    def keep_triggers_coming(self):
        """Notify the cron workers every NOTIFY_EVERY seconds until the test ends."""
        stop = threading.Event()

        def notify():
            while not stop.wait(NOTIFY_EVERY):
                with db_connect("postgres").cursor() as cr:
                    cr.execute("SELECT pg_notify('cron_trigger', %s)", [get_db_name()])

        thread = threading.Thread(target=notify, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 10)
        self.addCleanup(stop.set)

    @staticmethod
    def stop_odoo(process):
        for sig, grace in ((signal.SIGINT, 10), (signal.SIGKILL, 5)):
            if process.poll() is not None:
                break
            os.killpg(process.pid, sig)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                continue

    def wait_for(self, condition, what, timeout, process, log_path):
        deadline = time.monotonic() + timeout
        while not condition():
            if process.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(log_path.read_text().splitlines()[-60:])
                self.fail(f"no {what} (Odoo {'exited' if process.poll() is not None else 'runs'},"
                          f" jobs {self.jobs()}); its log ends with:\n{tail}")
            time.sleep(0.2)

    def jobs(self):
        with self.committed_env() as env:
            return env["bj.api.sync.job"].search_read(
                [("config_id", "=", self.config_id)], ["state", "attempt"])

    def test_a_cron_worker_delivers_within_its_watchdog(self):
        with tempfile.TemporaryDirectory() as work:
            log_path = Path(work) / "odoo.log"
            process = self.start_odoo(log_path, "--max-cron-threads=1",
                                      f"--limit-time-real-cron={CRON_LIMIT}")
            self.keep_triggers_coming()
            self.wait_for(lambda: re.search(r"WorkerCron \(\d+\) alive", log_path.read_text()),
                          "cron worker", STARTUP_TIMEOUT, process, log_path)
            # Queued now, with the wake-up the cron worker listens to.
            with self.committed_env() as env:
                config = env["bj.api.sync.config"].browse(self.config_id)
                env["bj.api.sync.job"]._bj_enqueue(
                    config._bj_plan(), env["res.partner"].browse(self.partner_ids), "manual")
            started = time.monotonic()
            self.wait_for(lambda: {job["state"] for job in self.jobs()} == {"done"},
                          "every job delivered", DELIVERY_TIMEOUT, process, log_path)
            took = time.monotonic() - started
            self.stop_odoo(process)  # before its idle sleep outlives the small limit
            log = log_path.read_text()
        timeouts = [line for line in log.splitlines() if "WorkerCron" in line and "timeout" in line]
        self.assertFalse(timeouts, "the watchdog never killed the cron worker")
        self.assertNotIn("cut short", log)
        jobs = self.jobs()
        self.assertEqual(len(jobs), JOBS)
        runs = sum("deliver the outbound queue' (" in line and "processed" in line
                   for line in log.splitlines())
        self.assertGreater(runs, 1, f"the work took several runs ({took:.1f} s)")
        with self.committed_env() as env:
            logs = env["bj.api.log"].search([("config_id", "=", self.config_id)])
            self.assertEqual(len(logs), sum(job["attempt"] for job in jobs),
                             "every attempt counted is logged: none given up unlogged")
            # Retries: the API's 503s, and requests whose read timeout the end of a
            # run cut below the API's slowness; never a script's or a run's end.
            failed = logs.filtered(lambda log: log.error_message)
            self.assertGreaterEqual(len(failed), 3)
            self.assertFalse([log.error_message for log in failed
                              if "budget" in log.error_message or "Script" in log.error_message])
        _logger.info("%s jobs delivered in %.1f s by %s runs, %s attempts; first attempt "
                     "%.2f s after the change", JOBS, took, runs, len(logs),
                     self.server.requests[0].received_at - started)

    def test_a_change_starts_at_once_whatever_stale_triggers_say(self):
        """Two delivery actions (docs/OPERATIONS.md, Scaling delivery), idle cron workers
        asleep, and a past-due trigger of the delivery action that nobody
        notified (a retry's wake-up that fell due): a new change still wakes
        the delivery actions, and its first attempt starts within 2 s."""
        self.server.clear()  # no 503s here
        with self.committed_env() as env:
            copy = env.ref(WORKER_CRON).copy({"name": "Watchdog test delivery copy"})
            copy.active = True
            copy_id = copy.id
        self.addCleanup(self.delete_cron, copy_id)
        with tempfile.TemporaryDirectory() as work:
            log_path = Path(work) / "odoo.log"
            process = self.start_odoo(log_path, "--max-cron-threads=2")
            self.wait_for(lambda: len(re.findall(r"WorkerCron \(\d+\) alive",
                                                 log_path.read_text())) == 2,
                          "cron workers", STARTUP_TIMEOUT, process, log_path)
            time.sleep(2)  # listening for triggers
            warm_up = self.enqueue(self.partner_ids[:1])
            self.wait_for(lambda: self.job_state(warm_up) == "done", "warm-up delivery",
                          DELIVERY_TIMEOUT, process, log_path)
            time.sleep(1)  # both workers asleep again, for a minute
            with self.committed_env() as env:
                env["ir.cron.trigger"].create({
                    "cron_id": env.ref(WORKER_CRON).id,
                    "call_at": fields.Datetime.now() - timedelta(seconds=30)})
            changed_at = time.monotonic()
            job_id = self.enqueue(self.partner_ids[1:2])
            self.wait_for(lambda: self.job_state(job_id) != "pending", "a claim",
                          10, process, log_path)
            latency = time.monotonic() - changed_at  # seen within the polling's 0.2 s
        _logger.info("first attempt %.2f s after the change, beside a stale trigger, with 2 "
                     "delivery actions", latency)
        self.assertLess(latency, 2)

    def enqueue(self, partner_ids):
        with self.committed_env() as env:
            config = env["bj.api.sync.config"].browse(self.config_id)
            return env["bj.api.sync.job"]._bj_enqueue(
                config._bj_plan(), env["res.partner"].browse(partner_ids), "manual").id

    def job_state(self, job_id):
        with self.committed_env() as env:
            return env["bj.api.sync.job"].browse(job_id).state

    def delete_cron(self, cron_id):
        with self.committed_env() as env:
            env["ir.cron"].browse(cron_id).unlink()
