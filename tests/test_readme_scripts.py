"""The script examples of readme/USAGE.md, read from its text, each run through a POST,
then a PUT of another key (which must change nothing else, whatever the
script), then a PUT of its own keys."""

import re
from dataclasses import dataclass, field

from odoo import Command
from odoo.tests import tagged

from .common import USAGE, BjApiHttpCase, doc_section

# The section holding the script examples (its ``python`` blocks).
SCRIPT_EXAMPLES_SECTION = "Script reference"
# An example starts with a comment at the start of a line, after a blank line
# (or at the start of its block); its text is the example's name below.
EXAMPLE_START = re.compile(r"^# (?P<name>.+)$")
# What the second PUT sends: a key no example reads.
OTHER_KEY = {"phone": "+32 2 555 00 00"}
# Lines every example's configuration has besides the example's own.
BASE_LINES = [
    ("id", "res_id", {"is_identifier": True}),
    ("name", "name", None),
    ("email", "email", None),
    ("phone", "phone", None),
]
BASE_POST = {"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+1 555 0100"}


def readme_examples():
    """``{name: source}`` of the examples in the section, in order."""
    section = doc_section(USAGE, SCRIPT_EXAMPLES_SECTION)
    examples = {}
    for block in re.findall(r"^```python\n(.*?)^```$", section, re.MULTILINE | re.DOTALL):
        name, previous = None, ""
        for line in block.splitlines():
            match = EXAMPLE_START.match(line)
            if match and not previous.strip():
                name = match["name"]
                examples[name] = ""
            if name is None:
                raise AssertionError(f"a script example starts without its name: {line!r}")
            examples[name] += line + "\n"
            previous = line
    return examples


@dataclass
class Example:
    """How the test configures and calls one example."""

    field: str  # the field of the example's line
    key: str | None  # its External API Key
    mode: str = "evaluate"
    value_type: str = "python_plain"
    first: bool = False  # the line runs before the others (an Execute line)
    extra_lines: list = field(default_factory=list)  # (field, key, values)
    post: dict = field(default_factory=dict)  # keys sent with BASE_POST
    created: dict = field(default_factory=dict)  # field -> value read after the POST
    # Field values written from Odoo before the PUTs: a PUT must not blank them.
    filled: dict = field(default_factory=dict)
    put: dict = field(default_factory=dict)  # the PUT of the example's own keys
    updated: dict = field(default_factory=dict)  # field -> value read after it
    refused: dict | None = None  # a POST the script refuses, naming its line
    out: bool = False  # an Out configuration's script: checked on a payload


TAGS = "tags_a"  # a tag written from Odoo before the PUTs

EXAMPLES = {
    "Evaluate, expression (key `code`): the field gets the upper-cased code": Example(
        "ref", "code", post={"code": "c-1"}, created={"ref": "C-1"},
        put={"code": "c-2"}, updated={"ref": "C-2"}),
    'Evaluate, statements (key `name`): "Ada Lovelace" becomes "Ada LOVELACE"': Example(
        "name", "name", created={"name": "Ada LOVELACE"},
        put={"name": "Grace Hopper"}, updated={"name": "Grace HOPPER"}),
    "Execute, first line: normalise the payload for the lines after it": Example(
        "comment", None, mode="execute", first=True,
        extra_lines=[("category_id", "tags", None)],
        post={"email": "  ADA@Example.COM "}, created={"email": "ada@example.com",
                                                       "category_id": []},
        filled={"category_id": [TAGS]},
        put={"email": " GRACE@Example.COM"}, updated={"email": "grace@example.com"}),
    'Evaluate on a Char or Date field (key `birthday`): accept "31/12/2024" as well as ISO '
    'dates': Example("ref", "birthday", post={"birthday": "31/12/2024"},
                     created={"ref": "2024-12-31"},
                     put={"birthday": "2025-01-02"}, updated={"ref": "2025-01-02"}),
    "Relational with Python Script (many2many, key `tag_names`): tags by name, created "
    "when missing": Example(
        "category_id", "tag_names", value_type="relational_python",
        post={"tag_names": [TAGS, "readme new tag"]},
        created={"category_id": [TAGS, "readme new tag"]},
        put={"tag_names": ["readme other tag"]}, updated={"category_id": ["readme other tag"]}),
    "Evaluate (key `vat`): refuse a payload with a clear message (400 naming this line)":
        Example("vat", "vat", post={"vat": "BE0477472701"}, created={"vat": "BE0477472701"},
                put={"vat": "BE0477472702"}, updated={"vat": "BE0477472702"},
                refused={"name": "No VAT"}),
    "Export (Out configuration): a value computed from the record": Example(
        "comment", "title", out=True),
    "Evaluate on a Char or Date field (key `birthday`): the FAQ's date conversion, "
    "12/31/2024 → 2024-12-31": Example(
        "ref", "birthday", post={"birthday": "12/31/2024"}, created={"ref": "2024-12-31"},
        put={"birthday": "01/02/2025"}, updated={"ref": "2025-01-02"}),
    "Execute: the FAQ's logging, with `data` naming what the line receives": Example(
        "comment", None, mode="execute", first=True),
}


