"""What the SQL of Python Scripts may run, judged by PostgreSQL's own grammar.

A script shares its request's (or job's) transaction and connection: ending
the transaction, leaving state on the pooled connection, or reaching another
session or server would let a script commit half a request or act beyond it.
The text is parsed by libpg_query (PostgreSQL's parser, through ``pglast``):
every statement kind is decided in :data:`STATEMENTS` (a script may run only
the :data:`ALLOWED` ones), every statement nested anywhere in the tree too
(``EXPLAIN``, ``WITH``), every relation of PostgreSQL's catalogs is refused,
and every function it may call is judged by what the database's catalog says
it is (:func:`refuse_volatile`).  Text that PostgreSQL's grammar refuses is
refused, and so is text whose tree would be too deep to build safely.  The
whole string is judged before any of it runs.
"""

import re
from collections import namedtuple
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from pglast import ast, parser

# The statement kinds a script may run: queries and data changes, in the
# transaction of its request or job.
ALLOWED = frozenset({
    "SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt",
    "ExplainStmt", "VariableShowStmt", "LockStmt",
})

ONLY = "scripts run only SELECT, INSERT, UPDATE, DELETE, MERGE, EXPLAIN, SHOW and LOCK"
TRANSACTION = "controls the transaction, which belongs to the request or the job"
SESSION = "leaves state on the connection, which outlives the request"
CODE = "runs code that no check sees"
ELSEWHERE = "acts outside the transaction (files, other sessions, the server)"
SCHEMA = "changes the database's schema, roles or permissions"
NOT_A_QUERY = "is not a statement of a query string"

_REFUSED = {
    TRANSACTION: ("TransactionStmt", "ConstraintsSetStmt"),
    SESSION: (
        "VariableSetStmt", "DiscardStmt", "ListenStmt", "UnlistenStmt", "PrepareStmt",
        "ExecuteStmt", "DeallocateStmt", "DeclareCursorStmt", "FetchStmt",
        "ClosePortalStmt", "LoadStmt",
    ),
    CODE: ("DoStmt", "CallStmt"),
    ELSEWHERE: (
        "NotifyStmt", "CopyStmt", "CheckPointStmt", "VacuumStmt", "ClusterStmt",
        "ReindexStmt", "AlterSystemStmt", "CreatedbStmt", "DropdbStmt",
        "AlterDatabaseStmt", "AlterDatabaseSetStmt", "AlterDatabaseRefreshCollStmt",
        "CreateTableSpaceStmt", "DropTableSpaceStmt", "AlterTableSpaceOptionsStmt",
        "CreateSubscriptionStmt", "AlterSubscriptionStmt", "DropSubscriptionStmt",
        "CreatePublicationStmt", "AlterPublicationStmt",
    ),
    SCHEMA: (
        # Temporary tables too: one not dropped on commit stays on the connection.
        "CreateStmt", "CreateTableAsStmt", "ViewStmt", "RefreshMatViewStmt", "IndexStmt",
        "AlterTableStmt", "AlterTableMoveAllStmt", "DropStmt", "TruncateStmt", "RenameStmt",
        "CommentStmt", "SecLabelStmt", "GrantStmt", "GrantRoleStmt",
        "AlterDefaultPrivilegesStmt", "CreateRoleStmt", "AlterRoleStmt", "AlterRoleSetStmt",
        "DropRoleStmt", "DropOwnedStmt", "ReassignOwnedStmt", "AlterOwnerStmt",
        "AlterObjectSchemaStmt", "AlterObjectDependsStmt", "CreateSchemaStmt",
        "CreateSeqStmt", "AlterSeqStmt", "CreateFunctionStmt", "AlterFunctionStmt",
        "CreateTrigStmt", "CreateEventTrigStmt", "AlterEventTrigStmt", "RuleStmt",
        "CreatePolicyStmt", "AlterPolicyStmt", "CreateDomainStmt", "AlterDomainStmt",
        "CompositeTypeStmt", "CreateEnumStmt", "AlterEnumStmt", "CreateRangeStmt",
        "AlterTypeStmt", "DefineStmt", "CreateCastStmt", "CreateConversionStmt",
        "CreateTransformStmt", "CreateOpClassStmt", "CreateOpFamilyStmt",
        "AlterOpFamilyStmt", "AlterOperatorStmt", "CreateAmStmt", "CreatePLangStmt",
        "CreateExtensionStmt", "AlterExtensionStmt", "AlterExtensionContentsStmt",
        "CreateFdwStmt", "AlterFdwStmt", "CreateForeignServerStmt", "AlterForeignServerStmt",
        "CreateForeignTableStmt", "ImportForeignSchemaStmt", "CreateUserMappingStmt",
        "AlterUserMappingStmt", "DropUserMappingStmt", "CreateStatsStmt", "AlterStatsStmt",
        "AlterCollationStmt", "AlterTSConfigurationStmt", "AlterTSDictionaryStmt",
        "ReplicaIdentityStmt",
    ),
    # Nodes of the parser named like statements that a query string never
    # yields at the top (a wrapper, PL/pgSQL's and SQL functions' bodies).
    NOT_A_QUERY: ("RawStmt", "SetOperationStmt", "PLAssignStmt", "ReturnStmt"),
}

