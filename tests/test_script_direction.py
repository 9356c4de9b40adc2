"""Scripts run in their configuration's direction, once per item and call."""

from odoo.tests import tagged

from .common import BjApiHttpCase

# The original documentation's own pattern: a script that reads an input key.
DATE_SCRIPT = (
    "datetime.datetime.strptime(request_data['date_string'], '%m/%d/%Y').strftime('%Y-%m-%d')"
)
# The demo data's note line.
NOTE_SCRIPT = "(request_data.get('notes') or '').strip() or 'Created through the API'"


@tagged("post_install", "-at_install")
class TestScriptDirection(BjApiHttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.config = cls.make_config(endpoint="direction-partners", lines=[
            ("id", "res_id", {"is_identifier": True}),
            ("name", "name", None),
            ("phone", "phone", None),
            ("ref", "date_string", {"value_type": "python_plain", "python_script": DATE_SCRIPT}),
            ("comment", "notes", {"value_type": "python_plain", "python_script": NOTE_SCRIPT}),
        ])

    def test_import_script_reading_an_input_key(self):
        created = self.assertApiSuccess(self.api(
            "POST", "direction-partners", body={"name": "Dated", "date_string": "12/31/2024"}
        ), 201)
        # The answer shows the stored value: the script does not run on export.
        self.assertEqual(created["date_string"], "2024-12-31")
        self.assertIn("Created through the API", created["notes"])  # an HTML field
        partner = self.env["res.partner"].browse(created["res_id"])
        self.assertEqual(partner.ref, "2024-12-31")
        got = self.assertApiSuccess(self.api("GET", "direction-partners", partner.id))
        self.assertEqual(got["date_string"], "2024-12-31")

    def test_partial_put_keeps_what_was_not_sent(self):
        partner = self.env["res.partner"].create({"name": "Kept", "comment": "Hand written"})
        updated = self.assertApiSuccess(self.api(
            "PUT", "direction-partners", partner.id, body={"phone": "+32 2 555 00 00"}
        ))
        self.assertEqual(updated["phone"], "+32 2 555 00 00")
        self.assertIn("Hand written", updated["notes"])
        self.assertIn("Hand written", partner.comment)

    def test_a_script_runs_once_per_item_and_call(self):
        config = self.make_config(endpoint="direction-once", lines=[
            ("id", "res_id", {"is_identifier": True}),
            ("name", "name", None),
            ("comment", "notes", {
                "value_type": "python_plain",
                "python_script": "env['res.partner.category'].create("
                                 "{'name': 'run ' + request_data['name']}).name",
            }),
        ])
        tags = self.env["res.partner.category"]
        self.assertApiSuccess(self.api("POST", "direction-once", body=[
            {"name": "a"}, {"name": "b"},
        ]), 201)
        self.assertEqual(tags.search_count([("name", "in", ["run a", "run b"])]), 2)
        self.assertEqual(len(self.get_logs(config)), 1)

    def test_execute_scripts_do_not_leak_keys_into_answers(self):
        self.make_config(endpoint="direction-execute", lines=[
            ("id", "res_id", {"is_identifier": True}),
            ("comment", "notes", {"sequence": 0, "value_type": "python_plain",
                                  "script_mode": "execute",
                                  "python_script": "request_data['name'] = "
                                                   "request_data.pop('first') + ' (api)'"}),
            ("name", "name", {"sequence": 5}),
        ])
        created = self.assertApiSuccess(
            self.api("POST", "direction-execute", body={"first": "Ada"}), 201
        )
        self.assertEqual(created, {"res_id": created["res_id"], "name": "Ada (api)"})
        partner = self.env["res.partner"].browse(created["res_id"])
        self.assertEqual(self.assertApiSuccess(self.api("GET", "direction-execute", partner.id)),
                         created)
        # Nor a key of queries: the Execute line's key is no filter.
        self.assertApiError(self.api("GET", "direction-execute", params={"notes": "x"}), 400,
                            "^Unknown query parameter 'notes'")

    def test_out_scripts_compute_payload_values_from_the_record(self):
        out = self.make_config(request_type="out", lines=[
            ("id", "id", {"is_identifier": True}),
            ("comment", "label", {"value_type": "python_plain",
                                  "python_script": "record.name.upper()"}),
        ])
        partner = self.env["res.partner"].create({"name": "neo"})
        self.assertEqual(self.export(out, partner, with_scripts=True), [
            {"id": partner.id, "label": "NEO"},
        ])
