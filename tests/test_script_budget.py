"""The time budget of Python Scripts: a stop raised in the script's own frames
at every line past the deadline, that nothing in the script can swallow, and
that hurts nothing but the script (no process-wide limit, no exception sent
across threads)."""

import ast
import gc
import logging
import math
import re
import sys
import threading
import time
from types import SimpleNamespace

import requests

from odoo import SUPERUSER_ID, api
from odoo.tests import BaseCase, tagged
from odoo.tools import config as odoo_config
from odoo.tools import safe_eval as sandbox

from ..core.exceptions import MappingError
from ..core.script_budget import (
    CHECKPOINT,
    Budget,
    ScriptExpired,
    ScriptTimeout,
    add_checkpoints,
)
from ..services.scripts import ScriptRunner, compile_script, run_within, script_context
from .common import CommittedDataMixin

_logger = logging.getLogger(__name__)

BUDGET = 0.5
# What a stop may take past the deadline: the statement it lands in.
MARGIN = 0.5

GENERATOR = ("def spin():\n"
             "    try:\n"
             "        yield 1\n"
             "    finally:\n"
             "        while True:\n"
             "            pass\n")

# Scripts that try to outlive their budget (each would run for ever, or for
# hours, without the stop).  Scripts get no BaseException to name: the
# catch-alls below are run with one added to their builtins, to show that
# even a handler that catches the stop meets it again at its first line.
VECTORS = [
    ("endless loop", "while True:\n    pass"),
    ("sleep", "time.sleep(600)"),
    ("imported sleep in a loop", "import time\nwhile True:\n    time.sleep(0.01)"),
    ("generator whose finally loops, 100 rounds",
     GENERATOR + "for _ in range(100):\n    g = spin()\n    for _x in g:\n        break\n"
                 "    g = None"),
    ("generator whose finally loops, for ever",
     GENERATOR + "while True:\n    g = spin()\n    for _x in g:\n        break\n    g = None"),
    ("generators dropped inside a comprehension",
     GENERATOR + "while True:\n    [[_x for _x in spin()][:0] for _ in range(10)]"),
    ("generators kept in a cycle for the garbage collector",
     GENERATOR + "while True:\n    g = spin()\n    for _x in g:\n        break\n"
                 "    cycle = [g]\n    cycle.append(cycle)\n    g = cycle = None"),
    ("recursion in finally",
     "def f():\n    try:\n        f()\n    finally:\n        f()\nf()"),
    ("recursion in finally, in a loop",
     "def f(n):\n    try:\n        return f(n + 1)\n    finally:\n        f(n + 1)\n"
     "while True:\n    try:\n        f(0)\n    except Exception:\n        pass"),
    ("endless finally", "try:\n    while True:\n        pass\nfinally:\n    while True:\n"
                        "        pass"),
    ("finally in finally",
     "try:\n    while True:\n        pass\nfinally:\n    try:\n        while True:\n"
     "            pass\n    finally:\n        while True:\n            pass"),
    ("except BaseException loop",
     "while True:\n    try:\n        while True:\n            pass\n"
     "    except BaseException:\n        pass"),
    ("nested try in except",
     "while True:\n    try:\n        while True:\n            pass\n"
     "    except BaseException:\n        try:\n            while True:\n                pass\n"
     "        except BaseException:\n            while True:\n                pass"),
    ("try in finally catching the stop",
     "try:\n    while True:\n        pass\nfinally:\n    while True:\n        try:\n"
     "            while True:\n                pass\n        except BaseException:\n"
     "            pass"),
    ("else of a loop and of a try",
     "while True:\n    for _ in []:\n        pass\n    else:\n        try:\n            pass\n"
     "        except Exception:\n            pass\n        else:\n            while True:\n"
     "                pass"),
    ("lambda with exponential recursion",
     "f = lambda n: n if n < 1 else f(n - 1) + f(n - 1)\nresult = f(80)"),
    ("lambda recursion caught in a loop",
     "f = lambda n: f(n + 1)\nwhile True:\n    try:\n        f(0)\n    except Exception:\n"
     "        pass"),
    ("comprehension over a huge range", "result = [x for x in range(10 ** 12) if x < 0]"),
    ("generator expression in sum", "result = sum(1 for _ in range(10 ** 12))"),
    ("nested comprehensions",
     "result = [[0 for y in range(10 ** 12) if y < 0] for x in range(3)]"),
    ("map and reduce of a lambda", "result = reduce(lambda a, b: a, map(lambda x: x, "
                                   "range(10 ** 12)))"),
    ("sorted with a looping key", "result = sorted(range(10), key=lambda x: "
                                  "[0 for _ in range(10 ** 12)])"),
    ("a def looping, called from a comprehension",
     "def spin(x):\n    while True:\n        pass\nresult = [spin(x) for x in range(3)]"),
    ("a def catching its own stop, called from a generator expression",
     "def spin(x):\n    while True:\n        try:\n            while True:\n                pass\n"
     "        except BaseException:\n            pass\nresult = any(spin(x) for x in range(3))"),
    # Builtins that call a C or library function for every item.
    ("a library function mapped", "import math\nresult = sum(map(math.fabs, range(10 ** 12)))"),
    ("filter of a builtin", "result = sum(filter(None, range(10 ** 12)))"),
    ("max with a builtin key", "result = max(range(10 ** 12), key=abs)"),
    ("min of a map", "result = min(map(abs, range(10 ** 12)), default=0)"),
    ("reduce of a builtin", "result = reduce(max, range(10 ** 12))"),
    ("sorted with a builtin key", "result = sorted(range(10 ** 8), key=abs)"),
    ("string doubling in a catch-all loop",
     "while True:\n    try:\n        s = 'x'\n        for _ in range(20):\n            s = s + s\n"
     "    except BaseException:\n        pass"),
]


