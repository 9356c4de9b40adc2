"""What the SQL of Python Scripts may run, judged by PostgreSQL's own grammar.

A script shares its request's (or job's) transaction and connection: ending
the transaction, leaving state on the pooled connection, or reaching another
session or server would let a script commit half a request or act beyond it.
The text is parsed by libpg_query (PostgreSQL's parser, through ``pglast``):
every statement kind is decided in :data:`STATEMENTS` (a script may run only
the :data:`ALLOWED` ones), every statement nested anywhere in the tree too
(``EXPLAIN``, ``WITH``), and every function call by its name.  Text that
PostgreSQL's grammar refuses is refused.  The whole string is judged before any
of it runs.
"""

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

# Functions refused by name (the last part of a qualified name, in any case).
TEXT_SQL = "runs SQL given as text, which no check sees"
OTHER_SESSIONS = "acts on other sessions"
SERVER_FILES = "reaches the server's files"
FUNCTIONS = {
    "set_config": "changes the session's settings",
    "pg_advisory_unlock_all": "releases the session's advisory locks",
    "pg_notify": OTHER_SESSIONS,
    "pg_cancel_backend": OTHER_SESSIONS,
    "pg_terminate_backend": OTHER_SESSIONS,
    "pg_reload_conf": "acts on the server",
    "query_to_xml": TEXT_SQL,
    "query_to_xmlschema": TEXT_SQL,
    "query_to_xml_and_xmlschema": TEXT_SQL,
    "ts_stat": TEXT_SQL,
    "ts_rewrite": TEXT_SQL,
    "lo_import": SERVER_FILES,
    "lo_export": SERVER_FILES,
    "pg_read_file": SERVER_FILES,
    "pg_read_binary_file": SERVER_FILES,
    "pg_ls_dir": SERVER_FILES,
    "pg_stat_file": SERVER_FILES,
}
# Families refused by prefix: extensions' connections to other databases, and
# replication state that outlives the transaction.
FUNCTION_PREFIXES = {
    "dblink": "connects to another database",
    "pg_replication_origin": "leaves replication state on the connection",
    "pg_create_logical_replication_slot": "leaves a replication slot on the server",
    "pg_create_physical_replication_slot": "leaves a replication slot on the server",
}
ADVISORY_SESSION = "takes or releases an advisory lock held by the session, past the transaction"
# Why writing to PostgreSQL's catalogs is refused (pg_settings changes settings).
CATALOG = "writes to PostgreSQL's catalogs"
WRITES = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)


class UnsafeStatement(ValueError):
    """SQL a script may not run; the message says which statement and why."""


def function_refusal(name):
    """Why a script may not call the function ``name`` (None: it may)."""
    name = name.lower()
    if name in FUNCTIONS:
        return FUNCTIONS[name]
    # pg_advisory_xact_lock and its kin are released with the transaction.
    if "advisory" in name and "_xact_" not in name:
        return ADVISORY_SESSION
    return next((why for prefix, why in FUNCTION_PREFIXES.items() if name.startswith(prefix)),
                None)


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
        if isinstance(node, WRITES) and node.relation.relname.lower().startswith("pg_"):
            return f"{kind} on {node.relation.relname} {CATALOG}"
    elif isinstance(node, ast.FuncCall):
        name = node.funcname[-1].sval
        reason = function_refusal(name)
        if reason:
            return f"{name}() {reason}"
    return None



def check_statement(sql):
    """Raise UnsafeStatement unless every statement of ``sql`` may run in a script."""
    try:
        statements = parser.parse_sql(sql)
    except parser.ParseError as error:
        raise UnsafeStatement(f"the SQL does not parse (PostgreSQL grammar): {error}") from None
    except RecursionError:
        raise UnsafeStatement("the SQL is nested too deeply to check") from None
    for number, raw in enumerate(statements, 1):
        for node in _nodes(raw.stmt):
            reason = _refusal(node)
            if reason:
                raise UnsafeStatement(f"statement {number}: {reason}")
