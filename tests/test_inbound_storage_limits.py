"""Values the database cannot store are a 400, never a 500 or an ERROR line.

Over real HTTP, with the server log captured on the root logger: text too large
for an index (on the field, on a UNIQUE constraint, or on a stored field computed
from it), longer than a Char's size, a required field left empty, a check
constraint, wrong selections, ids and integers, in nested lines, by POST, PUT and
batches.  Each answer is the documented error body naming the key where Odoo can
know it, nothing is written, and no log record is an ERROR or holds a value the
caller sent.
"""

import logging
import secrets
from unittest.mock import patch

from odoo.tests import tagged

from ..services.inbound_request import InboundRequest
from ..services.records import INDEXED_TEXT_MAX_BYTES
from .common import BjApiHttpCase

ENDPOINT = "storage"
BANKS = "storage-banks"
MARKER = "client-value"


def incompressible(size):
    """Text of ``size`` bytes that compression does not shrink below the B-tree limit."""
    return f"{MARKER}-{secrets.token_urlsafe(size)}"[:size]


@tagged("post_install", "-at_install")
class TestInboundStorageLimits(BjApiHttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for name, extra in (("x_bj_s_code", {"size": 8}), ("x_bj_s_key", {"index": True})):
            cls.env["ir.model.fields"].create({
                "model_id": cls.partner_model.id, "name": name, "ttype": "char",
                "field_description": name, "state": "manual", **extra,
            })
        cls.accounts = cls.make_config(model="res.partner.bank", name="Accounts", lines=[
            ("id", "account_id", {"is_identifier": True}), ("acc_number", "acc", None),
            ("bank_id", "bank", None)])
        cls.config = cls.make_config(endpoint=ENDPOINT, lines=[
            ("id", "res_id", {"is_identifier": True}),
            ("name", "name", None),
            ("ref", "ref", None),
            ("email", "email", None),
            ("website", "website", None),
            ("type", "type", None),
            ("color", "color", None),
            ("parent_id", "parent", None),
            ("country_id", "country", None),
            ("x_bj_s_code", "code", None),
            ("x_bj_s_key", "key", None),
            ("bank_ids", "accounts", {"value_type": "relational_mapping",
                                      "mapping_config_id": cls.accounts.id}),
        ])
        cls.banks = cls.make_config(model="res.bank", endpoint=BANKS, lines=[
            ("id", "res_id", {"is_identifier": True}), ("name", "name", None),
            ("bic", "bic", None)])
        cls.partner = cls.env["res.partner"].create({"name": "Stored", "ref": "S-1"})
        # Its complete_name, and that of a contact under it, go into an index.
        cls.company = cls.env["res.partner"].create({
            "name": incompressible(INDEXED_TEXT_MAX_BYTES - 100), "is_company": True})

    def setUp(self):
        super().setUp()
        self.records = self.capture_server_log()

    def line_id(self, key, endpoint=ENDPOINT):
        configs = self.banks if endpoint == BANKS else self.config | self.accounts
        return configs.line_ids.filtered(lambda line: line.external_key == key).id

    def counts(self):
        self.env.invalidate_all()
        return tuple(self.env[model].with_context(active_test=False).search_count([])
                     for model in ("res.partner", "res.partner.bank", "res.bank", "bj.api.log"))

    def refused(self, method, body, message, key=None, identifier=None, index=None,
                endpoint=ENDPOINT):
        """Send ``body``: a 400 matching ``message`` (naming ``key``'s line and
        the batch ``index`` when given), nothing written, one log row, and a
        server log without an ERROR or anything the caller sent."""
        before = self.counts()
        self.records.clear()
        response = self.api(method, endpoint, identifier, body=body)
        answer = self.assertApiError(response, 400, message)
        if key is not None:
            self.assertEqual(answer["line_id"], self.line_id(key, endpoint), answer)
        self.assertEqual(answer.get("index"), index, answer)
        after = self.counts()
        self.assertEqual(after[:3], before[:3], "a refused request wrote records")
        self.assertEqual(after[3], before[3] + 1, "one log row per request")
        sent = [value for value in self.strings(body) if len(value) > 3]
        for record in self.records:
            text = self.logged_text(record)
            self.assertLess(record.levelno, logging.ERROR, text[:2000])
            for value in sent:
                self.assertNotIn(value[:200], text, f"{record.name} logged a value sent")
        return answer

    def strings(self, value):
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            return [text for item in value.values() for text in self.strings(item)]
        if isinstance(value, list):
            return [text for item in value for text in self.strings(item)]
        return []

    # -- checked before the INSERT, naming the key --------------------------------

    def test_text_too_large_for_an_index(self):
        too_large = f"longer than {INDEXED_TEXT_MAX_BYTES} bytes"
        self.refused("POST", {"name": MARKER + "x" * 1_000_000}, too_large, "name")
        self.refused("POST", {"name": incompressible(3000)}, too_large, "name")
        self.refused("POST", {"name": "Ok", "ref": incompressible(3000)}, too_large, "ref")
        self.refused("POST", {"name": "Ok", "key": incompressible(3000)}, too_large, "key")
        self.refused("PUT", {"name": incompressible(2 * INDEXED_TEXT_MAX_BYTES)}, too_large,
                     "name", identifier=self.partner.id)
        # UNIQUE(sanitized_acc_number, partner_id): computed from acc_number.
        self.refused("POST", {"name": "Holder", "accounts": [{"acc": incompressible(3000)}]},
                     too_large, "acc")
        self.refused("POST", {"name": "B", "bic": incompressible(3000)}, too_large, "bic",
                     endpoint=BANKS)

    def test_text_longer_than_its_size(self):
        self.refused("POST", {"name": "Sized", "code": f"{MARKER}-123"}, "longer than 8 char",
                     "code")
        self.refused("PUT", {"code": f"{MARKER}-123"}, "longer than 8 char", "code",
                     identifier=self.partner.id)

    def test_required_fields(self):
        self.refused("POST", {"bic": f"{MARKER}-1"}, "'name'.*required", "name", endpoint=BANKS)
        self.refused("PUT", {"name": None, "bic": f"{MARKER}-2"}, "'name'.*required", "name",
                     identifier=self.env["res.bank"].create({"name": "Bank"}).id, endpoint=BANKS)
        # Nested: the account's holder is the record being created, its number is not.
        self.refused("POST", {"name": "Holder", "email": f"{MARKER}@example.com",
                              "accounts": [{"bank": None}]}, "'acc'.*required", "acc")

    def test_batches_name_the_item(self):
        self.refused("POST", [{"name": "Fine"}, {"name": MARKER + "y" * 100_000}],
                     "longer than", "name", index=1)
        self.refused("POST", [{"name": "Fine", "code": "ok"}, {"name": "F", "code": MARKER}],
                     "longer than 8", "code", index=1)
        self.refused("PUT", [{"res_id": self.partner.id, "code": f"{MARKER}-long"}],
                     "longer than 8", "code", index=0)

    # -- refused by the database: answered without its ERROR line --------------------

    def test_check_constraint(self):
        # res.partner's name is not required by the ORM but by a CHECK constraint.
        email = f"{MARKER}@example.com"
        self.refused("POST", {"email": email}, "Contacts require a name")
        self.refused("POST", {"email": email, "name": None}, "Contacts require a name")
        self.refused("PUT", {"name": None, "email": email}, "Contacts require a name",
                     identifier=self.partner.id)
        self.refused("POST", [{"name": "Fine"}, {"email": email}], "Contacts require a name",
                     index=1)
        self.refused("PUT", [{"res_id": self.partner.id, "name": None, "email": email}],
                     "Contacts require a name", index=0)

    def test_computed_index_entry_too_large(self):
        """The contact's name fits, its complete_name ("<company>, <name>") does not."""
        self.refused("POST", {"name": incompressible(INDEXED_TEXT_MAX_BYTES - 100),
                              "parent": self.company.id},
                     "'name'.*too large for the database.*complete_name", "name")

    # -- not about the values: a 500, logged without them ------------------------------

    def test_unexpected_database_error_is_logged_without_values(self):
        """A broken statement whose text quotes the values sent: the server log
        gets its kind, SQLSTATE and place, not its text."""
        value = incompressible(40)

        def create(request, model, payload):
            request.cr.execute("SELECT no_such_column FROM res_partner WHERE name = %s",
                               [payload["name"]])

        # Kept from the root logger: make test fails on any ERROR line in Odoo's log.
        inbound_logger = logging.getLogger("bj.api.inbound")
        records = self.capture_server_log(logger=inbound_logger)
        with patch.object(InboundRequest, "_create", create), \
                patch.object(inbound_logger, "propagate", False):
            response = self.api("POST", ENDPOINT, body={"name": value})
        self.assertApiError(response, 500, "Internal server error")
        [error] = [record for record in records if record.levelno >= logging.ERROR]
        text = self.logged_text(error)
        self.assertIn("UndefinedColumn (SQLSTATE 42703)", text)
        self.assertIn("in create", text)
        for record in [error, *self.records]:
            self.assertNotIn(value, self.logged_text(record))

    # -- refused by the mapping -------------------------------------------------------

    def test_wrong_values(self):
        for body, key in (
            ({"name": "S", "type": f"{MARKER}-kind"}, "type"),
            ({"name": "S", "country": 2_000_000_000}, "country"),
            ({"name": "S", "parent": 2**40}, "parent"),
            ({"name": "S", "color": 2**31}, "color"),
            ({"name": "S", "color": -(2**63)}, "color"),
            ({"name": "S", "accounts": [{"acc": "FR76", "bank": 2_000_000_000}]}, "bank"),
        ):
            with self.subTest(body=body):
                self.refused("POST", body, f"'{key}'", key)

    def test_refusals_of_the_models_own_code(self):
        """A model's create, write or unlink refusing the caller's values with a
        ValueError (an unparsable website) or a RedirectWarning (a contact of an
        active user): a 400, never a 500 or an ERROR line."""
        for website in (f"http://[{MARKER}", f"http://{MARKER}]", "//[", "http://[::1"):
            with self.subTest(website=website):
                self.refused("POST", {"name": "Web", "website": website}, "refused")
                self.refused("PUT", {"website": website}, "refused",
                             identifier=self.partner.id)
        before = self.counts()
        response = self.api("DELETE", ENDPOINT, self.sync_user.partner_id.id)
        self.assertApiError(response, 400, "active user")
        self.assertEqual(self.counts()[:3], before[:3])
        self.assertFalse([record for record in self.records if record.levelno >= logging.ERROR])

    def test_values_that_fit_are_stored(self):
        name = incompressible(INDEXED_TEXT_MAX_BYTES)
        response = self.api("POST", ENDPOINT, body={
            "name": name, "code": "12345678",
            "accounts": [{"acc": incompressible(INDEXED_TEXT_MAX_BYTES)}]})
        data = self.assertApiSuccess(response, 201)
        partner = self.env["res.partner"].browse(data["res_id"])
        self.assertEqual((partner.name, partner.x_bj_s_code), (name, "12345678"))
        self.assertEqual(len(partner.bank_ids), 1)
