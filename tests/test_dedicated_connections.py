import os
import signal

from odoo.tests import BaseCase, tagged

from ..core.dedicated_connections import DedicatedConnections


class FakeConnection:
    opened = 0

    def __init__(self):
        FakeConnection.opened += 1
        self.number = FakeConnection.opened
        self.autocommit = False
        self.closed = False

    def close(self):
        self.closed = True


@tagged("post_install", "-at_install")
class TestDedicatedConnections(BaseCase):
    def setUp(self):
        super().setUp()
        self.connections = DedicatedConnections(max_per_key=2)
        self.addCleanup(self.connections.close_all)

    def test_reused_in_autocommit(self):
        with self.connections.borrowed("db", FakeConnection) as first:
            self.assertTrue(first.autocommit)
        with self.connections.borrowed("db", FakeConnection) as again:
            self.assertIs(again, first)
        with self.connections.borrowed("other", FakeConnection) as other:
            self.assertIsNot(other, first)

    def test_at_most_max_per_key_then_none(self):
        with self.connections.borrowed("db", FakeConnection) as first, \
                self.connections.borrowed("db", FakeConnection) as second, \
                self.connections.borrowed("db", FakeConnection) as third:
            self.assertIsNotNone(first)
            self.assertIsNot(second, first)
            self.assertIsNone(third)
        # Both came back: the next two borrowers open nothing new.
        with self.connections.borrowed("db", FakeConnection) as one, \
                self.connections.borrowed("db", FakeConnection) as two:
            self.assertEqual({one, two}, {first, second})

    def test_connection_that_raised_is_closed_and_replaced(self):
        with self.assertRaises(RuntimeError), \
                self.connections.borrowed("db", FakeConnection) as broken:
            raise RuntimeError("server closed the connection")
        self.assertTrue(broken.closed)
        with self.connections.borrowed("db", FakeConnection) as fresh, \
                self.connections.borrowed("db", FakeConnection) as second:
            self.assertIsNot(fresh, broken)
            self.assertIsNotNone(second, "the broken one no longer counts")

    def test_failed_connect_does_not_count(self):
        def refuse():
            raise ConnectionError("too many clients")

        for _attempt in range(3):
            with self.assertRaises(ConnectionError), self.connections.borrowed("db", refuse):
                pass
        with self.connections.borrowed("db", FakeConnection) as connection:
            self.assertIsNotNone(connection)

    def test_fork_child_starts_empty_and_parent_keeps_no_shared_session(self):
        with self.connections.borrowed("db", FakeConnection) as lent_at_fork:
            with self.connections.borrowed("db", FakeConnection) as idle_at_fork:
                pass
            pid = os.fork()
            if pid == 0:  # the child: report through the exit code only
                try:
                    signal.alarm(10)  # a deadlock ends the child instead of the test run
                    with self.connections.borrowed("db", FakeConnection) as mine:
                        shares = mine in (idle_at_fork, lent_at_fork)
                    # A child that forks in turn still lends afterwards.
                    grandchild = os.fork()
                    if grandchild == 0:
                        os._exit(0)
                    os.waitpid(grandchild, 0)
                    with self.connections.borrowed("db", FakeConnection) as again:
                        shares = shares or again in (idle_at_fork, lent_at_fork)
                    os._exit(1 if shares else 0)
                finally:
                    os._exit(2)
            _pid, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        # Idle connections are closed before the fork rather than inherited.
        self.assertTrue(idle_at_fork.closed)
        self.assertFalse(lent_at_fork.closed)
        with self.connections.borrowed("db", FakeConnection) as after:
            self.assertIs(after, lent_at_fork)