# Statement kind → why a script may not run it (None: it may).
STATEMENTS = {
    **{kind: None for kind in ALLOWED},
    **{kind: reason for reason, kinds in _REFUSED.items() for kind in kinds},
}

# Volatile functions (PostgreSQL's word for a function that may act beyond
# the query: settings, files, other sessions, the server) that scripts may
# call; every other volatile function of the database is refused, whatever
# its name or extension (judged against pg_proc by :mod:`..services.script_sql`).
VOLATILE_ALLOWED = frozenset({
    # Sequences: the ORM's ir.sequence calls nextval; currval and lastval read it.
    "nextval", "currval", "lastval",
    # Values that differ at each call.
    "random", "gen_random_uuid", "clock_timestamp", "timeofday",
    # Bounded by the script's statement_timeout.
    "pg_sleep",
    # Advisory locks released with the transaction.
    "pg_advisory_xact_lock", "pg_advisory_xact_lock_shared",
    "pg_try_advisory_xact_lock", "pg_try_advisory_xact_lock_shared",
})
VOLATILE = ("is VOLATILE in PostgreSQL's catalog (it may act beyond the query); scripts "
            "call only the volatile functions " + ", ".join(sorted(VOLATILE_ALLOWED)))
# Relations of PostgreSQL's own schemas: the server's settings, files, roles
# and locks, which a script neither reads nor writes nor locks.
CATALOG = "is a relation of PostgreSQL's catalogs, which scripts do not use"

# Bounds on what reaches the parser.  pglast builds its tree by recursion in
# C: a tree deep enough overflows the thread's stack and kills the process.
# A tree grows deeper only through operators and keywords (a + b + ...,
# UNION chains, NOT NOT ..., CASE) and brackets (subqueries, calls, arrays);
# lists (IN lists, VALUES rows, columns) stay flat however long.  Measured on
# pglast 7.22 in a thread with a 2 MB stack (glibc's default for threads when
# the stack size is unlimited; 8 MB otherwise), the process dies past about
# 7,600 chained operators, 4,000 UNION branches or 1,800 nested subqueries;
# at these bounds the worst statement uses under half of that stack (each
# operator about 275 bytes, each nested subquery about 1,150).  Counted per
# statement, before the parser sees the text.
MAX_OPERATORS = 2000
MAX_NESTING = 300
# Tokens that never deepen the tree: names, constants, placeholders, list
# punctuation, comments.
_LEAVES = frozenset({
    "IDENT", "UIDENT", "ICONST", "FCONST", "SCONST", "USCONST", "BCONST", "XCONST", "PARAM",
    "NULL_P", "TRUE_P", "FALSE_P", "DEFAULT", "ASCII_44", "ASCII_46", "SQL_COMMENT", "C_COMMENT",
})
# ( [, ) ], and ; between statements.
_OPEN, _CLOSE, _END = frozenset({"ASCII_40", "ASCII_91"}), frozenset({"ASCII_41", "ASCII_93"}), \
    "ASCII_59"
