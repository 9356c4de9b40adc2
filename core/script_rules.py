"""What Python Scripts may not write, whoever writes them: checked on the
source's syntax tree when a script is saved and when it is compiled.

Odoo's sandbox checks the names a script's bytecode uses; these rules close
what that check cannot see.  (No rule is needed against swallowing the stop of
the time budget: it is raised again at every line, core/script_budget.py.)
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
# The one dunder name a script may read: its own ``__name__`` (the original's
# ``logging.getLogger(__name__)``), replaced by a constant before compiling.
SCRIPT_NAME = "__name__"


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
    def __init__(self, unsafe_names, importable):
        self.unsafe_names = unsafe_names
        self.importable = importable

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
        if node.id != SCRIPT_NAME or not isinstance(node.ctx, ast.Load):
            self._refuse_name(node.id, node, allow_plain=True)

    def _refuse_module(self, module, node):
        if module not in self.importable:
            allowed = (f"may import only {', '.join(sorted(self.importable))}"
                       if self.importable else "may not import")
            raise ScriptRefused(f"import of {module!r} is not allowed: scripts {allowed}.",
                                node.lineno)

    def visit_Import(self, node):
        for alias in node.names:
            self._refuse_module(alias.name, node)
            if alias.asname:
                self._refuse_name(alias.asname, node, allow_plain=True)

    def visit_ImportFrom(self, node):
        module = "." * node.level + (node.module or "")
        self._refuse_module(module, node)
        for alias in node.names:
            if alias.name == "*":
                raise ScriptRefused(f"'import *' from {module!r} is not allowed: name what "
                                    "the script imports.", node.lineno)
            if alias.name not in self.importable[module]:
                offered = ", ".join(sorted(self.importable[module]))
                raise ScriptRefused(f"{module!r} offers scripts no {alias.name!r}: it offers "
                                    f"{offered}.", node.lineno)
            if alias.asname:
                self._refuse_name(alias.asname, node, allow_plain=True)


def check_source(source, unsafe_names=frozenset(), importable=None):
    """Raise ScriptRefused (or SyntaxError) when ``source`` breaks a rule.

    ``unsafe_names`` are the attribute names the sandbox itself refuses, so that
    they are reported with their line too.  ``importable`` maps the modules a
    script may import to the names ``from <module> import`` may take; any
    other import is refused, naming them."""
    _Checker(frozenset(unsafe_names), importable or {}).visit(ast.parse(source))


class _ScriptName(ast.NodeTransformer):
    def __init__(self, name):
        self.name = name

    def visit_Name(self, node):
        if node.id != SCRIPT_NAME:
            return node
        return ast.copy_location(ast.Constant(self.name), node)


def bind_script_name(tree, name):
    """``tree`` (checked) with its reads of ``__name__`` replaced by ``name``:
    the sandbox refuses every dunder name in compiled code."""
    return ast.fix_missing_locations(_ScriptName(name).visit(tree))


# Scopes of their own: a name bound inside is not the script's variable, but a
# walrus in a comprehension binds in the enclosing scope.
_FUNCTION_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def binds_name(source, name):
    """Whether the statements of ``source`` can set the variable ``name`` of the
    script's own namespace: an assignment (walrus included), a ``for``,
    ``with``, ``except`` or ``match`` target, an import, a ``def`` or ``class``
    of that name, or a ``global`` declaration; not a name local to a function,
    a lambda or a comprehension."""
    pending = list(ast.iter_child_nodes(ast.parse(source)))
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Global) and name in node.names:
            return True
        if isinstance(node, _FUNCTION_SCOPES):
            if node.name == name:
                return True
            pending.extend(child for child in ast.walk(node) if isinstance(child, ast.Global))
            continue
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, _COMPREHENSIONS):
            pending.extend(child for child in ast.walk(node) if isinstance(child, ast.NamedExpr))
            continue
        bound = (
            (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id)
            or (isinstance(node, ast.alias) and (node.asname or node.name.split(".")[0]))
            or (isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar))
                and node.name)
            or (isinstance(node, ast.MatchMapping) and node.rest)
        )
        if bound == name:
            return True
        pending.extend(ast.iter_child_nodes(node))
    return False
