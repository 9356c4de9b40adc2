import json
import logging
import threading
import time
from unittest.mock import patch

import psycopg2

from odoo.sql_db import db_connect
from odoo.tests import BaseCase, tagged

from ..core import masking
from ..core.dedicated_connections import DedicatedConnections
from ..models import bj_api_log
from ..models.bj_api_log import PARAM_BODY_MAX_SIZE
from .common import BjApiSyncCase, generated_secret


@tagged("post_install", "-at_install")
class TestMasking(BaseCase):
    def test_sensitive_headers(self):
        masked = masking.mask_headers({
            "Authorization": "Bearer abc",
            "Cookie": "session_id=1",
            "X-API-Key": "k",
            "X-Custom-Token": "t",
            "Content-Type": "application/json",
            "X-Request-ID": "req-1",
        })
        for name in ("Authorization", "Cookie", "X-API-Key", "X-Custom-Token"):
            self.assertEqual(masked[name], masking.MASK, name)
        self.assertEqual(masked["Content-Type"], "application/json")
        self.assertEqual(masked["X-Request-ID"], "req-1")

    def test_secrets_masked_everywhere(self):
        secret = "very-secret-value"
        self.assertEqual(
            masking.mask_text(f'{{"token": "{secret}"}}', [secret]), '{"token": "********"}'
        )
        masked = masking.mask_headers({"X-Forward": f"pass {secret}"}, [secret])
        self.assertNotIn(secret, masked["X-Forward"])
        # Very short secrets are not masked inside text: that would garble the log.
        self.assertEqual(masking.mask_text("a b c", ["a"]), "a b c")

    def test_truncate(self):
        self.assertEqual(masking.truncate("abc", 10), "abc")
        cut = masking.truncate("x" * 50, 10)
        self.assertTrue(cut.startswith("x" * 10))
        self.assertIn("40 characters", cut)