# At least one match in every operator or keyword token (and more elsewhere):
# a text with few of them and few brackets needs no scan (an ORM IN list).
_MAYBE_OPERATOR = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*|[-+*/<>=~!@#%^&|`?:]")
TOO_DEEP = (f"is nested more than {MAX_NESTING} brackets deep, more than the check parses "
            "safely; split it")
TOO_LONG = (f"has more than {MAX_OPERATORS} operators and keywords, more than the check parses "
            "safely; split it into several statements")


# Types whose values psycopg2 writes as one literal (a number, a quoted string,
# NULL, a typed string; a tuple as a parenthesized list of them, a list as an
# ARRAY): in an expression's place such a value cannot change what the
# statement does, so a query is judged on its text with each placeholder an
# expression of its own (``($1)``), at any size of its values.  Exact types:
# a subclass may have an adapter of its own.
LITERAL_TYPES = frozenset({
    type(None), bool, int, float, Decimal, str, bytes, date, datetime, time, timedelta,
})
_PLACEHOLDER = re.compile(r"%%|%s")


# What a statement may call, for the catalog to judge: function name → number
# of the first statement calling it, and the same for field names.
Called = namedtuple("Called", "functions fields")


class UnsafeStatement(ValueError):
    """SQL a script may not run; the message says which statement and why."""


def _check_size(sql):
    """Raise UnsafeStatement when a statement of ``sql`` could make a parse
    tree deeper than the parser's stack holds.  The scanner is iterative."""
    if (len(_MAYBE_OPERATOR.findall(sql)) <= MAX_OPERATORS
            and sql.count("(") + sql.count("[") <= MAX_NESTING):
        return
    try:
        tokens = parser.scan(sql)
    except parser.ParseError:
        return  # the parser stops at the same error, before building a tree
    number, operators, depth = 1, 0, 0
    for token in tokens:
        if token.name in _OPEN:
            depth += 1
            if depth > MAX_NESTING:
                raise UnsafeStatement(f"statement {number}: {TOO_DEEP}")
        elif token.name in _CLOSE:
            depth -= 1
        elif token.name == _END:
            number, operators = number + 1, 0
        elif token.name not in _LEAVES:
            operators += 1
            if operators > MAX_OPERATORS:
                raise UnsafeStatement(f"statement {number}: {TOO_LONG}")


def _nodes(node):
    """``node`` and every node under it."""
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Node):
            yield node
            stack.extend(getattr(node, slot) for slot in node)
        elif isinstance(node, (tuple, list)):
            stack.extend(node)


def _refusal(node):
    """Why ``node`` may not run in a script (None: it may)."""
    kind = type(node).__name__
    if kind.endswith("Stmt"):
        # A kind the table does not know (a newer pglast) is refused.
        reason = STATEMENTS.get(kind, "is a statement kind scripts do not run")
        if reason:
            return f"{kind} {reason} ({ONLY})"
        if isinstance(node, ast.SelectStmt) and node.intoClause is not None:
            return f"SELECT INTO {SCHEMA} ({ONLY})"
    elif isinstance(node, ast.RangeVar):
        # Unqualified pg_ names resolve to pg_catalog, which is searched first.
        schema = node.schemaname or ""
        if schema.startswith("pg_") or schema == "information_schema" \
                or node.relname.startswith("pg_"):
            return f"{'.'.join(filter(None, (schema, node.relname)))} {CATALOG}"
    return None


