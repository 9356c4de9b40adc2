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


# A function's or class's body and a lambda's are scopes of their own; a
# comprehension's variables are its own, but a walrus in it binds in the
# enclosing scope.
_DEF_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _scope_nodes(nodes):
    """The nodes of one scope under ``nodes``: not the bodies of the functions,
    classes and lambdas defined there (their decorators, defaults and bases
    are evaluated in it), nor the variables of comprehensions."""
    pending = list(nodes)
    while pending:
        node = pending.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            children = [*node.decorator_list, node.args, *filter(None, [node.returns])]
        elif isinstance(node, ast.ClassDef):
            children = [*node.decorator_list, *node.bases, *node.keywords]
        elif isinstance(node, ast.Lambda):
            children = [node.args]
        elif isinstance(node, ast.comprehension):
            children = [node.iter, *node.ifs]
        elif isinstance(node, ast.AnnAssign) and node.value is None:
            children = [node.annotation]  # ``name: type`` binds nothing
        else:
            children = ast.iter_child_nodes(node)
        pending.extend(children)


def _bound_name(node):
    if isinstance(node, ast.Name):
        return isinstance(node.ctx, ast.Store) and node.id
    if isinstance(node, ast.alias):
        return node.asname or node.name.split(".")[0]
    if isinstance(node, (*_DEF_SCOPES, ast.ExceptHandler, ast.MatchAs, ast.MatchStar)):
        return node.name
    return isinstance(node, ast.MatchMapping) and node.rest


def _binds(nodes, name):
    """Whether something under ``nodes`` binds ``name`` in their scope."""
    return any(_bound_name(node) == name for node in _scope_nodes(nodes))


def _join(*states):
    """States: True (the name may be bound), False (it is not), None (no path)."""
    reached = [state for state in states if state is not None]
    return any(reached) if reached else None


class _Flow:
    """Whether ``name`` may be bound at the end of a script's module-level
    statements, path by path: ``del`` and the end of an ``except ... as``
    handler unbind it; an exception may leave a ``try`` or ``with`` body at
    any point."""

    def __init__(self, name):
        self.name = name
        self.jumps = []  # (break states, continue states) of the loops walked

    def binds(self, *nodes):
        return _binds(nodes, self.name)

    def block(self, statements, state):
        for statement in statements:
            if state is None:
                break  # unreachable
            state = self.statement(statement, state)
        return state

    def statement(self, node, state):
        if isinstance(node, ast.If):
            state = state or self.binds(node.test)
            return _join(self.block(node.body, state), self.block(node.orelse, state))
        if isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
            return self.loop(node, state)
        if isinstance(node, (ast.With, ast.AsyncWith)):
            state = state or self.binds(*node.items)
            # A context manager may swallow an exception raised in the body.
            return _join(self.block(node.body, state), state or self.binds(*node.body))
        if isinstance(node, (ast.Try, ast.TryStar)):
            return self.try_(node, state)
        if isinstance(node, ast.Match):
            state = state or self.binds(node.subject)
            return _join(state, *(  # no case matched, or one did
                self.block(case.body, state or self.binds(case.pattern, *filter(None, [
                    case.guard])))
                for case in node.cases))
        if isinstance(node, ast.Delete):
            for target in _flatten(node.targets):
                unbinds = isinstance(target, ast.Name) and target.id == self.name
                state = False if unbinds else state or self.binds(target)
            return state
        if isinstance(node, (ast.Break, ast.Continue)):
            self.jumps[-1][isinstance(node, ast.Continue)].append(state)
            return None
        if isinstance(node, ast.Raise):
            return None  # the script fails
        return state or self.binds(node)

    def loop(self, node, state):
        if isinstance(node, ast.While):
            at_test = self.binds(node.test)  # evaluated before each turn and the last
            each_turn = at_test
        else:
            state = state or self.binds(node.iter)
            at_test, each_turn = False, self.binds(node.target)
        head = state
        while True:  # at most twice: states only grow from False to True
            self.jumps.append(([], []))
            end = self.block(node.body, head or each_turn)
            breaks, continues = self.jumps.pop()
            turned = _join(state, end, *continues)
            if turned == head:
                break
            head = turned
        return _join(self.block(node.orelse, head or at_test), *breaks)

    def try_(self, node, state):
        marks = [len(jumps) for jumps in self.jumps[-1]] if self.jumps else []
        body = self.block(node.body, state)
        # An exception may come from any point of the body.
        caught = state or self.binds(*node.body)
        ends = [self.block(node.orelse, body)]
        for handler in node.handlers:
            entry = caught or bool(handler.type and self.binds(handler.type))
            named = handler.name == self.name
            end = self.block(handler.body, entry or named)
            # Python deletes the handler's name when the handler ends.
            ends.append(False if named and end is not None else end)
        state = _join(*ends)
        if node.finalbody:
            if self.jumps:  # a break or continue runs the finally clause first
                finally_binds = self.binds(*node.finalbody)
                for jumps, mark in zip(self.jumps[-1], marks, strict=True):
                    jumps[mark:] = [jump or finally_binds for jump in jumps[mark:]]
            state = self.block(node.finalbody, state)
        return state


def _flatten(targets):
    for target in targets:
        if isinstance(target, (ast.Tuple, ast.List)):
            yield from _flatten(target.elts)
        else:
            yield target


def _sets_global(tree, name):
    """Whether a function or class body declares ``global name`` and binds it:
    called anywhere, it may set the script's variable."""
    for node in ast.walk(tree):
        if isinstance(node, _DEF_SCOPES):
            own = list(_scope_nodes(node.body))
            if (any(isinstance(child, ast.Global) and name in child.names for child in own)
                    and any(_bound_name(child) == name for child in own)):
                return True
    return False


def binds_name(source, name):
    """Whether the variable ``name`` of the script's own namespace may be set
    when the statements of ``source`` end, on some path: set by an assignment
    (walrus included), a ``for``, ``with`` or ``match`` target, an import, a
    ``def`` or ``class`` of that name, or a function that declares it
    ``global`` and assigns it; and not unset since by ``del`` or by the end of
    an ``except ... as`` handler.  A name local to a function, a lambda or a
    comprehension is not the script's."""
    tree = ast.parse(source)
    return _sets_global(tree, name) or bool(_Flow(name).block(tree.body, False))
