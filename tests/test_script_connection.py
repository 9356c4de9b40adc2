"""The check of the connection a script hands back, on real cursors of their
own (a COMMIT there ends nothing of the tests): the same transaction, no
setting, no session advisory lock taken or released; nothing asked of
PostgreSQL for a script that ran no SQL."""

from psycopg2.errors import DivisionByZero

from odoo.sql_db import db_connect
from odoo.tests import BaseCase, get_db_name, tagged

from ..core.sql_guard import UnsafeStatement
from ..services import script_connection
from ..services.script_connection import connection_kept

ENDED = "the script's SQL ended its request's transaction"
SETTING = r"the script's SQL changed the setting\(s\) "
LEFT = "left a session advisory lock on the connection"

# (what the script's SQL runs, what the check says: None when the connection is kept)
CASES = [
    ("SELECT 1", None),
    ("SELECT pg_advisory_xact_lock(4711), pg_try_advisory_xact_lock_shared(1, -2)", None),
    ("SELECT set_config('statement_timeout', '5000', true)", SETTING + "statement_timeout$"),
    ("SET LOCAL work_mem = '7MB'", SETTING + "work_mem$"),
    ("SELECT set_config('application_name', 'bj', false)", SETTING + "application_name$"),
    ("COMMIT", ENDED),
    ("ROLLBACK; SELECT 1", ENDED),
    ("SELECT pg_advisory_lock(4711)", LEFT),
    ("SELECT pg_advisory_lock(-3)", LEFT),
    ("SELECT pg_advisory_lock_shared(2147483647, -2147483648)", LEFT),
    ("SELECT pg_advisory_xact_lock(9), pg_advisory_lock(9)", LEFT),
]

SESSION_LOCKS = ("SELECT count(*) FROM pg_locks "
                 "WHERE locktype = 'advisory' AND pid = pg_backend_pid()")


@tagged("post_install", "-at_install")
class TestScriptConnection(BaseCase):
    def cursor(self):
        cr = db_connect(get_db_name()).cursor()

        def close():
            cr.rollback()
            cr.execute("SELECT pg_advisory_unlock_all()")  # whatever a failure left
            cr.close()

        self.addCleanup(close)
        return cr

    def run_script_sql(self, cr, sql):
        """What a script run does: the state before its first statement, then it."""
        with connection_kept():
            script_connection.note(cr)
            cr.execute(sql, log_exceptions=False)

    def test_cases(self):
        for sql, message in CASES:
            with self.subTest(sql=sql):
                cr = self.cursor()
                if message is None:
                    self.run_script_sql(cr, sql)
                else:
                    with self.assertRaisesRegex(UnsafeStatement, message):
                        self.run_script_sql(cr, sql)
                cr.rollback()
                cr.execute(SESSION_LOCKS)
                self.assertEqual(cr.fetchone()[0], 0, "no session lock stays")

    def test_the_connection_s_own_session_locks_are_its_own(self):
        """A lock the caller held before (the delivery worker's job locks) is
        kept; the script may not release it."""
        cr = self.cursor()
        cr.execute("SELECT pg_advisory_lock(4712)")
        self.run_script_sql(cr, "SELECT pg_advisory_xact_lock(4712)")
        cr.execute(SESSION_LOCKS)
        self.assertEqual(cr.fetchone()[0], 1)
        cr.rollback()  # the transaction's lock goes, the session's stays
        with self.assertRaisesRegex(UnsafeStatement, "released an advisory lock of the connection"):
            self.run_script_sql(cr, "SELECT pg_advisory_unlock(4712)")

    def test_nothing_is_asked_without_sql(self):
        cr = self.cursor()
        count = cr.sql_log_count
        with connection_kept():
            pass
        self.assertEqual(cr.sql_log_count, count)

    def test_a_script_inside_another_is_checked_with_it(self):
        cr = self.cursor()
        with self.assertRaisesRegex(UnsafeStatement, LEFT):
            with connection_kept():
                with connection_kept():
                    script_connection.note(cr)
                    cr.execute("SELECT pg_advisory_lock(4713)")
                cr.execute("SELECT 1")  # the inner one did not check: the outer one does

    def test_a_failed_transaction_keeps_the_script_s_error(self):
        """It cannot be queried, and is rolled back with its request."""
        cr = self.cursor()
        with self.assertRaises(DivisionByZero):
            self.run_script_sql(cr, "SELECT 1 / 0")
