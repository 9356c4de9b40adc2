"""The lock of administrators' configurations (TestScriptLock) under real
concurrency: a manager changes their configuration C while an administrator, in
another transaction, makes their configuration S map through C (which locks C).
Without row locks both checks pass on their own snapshots and both commit.
With them, the later transaction waits for the earlier and fails with a
serialization error, which Odoo retries on current data."""

import secrets
import threading
import time

from psycopg2 import errors

from odoo import Command, api
from odoo.exceptions import AccessError
from odoo.tests import BaseCase, new_test_user, tagged
from odoo.tools import mute_logger

from .common import CommittedDataMixin

WAIT_TIMEOUT = 10  # seconds for the administrator's transaction to block


@tagged("post_install", "-at_install")
class TestAdminOnlyRace(CommittedDataMixin, BaseCase):
    def setUp(self):
        super().setUp()
        tag = secrets.token_hex(4)
        with self.committed_env() as env:
            self.manager = new_test_user(env, login=f"bj_race_manager_{tag}",
                                         groups="bjet_api_sync.group_api_sync_manager")
            fields = env["ir.model.fields"]
            methods = env.ref("bjet_api_sync.bj_http_method_get").ids
            countries = {"request_type": "in", "model_id": env["ir.model"]._get_id("res.country"),
                         "http_method_ids": [Command.set(methods)],
                         "line_ids": [Command.create({"field_id": fields._get(
                             "res.country", "code").id, "is_identifier": True})]}
            own = env["bj.api.sync.config"].create({
                **countries, "name": "Race manager's", "endpoint": f"race-c-{tag}",
                "run_as_user_id": self.manager.id, "user_id": self.manager.id})
            former = env["bj.api.sync.config"].create({
                **countries, "name": "Race admin's countries", "endpoint": f"race-d-{tag}",
                "run_as_user_id": env.ref("base.user_admin").id})
            scripted = env["bj.api.sync.config"].create({
                "name": "Race admin's scripted", "request_type": "in", "endpoint": f"race-s-{tag}",
                "model_id": env["ir.model"]._get_id("res.partner"),
                "run_as_user_id": env.ref("base.user_admin").id,
                "http_method_ids": [Command.set(methods)],
                "line_ids": [
                    Command.create({"field_id": fields._get("res.partner", "id").id,
                                    "is_identifier": True}),
                    Command.create({"field_id": fields._get("res.partner", "comment").id,
                                    "value_type": "python_plain", "python_script": "'x'"}),
                    Command.create({"field_id": fields._get("res.partner", "country_id").id,
                                    "external_key": "country",
                                    "value_type": "relational_mapping",
                                    "mapping_config_id": former.id}),
                ]})
            self.own_id, self.admin_uid = own.id, env.ref("base.user_admin").id
            self.mapping_line_id = scripted.line_ids.filtered("mapping_config_id").id
            self.former_id = former.id
            self.config_ids = (scripted | own | former).ids  # mapped ones last
        self.addCleanup(self._delete_data)

    def _delete_data(self):
        with self.committed_env() as env:
            for config_id in self.config_ids:
                env["bj.api.sync.config"].browse(config_id).unlink()
            partner = self.manager.with_env(env).partner_id
            self.manager.with_env(env).unlink()
            partner.unlink()

    def env_of(self, uid):
        return api.Environment(self.registry.cursor(), uid, {})

    def manager_writes(self, env):
        env["bj.api.sync.config"].browse(self.own_id).write(
            {"authorization_type": "no_auth", "endpoint": f"race-open-{secrets.token_hex(4)}"})
        env.flush_all()

    def admin_maps_through(self, env):
        env["bj.api.sync.config.line"].browse(self.mapping_line_id).write(
            {"mapping_config_id": self.own_id})
        env.flush_all()

    def own_config(self):
        with self.committed_env() as env:
            config = env["bj.api.sync.config"].browse(self.own_id)
            return config.authorization_type, config.line_ids.browse(
                self.mapping_line_id).mapping_config_id.id

    @mute_logger("odoo.sql_db")
    def test_a_manager_on_a_snapshot_taken_before_the_administrator_committed(self):
        """The write skew: the manager's transaction started before the
        administrator's commit, and decides after it."""
        manager_env = self.env_of(self.manager.id)
        try:
            manager_env.cr.execute("SELECT 1")  # the snapshot of the manager's request
            admin_env = self.env_of(self.admin_uid)
            with admin_env.cr:
                self.admin_maps_through(admin_env)
            with self.assertRaises(errors.SerializationFailure):
                self.manager_writes(manager_env)
            manager_env.cr.rollback()
            # Odoo's retry, on current data: refused.
            with self.assertRaisesRegex(AccessError, "Only Settings administrators"):
                self.manager_writes(manager_env)
        finally:
            manager_env.cr.rollback()
            manager_env.cr.close()
        self.assertEqual(self.own_config(), ("bearer_token", self.own_id))

    @mute_logger("odoo.sql_db")
    def test_an_administrator_while_the_manager_s_change_is_open(self):
        """The order of the reported race: the manager's change first, uncommitted;
        the administrator's mapping waits for it, then fails and is retried on
        data where the change is visible."""
        manager_env = self.env_of(self.manager.id)
        admin_env = self.env_of(self.admin_uid)
        outcome, started = {}, threading.Event()

        def administrator():
            try:
                admin_env.cr.execute("SELECT pg_backend_pid()")
                outcome["pid"] = admin_env.cr.fetchone()[0]
                started.set()
                self.admin_maps_through(admin_env)
                admin_env.cr.commit()
                outcome["committed"] = True
            except errors.SerializationFailure as error:
                outcome["error"] = error
                admin_env.cr.rollback()
            finally:
                admin_env.cr.close()

        try:
            self.manager_writes(manager_env)
            thread = threading.Thread(target=administrator, name="bj-race-admin")
            thread.start()
            started.wait(WAIT_TIMEOUT)
            blocked = self.wait_until_blocked(outcome["pid"], thread)
            manager_env.cr.commit()
        finally:
            manager_env.cr.close()
        thread.join(WAIT_TIMEOUT)
        self.assertTrue(blocked, "the administrator's transaction waits for the manager's")
        self.assertIn("error", outcome, "and fails once it commits")
        self.assertEqual(self.own_config(), ("no_auth", self.former_id))

    def wait_until_blocked(self, pid, thread):
        """Whether the backend ``pid`` waits for a lock before ``thread`` ends."""
        deadline = time.monotonic() + WAIT_TIMEOUT
        while thread.is_alive() and time.monotonic() < deadline:
            with self.registry.cursor() as cr:
                cr.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
                if cr.fetchone()[0] == "Lock":
                    return True
            time.sleep(0.05)
        return False
