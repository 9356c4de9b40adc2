"""Scripts' SQL judged by PostgreSQL's catalog: every VOLATILE function of the
database (a new extension's or function's too) is refused unless reviewed in
VOLATILE_ALLOWED, called by name or through a field selection (``t.f`` is
``f(t)``); STABLE and IMMUTABLE ones run.  The catalog is asked only when a
statement names something."""

import logging

from odoo.tests import tagged

from ..core.sql_guard import VOLATILE, VOLATILE_ALLOWED, UnsafeStatement
from ..services.script_sql import check_script_sql
from .common import BjApiSyncCase

_logger = logging.getLogger(__name__)

REFUSED = r"^statement \d: {}\(\) is VOLATILE in PostgreSQL's catalog"

# What PostgreSQL's catalog must refuse though no name rule lists it: session
# and server state, files, schema changes through a SELECT, sequences outside
# the transaction, an extension's settings.
VECTORS = [
    ("SELECT setseed(0.42)", "setseed"),
    ("SELECT pg_backup_start('bj', true)", "pg_backup_start"),
    ("SELECT pg_logical_emit_message(false, 'bj', 'x')", "pg_logical_emit_message"),
    ("SELECT pg_import_system_collations('public')", "pg_import_system_collations"),
    ("SELECT * FROM pg_ls_waldir()", "pg_ls_waldir"),
    ("SELECT pg_switch_wal()", "pg_switch_wal"),
    ("SELECT pg_stat_reset()", "pg_stat_reset"),
    ("SELECT set_limit(0.1)", "set_limit"),
    ("SELECT setval('res_partner_id_seq', 1)", "setval"),
    ("SELECT lo_from_bytea(0, 'x')", "lo_from_bytea"),
    ("SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
    ('SELECT "pg_catalog"."set_config"(\'application_name\', \'bj\', false)', "set_config"),
    ("SELECT * FROM pg_catalog.set_config('work_mem', '9MB', false)", "set_config"),
    ("SELECT 1; SELECT (SELECT pg_advisory_lock(1))", "pg_advisory_lock"),
    ("WITH x AS (SELECT query_to_xml('SELECT 1', true, true, '')) SELECT * FROM x",
     "query_to_xml"),
    ("SELECT t.bj_touch FROM (SELECT 1 AS x) t", "bj_touch"),
    ("SELECT (t).bj_touch FROM (SELECT 1 AS x) t", "bj_touch"),
    ("SELECT bj_created_today()", "bj_created_today"),
]
ALLOWED = [
    "SELECT now(), current_setting('application_name'), similarity('a', 'b')",
    "SELECT nextval('res_partner_id_seq'), pg_advisory_xact_lock(1), random(), count(*) "
    "FROM res_partner",
    "SELECT p.name, p.id FROM res_partner p WHERE p.id IN (1, 2)",
    # Unknown to the catalog: PostgreSQL refuses to run it.
    "SELECT dblink_exec('dbname=postgres', 'SELECT 1')",
]
# The volatile functions of the database, and those taking one argument
# (callable as a field selection).
VOLATILE_FUNCTIONS = "SELECT DISTINCT proname FROM pg_proc WHERE provolatile = 'v'"
ONE_ARGUMENT = """
    SELECT DISTINCT proname FROM pg_proc
    WHERE provolatile = 'v' AND pronargs >= 1 AND pronargs - pronargdefaults <= 1
"""


@tagged("post_install", "-at_install")
class TestScriptSql(BjApiSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Functions of an administrator or an extension, created after the addon.
        cls.env.cr.execute("""
            CREATE FUNCTION bj_touch(anyelement) RETURNS int LANGUAGE sql AS 'SELECT 1';
            CREATE FUNCTION bj_created_today() RETURNS int LANGUAGE sql AS 'SELECT 1';
        """)

    def assertRefused(self, sql, name):
        with self.assertRaisesRegex(UnsafeStatement, REFUSED.format(name)):
            check_script_sql(self.env.cr, sql)

    def test_every_volatile_function_is_refused_unless_reviewed(self):
        self.env.cr.execute(VOLATILE_FUNCTIONS)
        volatile = {name for (name,) in self.env.cr.fetchall()}
        self.assertIn("bj_created_today", volatile)
        self.assertLessEqual(VOLATILE_ALLOWED, volatile, "an allowed name that is not volatile")
        for name in sorted(volatile):
            with self.subTest(name=name):
                sql = 'SELECT "{}"()'.format(name.replace('"', '""'))
                if name in VOLATILE_ALLOWED:
                    check_script_sql(self.env.cr, sql)
                else:
                    self.assertRefused(sql, name)
        _logger.info("volatile functions: %d in pg_proc, %d refused, %d allowed", len(volatile),
                     len(volatile - VOLATILE_ALLOWED), len(VOLATILE_ALLOWED))

    def test_vectors(self):
        for sql, name in VECTORS:
            with self.subTest(sql=sql):
                self.assertRefused(sql, name)
        for sql in ALLOWED:
            with self.subTest(sql=sql):
                check_script_sql(self.env.cr, sql)

    def test_the_refusal_names_the_allowed_functions(self):
        with self.assertRaises(UnsafeStatement) as caught:
            check_script_sql(self.env.cr, "SELECT setseed(0)")
        self.assertEqual(str(caught.exception), f"statement 1: setseed() {VOLATILE}")

    def test_no_column_of_the_database_reads_as_a_volatile_call(self):
        """A field selection is refused when a volatile function of one
        argument has its name: no column of Odoo's tables does."""
        self.env.cr.execute(ONE_ARGUMENT)
        names = [name for (name,) in self.env.cr.fetchall() if name not in VOLATILE_ALLOWED]
        self.env.cr.execute("""
            SELECT DISTINCT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
            WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0
              AND a.attname = ANY(%s)
        """, [names])
        self.assertEqual(self.env.cr.fetchall(), [])

    def test_the_catalog_is_asked_only_for_names(self):
        count = self.env.cr.sql_log_count
        check_script_sql(self.env.cr, "SELECT 1 WHERE 1 IN (1, 2); SELECT current_date - 1")
        self.assertEqual(self.env.cr.sql_log_count, count)
        check_script_sql(self.env.cr, "SELECT now()")
        self.assertEqual(self.env.cr.sql_log_count, count + 1)
