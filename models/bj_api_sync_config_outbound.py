"""Outbound half of ``bj.api.sync.config``: the original entry point, native
triggers, the schedule, Test Connection and dead-letter notifications.

Delivery itself (the durable outbox) lives in ``bj.api.sync.job``.
"""

import logging
import time
from collections import defaultdict
from datetime import timedelta

from odoo import Command, _, api, fields, models, tools
from odoo.exceptions import UserError, ValidationError
from odoo.osv import expression
from odoo.service.model import PG_CONCURRENCY_EXCEPTIONS_TO_RETRY
from odoo.tools import split_every

from ..core import http_client, inbound, retry
from ..core.transactions import auto_commit
from ..services import outbound, run_as
from ..services.filter_domain import scope_domain
from ..services.inbound_request import INBOUND_CONTEXT_KEY, InboundOrigin
from ..services.outbound_call import EXPORT_ERRORS, OutboundCall
from .bj_api_access import ADMIN_GROUP, USER_GROUP, check_group
from .bj_api_sync_job import DEAD_ACTIVITY_TYPE

_logger = logging.getLogger("bj.api.outbound")

TRIGGER_EVENTS = ("create", "write", "unlink")
# A delivery writes these models: a trigger on them would feed itself forever.
UNWATCHABLE_MODELS = ("bj.api.log", "bj.api.sync.job")
# Fields whose change alters which models and events fire deliveries.
SCHEDULE_FIELDS = frozenset({
    "name", "active", "request_type", "trigger_on_schedule", "schedule_interval_number",
    "schedule_interval_type",
})
# The schedule's bound also stays this far behind the database clock: a
# transaction takes its start time when its first statement arrives, and shows
# it in pg_stat_activity microseconds later (see _bj_schedule_bound).
SCHEDULE_CLOCK_MARGIN = timedelta(seconds=1)
# Test Connection: methods that change nothing, tried in order while the
# server answers "method not allowed / not implemented".
TEST_CONNECTION_METHODS = ("HEAD", "OPTIONS", "GET")
METHOD_REFUSED_STATUSES = (405, 501)
CREDENTIALS_REFUSED_STATUSES = (401, 403)


