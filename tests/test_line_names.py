"""Every message names a configuration line by its External API Key, else by
its field's label (core.plan.line_label), never by a technical field name."""

import ast
from pathlib import Path

from odoo.exceptions import ValidationError
from odoo.tests import BaseCase, tagged

from ..core.plan import line_label
from .common import BjApiHttpCase

ADDON = Path(__file__).resolve().parent.parent
# The code whose messages may name a line.
MESSAGE_CODE = ("core", "services", "models", "controllers")


def formatted_keys():
    """``(file, line number, text before, text after)`` of every f-string
    placeholder that formats a line's ``key`` (``line.key``, ``<x>.identifier.key``)."""
    sites = []
    for folder in MESSAGE_CODE:
        for path in sorted((ADDON / folder).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.JoinedStr):
                    continue
                parts = node.values
                for index, part in enumerate(parts):
                    if not (isinstance(part, ast.FormattedValue)
                            and isinstance(part.value, ast.Attribute)
                            and part.value.attr == "key"):
                        continue
                    owner = ast.unparse(part.value.value)
                    if not (owner == "line" or owner.endswith(".identifier")):
                        continue
                    before = parts[index - 1].value if index and isinstance(
                        parts[index - 1], ast.Constant) else ""
                    after = parts[index + 1].value if index + 1 < len(parts) and isinstance(
                        parts[index + 1], ast.Constant) else ""
                    sites.append((f"{folder}/{path.name}", part.lineno, before, after))
    return sites


@tagged("post_install", "-at_install")
class TestLineNamesInCode(BaseCase):
    def test_line_label(self):
        for external_key, field_label, expected in (
            ("email", "Email", "email"),
            ("", "Notes", "Notes"),
            (False, "Notes", "Notes"),
        ):
            with self.subTest(external_key=external_key):
                self.assertEqual(line_label(external_key, field_label), expected)

    def test_a_line_key_is_formatted_only_as_key_equals_value(self):
        """A message names a line by ``line.label``; its key appears only where
        the message quotes what the caller sent, ``<key> = <value>``."""
        sites = formatted_keys()
        self.assertTrue(sites, "the scan found no message at all")
        for site in sites:
            with self.subTest(site=site):
                _path, _lineno, before, after = site
                self.assertTrue(after.startswith(" = ") or before.endswith(" the same "),
                                "name the line by line.label")


@tagged("post_install", "-at_install")
class TestLineNamesInMessages(BjApiHttpCase):
    """The messages that name a line, for lines without an External API Key
    (their field's label) and with one (the key)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.label = {name: field.string for name, field in cls.env["res.partner"]._fields.items()}
        cls.tags_config = cls.make_config(model="res.partner.category",
                                          lines=[("name", "name", {"is_identifier": True})])
        cls.config = cls.make_config(endpoint="line-names", lines=[
            ("id", "res_id", {"is_identifier": True}),
            ("name", "name", None),
            ("comment", False, {"value_type": "python_plain", "script_mode": "execute",
                                "python_script": "if request_data.get('fail'):\n"
                                                 "    1 / 0"}),
            ("email", False, None),
            ("ref", False, {"value_type": "python_plain",
                            "python_script": "request_data.get('ref')"}),
            ("function", "job", {"value_type": "python_plain",
                                 "python_script": "if request_data.get('job'):\n"
                                                  "    raise UserError('no job')\n"
                                                  "result = False"}),
            ("category_id", False, {"value_type": "relational_mapping",
                                    "mapping_config_id": cls.tags_config.id}),
        ])

    def line(self, field_name):
        return self.config.line_ids.filtered(lambda line: line.field_id.name == field_name)

    def post_error(self, body, message, field_name, **params):
        response = self.api("POST", "line-names", body=body, params=params or None)
        return self.assertApiError(response, 400, message, line_id=self.line(field_name).id)

    def test_answers_name_lines_by_key_else_label(self):
        notes, email = self.label["comment"], self.label["email"]
        ref, tags = self.label["ref"], self.label["category_id"]
        log = self.capture_server_log()
        cases = [
            # A script that fails: the Execute line, named by its field's label.
            # (the README's example of a message)
            ({"name": "a", "fail": True}, f"^Script of line '{notes}' failed at line 2: "
                                          "ZeroDivisionError: division by zero$", "comment"),
            # A script's UserError, on a line with a key.
            ({"name": "a", "job": "x"}, "^Script of line 'job': no job$", "function"),
            # A script's value its field cannot take.
            ({"name": "a", "ref": {"a": 1}}, f"^The script of line '{ref}' returned a value",
             "ref"),
            # A plain value, and a Mapping Model's.
            ({"name": "a", "email": {"a": 1}}, f"^Invalid value for '{email}': expected a string",
             "email"),
            ({"name": "a", "category_id": "x"}, f"^Invalid value for '{tags}': expected a list",
             "category_id"),
            ({"name": "a", "category_id": ["nope"]},
             f"^Invalid value for '{tags}': no res.partner.category record with name = 'nope'",
             "category_id"),
        ]
        for body, message, field_name in cases:
            with self.subTest(message=message):
                self.post_error(body, message, field_name)
        self.assertIn(f"Script of line '{notes}' (id {self.line('comment').id}) failed",
                      "\n".join(record.getMessage() for record in log))
        # Lists: a script line is no filter, nor an order.
        for params, message in (({"ref": "x"}, f"^Records cannot be filtered on '{ref}'"),
                                ({"order": "ref"}, f"^Cannot order by '{ref}'")):
            with self.subTest(params=params):
                self.assertApiError(self.api("GET", "line-names", params=params), 400, message,
                                    line_id=self.line("ref").id)

    def test_the_form_names_lines_by_key_else_label(self):
        self.assertEqual(self.line("ref").display_name, self.label["ref"])
        self.assertEqual(self.line("function").display_name, "job")
        with self.assertRaisesRegex(ValidationError,
                                    f"^Line {self.label['ref']}: a Python Script is required"):
            self.line("ref").python_script = ""
        with self.assertRaisesRegex(ValidationError,
                                    f"^Line {self.label['comment']}: the Python Script is "
                                    "refused"):
            self.line("comment").python_script = "import os"