def run_script(source, seconds=BUDGET, builtins=None):
    """Compile ``source`` as a line's script and run it with a budget of
    ``seconds``: (outcome, elapsed seconds)."""
    script = compile_script(source, "execute")
    assert script.code is not None, script.error
    budget = Budget(time.monotonic() + seconds)
    variables = script_context(None, None, None, {}, budget)
    variables["__builtins__"].update(builtins or {})
    started = time.monotonic()
    try:
        run_within(budget, lambda: exec(script.code, variables))  # noqa: S102 - checked
        outcome = "finished"
    except ScriptTimeout:
        outcome = "stopped"
    return outcome, time.monotonic() - started, variables


def statement_lists():
    """(node class, field) of every statement list in Python's grammar, read
    from the node classes' signatures (``While(expr test, stmt* body, ...)``)."""
    found = set()
    for node_class in vars(ast).values():
        if isinstance(node_class, type) and issubclass(node_class, ast.AST):
            for field in re.findall(r"stmt\* (\w+)", node_class.__doc__ or ""):
                found.add((node_class.__name__, field))
    return found


@tagged("post_install", "-at_install")
class TestScriptBudget(BaseCase):
    """The checkpoints, on plain Python (no database)."""

    def test_every_vector_stops_at_the_budget(self):
        for name, source in VECTORS:
            with self.subTest(vector=name):
                outcome, elapsed, _variables = run_script(
                    source, builtins={"BaseException": BaseException})
                _logger.info("budget vector %r stopped after %.2f s (budget %s s)",
                             name, elapsed, BUDGET)
                self.assertEqual(outcome, "stopped")
                self.assertLess(elapsed, BUDGET + MARGIN)
                self.assertGreaterEqual(elapsed, BUDGET * 0.9)

    def test_the_checkpoint_is_out_of_the_scripts_reach(self):
        self.assertFalse(CHECKPOINT.isidentifier())
        self.assertNotIn("__", CHECKPOINT, "Odoo's sandbox refuses dunder names")
        # In source, the name is a subtraction of two names.
        self.assertIsInstance(ast.parse(CHECKPOINT, mode="eval").body, ast.BinOp)
        for source in ("budget-checkpoint", "result = budget-checkpoint"):
            with self.subTest(source=source):
                outcome = run_script(f"try:\n    {source}\nexcept Exception:\n    pass")
                self.assertEqual(outcome[0], "finished")
        # No way to the globals dict that holds it.
        for name in ("globals", "locals", "vars", "dir", "getattr", "setattr", "eval",
                     "exec", "compile", "BaseException"):
            with self.subTest(builtin=name):
                self.assertNotIn(name, sandbox._BUILTINS)
        self.assertIn("out of a script's reach",
                      compile_script("result = __builtins__", "execute").error)
        # The compiled script calls it before its first line runs.
        script = compile_script("result = 1", "execute")
        self.assertIn(CHECKPOINT, script.code.co_names)
        with self.assertRaises(ScriptTimeout):
            exec(script.code, {CHECKPOINT: Budget(0).checkpoint})  # noqa: S102 - checked

    def test_every_statement_list_is_checked(self):
        """Each statement list of Python's grammar is a field the checkpoints
        cover: a new kind of block fails here until it is decided."""
        covered = {"body", "orelse", "finalbody"}
        lists = statement_lists()
        self.assertIn(("ExceptHandler", "body"), lists)
        self.assertIn(("match_case", "body"), lists)
        self.assertEqual({field for _node, field in lists} - covered, set())
        # Every scope with its own code outside statements is a lambda or a comprehension.
        comprehensions = {name for name, node in vars(ast).items() if isinstance(node, type)
                          and (node.__doc__ or "").startswith(f"{name}(")
                          and "comprehension* generators" in node.__doc__}
        self.assertEqual(comprehensions, {"ListComp", "SetComp", "DictComp", "GeneratorExp"})

    def test_checkpoints_precede_every_statement(self):
        source = (
            "def f(n):\n    '''doc'''\n    for i in range(n):\n        if i:\n            pass\n"
            "        elif n:\n            continue\n        else:\n            break\n"
            "    else:\n        n += 1\n    while n > 4:\n        n -= 1\n    else:\n        pass\n"
            "    try:\n        pass\n    except ValueError:\n        pass\n    else:\n"
            "        pass\n    finally:\n        pass\n"
            "    return [x for x in range(n) for y in range(x) if y]\n"
            "g = lambda: 1\nresult = (x for x in [])\n"
        )
        originals = sum(isinstance(node, ast.stmt) for node in ast.walk(ast.parse(source)))
        tree = add_checkpoints(ast.parse(source))
        checks = lists = 0
        for node in ast.walk(tree):
            for field in ("body", "orelse", "finalbody"):
                statements = getattr(node, field, None)
                if isinstance(statements, list) and statements:
                    lists += 1
                    self.assertEqual(len(statements) % 2, 0)
                    for checkpoint in statements[::2]:
                        self.assertEqual(ast.unparse(checkpoint), f"{CHECKPOINT}()")
                        checks += 1
            if isinstance(node, ast.comprehension):
                self.assertEqual(ast.unparse(node.ifs[0]), f"{CHECKPOINT}()")
            if isinstance(node, ast.Lambda):
                self.assertEqual(ast.unparse(node.body), f"{CHECKPOINT}() and 1")
        # module, def, for/else, if/elif/else, while/else, try/except/else/finally
        self.assertEqual(lists, 14)
        self.assertEqual(checks, originals)
        self.assertFalse(compile_script(source, "execute").error, "the sandbox accepts it")
        # The code keeps its meaning and its line numbers.
        source += "result = [f(n) for n in range(6)] + [g()]\n1 / 0"
        plain = {"__builtins__": {"range": range, "ValueError": ValueError}}
        with self.assertRaises(ZeroDivisionError):
            exec(compile(source, "<plain>", "exec"), plain)  # noqa: S102 - our own source
        variables = script_context(None, None, None, {}, Budget(math.inf))
        try:
            exec(compile_script(source, "execute").code, variables)  # noqa: S102 - checked
        except ZeroDivisionError as error:
            self.assertEqual(error.__traceback__.tb_next.tb_lineno, source.count("\n") + 1)
        else:
            self.fail("the script's last line divides by zero")
        self.assertEqual(variables["result"], plain["result"])
        self.assertEqual(plain["result"][-3:], [[2, 3, 3], [2, 3, 3], 1])

    def test_code_left_after_its_run_stops_at_once(self):
        """A generator the script leaves behind runs nothing after the run,
        whoever closes it and whenever: its first line stops."""
        outcome, _elapsed, variables = run_script(
            GENERATOR + "g = spin()\nfor _x in g:\n    break\ncycle = [g]\ncycle.append(cycle)\n"
                        "h = spin()\nf = lambda: 1\n"
                        "kept = [spin() for _ in range(20000)]\nfor k in kept:\n"
                        "    for _x in k:\n        break", seconds=60)
        self.assertEqual(outcome, "finished")
        unraisable = []
        self.patch(sys, "unraisablehook", unraisable.append)
        started = time.monotonic()
        # Closing a generator ends it at the first line of its finally, silently:
        # no "Exception ignored" per generator, however many the script kept.
        variables["g"].close()
        # Anything else is an ordinary exception: its caller fails as on any error.
        with self.assertRaises(ScriptExpired):
            next(variables["h"])
        with self.assertRaises(ScriptExpired):
            variables["f"]()
        with self.assertRaises(ScriptExpired):
            variables["time"].sleep(1)
        # Drop the script's names (its globals, with the checkpoint, live as
        # long as its functions and generators do).
        for name in [name for name in variables if name not in (CHECKPOINT, "__builtins__")]:
            del variables[name]
        gc.collect()
        self.assertEqual(unraisable, [])
        self.assertLess(time.monotonic() - started, 0.5)

    def test_code_called_by_another_thread_fails_like_any_error(self):
        """A function a script leaves where Odoo calls it later (an onchange
        registry, a cache) must not kill that caller's thread."""
        outcome, _elapsed, variables = run_script("f = lambda: 1\ndef g():\n    return 2",
                                                  seconds=60)
        self.assertEqual(outcome, "finished")
        errors = []

        def call():
            for function in (variables["f"], variables["g"]):
                try:
                    function()
                except Exception as error:  # noqa: BLE001 - what a caller would catch
                    errors.append(type(error))

        thread = threading.Thread(target=call)
        thread.start()
        thread.join(10)
        self.assertEqual(errors, [ScriptExpired, ScriptExpired])

    def test_the_builtins_keep_their_results(self):
        outcome, _elapsed, variables = run_script(
            "result = [list(map(abs, [-1, 2])), list(map(max, [1, 2], [0, 0])), "
            "list(filter(None, [0, 1, 2])), sorted([3, 1, 2], reverse=True), "
            "sorted(['b', 'A'], key=str.lower), min([3, 1]), min(3, 1), max([1, 3], key=abs), "
            "max([], default=7), reduce(lambda a, b: a + b, [1, 2, 3], 10)]", seconds=60)
        self.assertEqual(outcome, "finished")
        self.assertEqual(variables["result"],
                         [[1, 2], [1, 2], [1, 2], [3, 2, 1], ["A", "b"], 1, 1, 3, 7, 16])

    def test_checkpoint_overhead(self):
        """The cost of a checkpoint per statement on the tightest loops (logged
        for readme/USAGE.md): within a small factor of the plain code."""
        sources = {
            "while": "i = 0\nwhile i < 300000:\n    i += 1",
            "for": "t = 0\nfor i in range(300000):\n    t += i",
            "comprehension": "t = sum([i * 2 for i in range(300000)])",
            "def": "def f(x):\n    return x + 1\nt = 0\nfor i in range(100000):\n    t = f(t)",
        }
        for name, source in sources.items():
            plain = compile(ast.parse(source), "<plain>", "exec")
            checked = compile_script(source, "execute").code
            timings = []
            for code in (plain, checked):
                best = math.inf
                for _round in range(5):
                    variables = script_context(None, None, None, {}, Budget(math.inf))
                    started = time.perf_counter()
                    exec(code, variables)  # noqa: S102 - our own sources
                    best = min(best, time.perf_counter() - started)
                timings.append(best)
            ratio = timings[1] / timings[0]
            _logger.info("checkpoint overhead, %s loop: %.2fx (%.0f ns a statement)", name,
                         ratio, (timings[1] - timings[0]) / 300000 * 1e9)
            self.assertLess(ratio, 8)


