"""What Python Scripts may not write, whoever writes them: checked on the
source's syntax tree when a script is saved and when it is compiled.

Odoo's sandbox checks the names a script's bytecode uses; these rules close
what that check cannot see and what would let a script outlive its budgets.
"""

import ast

FORMAT_NAMES = frozenset({"format", "format_map", "Formatter"})
FORMAT_REASON = ("str.format and format_map read attributes the sandbox does not check: "
                 "use f-strings or the % operator")
# The request's (or job's) transaction and the ways to another one.
TRANSACTION_NAMES = frozenset({
    "commit", "rollback", "_cnx", "_obj", "_db", "connection", "cursor", "registry", "pool",
    "transaction", "envs", "precommit", "postcommit", "prerollback", "postrollback",
    "executemany", "execute_values", "callproc", "copy_expert", "copy_from", "copy_to",
})
TRANSACTION_REASON = ("a script shares its request's transaction: it cannot end it, open "
                      "another or reach the raw connection")
# Frame and traceback links the sandbox's own list leaves open.
FRAME_NAMES = frozenset({"f_back", "f_trace", "tb_next", "gi_running", "cr_origin"})
FRAME_REASON = "frames and tracebacks are out of a script's reach"
SWALLOW_REASON = ("it would swallow the stop of the script's time or memory budget: "
                  "catch Exception instead")


class ScriptRefused(ValueError):
    """A rule a script breaks; the message names it and its line, never the source."""

    def __init__(self, message, lineno=None):
        super().__init__(f"line {lineno}: {message}" if lineno else message)


def _name_reason(name, unsafe_names):
    if "__" in name or name in unsafe_names or name in FRAME_NAMES:
        return FRAME_REASON if name.startswith(("f_", "tb_", "gi_", "cr_", "ag_")) else (
            "dunder and introspection attributes are out of a script's reach")
    if name in FORMAT_NAMES:
        return FORMAT_REASON
    if name in TRANSACTION_NAMES:
        return TRANSACTION_REASON
    return None


class _Checker(ast.NodeVisitor):
    def __init__(self, unsafe_names):
        self.unsafe_names = unsafe_names
        self.finally_loops = []

    def _refuse_name(self, name, node, allow_plain=False):
        reason = _name_reason(name, self.unsafe_names)
        if reason and not (allow_plain and name in TRANSACTION_NAMES | FRAME_NAMES):
            raise ScriptRefused(f"{name!r} is not allowed: {reason}.", node.lineno)

    def visit_Attribute(self, node):
        self._refuse_name(node.attr, node)
        self.generic_visit(node)

    def visit_Name(self, node):
        # Local variables may be called ``cursor`` or ``commit``: only
        # attributes reach those objects.
        self._refuse_name(node.id, node, allow_plain=True)

    def visit_Import(self, node):
        raise ScriptRefused("import is not allowed: the Script dialog lists the modules "
                            "scripts can use.", node.lineno)

    visit_ImportFrom = visit_Import

    def visit_ExceptHandler(self, node):
        if node.type is None:
            raise ScriptRefused(f"a bare 'except:' is not allowed: {SWALLOW_REASON}.",
                                node.lineno)
        self.generic_visit(node)

    def visit_Try(self, node):
        for child in node.body + node.handlers + node.orelse:
            self.visit(child)
        # Loops entered since the innermost finally: break and continue inside
        # them stay in the finally block.
        self.finally_loops.append(0)
        for child in node.finalbody:
            self.visit(child)
        self.finally_loops.pop()

    visit_TryStar = visit_Try

    def _loop(self, node):
        if self.finally_loops:
            self.finally_loops[-1] += 1
        self.generic_visit(node)
        if self.finally_loops:
            self.finally_loops[-1] -= 1

    visit_For = visit_AsyncFor = visit_While = _loop

    def _refuse_leaving_finally(self, node):
        raise ScriptRefused(
            f"'{type(node).__name__.lower()}' in a 'finally' block is not allowed: "
            f"{SWALLOW_REASON}.", node.lineno)

    def visit_Return(self, node):
        if self.finally_loops:
            self._refuse_leaving_finally(node)
        self.generic_visit(node)

    def visit_Break(self, node):
        if self.finally_loops and not self.finally_loops[-1]:
            self._refuse_leaving_finally(node)

    visit_Continue = visit_Break

    def _new_scope(self, node):
        # A function defined in a finally block has its own flow.
        outer, self.finally_loops = self.finally_loops, []
        self.generic_visit(node)
        self.finally_loops = outer

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _new_scope


def check_source(source, unsafe_names=frozenset()):
    """Raise ScriptRefused (or SyntaxError) when ``source`` breaks a rule.

    ``unsafe_names`` are the attribute names the sandbox itself refuses, so that
    they are reported with their line too."""
    _Checker(frozenset(unsafe_names)).visit(ast.parse(source))
