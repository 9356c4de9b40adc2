import base64
import json
import time
from datetime import timedelta
from unittest.mock import patch

from odoo import Command, fields
from odoo.exceptions import UserError
from odoo.tests import BaseCase, tagged

from ..core import retry
from ..core.outbound_result import OutboundResult
from ..core.script_budget import Budget, ScriptTimeout
from ..services.outbound_call import OutboundCall
from ..services.scripts import compile_script, run_within, script_context, script_environment
from .common import BjOutboundCase, generated_secret


class VirtualTime:
    """The entry point's time in tests: sleeping costs nothing, the clock jumps."""

    def __init__(self):
        self.slept = []

    def sleep(self, seconds):
        self.slept.append(seconds)

    def clock(self):
        return time.monotonic() + sum(self.slept)


@tagged("post_install", "-at_install")
class TestOutboundEntryPoint(BjOutboundCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.config = cls.make_out_config(filter_domain="[('email', '!=', False)]")
        cls.partners = cls.env["res.partner"].create([
            {"name": f"Entry {index}", "email": f"entry{index}@example.com"} for index in range(5)
        ])
        cls.outside = cls.env["res.partner"].create({"name": "No email"})
        cls.env["ir.model.data"].create({
            "module": "bjet_api_sync_tests", "name": "out_contacts",
            "model": cls.config._name, "res_id": cls.config.id,
        })

    def setUp(self):
        super().setUp()
        self.time = VirtualTime()
        self.startPatcher(patch.object(OutboundCall, "sleep", staticmethod(self.time.sleep)))
        self.startPatcher(patch.object(OutboundCall, "clock", staticmethod(self.time.clock)))

    def send(self, *args, **kwargs):
        return self.env["bj.api.sync.config"]._make_outbound_http_request(*args, **kwargs)

    def retrying_config(self, **values):
        """Backoff of 1 to 2 s (equal jitter), default timeouts: T = 20 s."""
        values.setdefault("name", "Retrying")
        return self.make_out_config(retry_base_delay=2, retry_max_delay=10, **values)

    def jobs(self, answer):
        return self.env["bj.api.sync.job"].browse(answer["queued_job_ids"])

    def res_ids(self):
        return [body["res_id"] for body in self.bodies()]

    def test_each_argument_form(self):
        partner = self.partners[0]
        config = self.config
        calls = [
            ((partner, config.id), {}),
            ((partner.id, config), {}),
            (([partner.id], "bjet_api_sync_tests.out_contacts"), {}),
            (((partner.id,), str(config.id)), {}),
            ((), {"record_ids": partner, "config_id_ref": config.id, "timeout": 5}),
        ]
        for args, kwargs in calls:
            answer = self.send(*args, **kwargs)
            self.assertTrue(answer["success"], (args, kwargs, answer))
            self.assertEqual(answer["status_code"], 200)
            self.assertEqual(answer["data"], {"ok": True})
            self.assertIsNone(answer["error"])
            log = self.env["bj.api.log"].browse(answer["log_id"])
            self.assertEqual((log.direction, log.state, log.status_code, log.res_ids),
                             ("out", "success", 200, str(partner.id)))
        self.assertEqual(len(self.server.requests), len(calls))
        expected = {"res_id": partner.id, "name": "Entry 0", "email": "entry0@example.com",
                    "phone": None}
        self.assertEqual(self.bodies(), [expected] * len(calls))
        self.assertEqual({request.method for request in self.server.requests}, {"POST"})

    def test_the_answer_also_reads_as_attributes(self):
        answer = self.send(self.partners[0], self.config)
        self.assertIsInstance(answer, dict)
        self.assertEqual((answer.status_code, answer.success, answer.data, answer.log_id),
                         (200, True, {"ok": True}, answer["log_id"]))
        self.assertFalse(hasattr(answer, "status"), "only its keys")
        self.assertEqual(json.loads(json.dumps(answer)), answer)

    def test_a_server_action_reads_the_answer_as_documented(self):
        self.server.queue(200, {"ok": True})
        self.server.queue(400, {"error": "refused"})
        action = self.env["ir.actions.server"].create({
            "name": "Send to the CRM",
            "model_id": self.partner_model.id,
            "state": "code",
            "code": (
                "response = env['bj.api.sync.config']._make_outbound_http_request(\n"
                f"    record.id, {self.config.id})\n"
                "if response.status_code != 200 or not response.success:\n"
                "    raise UserError('Sync failed: %s' % response.error)\n"
                "record.write({'ref': 'Synced: %s' % response.data['ok']})\n"
            ),
        })
        partner = self.partners[0]
        action.with_context(active_model="res.partner", active_id=partner.id).run()
        self.assertEqual(partner.ref, "Synced: True")
        with self.assertRaisesRegex(UserError, "Sync failed: HTTP 400"):
            action.with_context(active_model="res.partner", active_id=partner.id).run()

    def test_bad_references_are_clear_errors(self):
        with self.assertRaisesRegex(UserError, "No API configuration matches"):
            self.send(self.partners[0], "bjet_api_sync_tests.nothing_here")
        with self.assertRaisesRegex(UserError, "No API configuration matches"):
            self.send(self.partners[0], 0)
        inbound = self.make_partner_config(request_type="in")
        with self.assertRaisesRegex(UserError, "not an active Out configuration"):
            self.send(self.partners[0], inbound)
        with self.assertRaisesRegex(UserError, "sends res.partner records, not res.users"):
            self.send(self.env.user, self.config)
        with self.assertRaisesRegex(UserError, "recordset, an id or a list of ids"):
            self.send("1,2", self.config)
        self.assertFalse(self.server.requests)

    def test_filter_domain_skips_and_reports(self):
        answer = self.send([self.partners[1].id, self.outside.id, 999999999], self.config)
        self.assertTrue(answer["success"])
        self.assertEqual(answer["skipped_ids"], [self.outside.id, 999999999])
        self.assertEqual([body["res_id"] for body in self.bodies()], [self.partners[1].id])
        answer = self.send(self.outside, self.config)
        self.assertFalse(answer["success"])
        self.assertIn("outside the Filter Domain", answer["error"])
        self.assertEqual((answer["unsent_ids"], answer["queued_job_ids"]), ([], []))
        self.assertEqual(len(self.server.requests), 1)

    def test_paginated_arrays_of_page_size(self):
        config = self.make_out_config(is_paginated=True, page_size=2, name="Paged")
        self.server.queue(200, {"page": 1})
        self.server.queue(200, {"page": 2})
        self.server.queue(200, {"page": 3})
        answer = self.send(self.partners, config)
        self.assertTrue(answer["success"])
        self.assertEqual([len(body) for body in self.bodies()], [2, 2, 1])
        self.assertEqual([item["res_id"] for body in self.bodies() for item in body],
                         self.partners.ids)
        self.assertEqual(answer["data"], [{"page": 1}, {"page": 2}, {"page": 3}])
        self.assertEqual(len(answer["log_ids"]), 3)

    def test_a_failure_is_retried_inline_and_does_not_stop_the_others(self):
        # The review's case: three records, the first answered 500.
        partners = self.partners[:3]
        self.server.queue(500, {"error": "boom"})
        answer = self.send(partners, self.retrying_config())
        self.assertTrue(answer["success"], answer)
        self.assertEqual(self.res_ids(), [*partners.ids, partners[0].id],
                         "every record is sent once before the failed one is retried")
        self.assertEqual((answer["unsent_ids"], answer["queued_job_ids"]), ([], []))
        self.assertEqual(answer["data"], [{"ok": True}] * 3)
        self.assertEqual(len(self.time.slept), 1)
        self.assertTrue(0 < self.time.slept[0] <= 2, "the backoff: base 2 s, equal jitter")
        logs = self.env["bj.api.log"].browse(answer["log_ids"])
        self.assertEqual(logs.mapped("attempt"), [1, 1, 1, 2])
        self.assertEqual(logs.mapped("state"), ["error", "success", "success", "success"])
        self.assertEqual(answer["log_id"], logs[2].id, "the last record's last attempt")

    def test_undelivered_records_are_queued_never_dropped(self):
        partners = self.partners[:3]
        config = self.retrying_config(user_id=self.sync_manager.id)
        self.server.queue(422, {"error": "invalid"})  # not retried
        self.server.queue(503, {})
        self.server.queue(200, {})
        self.server.queue(503, {})
        self.server.queue(503, {"error": "still down"})
        answer = self.send(partners, config)
        self.assertFalse(answer["success"])
        self.assertEqual(self.res_ids(), [*partners.ids, partners[1].id, partners[1].id],
                         "at most 3 attempts inline, none for a 422")
        self.assertEqual(answer["unsent_ids"], partners[:2].ids)
        self.assertEqual((answer["status_code"], answer["data"][1]), (503, {"error": "still down"}))
        self.assertIn("503", answer["error"])
        self.assertEqual(self.env["bj.api.log"].browse(answer["log_id"]).attempt, 3)
        dead, pending = jobs = self.jobs(answer)
        self.assertEqual(jobs.mapped("res_ids"), [str(i) for i in partners[:2].ids])
        self.assertEqual(jobs.mapped("event"), ["manual", "manual"])
        self.assertEqual((dead.state, dead.attempt, dead.last_status_code), ("dead", 1, 422))
        self.assertTrue(config.activity_ids, "the Responsible hears of the dead delivery")
        self.assertEqual((pending.state, pending.attempt, pending.attempt_limit,
                          pending.last_status_code), ("pending", 3, 3 + config.max_attempts, 503))
        self.assertGreater(pending.next_attempt_at, fields.Datetime.now(), "its backoff")
        dead.action_retry()
        self.pass_time(pending)
        self.deliver()
        self.assertEqual((dead.state, dead.retried_job_id.state, pending.state),
                         ("cancelled", "done", "done"))
        self.assertEqual(self.res_ids()[5:], partners[1::-1].ids,
                         "the retried delivery goes behind the record's queue")
        self.assertEqual(pending.log_ids.attempt, 4, "the queue counts on from the inline ones")

    def test_retry_after_is_honoured(self):
        self.server.queue(429, {}, headers={"Retry-After": "7"})
        answer = self.send(self.partners[0], self.retrying_config())
        self.assertTrue(answer["success"], answer)
        self.assertEqual(len(self.server.requests), 2)
        self.assertEqual(len(self.time.slept), 1)
        self.assertTrue(6.5 < self.time.slept[0] <= 7, self.time.slept)

    def test_retries_stay_inside_the_budget(self):
        config = self.make_out_config(name="No backoff", retry_base_delay=0, retry_max_delay=0)
        # T = 0.5 + 0.5 = 1 s: the retries must end 3 s after the first pass.
        self.server.queue(503, {}, headers={"Retry-After": "1"})
        self.server.queue(503, {}, headers={"Retry-After": "2"})
        started = self.time.clock()
        answer = self.send(self.partners[0], config, timeout=(0.5, 0.5))
        self.assertLessEqual(self.time.clock() - started, 1 + retry.INLINE_RETRY_WINDOW)
        self.assertEqual(len(self.server.requests), 2, "waiting 2 s more would not fit")
        self.assertEqual(len(self.time.slept), 1)
        self.assertFalse(answer["success"])
        job = self.jobs(answer)
        self.assertEqual((job.state, job.attempt), ("pending", 2))
        now = fields.Datetime.now()
        self.assertTrue(now + timedelta(seconds=1) <= job.next_attempt_at
                        <= now + timedelta(seconds=3), "due when the Retry-After ends")

    def test_maximum_attempts_bounds_inline_retries(self):
        config = self.retrying_config(max_attempts=1)
        self.server.queue(503, {})
        answer = self.send(self.partners[0], config)
        self.assertEqual((len(self.server.requests), self.time.slept), (1, []))
        self.assertEqual(self.jobs(answer).state, "pending")

    def test_paginated_page_failure(self):
        config = self.make_out_config(is_paginated=True, page_size=2, name="Paged failure")
        self.server.queue(200, {"page": 1})
        self.server.queue(400, {"error": "bad page"})
        self.server.queue(200, {"page": 3})
        answer = self.send(self.partners, config)
        self.assertEqual([len(body) for body in self.bodies()], [2, 2, 1])
        self.assertEqual(answer["unsent_ids"], self.partners[2:4].ids)
        self.assertEqual(answer["data"], [{"page": 1}, {"error": "bad page"}, {"page": 3}])
        job = self.jobs(answer)
        self.assertEqual((job.state, job.res_ids), ("dead", f"{self.partners[2].id},"
                                                           f"{self.partners[3].id}"))

    def test_placeholders_method_headers_and_basic_auth(self):
        password = generated_secret()
        config = self.make_out_config(
            path="/contacts/{res_id}?mail={email}", name="PUT one",
            http_method_ids=[Command.set(self.method_put.ids)],
            authorization_type="basic_auth", login="odoo", password=password,
            header_ids=[Command.create({"key": "X-Tenant", "value": "acme"})],
        )
        partner = self.partners[2]
        answer = self.send(partner, config)
        self.assertTrue(answer["success"], answer)
        request = self.server.requests[0]
        self.assertEqual(request.method, "PUT")
        self.assertEqual(request.path, f"/contacts/{partner.id}?mail=entry2%40example.com")
        self.assertEqual(request.headers["X-Tenant"], "acme")
        self.assertEqual(request.headers["Content-Type"], "application/json")
        self.assertEqual(base64.b64decode(request.headers["Authorization"][6:]).decode(),
                         f"odoo:{password}")
        log = self.env["bj.api.log"].browse(answer["log_id"])
        self.assertNoSecretIn(log.request_headers, password)
        self.assertIn("X-Tenant", log.request_headers)

    def test_missing_placeholder_is_not_sent(self):
        config = self.make_out_config(path="/contacts/{phone}", name="By phone")
        answer = self.send(self.partners[0], config)
        self.assertFalse(answer["success"])
        self.assertIn("no value for 'phone'", answer["error"])
        self.assertFalse(self.server.requests)
        self.assertEqual(self.env["bj.api.log"].browse(answer["log_id"]).state, "error")
        job = self.jobs(answer)
        self.assertEqual((job.state, job.res_ids), ("dead", str(self.partners[0].id)))
        self.assertIn("no value for 'phone'", job.last_error)

    def test_bearer_token_with_or_without_prefix(self):
        token = generated_secret()
        for stored in (token, f"Bearer {token}"):
            config = self.make_out_config(authorization_type="bearer_token", bearer_token=stored,
                                          name=f"Bearer {len(stored)}")
            self.assertTrue(self.send(self.partners[0], config)["success"])
        self.assertEqual([r.headers["Authorization"] for r in self.server.requests],
                         [f"Bearer {token}"] * 2)

    def test_timeout_argument_bounds_the_whole_call(self):
        config = self.make_out_config(name="No backoff", retry_base_delay=0, retry_max_delay=0)
        for _attempt in range(3):
            self.server.queue(200, {}, delay=2)
        started = time.monotonic()
        answer = self.send(self.partners[0], config, timeout=0.3)
        # One attempt waits at most 0.3 s to connect and 0.3 s for the answer.
        budget = (1 + retry.INLINE_RETRY_WINDOW) * 0.6
        self.assertLess(time.monotonic() - started, budget)
        self.assertEqual(len(self.server.requests), 3)
        self.assertFalse(answer["success"])
        self.assertIsNone(answer["status_code"])
        self.assertIn("Timeout", answer["error"])
        log = self.env["bj.api.log"].browse(answer["log_id"])
        self.assertEqual(log.state, "error")
        self.assertIn("did not answer in time", log.error_message)
        self.assertEqual(self.jobs(answer).state, "pending")

    def test_a_call_from_a_script_keeps_within_its_budget(self):
        """requests' waits are not the script's frames: called from a script, the
        call's timeouts and retries end at the script's deadline."""
        config = self.make_out_config(name="Slow", retry_base_delay=0, retry_max_delay=0)
        for _attempt in range(3):
            self.server.queue(200, {}, delay=5)
        script = compile_script(
            "answer = env['bj.api.sync.config']._make_outbound_http_request("
            f"{self.partners[0].id}, {config.id}, timeout=(5, 20))\n"
            "while True:\n    pass", "execute")
        budget = Budget(time.monotonic() + 1)
        variables = script_context(script_environment(self.env), None, None, {}, budget)
        started = time.monotonic()
        with self.assertRaises(ScriptTimeout):
            run_within(budget, lambda: exec(script.code, variables))  # noqa: S102 - checked
        self.assertLess(time.monotonic() - started, 3)

    def test_mapping_error_is_reported_logged_and_queued(self):
        config = self.make_out_config(name="Broken script")
        config.line_ids[-1].write({
            "value_type": "python_plain",
            "python_script": "1 / 0 if record.name == 'Entry 1' else record.phone",
        })
        answer = self.send(self.partners[:3], config)
        self.assertFalse(answer["success"])
        self.assertIn("phone", answer["error"])
        self.assertEqual(self.res_ids(), [self.partners[0].id, self.partners[2].id],
                         "the other records are still sent")
        self.assertEqual(answer["unsent_ids"], self.partners[1].ids)
        self.assertEqual(self.env["bj.api.log"].browse(answer["log_id"]).state, "error")
        job = self.jobs(answer)
        self.assertEqual((job.state, job.res_ids), ("dead", str(self.partners[1].id)))
        self.assertIn("phone", job.last_error)


@tagged("post_install", "-at_install")
class TestOutboundResult(BaseCase):
    def test_keys_read_as_attributes(self):
        result = OutboundResult(success=False, status_code=None, data=[{"id": 1}], log_id=7)
        for name, expected in (("success", False), ("status_code", None),
                               ("data", [{"id": 1}]), ("log_id", 7)):
            with self.subTest(name=name):
                self.assertEqual(getattr(result, name), expected)
                self.assertEqual(result[name], expected)
        for name in ("status", "json", "__wrapped__"):
            with self.subTest(name=name):
                self.assertFalse(hasattr(result, name))
        self.assertEqual(result.get("error", "none"), "none")
        self.assertEqual(dict(result), {"success": False, "status_code": None,
                                        "data": [{"id": 1}], "log_id": 7})