class BjApiSyncConfigOutbound(models.Model):
    _inherit = "bj.api.sync.config"
    # Schedule bookkeeping (every scheduled run writes it) and the chatter's.
    _plan_neutral_fields = frozenset({
        "schedule_cron_id", "schedule_last_sync", "schedule_last_sync_id",
        "message_main_attachment_id",
    })

    send_inbound_changes = fields.Boolean(
        string="Send Changes Made by Inbound Calls",
        tracking=True,
        help="Off (recommended): records written by an inbound API call do not fire this "
        "configuration, so a change received from a system is not echoed back to it.",
    )
    trigger_on_schedule = fields.Boolean(
        string="Send on Schedule",
        tracking=True,
        help="Periodically queue the records of the Filter Domain changed since the last "
        "run, at most Limit per run, in batches of Page Size.",
    )
    schedule_interval_number = fields.Integer(
        string="Every", default=1, help="Interval between two scheduled runs."
    )
    schedule_interval_type = fields.Selection(
        [("minutes", "Minutes"), ("hours", "Hours"), ("days", "Days"), ("weeks", "Weeks")],
        string="Interval Unit",
        default="hours",
        required=True,
        help="Unit of the interval between two scheduled runs.",
    )
    schedule_cron_id = fields.Many2one(
        "ir.cron", string="Scheduled Action", readonly=True, copy=False, ondelete="set null",
        help="Scheduled action that runs this configuration's schedule.",
    )
    schedule_last_sync = fields.Datetime(
        string="Synchronised Up To",
        copy=False,
        help="Records changed after this moment are sent by the next scheduled run. Clear "
        "it to send every record of the Filter Domain again.",
    )
    schedule_last_sync_id = fields.Integer(
        copy=False, help="Tie-breaker: last record id queued at Synchronised Up To."
    )
    retry_base_delay = fields.Integer(
        string="Retry Base Delay (s)",
        default=retry.DEFAULT_BASE_DELAY,
        help="Wait before the second attempt; it doubles at every further attempt, with "
        "random jitter. A Retry-After header from the server is honoured when longer.",
    )
    retry_max_delay = fields.Integer(
        string="Retry Maximum Delay (s)",
        default=retry.DEFAULT_MAX_DELAY,
        help="Longest wait between two attempts, unless the server's Retry-After asks more.",
    )
    job_ids = fields.One2many(
        "bj.api.sync.job", "config_id", string="Outbound Queue",
        help="Deliveries queued by this configuration.",
    )
    job_pending_count = fields.Integer(
        compute="_compute_job_counts", string="Pending Deliveries",
        help="Deliveries waiting to be sent or being sent.",
    )
    job_dead_count = fields.Integer(
        compute="_compute_job_counts", string="Dead Deliveries",
        help="Deliveries that failed for good and wait for a Retry or a Cancel.",
    )

    # -- constraints -------------------------------------------------------------------

    @api.constrains("request_type", "model_id", "trigger_on_create", "trigger_on_write",
                    "trigger_on_unlink", "trigger_on_schedule")
    def _check_trigger_model(self):
        for config in self:
            fires = any(config[f"trigger_on_{event}"] for event in (*TRIGGER_EVENTS, "schedule"))
            if fires and config.model_name in UNWATCHABLE_MODELS:
                raise ValidationError(
                    _("Model %(model)s cannot fire deliveries: every delivery writes it.",
                      model=config.model_id.name)
                )

    @api.constrains("request_url", "is_paginated")
    def _check_paginated_placeholders(self):
        for config in self.filtered(lambda c: c.request_type == "out" and c.is_paginated):
            if http_client.placeholders(config.request_url):
                raise ValidationError(
                    _("The Request URL of %(name)r has {key} placeholders: they are filled "
                      "from one record, so they cannot be used with 'Is paginated?'.",
                      name=config.name)
                )

    @api.constrains("retry_base_delay", "retry_max_delay", "schedule_interval_number")
    def _check_delivery_numbers(self):
        for config in self:
            if config.retry_base_delay < 0 or config.retry_max_delay < config.retry_base_delay:
                raise ValidationError(
                    _("Retry delays: the base delay cannot be negative nor longer than the "
                      "maximum delay.")
                )
            if config.schedule_interval_number <= 0:
                raise ValidationError(_("The schedule interval must be a positive number."))

    @api.ondelete(at_uninstall=False)
    def _unlink_except_unfinished_jobs(self):
        jobs = self.env["bj.api.sync.job"].sudo().search([("config_id", "in", self.ids)])
        unfinished = jobs.filtered(lambda job: job.state in ("pending", "running"))
        if unfinished:
            raise UserError(
                _("1 delivery of these configurations is still waiting to be sent: let it "
                  "finish or cancel it in the Outbound Queue first.") if len(unfinished) == 1 else
                _("%(count)s deliveries of these configurations are still waiting to be sent: "
                  "let them finish or cancel them in the Outbound Queue first.",
                  count=len(unfinished))
            )
        # Log rows point to both the configuration and its jobs: deleting the
        # jobs first spares PostgreSQL two crossing ON DELETE cascades.
        jobs.unlink()

    # -- ORM: keep triggers and schedules in step with the configurations ------------------

    @api.model_create_multi
    def create(self, vals_list):
        configs = super().create(vals_list)
        configs._bj_sync_schedule_cron()
        return configs

    def write(self, vals):
        result = super().write(vals)
        if SCHEDULE_FIELDS.intersection(vals):
            self._bj_sync_schedule_cron()
        return result

    def unlink(self):
        crons = self._bj_own_schedule_cron()
        result = super().unlink()
        crons.unlink()
        return result

    @api.depends("job_ids.state")
    def _compute_job_counts(self):
        counts = defaultdict(int)
        groups = self.env["bj.api.sync.job"]._read_group(
            [("config_id", "in", self.ids), ("state", "in", ("pending", "running", "dead"))],
            ["config_id", "state"],
            ["__count"],
        )
        for config, state, count in groups:
            counts[config.id, state == "dead"] += count
        for config in self:
            config.job_pending_count = counts[config.id, False]
            config.job_dead_count = counts[config.id, True]

    # -- native triggers -----------------------------------------------------------------

    @api.model
    @tools.ormcache()
    def _bj_trigger_index(self):
        """``{(model name, event): (configuration id, ...)}`` of active Out
        configurations with native triggers.

        Read by every create/write/unlink (see models/base.py): cached, and
        cleared (in every worker) whenever a configuration changes.
        """
        index = defaultdict(list)
        configs = self.sudo().search([
            ("request_type", "=", "out"),
            "|", "|", ("trigger_on_create", "=", True), ("trigger_on_write", "=", True),
            ("trigger_on_unlink", "=", True),
        ])
        for config in configs:
            for event in TRIGGER_EVENTS:
                if config[f"trigger_on_{event}"]:
                    index[config.model_name, event].append(config.id)
        return {key: tuple(value) for key, value in index.items()}

    @api.model
    def _bj_plans_for(self, model_name, event):
        """Plans of the configurations this change fires, echo suppression included."""
        plans = tuple(self._bj_plan_for(config_id)
                      for config_id in self._bj_trigger_index().get((model_name, event), ()))
        if plans and isinstance(self.env.context.get(INBOUND_CONTEXT_KEY), InboundOrigin):
            plans = tuple(plan for plan in plans if plan.triggers.send_inbound)
        return plans

    @api.model
    def _bj_queue_changes(self, plans, records, event, vals=None, before=None):
        """Queue the deliveries that a create, write or unlink of ``records`` fires.

        For writes with Watched Fields, only records where one of them changed
        value count (``before`` holds their old values).  A create whose
        records were already written during it (inverse fields, which
        ``BaseModel.create`` writes before returning) turns those write jobs
        into its own.  Deletions are exported now, before the records
        disappear; a record created in this transaction, its create job not
        attempted yet, is deleted with no delivery at all (its jobs cancelled).
        """
        # with_prefetch(): reading a field must not load it for every record
        # that happened to be fetched with these (a whole imported batch...).
        records = records.sudo().with_context(active_test=False).with_prefetch()
        for plan in plans:
            changed = records
            watched = plan.triggers.watched
            if event == "write" and watched:
                names = watched.intersection(vals)
                changed = records.filtered(
                    lambda record, names=names: any(
                        record[name] != before[record.id][name] for name in names
                    )
                )
            # Searched as the Run As User: records it may not read are not its
            # to send, and their deletion is not its to block.
            changed = outbound.records_in_scope(self.env, plan, changed.ids)[0]
            if not changed:
                continue
            if event == "create":
                # Writes made inside create (a form's inverse fields) queued
                # "write" jobs first: they are the creation.
                changed -= changed.browse(
                    self.env["bj.api.sync.job"]._bj_writes_become_create(plan, changed))
                if not changed:
                    continue
            payloads = None
            if event == "unlink":
                # Created in this very transaction, its create job unsent: the
                # remote never heard of it (nor will it: the job is cancelled).
                changed -= changed.browse(
                    self.env["bj.api.sync.job"]._bj_cancel_unborn(plan, changed))
                if not changed:
                    continue
                try:
                    payloads = outbound.export_payloads(self.env, plan, changed)
                except EXPORT_ERRORS as error:
                    raise UserError(
                        _("These records cannot be deleted: API configuration %(name)r must send "
                          "the deletion and cannot build it: %(error)s",
                          name=plan.name, error=error)
                    ) from error
            self.env["bj.api.sync.job"]._bj_enqueue(plan, changed, event, payloads)

    # -- the original entry point ---------------------------------------------------------

    @api.model
    def _bj_find_config(self, config_id_ref):
        """The configuration, archived or not, named by an id, a record or an XML
        id; empty when none is."""
        configs = self.sudo().with_context(active_test=False)
        if isinstance(config_id_ref, models.BaseModel):
            ids = config_id_ref.ids if config_id_ref._name == self._name else []
        elif isinstance(config_id_ref, int) and not isinstance(config_id_ref, bool):
            ids = [config_id_ref]
        elif isinstance(config_id_ref, str) and config_id_ref.strip().isdigit():
            ids = [int(config_id_ref)]
        elif isinstance(config_id_ref, str):
            record = self.env.ref(config_id_ref.strip(), raise_if_not_found=False)
            ids = [record.id] if record and record._name == self._name else []
        else:
            ids = []
        return configs.browse(ids).exists()

    @api.model
    def _bj_resolve_config(self, config_id_ref):
        """The active Out configuration named by an id, a record or an XML id."""
        if isinstance(config_id_ref, models.BaseModel) and config_id_ref._name != self._name:
            raise UserError(_("%(ref)s is not an API configuration.", ref=config_id_ref))
        config = self._bj_find_config(config_id_ref)
        if len(config) != 1:
            raise UserError(
                _("No API configuration matches %(ref)r: give one id, record or XML id.",
                  ref=config_id_ref)
            )
        if config.request_type != "out" or not config.active:
            raise UserError(
                _("API configuration %(name)r is not an active Out configuration.",
                  name=config.name)
            )
        return config

    def _bj_record_ids(self, record_ids):
        """Ids (deduplicated, in order) from a recordset, an id or a list of ids."""
        self.ensure_one()
        if isinstance(record_ids, models.BaseModel):
            if record_ids._name != self.model_name:
                raise UserError(
                    _("API configuration %(name)r sends %(model)s records, not %(given)s.",
                      name=self.name, model=self.model_name, given=record_ids._name)
                )
            ids = record_ids.ids
        elif isinstance(record_ids, int) and not isinstance(record_ids, bool):
            ids = [record_ids]
        elif isinstance(record_ids, (list, tuple, set)) and all(
            isinstance(value, int) and not isinstance(value, bool) for value in record_ids
        ):
            ids = list(record_ids)
        else:
            raise UserError(
                _("Records to send must be a recordset, an id or a list of ids, not %(value)r.",
                  value=record_ids)
            )
        return list(dict.fromkeys(ids))

    @api.model
    def _make_outbound_http_request(self, record_ids, config_id_ref, timeout=None):
        """Send records to an Out configuration now and return the answer.

        The original entry point, for code that wants the external API's
        answer: ``record_ids`` is a recordset, an id or a list of ids;
        ``config_id_ref`` an id, a record or an XML id; ``timeout`` (seconds, or
        a (connect, read) pair) overrides the configuration's.  Records outside
        the Filter Domain are skipped and reported.  One request per record, or
        per Page Size records when paginated: every one is sent, whatever became
        of the others; retryable failures are retried inline with backoff
        within a time budget derived from the timeout, and whatever is not
        delivered is queued in the outbox (see ``services/outbound_call.py``).
        Every request is logged.

        One order with the Outbound Queue, per record: a record (or page) is
        not sent while an older unfinished job of the configuration holds one
        of its records (pending with a payload or attempts, or running); it is
        queued behind it, listed in ``held_ids``, and ``error`` names the older
        jobs.  Otherwise the call takes over the record's never-attempted job
        (such as the create job of this very transaction): its attempts carry
        that job's Idempotency-Key and X-BJET-Event (else a fresh key and
        "manual"), and that job is done when delivered, or else keeps the key
        and the payload attempted.  The records' rows are locked until the
        caller's transaction ends; one that another transaction changed since
        it began raises the serialization error Odoo retries the request on,
        before anything is sent.

        Jobs are written in the caller's transaction: they commit or roll back
        with the changes they carry.  A caller that raises when ``success`` is
        false rolls back the jobs queued for what was not delivered: raise only
        when nothing was queued (``queued_job_ids`` empty).

        Returns ``{"success", "status_code", "data", "error", "log_id"}``:
        ``success`` when every record was delivered now; ``status_code``,
        ``error`` and ``log_id`` of the last attempt of the last record (or
        page) not delivered, else of the last record (``status_code`` None for
        one not sent); ``data`` the body of each record's (or page's) last
        answer, a list when there are several.  Plus ``log_ids`` (every
        request), ``skipped_ids``, ``unsent_ids`` (not delivered now, all
        queued), ``held_ids`` (of those, the ones not sent because an older job
        holds them) and ``queued_job_ids`` (the jobs that carry them).
        """
        config = self._bj_resolve_config(config_id_ref)
        plan = config._bj_plan()
        records, skipped = outbound.records_in_scope(self.env, plan,
                                                     config._bj_record_ids(record_ids))
        return OutboundCall(self.env, plan, timeout).run(records, skipped)

    @api.model
    def _enqueue_outbound_records(self, record_ids, config_id_ref):
        """Queue records for durable delivery (same arguments as the entry point).

        The asynchronous sibling of ``_make_outbound_http_request`` for code that
        does not need the answer (Create Trigger Action generates calls of it):
        delivered after commit, with retries.  Returns the jobs.

        Automation rules call it inside other users' creates and writes: when the
        configuration is missing, archived, not Out or on another model, it queues
        nothing, and says why in the server log and on the configuration, rather
        than fail their save.
        """
        jobs = self.env["bj.api.sync.job"]
        try:
            config = self._bj_resolve_config(config_id_ref)
            ids = config._bj_record_ids(record_ids)
        except UserError as error:
            self._bj_report_skipped_trigger(config_id_ref, error)
            return jobs
        plan = config._bj_plan()
        records, _skipped = outbound.records_in_scope(self.env, plan, ids)
        return jobs._bj_enqueue(plan, records, "manual")

    @api.model
    def _bj_report_skipped_trigger(self, config_id_ref, error):
        """Log why a Trigger Action queued nothing, and post it on the
        configuration when there is one (once in a row, not at every record)."""
        reason = error.args[0]
        _logger.warning("A Trigger Action called API configuration %r and queued nothing: %s",
                        config_id_ref, reason)
        config = self._bj_find_config(config_id_ref)
        if len(config) != 1:
            return
        note = _("A Trigger Action called this configuration and queued nothing: %(reason)s",
                 reason=reason)
        last = config.message_ids[:1]
        if not last or tools.html2plaintext(last.body).strip() != note:
            config.message_post(body=note, subtype_xmlid="mail.mt_note")

    # -- the schedule ------------------------------------------------------------------------

    def _bj_schedule_code(self):
        return f"model._cron_send_scheduled({self.id})"

    def _bj_own_schedule_cron(self):
        """The Scheduled Actions that the addon created for these configurations:
        on this model, running their own schedule.  Any other cron in
        ``schedule_cron_id`` (written there by hand) is never touched."""
        crons = self.env["ir.cron"].sudo().with_context(active_test=False)
        model_id = self.env["ir.model"]._get_id(self._name)
        for config in self.sudo():
            cron = config.schedule_cron_id.with_context(active_test=False)
            if cron.model_id.id == model_id and cron.code == config._bj_schedule_code():
                crons |= cron
        return crons

    def _bj_sync_schedule_cron(self):
        """Create, update or deactivate each configuration's scheduled action."""
        model_id = self.env["ir.model"]._get_id(self._name)
        for config in self.sudo():
            wanted = config.active and config.request_type == "out" and config.trigger_on_schedule
            values = {
                "name": _("BJET API: scheduled sync of %(name)s", name=config.name),
                "interval_number": config.schedule_interval_number,
                "interval_type": config.schedule_interval_type,
                "active": wanted,
            }
            cron = config._bj_own_schedule_cron()
            if cron:
                cron.write(values)
            elif wanted:
                config.schedule_cron_id = self.env["ir.cron"].sudo().create({
                    **values,
                    "model_id": model_id,
                    "state": "code",
                    "code": config._bj_schedule_code(),
                    "user_id": self.env.ref("base.user_root").id,
                })
            elif config.schedule_cron_id:
                config.schedule_cron_id = False

    @api.model
    def _bj_schedule_bound(self):
        """The moment before which every change is committed: the scheduled run
        sends records with ``write_date`` before it, so its mark never passes it.

        The ORM stamps write_date with the start time of the writing transaction
        (``cr.now()``).  The bound is the start of the oldest transaction still
        open in this database other than ours (read-only ones too: they may
        write later, stamped with that start), capped at the clock less
        SCHEDULE_CLOCK_MARGIN.  A row stamped before it comes from a transaction
        that has ended by now: in a snapshot taken after this call it is visible,
        and no transaction can commit one later.  So a mark kept below the bound
        skips nothing, however long transactions stay open.
        """
        cr = self.env.cr
        cr.execute("SELECT pg_stat_clear_snapshot()")  # it would be read once per transaction
        cr.execute(
            """
            SELECT LEAST(MIN(xact_start), clock_timestamp() - %s) AT TIME ZONE 'UTC'
            FROM pg_stat_activity
            WHERE datname = current_database() AND backend_type = 'client backend'
              AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
            """,
            [SCHEDULE_CLOCK_MARGIN],
        )
        return cr.fetchone()[0]

    def _bj_changed_domain(self, plan, bound):
        """Records of the scope changed since the last scheduled run and before ``bound``."""
        self.ensure_one()
        domain = [("write_date", "<", bound)]
        if self.schedule_last_sync:
            last = self.schedule_last_sync
            domain += ["|", ("write_date", ">", last),
                       "&", ("write_date", "=", last), ("id", ">", self.schedule_last_sync_id)]
        return expression.AND([scope_domain(outbound.delivery_model(self.env, plan).env, plan),
                               domain])

    @api.model
    def _cron_send_scheduled(self, config_id):
        """One scheduled run: queue up to Limit changed records, Page Size at a time.

        Each batch is committed with the new "synchronised up to" mark and
        reported to ir.cron's progress API, so a run that stops halfway resumes
        where it was, and a backlog above Limit continues in the next call.
        Only records changed before ``_bj_schedule_bound`` are taken: those of
        transactions still open wait for a later run.
        """
        config = self.sudo().browse(config_id).exists()
        if not (config and config.active and config.request_type == "out"
                and config.trigger_on_schedule):
            return 0
        plan = config._bj_plan()
        try:
            run_as.check_plan_user(self.env, plan)
        except run_as.RunAsUserError as error:
            # The mark stays: the first run after the user is fixed sends these changes.
            _logger.warning("Scheduled run of %s skipped: %s", config.display_name, error)
            return 0
        commit = auto_commit()
        model = outbound.delivery_model(self.env, plan)
        if not model.has_access("read"):
            _logger.warning("Scheduled run of %s skipped: its Run As User may not read %s.",
                            config.display_name, plan.model)
            return 0
        bound = config._bj_schedule_bound()
        if commit:
            # Search in a snapshot taken after the bound was read: every
            # transaction that could stamp a row before it has ended by then.
            self.env.cr.commit()  # pylint: disable=invalid-commit
        domain = config._bj_changed_domain(plan, bound)
        total = model.search_count(domain)
        records = model.search(domain, order="write_date, id", limit=plan.limit)
        done = 0
        for batch in split_every(plan.page_size, records.ids, model.browse):
            self.env["bj.api.sync.job"]._bj_enqueue(plan, batch, "schedule")
            config.write({"schedule_last_sync": batch[-1].write_date,
                          "schedule_last_sync_id": batch[-1].id})
            done += len(batch)
            self.env["ir.cron"]._notify_progress(done=done, remaining=total - done)
            if commit:
                self.env.cr.commit()  # a batch at a time; pylint: disable=invalid-commit
        return done

    # -- dead letters ----------------------------------------------------------------------

    def _bj_notify_dead_job(self):
        """Tell the Responsible, once per burst: one message and one activity.

        While the activity of an earlier death is still open, further deaths
        only refresh its note; marking it done ends the burst.
        """
        self.ensure_one()
        config = self.sudo()
        dead = self.env["bj.api.sync.job"].sudo().search(
            [("config_id", "=", config.id), ("state", "=", "dead")], order="id desc")
        note = dead._bj_dead_summary()
        activity_type = self.env.ref(DEAD_ACTIVITY_TYPE)
        activity = self.env["mail.activity"].sudo().search([
            ("res_model", "=", self._name), ("res_id", "=", config.id),
            ("activity_type_id", "=", activity_type.id),
        ], limit=1)
        if activity:
            # Deliveries dying at once in several transactions refresh one
            # note: under REPEATABLE READ all but one fail to serialize.  The
            # note they would write is as fresh but for their own deaths, which
            # the Outbound Queue shows: keep the other's, quietly (an ORM write
            # would log the failure as an ERROR and fail the notification).
            try:
                with self.env.cr.savepoint(flush=False):
                    self.env.cr.execute(
                        "UPDATE mail_activity SET note = %s, write_uid = %s, "
                        "write_date = now() AT TIME ZONE 'UTC' WHERE id = %s",
                        [note, self.env.uid, activity.id], log_exceptions=False)
            except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
                _logger.info("Dead deliveries of %s: the note of %s was refreshed by a "
                             "concurrent transaction", self.display_name, activity)
            activity.invalidate_recordset(["note", "write_uid", "write_date"])
            return
        config.message_post(body=note, subtype_xmlid="mail.mt_note")
        config.activity_schedule(
            DEAD_ACTIVITY_TYPE,
            note=note,
            user_id=(config.user_id or self.env.ref("base.user_admin")).id,
        )

    # -- actions ---------------------------------------------------------------------------

    def action_view_jobs(self):
        check_group(self.env, USER_GROUP)
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "bjet_api_sync.action_bj_api_sync_job"
        )
        action["domain"] = [("config_id", "=", self.id)]
        action["context"] = {"search_default_filter_unfinished": 1,
                             "search_default_filter_dead": 1}
        return action

    @api.model
    def _bj_scope_domain_of(self, config_id_ref):
        """The scope (Filter Domain, evaluated now, and company) of an Out
        configuration: generated scheduled actions search it."""
        plan = self._bj_resolve_config(config_id_ref)._bj_plan()
        return scope_domain(outbound.delivery_model(self.env, plan).env, plan)

    def _bj_reference(self):
        """How generated code names this configuration: its XML id, else its id."""
        self.ensure_one()
        return self.get_external_id().get(self.id) or self.id

    def action_create_trigger_action(self):
        """Create the automation chosen in Trigger Action Model; it queues the records.

        It calls ``_enqueue_outbound_records``, not the synchronous entry point: a
        user's save never waits on the external API, and a record that this
        automation and a native trigger both queue is delivered once (the
        worker merges the younger, never attempted job into the older one).
        """
        # The action runs code: Odoo lets Settings administrators alone write it.
        check_group(self.env, ADMIN_GROUP)
        self.ensure_one()
        kind = self.trigger_action_model_id.model
        if self.request_type != "out":
            raise UserError(_("Only Out configurations have a Trigger Action."))
        if not kind:
            raise UserError(_("Choose the Trigger Action Model first."))
        reference = repr(self._bj_reference())
        name = _("Send to API: %(name)s", name=self.name)
        code = f"env['bj.api.sync.config']._enqueue_outbound_records(records, {reference})"
        action_values = {"name": name, "model_id": self.model_id.id, "state": "code",
                         "code": code}
        if kind == "ir.actions.server":
            action = self.env[kind].create({**action_values, "binding_model_id": self.model_id.id})
        elif kind == "base.automation":
            # No filter_domain of its own: automation rules evaluate it without the
            # Filter Domain's names (datetime is a module there), and queuing
            # already skips the records outside the scope.
            # It fires only when a field of _bj_trigger_field_names changed
            # (base_automation also runs "On save" rules at stored recomputes).
            trigger_fields = self.env["ir.model.fields"].search([
                ("model", "=", self.model_name),
                ("name", "in", list(self._bj_trigger_field_names())),
            ])
            action = self.env[kind].create({
                "name": name,
                "model_id": self.model_id.id,
                "trigger": "on_create_or_write",
                "trigger_field_ids": [Command.set(trigger_fields.ids)],
                "action_server_ids": [Command.create(action_values)],
            })
        else:
            action = self.env[kind].create({
                **action_values,
                "code": f"records = model.search(env['bj.api.sync.config']"
                        f"._bj_scope_domain_of({reference}), limit={self.limit})\n{code}",
                "interval_number": 1,
                "interval_type": "hours",
            })
        self.trigger_action_id = action.id
        return {"type": "ir.actions.act_window", "res_model": kind, "res_id": action.id,
                "view_mode": "form", "target": "current"}

    def action_test_connection(self):
        """Check that the API answers, without changing anything; notify and log."""
        self.ensure_one()
        self._bj_check_may_use(_("Test Connection"))
        plan = self._bj_plan()
        run_as.check_plan_user(self.env, plan)
        timeout = (self.connection_timeout, self.read_timeout)
        if plan.delivery:
            url = http_client.strip_placeholders(plan.delivery.url)
            headers = outbound.request_headers(plan, body=False)
            for method in TEST_CONNECTION_METHODS:
                result = http_client.send(method, url, headers=headers, timeout=timeout,
                                          options=dict(plan.delivery.options))
                if result.status_code not in METHOD_REFUSED_STATUSES:
                    break
        else:
            target = f"{inbound.API_PREFIX}/{self.endpoint}?limit=1"
            url = f"{self.get_base_url()}{target}"
            headers = http_client.merge_headers(
                {"Accept": http_client.JSON_CONTENT_TYPE}, outbound.auth_headers(plan)
            )
            if plan.auth.signature_secret:
                headers[inbound.SIGNATURE_HEADER] = inbound.signature_header(
                    plan.auth.signature_secret, "GET", target, b"", time.time())
            result = http_client.send("GET", url, headers=headers, timeout=timeout)
        values = outbound.log_values(plan, result, headers=headers)
        values.update(direction=plan.request_type, res_model=False)
        if not plan.delivery:
            # The endpoint's own log row already holds its answer: the test's row
            # keeps whether and how it answered, not a second copy of the records.
            values["response_body"] = False
        self.env["bj.api.log"]._bj_write_log(values, plan.secrets)
        return self._bj_connection_notification(result)

    def _bj_connection_notification(self, result):
        where = f"{result.method} {result.url}"
        if result.status_code is None:
            kind, title = "danger", _("Connection failed")
            message = _("%(where)s: %(error)s", where=where, error=result.error_label)
        elif result.error_kind == http_client.REDIRECT:
            kind, title = "warning", _("Redirect not followed")
            fix = (_("Update the Request URL if the API moved.") if self.request_type == "out"
                   else _("Check web.base.url, the address Odoo is reached at."))
            message = _("%(where)s: %(error)s %(fix)s", where=where, error=result.error, fix=fix)
        elif result.status_code < 300:
            # A 3xx not followed is no success: "Redirect not followed" above, or
            # an unexpected answer below.
            kind, title = "success", _("Connection successful")
            message = _("%(where)s answered %(status)s in %(ms)s ms.", where=where,
                        status=result.describe(), ms=result.duration_ms)
        elif result.status_code in CREDENTIALS_REFUSED_STATUSES:
            kind, title = "warning", _("Credentials refused")
            message = _("%(where)s is reachable but refused the credentials: %(status)s "
                        "(%(ms)s ms).", where=where, status=result.describe(),
                        ms=result.duration_ms)
        else:
            kind, title = "warning", _("Unexpected answer")
            message = _("%(where)s is reachable but answered %(status)s (%(ms)s ms).",
                        where=where, status=result.describe(), ms=result.duration_ms)
        _logger.info("Test Connection of %s: %s", self.display_name, message)
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {"type": kind, "title": title, "message": message, "sticky": False},
        }
