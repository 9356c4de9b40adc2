"""Transaction control refused in the SQL of Python Scripts.

A script shares its request's (or job's) transaction: ending it, opening a
savepoint the caller does not know, or changing the session's role would let a
script commit half a request or act as another database user.  Literals,
quoted identifiers and comments are skipped, so that text that merely mentions
``COMMIT`` passes, and every statement of a multi-statement string is checked.
"""

import re

# A statement starting with one of these keywords controls the transaction
# or the session (SET without LOCAL outlives the transaction on a pooled
# connection; SET ROLE and SET SESSION AUTHORIZATION change the database user).
TRANSACTION_KEYWORDS = frozenset({
    "ABORT", "BEGIN", "CHECKPOINT", "COMMIT", "DISCARD", "END", "RELEASE", "RESET",
    "ROLLBACK", "SAVEPOINT", "SET", "START",
})
# PREPARE alone prepares a query; PREPARE TRANSACTION ends this one.
TRANSACTION_PHRASES = frozenset({("PREPARE", "TRANSACTION")})
# Functions that change the session like SET.
SESSION_FUNCTIONS = frozenset({"SET_CONFIG"})

_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<line_comment>--[^\n]*)
    | (?P<block_comment>/\*)
    | (?P<dollar>\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$)
    | (?P<escape_string>[Ee]'(?:[^'\\]|\\.|'')*')
    | (?P<string>'(?:[^']|'')*')
    | (?P<identifier>"(?:[^"]|"")*")
    | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    | (?P<semicolon>;)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


class UnsafeStatement(ValueError):
    """SQL a script may not run; the message says which statement."""


def _skip_block_comment(sql, position):
    """Position after the block comment opened just before ``position``
    (PostgreSQL's block comments nest)."""
    depth = 1
    while depth:
        opening = sql.find("/*", position)
        closing = sql.find("*/", position)
        if closing < 0:
            return len(sql)
        if 0 <= opening < closing:
            depth, position = depth + 1, opening + 2
        else:
            depth, position = depth - 1, closing + 2
    return position


def statements_words(sql):
    """Each statement's bare words, upper-cased, in order; literals, quoted
    identifiers and comments left out."""
    statements, words, position = [], [], 0
    while position < len(sql):
        match = _TOKEN.match(sql, position)
        kind, position = match.lastgroup, match.end()
        if kind == "block_comment":
            position = _skip_block_comment(sql, position)
        elif kind == "dollar":
            closing = sql.find(match.group(), position)
            position = len(sql) if closing < 0 else closing + len(match.group())
        elif kind == "word":
            words.append(match.group().upper())
        elif kind == "semicolon":
            statements.append(words)
            words = []
    statements.append(words)
    return [words for words in statements if words]


def check_statement(sql):
    """Raise UnsafeStatement when ``sql`` controls the transaction or the session."""
    for words in statements_words(sql):
        if words[0] in TRANSACTION_KEYWORDS or tuple(words[:2]) in TRANSACTION_PHRASES:
            raise UnsafeStatement(
                f"{words[0]}: scripts cannot control the transaction or the session "
                "(they belong to the request or the job)"
            )
        called = SESSION_FUNCTIONS.intersection(words)
        if called:
            raise UnsafeStatement(f"{min(called).lower()}(): scripts cannot change the session")
