"""Module updates keep what an administrator may change in the shipped data
(noupdate), and still restore what the code needs."""

from odoo.modules.module import get_manifest
from odoo.tests import TransactionCase, tagged
from odoo.tools import convert_file

from ..models.bj_api_sync_job import DEAD_ACTIVITY_TYPE
from ..services.delivery_worker import WORKER_CRON

MODULE = "bjet_api_sync"
# Every model the module's data creates records of, decided: records an
# administrator may tune are noupdate; what the code defines (models, fields,
# views, actions, menus, security) follows the code on every update.
NOUPDATE_MODELS = {
    "ir.cron",  # schedules: interval, priority, active (and their own server actions)
    "mail.activity.type",  # the dead-delivery activity: icon, delay, summary
    "bj.http.method",  # GET, POST, PUT, DELETE
}
UPDATED_MODELS = {
    "ir.model",
    "ir.model.fields",
    "ir.model.fields.selection",
    "ir.model.inherit",
    "ir.model.constraint",
    "ir.model.access",
    "ir.rule",
    "res.groups",
    "ir.module.category",
    "ir.ui.view",
    "ir.ui.menu",
    "ir.actions.act_window",
    "ir.actions.server",  # the views' actions; a cron's own action goes with its cron
}


@tagged("post_install", "-at_install")
class TestDataUpdates(TransactionCase):
    def test_every_data_model_is_decided(self):
        rows = self.env["ir.model.data"].search_read(
            [("module", "=", MODULE)], ["name", "model", "res_id", "noupdate"])
        self.assertEqual({row["model"] for row in rows} - UPDATED_MODELS - NOUPDATE_MODELS,
                         set(), "a new kind of data record: decide whether updates keep it")
        cron_actions = self.env["ir.cron"].with_context(active_test=False).search(
            []).ir_actions_server_id.ids
        for row in rows:
            with self.subTest(xmlid=row["name"]):
                kept = row["model"] in NOUPDATE_MODELS or (
                    row["model"] == "ir.actions.server" and row["res_id"] in cron_actions)
                self.assertEqual(row["noupdate"], kept)

    def update_module_data(self):
        """Load the manifest's data files as `-u bjet_api_sync` does."""
        for path in get_manifest(MODULE)["data"]:
            convert_file(self.env, MODULE, path, {}, mode="update", noupdate=False, kind="data")
        self.env.invalidate_all()

    def test_an_update_keeps_an_administrators_changes(self):
        cron = self.env.ref(WORKER_CRON)
        cron.write({"interval_number": 5, "interval_type": "hours", "priority": 9})
        activity_type = self.env.ref(DEAD_ACTIVITY_TYPE)
        activity_type.write({"delay_count": 2, "summary": "Look at the queue"})
        get = self.env.ref(f"{MODULE}.bj_http_method_get")
        get.sequence = 7
        self.update_module_data()
        self.assertEqual((cron.interval_number, cron.interval_type, cron.priority), (5, "hours", 9))
        self.assertEqual((activity_type.delay_count, activity_type.summary),
                         (2, "Look at the queue"))
        self.assertEqual(get.sequence, 7)

    def test_an_update_restores_a_deleted_record_the_code_needs(self):
        self.env.ref(DEAD_ACTIVITY_TYPE).unlink()
        self.env.ref(WORKER_CRON).unlink()
        self.update_module_data()
        self.assertEqual(self.env.ref(DEAD_ACTIVITY_TYPE).res_model, "bj.api.sync.config")
        self.assertEqual(self.env.ref(WORKER_CRON).code, "model._cron_deliver_jobs()")