@tagged("post_install", "-at_install")
class TestLogWriter(BjApiSyncCase):
    def test_write_log_masks_and_truncates(self):
        secret = generated_secret()
        self.env["ir.config_parameter"].sudo().set_param(PARAM_BODY_MAX_SIZE, "100")
        config = self.make_config(request_type="out", bearer_token=secret)
        log_id = self.env["bj.api.log"]._write_log(
            {
                "config_id": config.id,
                "direction": "out",
                "method": "POST",
                "url": "https://api.example.com/x",
                "request_headers": {"Authorization": f"Bearer {secret}", "X-Echo": secret},
                "request_body": {"token": secret, "padding": "p" * 500},
                "response_body": b"ok",
                "status_code": 200,
                "state": "success",
                "duration_ms": 12,
                "res_model": "res.partner",
                "res_ids": [3, 4],
            },
            secrets=config._bj_secret_values(),
        )
        log = self.env["bj.api.log"].browse(log_id)
        self.assertEqual(json.loads(log.request_headers)["Authorization"], masking.MASK)
        for text in (log.request_headers, log.request_body):
            self.assertNoSecretIn(text, secret)
        self.assertIn("truncated", log.request_body)
        self.assertLess(len(log.request_body), 200)
        self.assertEqual(log.response_body, "ok")
        self.assertEqual(log.res_ids, "3,4")
        self.assertEqual(log.duration_ms, 12)

    def test_log_row_survives_rollback_of_the_caller(self):
        """The row is committed on its own connection, whatever the caller does."""
        registry = self.env.registry
        dbname = self.env.cr.dbname
        marker = generated_secret("rid")
        # Outside HttpCase, registry.cursor() is a real new connection; make sure of it
        # even if a test runner put the registry in test mode.
        with patch.object(registry, "cursor", lambda *a, **k: db_connect(dbname).cursor()):
            with self.assertRaises(RuntimeError), self.env.cr.savepoint():
                partner = self.env["res.partner"].create({"name": "rolled back"})
                self.env["bj.api.log"]._write_log(
                    {"direction": "in", "state": "error", "request_id": marker}
                )
                partner_id = partner.id
                raise RuntimeError("the request fails")
        self.assertFalse(self.env["res.partner"].browse(partner_id).exists())
        with db_connect(dbname).cursor() as other:
            other.execute("SELECT id FROM bj_api_log WHERE request_id = %s", [marker])
            rows = other.fetchall()
            self.assertEqual(len(rows), 1)
            other.execute("DELETE FROM bj_api_log WHERE request_id = %s", [marker])
            other.commit()

    def test_log_falls_back_to_caller_transaction(self):
        """A configuration the log connection cannot see yet does not lose the row."""
        config = self.make_config(request_type="out")
        log_id = self.env["bj.api.log"]._write_log(
            {"config_id": config.id, "direction": "out", "state": "success"}
        )
        self.assertEqual(self.env["bj.api.log"].browse(log_id).config_id, config)

    def committed_log_ids(self, marker, delete=True):
        """Ids of the rows with request_id ``marker`` committed outside the test's
        transaction, seen from a connection of its own; deleted afterwards."""
        with db_connect(self.env.cr.dbname).cursor() as other:
            other.execute("SELECT id FROM bj_api_log WHERE request_id = %s ORDER BY id", [marker])
            ids = [row[0] for row in other.fetchall()]
            if delete:
                other.execute("DELETE FROM bj_api_log WHERE request_id = %s", [marker])
                other.commit()
            return ids

    def kept_log_connections(self):
        """Outside test mode (HttpCase's), as on a server: a fresh set of kept
        connections, and the list of those it opens."""
        connections = DedicatedConnections(bj_api_log.LOG_CONNECTIONS_PER_DATABASE)
        self.addCleanup(connections.close_all)
        opened = []
        real_connect = psycopg2.connect

        def connect(*args, **kwargs):
            connection = real_connect(*args, **kwargs)
            if "connection_factory" not in kwargs:  # not one of Odoo's pool
                opened.append(connection)
            return connection

        registry = self.env.registry
        for patcher in (
            patch.object(bj_api_log, "LOG_CONNECTIONS", connections),
            patch.object(registry, "in_test_mode", lambda: False),
            patch.object(psycopg2, "connect", connect),
        ):
            patcher.start()
            self.addCleanup(patcher.stop)
        return opened

    def test_log_rows_on_a_kept_connection(self):
        """On a server, log rows commit on a connection kept open between calls."""
        opened = self.kept_log_connections()
        marker = generated_secret("rid")
        with self.assertRaises(RuntimeError), self.env.cr.savepoint():
            for _call in range(3):
                self.env["bj.api.log"]._write_log(
                    {"direction": "in", "state": "success", "request_id": marker}
                )
            raise RuntimeError("the request fails")
        self.assertEqual(len(self.committed_log_ids(marker)), 3)
        self.assertEqual(len(opened), 1, "one connection served the three rows")
        self.assertTrue(opened[0].autocommit)

    def test_dead_kept_connection_loses_no_row(self):
        """A kept connection the server closed is dropped; the row still lands."""
        opened = self.kept_log_connections()
        marker = generated_secret("rid")
        Log = self.env["bj.api.log"]
        values = {"direction": "in", "state": "success", "request_id": marker}
        Log._write_log(values)
        backend = opened[0].get_backend_pid()
        with db_connect(self.env.cr.dbname).cursor() as other:
            other.execute("SELECT pg_terminate_backend(%s)", [backend])
            # That only signals the session: wait until it is gone.
            for _poll in range(250):
                other.rollback()  # a fresh view of pg_stat_activity
                other.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [backend])
                if not other.fetchall():
                    break
                time.sleep(0.02)
        # The number: Odoo names its level 25 "INFO" too.
        with self.assertLogs("bj.api.log", logging.INFO) as logs:
            fallback_id = Log._write_log(values)
        self.assertIn("kept log connection failed", logs.output[0])
        self.assertTrue(opened[0].closed)
        Log._write_log(values)
        self.assertEqual(len(opened), 2, "the next row opens a new connection")
        # The failed one went through a pooled cursor, committed as well.
        committed = self.committed_log_ids(marker)
        self.assertEqual(len(committed), 3)
        self.assertIn(fallback_id, committed)

    def test_concurrent_log_rows_all_land(self):
        """Threads writing at once share the kept connections; those that find
        them busy use the pool, and no row is lost."""
        opened = self.kept_log_connections()
        marker = generated_secret("rid")
        Log = self.env["bj.api.log"]
        prepared = Log._prepare_log_values(
            {"direction": "in", "state": "success", "request_id": marker}
        )
        start = threading.Barrier(8)
        ids, errors = [], []

        def write_rows():
            try:
                start.wait()
                ids.extend(Log._insert_committed(prepared) for _row in range(10))
            except Exception as error:  # noqa: BLE001 - reported by the test
                errors.append(error)

        threads = [threading.Thread(target=write_rows) for _thread in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(sorted(self.committed_log_ids(marker)), sorted(ids))
        self.assertEqual(len(ids), 80)
        self.assertLessEqual(len(opened), bj_api_log.LOG_CONNECTIONS_PER_DATABASE)

    def test_kept_connection_falls_back_to_caller_transaction(self):
        """A configuration the kept connection cannot see yet does not lose the row."""
        self.kept_log_connections()
        config = self.make_config(request_type="out")
        log_id = self.env["bj.api.log"]._write_log(
            {"config_id": config.id, "direction": "out", "state": "success"}
        )
        self.assertEqual(self.env["bj.api.log"].browse(log_id).config_id, config)

    def test_retention(self):
        logs = self.env["bj.api.log"].create([
            {"direction": "in", "state": "success"},
            {"direction": "in", "state": "success"},
        ])
        self.env.cr.execute(
            "UPDATE bj_api_log SET create_date = now() - interval '40 days' WHERE id = %s",
            [logs[0].id],
        )
        self.env["bj.api.log"]._gc_old_logs()
        self.assertFalse(logs[0].exists())
        self.assertTrue(logs[1].exists())
