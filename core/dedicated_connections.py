"""A few database connections kept open for statements that commit on their own.

Every API call writes its log row in a transaction of its own, so that the row
survives when the call's transaction rolls back.  Taking a connection from
Odoo's pool for that costs more than the INSERT: the pool resets the connection
(``DISCARD ALL``), which also throws away the plans of the row's foreign-key
checks, and PostgreSQL then plans them again.  The connections kept here are
never reset.  They run in autocommit, one statement per transaction, so between
uses they hold no transaction and no lock.

No ORM and no Odoo import: the caller says how to connect.
"""

import os
import threading
from contextlib import contextmanager


class DedicatedConnections:
    """Up to ``max_per_key`` open connections per key (a database name).

    :meth:`borrowed` lends an idle connection, or opens one while fewer than
    ``max_per_key`` are open, or lends ``None`` so that the caller falls back on
    another way.  A connection whose use raised is closed, never lent again.
    """

    def __init__(self, max_per_key):
        self.max_per_key = max_per_key
        self._lock = threading.Lock()
        self._idle = {}  # key -> [connection]
        self._open = {}  # key -> number of connections open (idle or lent)
        if hasattr(os, "register_at_fork"):
            # Odoo's prefork server forks its workers: a child must not share
            # the parent's sessions (see ``_before_fork``).
            os.register_at_fork(
                before=self._before_fork,
                after_in_parent=self._after_fork_in_parent,
                after_in_child=self._after_fork_in_child,
            )

    @contextmanager
    def borrowed(self, key, connect):
        """Lend a connection for ``key``, made by ``connect()`` when needed."""
        connection = self._take(key, connect)
        if connection is None:
            yield None
            return
        try:
            yield connection
        except BaseException:
            self._discard(key, connection)
            raise
        with self._lock:
            self._idle.setdefault(key, []).append(connection)

    def close_all(self):
        """Close every idle connection (tests, shutdown); a connection lent at
        this moment is kept when it comes back."""
        with self._lock:
            self._close_idle()

    def _take(self, key, connect):
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                return idle.pop()
            if self._open.get(key, 0) >= self.max_per_key:
                return None
            self._open[key] = self._open.get(key, 0) + 1
        try:
            connection = connect()
        except BaseException:
            with self._lock:
                self._open[key] -= 1
            raise
        try:
            connection.autocommit = True
        except BaseException:
            self._discard(key, connection)
            raise
        return connection

    def _discard(self, key, connection):
        with self._lock:
            self._open[key] -= 1
        try:
            connection.close()
        except Exception:  # noqa: BLE001 - already broken; nothing more to do
            pass

    def _close_idle(self):
        for key, connections in self._idle.items():
            for connection in connections:
                connection.close()
            self._open[key] -= len(connections)
        self._idle = {}

    def _before_fork(self):
        # Idle connections are closed before the fork rather than inherited: a
        # child that closed an inherited connection would end the parent's
        # session on it.  The lock is held across the fork so that no
        # connection is given back half-way.
        self._lock.acquire()
        self._close_idle()

    def _after_fork_in_parent(self):
        # Not the lock bound at registration: a child that forks in turn has
        # replaced it (see ``_after_fork_in_child``).
        self._lock.release()

    def _after_fork_in_child(self):
        # What was lent at the fork stays with the parent's threads.
        self._idle, self._open = {}, {}
        self._lock = threading.Lock()
