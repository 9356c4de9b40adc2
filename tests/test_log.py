import json
from contextlib import contextmanager
from unittest.mock import patch

from odoo.sql_db import db_connect
from odoo.tests import BaseCase, tagged
from odoo.tools import mute_logger

from ..core import masking
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
        log_id = self.env["bj.api.log"]._bj_write_log(
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
            secrets=config._bj_plan().secrets,
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

    @contextmanager
    def own_cursors(self):
        """Outside HttpCase, as on a server: registry.cursor() is a new connection."""
        dbname = self.env.cr.dbname
        with patch.object(self.env.registry, "cursor",
                          lambda *a, **k: db_connect(dbname).cursor()):
            yield

    def committed_log_ids(self, marker):
        """Ids of the rows with request_id ``marker`` committed outside the test's
        transaction, seen from a connection of its own; deleted afterwards."""
        with db_connect(self.env.cr.dbname).cursor() as other:
            other.execute("SELECT id FROM bj_api_log WHERE request_id = %s ORDER BY id", [marker])
            ids = [row[0] for row in other.fetchall()]
            other.execute("DELETE FROM bj_api_log WHERE request_id = %s", [marker])
            other.commit()
            return ids

    def test_log_row_survives_rollback_of_the_caller(self):
        """The row is committed on a cursor of its own, whatever the caller does."""
        marker = generated_secret("rid")
        with self.own_cursors(), self.assertRaises(RuntimeError), self.env.cr.savepoint():
            partner = self.env["res.partner"].create({"name": "rolled back"})
            self.env["bj.api.log"]._bj_write_log(
                {"direction": "in", "state": "error", "request_id": marker}
            )
            partner_id = partner.id
            raise RuntimeError("the request fails")
        self.assertFalse(self.env["res.partner"].browse(partner_id).exists())
        self.assertEqual(len(self.committed_log_ids(marker)), 1)

    def test_log_falls_back_to_caller_transaction(self):
        """A configuration the other cursor cannot see yet does not lose the row."""
        config = self.make_config(request_type="out")
        with self.own_cursors():
            log_id = self.env["bj.api.log"]._bj_write_log(
                {"config_id": config.id, "direction": "out", "state": "success"}
            )
        self.assertEqual(self.env["bj.api.log"].browse(log_id).config_id, config)

    def test_log_never_waits_for_its_caller(self):
        """The caller holds a lock the row's foreign-key check needs: the row's
        cursor gives up after its statement timeout and the row is written in
        the caller's transaction, instead of both waiting for each other."""
        company = self.env.ref("base.main_company")  # committed at install
        self.env.cr.execute("SELECT 1 FROM res_company WHERE id = %s FOR UPDATE", [company.id])
        marker = generated_secret("rid")
        with self.own_cursors(), patch.object(bj_api_log, "LOG_STATEMENT_TIMEOUT_MS", 300):
            log_id = self.env["bj.api.log"]._bj_write_log(
                {"company_id": company.id, "direction": "out", "state": "success",
                 "request_id": marker}
            )
        self.assertTrue(self.env["bj.api.log"].browse(log_id).exists())
        self.assertEqual(self.committed_log_ids(marker), [])

    @mute_logger("bj.api.log")
    def test_a_failed_row_in_the_callers_transaction_is_undone_alone(self):
        partner = self.env["res.partner"].create({"name": "kept"})
        self.env.flush_all()
        log_id = self.env["bj.api.log"]._bj_write_in_transaction(
            {"config_id": 10**8, "direction": "in", "state": "error"}  # no such configuration
        )
        self.assertFalse(log_id)
        self.env.invalidate_all()
        self.assertTrue(partner.exists(), "the caller's work survives")
        self.assertTrue(self.env["bj.api.log"]._bj_write_in_transaction(
            {"direction": "in", "state": "success"}), "the transaction is usable")

    def test_unstorable_text_is_escaped(self):
        log_id = self.env["bj.api.log"]._bj_write_in_transaction({
            "direction": "in", "state": "error", "url": "/bj_api_sync/v1/a\x00b",
            "request_id": "id\x00", "request_headers": {"X-Bad": "a\x00b"},
            "request_body": b"\xff\xfe{\x00}", "error_message": "lone \udc80 surrogate",
        })
        log = self.env["bj.api.log"].browse(log_id)
        self.assertEqual(log.url, "/bj_api_sync/v1/a\\x00b")
        self.assertEqual(log.request_id, "id\\x00")
        self.assertIn("\\udc80", log.error_message)
        self.assertNotIn("\x00", log.request_body)

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