def _called(node):
    """(function names ``node`` calls, names it selects as a field): ``t.f``
    and ``(t).f`` call ``f(t)`` when ``t`` has no column ``f``."""
    if isinstance(node, ast.FuncCall):
        return (node.funcname[-1].sval,), ()
    if isinstance(node, ast.ColumnRef) and len(node.fields) > 1:
        return (), tuple(field.sval for field in node.fields[-1:] if isinstance(field, ast.String))
    if isinstance(node, ast.A_Indirection):
        return (), tuple(field.sval for field in node.indirection if isinstance(field, ast.String))
    return (), ()


def _literal(value):
    if isinstance(value, (tuple, list)):
        return all(_literal(item) for item in value)
    return type(value) in LITERAL_TYPES


def _parameterized(query, params):
    """``query`` with its i-th ``%s`` written ``($i)`` and ``%%`` as ``%``, and
    the index of each ``$``; None unless psycopg2 reads it so (a ``%`` of
    another kind is its error) and every value is a literal."""
    if (not isinstance(params, (tuple, list)) or not params or not _literal(params)
            or "%" in _PLACEHOLDER.sub("", query)):
        return None
    text, places, length, end = [], [], 0, 0
    for match in _PLACEHOLDER.finditer(query):
        piece = "%" if match[0] == "%%" else f"(${len(places) + 1})"
        if piece != "%":
            places.append(length + match.start() - end + 1)
        text += [query[end:match.start()], piece]
        length += match.start() - end + len(piece)
        end = match.end()
    text.append(query[end:])
    return ("".join(text), places) if len(places) == len(params) else None


def _judge(sql):
    """(the :class:`Called` of ``sql``, the (number, index) of its parameters)."""
    _check_size(sql)
    statements = parser.parse_sql(sql)
    called, parameters = Called({}, {}), []
    for number, raw in enumerate(statements, 1):
        for node in _nodes(raw.stmt):
            reason = _refusal(node)
            if reason:
                raise UnsafeStatement(f"statement {number}: {reason}")
            if isinstance(node, ast.ParamRef):
                parameters.append((node.number, node.location))
            for names, found in zip(_called(node), called, strict=True):
                for name in names:
                    if name not in VOLATILE_ALLOWED:
                        found.setdefault(name, number)
    return called, sorted(parameters)


def check_statement(sql):
    """Raise UnsafeStatement unless the grammar lets every statement of ``sql``
    run in a script.  Returns what PostgreSQL's catalog must judge
    (:func:`refuse_volatile`): the names of the functions called outside
    :data:`VOLATILE_ALLOWED`, and of the fields selected, each with the number
    of its first statement."""
    try:
        return _judge(sql)[0]
    except parser.ParseError as error:
        raise UnsafeStatement(f"the SQL does not parse (PostgreSQL grammar): {error}") from None


def check_query(query, params, text):
    """:func:`check_statement` of what ``execute(query, params)`` sends, whose
    text ``text()`` gives.  When every value is a literal and every placeholder
    is an expression of its own (a parameter of the parsed text, at its very
    place: not in a string, a comment or a name), the query is judged with
    its placeholders, whatever the size of its values."""
    parameterized = _parameterized(query, params)
    if parameterized is not None:
        sql, places = parameterized
        try:
            called, parameters = _judge(sql)
        except (parser.ParseError, UnsafeStatement):
            parameters = None  # judged on the text sent, whose verdict counts
        if parameters == list(enumerate(places, 1)):
            return called
    return check_statement(text())


def refuse_volatile(called, volatile):
    """Raise UnsafeStatement when a name of ``called`` (a :class:`Called`) is
    among ``volatile``, the names of the database's volatile functions that it
    may call."""
    refused = sorted((number, name) for names in called for name, number in names.items()
                     if name in volatile)
    if refused:
        number, name = refused[0]
        raise UnsafeStatement(f"statement {number}: {name}() {VOLATILE}")
