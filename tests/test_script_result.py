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
    ("an except name", "try:\n    pass\nexcept Exception as result:\n    pass", False),
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
    # Where it ends: bound on some path when the statements end, or not.
    ("a one-element unpacking", "result, = [1]", True),
    ("a list target", "[result] = [1]", True),
    ("a deleted variable", "result = 1\ndel result", False),
    ("deleted among others", "result = 1\ndel (a, result)", False),
    ("deleted on one path only", "result = 1\nif record:\n    del result", True),
    ("an except name after a body that sets it",
     "try:\n    result = 1\nexcept ValueError as result:\n    pass", True),
    ("set in a handler", "try:\n    x = 1\nexcept ValueError:\n    result = 2", True),
    ("set in a finally clause", "try:\n    pass\nfinally:\n    result = 1", True),
    ("deleted on every path", "result = 1\ndel result\nif record:\n    raise ValueError", False),
    ("the other path raises", "if record:\n    result = 1\nelse:\n    raise ValueError", True),
    ("deleted at the end of each turn", "for x in values:\n    result = x\n    del result", False),
    ("a break before the del",
     "for x in values:\n    result = x\n    if x:\n        break\n    del result", True),
    ("a continue before the del",
     "for x in values:\n    result = x\n    if x:\n        continue\n    del result", True),
    ("a break through a finally clause",
     "for x in values:\n    try:\n        break\n    finally:\n        result = 1", True),
    ("a walrus in a while test", "while (result := next(values, None)):\n    pass", True),
    ("a with body a context manager may leave",
     "with suppress(ValueError):\n    result = 1\n    del result", True),
    ("a mapping pattern's rest", "match {}:\n    case {**result}:\n        pass", True),
    ("a walrus in a guard", "match 1:\n    case 1 if (result := 2):\n        pass", True),
    ("a walrus in nested comprehensions", "[[(result := y) for y in x] for x in z]", True),
    ("a walrus in a lambda's default", "f = lambda x=(result := 1): x", True),
    ("a walrus in a lambda in a comprehension",
     "f = [(lambda: (result := v)) for v in values]", False),
    ("an annotation without a value", "result: int", False),
    ("a global declaration never assigned",
     "def f():\n    global result\n    return 1\nf()", False),
    ("a global declaration, a comprehension's variable",
     "def f():\n    global result\n    return [result for result in x]", False),
    ("a global declaration in a nested function",
     "def f():\n    def g():\n        global result\n        result = 1\n    g()\nf()", True),
    ("a global declaration in a class body", "class A:\n    global result\n    result = 1",
     True),
]


@tagged("post_install", "-at_install")
class TestScriptResult(BaseCase):
    def test_cases(self):
        for case, source, sets in CASES:
            with self.subTest(case):
                self.assertEqual(binds_name(source, "result"), sets)