@tagged("post_install", "-at_install")
class TestReadmeScriptExamples(BjApiHttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.examples = readme_examples()
        cls.env["res.partner.category"].create({"name": TAGS})

    def test_every_example_is_run(self):
        """A new example fails here until it is given its calls in EXAMPLES."""
        self.assertEqual(list(self.examples), list(EXAMPLES))

    def test_examples_through_post_then_partial_puts(self):
        for name, example in EXAMPLES.items():
            with self.subTest(example=name):
                if example.out:
                    self.check_export(self.examples[name], example)
                else:
                    self.check_post_then_puts(self.examples[name], example)

    def make_example_config(self, source, example, **values):
        script_line = (example.field, example.key, {
            "value_type": example.value_type, "script_mode": example.mode,
            "python_script": source})
        lines = [line for line in BASE_LINES if example.key not in line[:2]]
        lines += example.extra_lines
        lines = [script_line, *lines] if example.first else [*lines, script_line]
        return self.make_config(lines=lines, **values)

    def value(self, record, field_name):
        """A field's value, as the examples give them: tags by name."""
        value = record[field_name]
        if record._fields[field_name].type == "many2many":
            return sorted(value.mapped("name"))
        return value

    def assertValues(self, record, expected):
        record.invalidate_recordset()
        for field_name, value in expected.items():
            self.assertEqual(self.value(record, field_name),
                             sorted(value) if isinstance(value, list) else value, field_name)

    def check_post_then_puts(self, source, example):
        config = self.make_example_config(source, example)
        endpoint = config.endpoint
        kept = config.line_ids.filtered(
            lambda line: not (line.has_script and line.script_mode == "execute"))
        exchanged = {line.external_key for line in kept}
        if example.refused is not None:
            line = config.line_ids.filtered(lambda line: line.field_id.name == example.field)
            self.assertApiError(self.api("POST", endpoint, body=example.refused), 400,
                                f"^Script of line '{example.key}': ", line_id=line.id)
        created = self.assertApiSuccess(
            self.api("POST", endpoint, body={**BASE_POST, **example.post}), 201)
        self.assertEqual(set(created), exchanged, "Execute lines are in no answer")
        partner = self.env["res.partner"].browse(created["res_id"])
        self.assertValues(partner, example.created)
        tags = self.env["res.partner.category"]
        partner.write({name: [Command.set(tags.search([("name", "in", names)]).ids)]
                       for name, names in example.filled.items()})
        fields = [*{line.field_id.name for line in kept} - {"id", "phone"}]
        before = {name: self.value(partner, name) for name in fields}
        self.assertTrue(all(before.values()), f"a field to keep is empty: {before}")

        answer = self.assertApiSuccess(self.api("PUT", endpoint, partner.id, body=OTHER_KEY))
        self.assertEqual(set(answer), exchanged)
        self.assertValues(partner, {**before, **OTHER_KEY})

        self.assertApiSuccess(self.api("PUT", endpoint, partner.id, body=example.put))
        self.assertValues(partner, {**before, **OTHER_KEY, **example.updated})

    def check_export(self, source, example):
        config = self.make_example_config(source, example, request_type="out")
        partner = self.env["res.partner"].create({"name": "ada lovelace"})
        payload = self.export(config, partner, with_scripts=True)[0]
        self.assertEqual(payload[example.key], "Ada Lovelace")
