"""The cursor of an inbound request's work on the caller's values.

Odoo logs a failed statement as an ERROR ``bad query`` line holding the query
with its parameters: for an inbound write, the caller's (personal) data.  The
request answers such a failure itself (a 400 naming what the database refused,
see ``InboundRequest._error``), and Odoo replays one that failed to serialize,
so its statements run on this cursor: the request's own cursor and transaction,
whose statements are not logged when they fail.
Nothing else changes: the same connection, savepoints and hooks.
"""

from odoo.sql_db import BaseCursor

HOOKS = ("precommit", "postcommit", "prerollback", "postrollback")


def share_transaction(view, cursor):
    """Give ``view``, a cursor that wraps ``cursor``, its transaction and hooks:
    BaseCursor.__init__ would make new ones, and these are the request's.

    Wrappers keep the wrapped cursor in a name with ``__``, which scripts (whose
    environments may sit on a wrapper of a wrapper) can neither read nor write:
    any other name would hand them the raw cursor through ``__getattr__``."""
    view.transaction = cursor.transaction
    for hook in HOOKS:
        setattr(view, hook, getattr(cursor, hook))


class QuietCursor(BaseCursor):
    """``cursor`` with ``execute(..., log_exceptions=False)``.

    The ORM flushes pending writes on savepoints and through ``flush_all`` of
    an environment: both go through this cursor when its environments hold the
    work (``env(cr=QuietCursor(env.cr))``), and so do scripts' cursors, which
    wrap their environment's.
    """

    def __init__(self, cursor):  # pylint: disable=super-init-not-called
        share_transaction(self, cursor)
        self.__cursor = cursor

    def execute(self, query, params=None, log_exceptions=True):
        return self.__cursor.execute(query, params, log_exceptions=False)

    def flush(self):
        # The transaction flushes through any of its environments, maybe one on
        # the logging cursor: flush through one of this cursor's instead.
        env = next((env for env in self.transaction.envs if env.cr is self), None)
        if env is None:
            self.__cursor.flush()
        else:
            env.flush_all()
            self.precommit.run()

    def __getattr__(self, name):
        return getattr(self.__cursor, name)
