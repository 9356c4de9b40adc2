"""The time budget of Python Scripts, enforced inside the script's own frames.

Before a script is compiled, its checked syntax tree gets a call to a
checkpoint before every statement (of the module, functions, loops, branches,
``try`` bodies, every ``except`` handler and ``finally`` block, ``match``
cases), as an extra ``if`` of every comprehension and generator expression,
and at the start of every ``lambda``.  Past the deadline the checkpoint raises
ScriptTimeout, and raises it again at the next line the script reaches: an
``except`` handler, a ``finally`` block or a generator's cleanup that catches
the stop runs at most the statement it is on.  Nothing is raised from another
thread and no limit of the process changes: the stop happens only in the
script's frames, so it can never land in the code that runs the script.

The checkpoint is bound in the script's globals under :data:`CHECKPOINT`, a
name that is not a Python identifier: no script source can read, rebind or
delete it (``budget-checkpoint`` in source is a subtraction), and scripts get
no ``globals()``, ``locals()`` or ``vars()``.

The builtins that call a function for every item of an iterable in C (``map``,
``filter``, ``sorted``, ``min``, ``max``, ``reduce``) are given checkpoints too
(:meth:`Budget.builtins`), so that ``list(map(library_function, [x] * 10 ** 6))``
stops at its next item.  One long call into Odoo or a library, like a single
long operation in C (``sum(range(10 ** 12))``, ``'x' * 10 ** 10``), reaches no
checkpoint: ``statement_timeout`` bounds its SQL and Odoo's worker limits the
rest (readme/USAGE.md, Script reference).

Code a script leaves behind (a function stored where Odoo calls it later, a
generator closed by the garbage collector) meets :class:`ScriptExpired`, an
ordinary exception, once the run is over or in another thread: whatever calls
it fails like on any error, and its thread lives on.
"""

import ast
import functools
import math
import sys
import threading
import time

# Not an identifier (so out of every script's reach), and free of ``__``,
# which Odoo's sandbox refuses in compiled names.
CHECKPOINT = "budget-checkpoint"


class ScriptTimeout(BaseException):
    """Raised inside a script past its budget.  A BaseException, so that the
    script's own ``except Exception`` cannot catch it; a handler that catches
    it anyway (``except BaseException``) meets it again at its first line."""


class ScriptExpired(RuntimeError):
    """Raised when a script's code runs after its run ended, or in another
    thread: an Exception, so that the foreign code that called it (a request,
    a cron) handles it like any error instead of losing its thread."""

    def __init__(self):
        super().__init__("code of a Python Script ran after its script had ended")


class Budget:
    """One run's deadline (``time.monotonic()`` seconds) and its checkpoint."""

    __slots__ = ("deadline", "thread")

    def __init__(self, deadline):
        self.deadline = deadline
        self.thread = threading.get_ident()

    def checkpoint(self):
        """True while time is left (so that ``checkpoint() and value`` is
        ``value``), else raise ScriptTimeout, or ScriptExpired outside the run."""
        if time.monotonic() < self.deadline:
            return True
        if isinstance(sys.exc_info()[1], GeneratorExit):
            # A generator of the script being closed (dropped, collected): let the
            # close end it, silently, instead of an "Exception ignored" traceback
            # per generator.
            raise GeneratorExit
        if self.deadline == -math.inf or threading.get_ident() != self.thread:
            raise ScriptExpired
        raise ScriptTimeout

    def builtins(self):
        """``map``, ``filter``, ``sorted``, ``min``, ``max`` and ``reduce`` with a
        checkpoint at every item they call a function on."""
        check = self.checkpoint

        def checked(iterable):
            for item in iterable:
                check()
                yield item

        def checked_key(key):
            return None if key is None else lambda item: check() and key(item)

        def budget_map(function, *iterables):
            return map(function, *map(checked, iterables))

        def budget_filter(function, iterable):
            return filter(function, checked(iterable))

        def budget_sorted(iterable, /, *, key=None, reverse=False):
            return sorted(checked(iterable), key=checked_key(key), reverse=reverse)

        def extreme(pick):
            def budget_extreme(*args, key=None, **kwargs):
                items = checked(args[0]) if len(args) == 1 else args
                return pick(items, key=checked_key(key), **kwargs)
            return budget_extreme

        def budget_reduce(function, iterable, *initial):
            return functools.reduce(function, checked(iterable), *initial)

        return {"map": budget_map, "filter": budget_filter, "sorted": budget_sorted,
                "min": extreme(min), "max": extreme(max), "reduce": budget_reduce}

    def remaining(self):
        return self.deadline - time.monotonic()

    def close(self):
        """End the run: the script's code that outlives it (a generator closed
        later by the garbage collector, in whatever thread) stops at its first line."""
        self.deadline = -math.inf


def _checkpoint_call(node):
    return ast.copy_location(ast.Call(ast.Name(CHECKPOINT, ast.Load()), [], []), node)


class _Checkpoints(ast.NodeTransformer):
    def generic_visit(self, node):
        super().generic_visit(node)
        # Statement lists: module, def, loop, if/else, try/except/else/finally,
        # with, match case bodies.  (A lambda's or an IfExp's body is an expression.)
        for field in ("body", "orelse", "finalbody"):
            statements = getattr(node, field, None)
            if isinstance(statements, list) and statements and isinstance(statements[0],
                                                                           ast.stmt):
                setattr(node, field, [checked for statement in statements for checked in (
                    ast.copy_location(ast.Expr(_checkpoint_call(statement)), statement),
                    statement)])
        return node

    def visit_comprehension(self, node):
        self.generic_visit(node)
        node.ifs.insert(0, _checkpoint_call(node.iter))
        return node

    def visit_Lambda(self, node):
        self.generic_visit(node)
        node.body = ast.copy_location(
            ast.BoolOp(ast.And(), [_checkpoint_call(node.body), node.body]), node.body)
        return node


def add_checkpoints(tree):
    """``tree`` (a checked ``ast.Module`` or ``ast.Expression``) with the
    budget's checkpoints; compile it with :data:`CHECKPOINT` bound to
    :meth:`Budget.checkpoint` in the globals it runs with."""
    return ast.fix_missing_locations(_Checkpoints().visit(tree))
