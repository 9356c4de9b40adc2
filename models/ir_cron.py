from odoo import models

from ..services import cron_clock


class IrCron(models.Model):
    _inherit = "ir.cron"

    @classmethod
    def _process_job(cls, db, cron_cr, job):
        # Marks when each scheduled action of a cron worker's go starts and
        # ends: the delivery run measures what the watchdog counted from them.
        cron_clock.job_starts(cron_cr)
        try:
            return super()._process_job(db, cron_cr, job)
        finally:
            cron_clock.job_ended()
