import json
import threading
from datetime import timedelta

import requests
from psycopg2 import errors

from odoo import fields
from odoo.tests import tagged
from odoo.tests.common import TEST_CURSOR_COOKIE_NAME

from ..core.inbound import InboundResponse
from .common import BjApiHttpCase, BjApiSyncCase, RacingTransactionsMixin


@tagged("post_install", "-at_install")
class TestInboundIdempotency(BjApiHttpCase):
    """A repeated Idempotency-Key / X-Request-ID replays the first answer."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.config = cls.make_partner_config(endpoint="idem-partners")

    def post(self, name, key, header="Idempotency-Key", endpoint="idem-partners"):
        return self.api("POST", endpoint, body={"name": name}, headers={header: key})

    def named(self, name):
        return self.env["res.partner"].search([("name", "=", name)])

    def test_repeated_key_replays_the_first_answer_and_writes_nothing(self):
        first = self.post("Idem One", "key-1")
        self.assertEqual(first.status_code, 201)
        self.assertNotIn("Idempotent-Replayed", first.headers)
        again = self.post("Idem One", "key-1")
        self.assertEqual(again.status_code, 201)
        self.assertEqual(again.headers["Idempotent-Replayed"], "true")
        self.assertEqual(again.json(), first.json())
        self.assertEqual(len(self.named("Idem One")), 1)
        self.assertLogged(self.config, count=2, method="POST", status_code=201)

    def test_key_reused_for_another_request_is_422(self):
        self.assertEqual(self.post("Idem First", "key-2").status_code, 201)
        first, second = self.named("Idem First"), self.env["res.partner"].create({"name": "B"})
        self.assertApiError(self.post("Idem Other Body", "key-2"), 422, "with another body")
        self.assertFalse(self.named("Idem Other Body"))
        for method, identifier in (("PUT", first.id), ("DELETE", first.id)):
            with self.subTest(method=method):
                response = self.api(method, "idem-partners", identifier,
                                     body={"name": "Idem First"} if method == "PUT" else None,
                                     headers={"Idempotency-Key": "key-2"})
                self.assertApiError(response, 422, "for POST /bj_api_sync/v1/idem-partners:")
        self.assertTrue(first.exists(), "the DELETE did not run")
        # The same method and body on another path.
        put = {"Idempotency-Key": "key-3"}
        self.api("PUT", "idem-partners", first.id, body={"phone": "3"}, headers=put)
        response = self.api("PUT", "idem-partners", second.id, body={"phone": "3"}, headers=put)
        self.assertApiError(response, 422, f"for PUT /bj_api_sync/v1/idem-partners/{first.id}:")
        self.assertFalse(second.phone)
        self.assertLogged(self.config, count=4, status_code=422)

    def test_x_request_id_works_too_on_put_and_delete(self):
        partner = self.env["res.partner"].create({"name": "Idem Target"})
        for _attempt in range(2):
            response = self.api("PUT", "idem-partners", partner.id, body={"phone": "1"},
                                headers={"X-Request-ID": "put-1"})
            self.assertEqual(response.status_code, 200)
        partner.phone = "changed meanwhile"
        replay = self.api("PUT", "idem-partners", partner.id, body={"phone": "1"},
                          headers={"X-Request-ID": "put-1"})
        self.assertEqual(replay.headers["Idempotent-Replayed"], "true")
        self.assertEqual(partner.phone, "changed meanwhile", "the replay wrote nothing")

        headers = {"X-Request-ID": "delete-1"}
        self.assertEqual(self.api("DELETE", "idem-partners", partner.id,
                                  headers=headers).status_code, 200)
        replay = self.api("DELETE", "idem-partners", partner.id, headers=headers)
        self.assertEqual(replay.status_code, 200, "the first answer, not a 404")
        self.assertEqual(replay.headers["Idempotent-Replayed"], "true")

    def test_keys_are_scoped_to_configuration(self):
        self.make_partner_config(endpoint="idem-other")
        self.assertEqual(self.post("Idem Scoped A", "shared").status_code, 201)
        other = self.post("Idem Scoped B", "shared", endpoint="idem-other")
        self.assertEqual(other.status_code, 201)
        self.assertNotIn("Idempotent-Replayed", other.headers)
        self.assertTrue(self.named("Idem Scoped B"))

    def test_failed_requests_are_not_stored_and_reads_are_not_keyed(self):
        failed = self.api("POST", "idem-partners", body={"name": {"bad": 1}},
                          headers={"Idempotency-Key": "retry-me"})
        self.assertEqual(failed.status_code, 400)
        fixed = self.post("Idem Fixed", "retry-me")
        self.assertEqual(fixed.status_code, 201)
        self.assertNotIn("Idempotent-Replayed", fixed.headers)
        self.api("GET", "idem-partners", headers={"Idempotency-Key": "read"})
        stored = self.env["bj.api.idempotency"].search([("config_id", "=", self.config.id)])
        self.assertEqual(stored.mapped("key"), ["retry-me"])

    def test_answers_expire_after_24_hours(self):
        self.post("Idem Old", "old-key")
        stored = self.env["bj.api.idempotency"].search([("key", "=", "old-key")])
        self.env.cr.execute(
            "UPDATE bj_api_idempotency SET create_date = %s WHERE id = %s",
            (fields.Datetime.now() - timedelta(hours=25), stored.id),
        )
        again = self.post("Idem New", "old-key")
        self.assertNotIn("Idempotent-Replayed", again.headers)
        self.assertTrue(self.named("Idem New"))
        self.env["bj.api.idempotency"]._gc_expired()
        self.assertTrue(stored.exists(), "the taken-over row is fresh again")
        stored.invalidate_recordset()
        self.env.cr.execute(
            "UPDATE bj_api_idempotency SET create_date = %s WHERE id = %s",
            (fields.Datetime.now() - timedelta(hours=25), stored.id),
        )
        self.env["bj.api.idempotency"]._gc_expired()
        self.assertFalse(stored.exists())

    def test_overlong_key_is_refused(self):
        self.assertApiError(self.post("Idem Long", "k" * 300), 400, "longer than")
        self.assertFalse(self.named("Idem Long"))

    def test_concurrent_duplicates_write_once(self):
        results = []
        self.env.flush_all()

        def send():
            # One HTTP client per thread, as two independent callers.
            with requests.Session() as client:
                client.cookies[TEST_CURSOR_COOKIE_NAME] = self.canonical_tag
                results.append(client.post(
                    self.api_url("idem-partners"), data=json.dumps({"name": "Idem Race"}),
                    headers={"Content-Type": "application/json", "Idempotency-Key": "race"},
                    timeout=30,
                ))

        threads = [threading.Thread(target=send) for _index in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        self.env.invalidate_all()
        self.assertEqual(sorted(r.status_code for r in results), [201, 201])
        self.assertFalse(any("Set-Cookie" in r.headers for r in results))
        self.assertEqual(results[0].json(), results[1].json())
        replayed = [r.headers.get("Idempotent-Replayed") for r in results]
        self.assertEqual(sorted(replayed, key=str), [None, "true"])
        self.assertEqual(len(self.named("Idem Race")), 1)


@tagged("post_install", "-at_install")
class TestIdempotencyClaimConcurrency(RacingTransactionsMixin, BjApiSyncCase):
    """The database, not the workers, decides between two concurrent duplicates.

    The HTTP test server serializes requests on the test cursor, so this test
    opens two real transactions on the database, like two Odoo workers would.
    """

    def claim(self, model):
        return model._bj_claim(self.config_id, "same-key", "POST /x", "h")

    def test_second_claim_waits_then_replays_the_committed_answer(self):
        first, second = self.worker("bj.api.idempotency"), self.worker("bj.api.idempotency")
        second.env.cr.execute("SELECT 1")  # its snapshot predates the first commit
        claim_id, stored = self.claim(first)
        self.assertTrue(claim_id)
        self.assertFalse(stored)

        outcome = {}
        thread = self.in_thread(second, self.claim, outcome)
        thread.join(1)
        self.assertTrue(thread.is_alive(), "the duplicate waits for the first transaction")

        first._bj_complete(claim_id, InboundResponse(201, {"status": "success", "data": 7}))
        first.env.cr.commit()
        thread.join(10)
        self.assertIsInstance(outcome.get("error"), errors.SerializationFailure,
                              "Odoo retries the request on this error")

        # The retry (a new transaction) finds the stored answer.
        claim_id, stored = self.claim(second)
        self.assertIsNone(claim_id)
        self.assertEqual((stored.status_code, stored.response_body),
                         (201, '{"status": "success", "data": 7}'))

    def test_second_claim_proceeds_when_the_first_rolls_back(self):
        first, second = self.worker("bj.api.idempotency"), self.worker("bj.api.idempotency")
        claim_id, _stored = self.claim(first)
        outcome = {}
        thread = self.in_thread(second, self.claim, outcome)
        thread.join(1)
        self.assertTrue(thread.is_alive())
        first.env.cr.rollback()
        thread.join(10)
        new_claim, stored = outcome["result"]
        self.assertTrue(new_claim)
        self.assertFalse(stored)
        second.env.cr.rollback()
