"""Which scripts set the variable ``result`` of their own namespace
(core/script_rules.binds_name): the Script dialog warns of an Evaluate script
that never does."""

from odoo.tests import BaseCase, tagged

from ..core.script_rules import binds_name

# (case, source, whether it can set result)
CASES = [
    ("an assignment", "result = 1", True),
    ("one of several targets", "a, result = 1, 2", True),
    ("a starred target", "a, *result = [1, 2, 3]", True),
    ("an augmented assignment", "result = 0\nresult += 1", True),
    ("an annotated assignment", "result: int = 1", True),
    ("inside a branch", "if record:\n    result = 1", True),
    ("inside a loop", "for x in range(2):\n    result = x", True),
    ("a for target", "for result in range(2):\n    pass", True),
    ("a with target", "with open('x') as result:\n    pass", True),
    ("an except name", "try:\n    pass\nexcept Exception as result:\n    pass", True),
    ("an import alias", "import json as result", True),
    ("a from-import", "from json import loads as result", True),
    ("a walrus", "(result := 1)", True),
    ("a walrus in a comprehension", "[(result := x) for x in range(2)]", True),
    ("a match capture", "match 1:\n    case result:\n        pass", True),
    ("a def of that name", "def result():\n    return 1", True),
    ("a global declaration in a function",
     "def f():\n    global result\n    result = 1\nf()", True),
    ("the FAQ's date snippet",
     "from datetime import datetime\n\ndef convert_date(date_string):\n"
     "    dt = datetime.strptime(date_string, '%m/%d/%Y')\n"
     "    return dt.strftime('%Y-%m-%d')\n", False),
    ("a local of a function", "def f():\n    result = 1\n    return result", False),
    ("a lambda's parameter", "f = lambda result: result", False),
    ("a walrus in a lambda", "f = lambda: (result := 1)", False),
    ("a comprehension's variable", "values = [result for result in range(2)]", False),
    ("a class attribute", "class A:\n    result = 1", False),
    ("read, never set", "value = result", False),
    ("another name", "results = 1", False),
    ("an attribute", "record.result = 1", False),
    ("a key", "request_data['result'] = 1", False),
]


@tagged("post_install", "-at_install")
class TestScriptResult(BaseCase):
    def test_cases(self):
        for case, source, sets in CASES:
            with self.subTest(case):
                self.assertEqual(binds_name(source, "result"), sets)