def _fake_line(source):
    return SimpleNamespace(script=compile_script(source, "execute"), label="budget",
                           line_id=0, model="res.partner")


@tagged("post_install", "-at_install")
class TestScriptBudgetConcurrency(CommittedDataMixin, BaseCase):
    """100 scripts at their deadline on 4 threads, each with its own registry
    cursor, while other threads allocate memory, start threads, query the
    database and call the server over HTTP: every other operation succeeds,
    every script stops at its budget with the error naming it."""

    SCRIPTS = [
        "while True:\n    pass",
        "time.sleep(600)",
        "env.cr.execute('SELECT pg_sleep(600)')",
        "data = b'x' * (400 * 1024 * 1024)\nwhile True:\n    pass",
        GENERATOR + "while True:\n    g = spin()\n    for _x in g:\n        break\n    g = None",
        "def f():\n    try:\n        f()\n    finally:\n        f()\nf()",
        "result = sum(1 for _ in range(10 ** 12))",
    ]
    RUNS = 100
    SCRIPT_THREADS = 4
    SECONDS = 1

    def run_scripts(self, queue, stops, failures):
        with self.registry.cursor() as cr:
            runner = ScriptRunner(api.Environment(cr, SUPERUSER_ID, {}))
            runner.seconds = self.SECONDS
            while queue:
                try:
                    source = queue.pop()
                except IndexError:
                    break
                started = time.monotonic()
                try:
                    runner(_fake_line(source), None, {}, 0)
                    failures.append(f"finished: {source!r}")
                except MappingError as error:
                    stops.append((time.monotonic() - started, source, str(error)))
                    cr.rollback()
                except Exception as error:  # noqa: BLE001 - reported below
                    failures.append(f"{source!r}: {error!r}")
                    cr.rollback()

    def other_work(self, stop, done, failures):
        url = f"http://127.0.0.1:{odoo_config['http_port']}/web/webclient/version_info"
        with self.registry.cursor() as cr:
            while not stop.is_set():
                try:
                    block = bytearray(256 * 1024 * 1024)
                    block[-1] = 1
                    del block
                    helper = threading.Thread(target=time.sleep, args=(0.01,))
                    helper.start()
                    helper.join()
                    cr.execute("SELECT count(*) FROM res_partner")
                    cr.fetchone()
                    answer = requests.post(url, json={"jsonrpc": "2.0", "params": {}},
                                           timeout=30)
                    answer.raise_for_status()
                    self.assertIn("server_version", answer.json()["result"])
                    done.append(1)
                except Exception as error:  # noqa: BLE001 - every failure is reported
                    failures.append(repr(error))

    def test_scripts_at_their_deadline_hurt_nothing_else(self):
        queue = [self.SCRIPTS[i % len(self.SCRIPTS)] for i in range(self.RUNS)]
        stops, failures, other_failures, done = [], [], [], []
        stop = threading.Event()
        others = [threading.Thread(target=self.other_work, args=(stop, done, other_failures))
                  for _i in range(2)]
        scripts = [threading.Thread(target=self.run_scripts, args=(queue, stops, failures))
                   for _i in range(self.SCRIPT_THREADS)]
        started = time.monotonic()
        for thread in others + scripts:
            thread.start()
        for thread in scripts:
            thread.join(300)
        elapsed = time.monotonic() - started
        stop.set()
        for thread in others:
            thread.join(60)
        slowest = max(stops, default=(0, None, None))
        _logger.info("%s scripts stopped at their %s s budget on %s threads in %.1f s "
                     "(slowest stop %.2f s: %r); %s other operations succeeded meanwhile",
                     len(stops), self.SECONDS, self.SCRIPT_THREADS, elapsed, slowest[0],
                     slowest[1], len(done))
        self.assertEqual(other_failures, [])
        self.assertGreater(len(done), 10)
        self.assertEqual(failures, [])
        self.assertEqual(len(stops), self.RUNS)
        for seconds, _source, message in stops:
            self.assertIn("ran longer than its 1 s budget (system parameter "
                          "bjet_api_sync.script_time_budget)", message)
            # Four script threads and two allocating ones share one GIL on two
            # cores: a stop comes at the script's next line once it gets the GIL
            # back, later than alone, but never unbounded (a swallowed stop runs
            # until the 600 s sleep or the endless loop ends).
            self.assertLess(seconds, self.SECONDS + 3)
        # The next script still has a budget.
        outcome = run_script("while True:\n    pass")
        self.assertEqual(outcome[0], "stopped")
