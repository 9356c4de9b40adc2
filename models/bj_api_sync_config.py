import ipaddress
import logging
import re
import secrets
from collections import defaultdict
from contextlib import contextmanager
from urllib.parse import urlparse

from lxml import etree
from psycopg2 import errors

from odoo import _, api, fields, models, tools
from odoo.exceptions import AccessError, UserError, ValidationError

from ..core import http_client, masking
from ..core.domain_terms import DomainRefused, parse_domain
from ..core.plan import (
    MODE_EXECUTE,
    RELATIONAL_TYPES,
    SCRIPT_TYPES,
    VALUE_MAPPING,
    AuthPlan,
    ConfigPlan,
    DeliveryPlan,
    LinePlan,
    ParamPlan,
    ScopePlan,
    TriggerPlan,
    line_label,
    strip_bearer,
)
from ..services import outbound, run_as
from ..services.filter_domain import evaluate_domain, scope_domain
from ..services.quiet_cursor import QuietCursor
from ..services.scripts import compile_script
from .bj_api_access import MANAGER_GROUP, USER_GROUP, check_group
from .bj_api_log import get_int_param
from .bj_api_secret_mixin import UrlWithCredentials, secret_fields

_logger = logging.getLogger(__name__)

ENDPOINT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
CONNECTION_TIMEOUT_RANGE = (1, 60)
READ_TIMEOUT_RANGE = (1, 300)
# Entropy of generated Bearer tokens: 32 bytes, 43 url-safe characters.
GENERATED_TOKEN_BYTES = 32
TRIGGER_ACTION_MODELS = ("ir.cron", "base.automation", "ir.actions.server")
PARAM_MAX_BODY_SIZE = "bjet_api_sync.inbound_max_body_size"
DEFAULT_MAX_BODY_SIZE = 10 * 1024 * 1024
# One active inbound configuration per endpoint, across all companies: a unique
# index sees every row, where a search would only see the user's companies.
ENDPOINT_INDEX = "bj_api_sync_config_endpoint_unique"
ENDPOINT_INDEX_WHERE = tools.SQL("request_type = 'in' AND active")
# Methods that change data: open to anyone on an In configuration without authorization.
WRITE_METHODS = ("POST", "PUT", "DELETE")


class BjApiSyncConfig(models.Model):
    _name = "bj.api.sync.config"
    _description = "API Configuration"
    _inherit = [
        "bj.api.secret.mixin", "bj.api.plan.source.mixin", "mail.thread", "mail.activity.mixin",
    ]
    _order = "name, id"
    _check_company_auto = True

    _bj_secret_fields = ("password", "bearer_token", "signature_secret")

    name = fields.Char(required=True, tracking=True, help="Name of this integration.")
    active = fields.Boolean(
        default=True,
        tracking=True,
        help="Archived configurations neither answer inbound calls nor send anything.",
    )
    request_type = fields.Selection(
        [("in", "In"), ("out", "Out")],
        required=True,
        tracking=True,
        help="In: external systems call an endpoint on Odoo. "
        "Out: Odoo calls the Request URL of an external API.",
    )
    model_id = fields.Many2one(
        "ir.model",
        string="Model",
        required=True,
        ondelete="cascade",
        tracking=True,
        domain=[("transient", "=", False)],
        help="Odoo model whose records this configuration reads or writes.",
    )
    model_name = fields.Char(
        related="model_id.model", store=True, string="Model Name", help="Technical model name."
    )
    filter_domain = fields.Char(
        default="[]",
        help="Only records matching this domain are read, written, deleted or sent, "
        "whatever the operation. A list of conditions whose values are literals or date "
        "terms such as datetime.now() - timedelta(days=7), context_today() or uid.",
    )
    filter_domain_count = fields.Integer(
        compute="_compute_filter_domain_count",
        string="Matching Records",
        help="How many records the Filter Domain and the Company select now, as the Run "
        "As User sees them: archived records left out for In, as its lists leave them "
        "out, and counted for Out, whose deliveries send them. Counted for the Run As "
        "User and Settings administrators only.",
    )
    filter_domain_problem = fields.Char(
        compute="_compute_filter_domain_count",
        help="Why the records of the Filter Domain are not counted now.",
    )
    http_method_ids = fields.Many2many(
        "bj.http.method",
        string="HTTP Methods",
        help="In: the methods external systems may call. Out: the single method used "
        "to call the Request URL.",
    )
    endpoint = fields.Char(
        tracking=True,
        help="URL-safe slug (lowercase letters, digits, '-' and '_') of the inbound "
        "route /bj_api_sync/v1/<endpoint>, unique in the database.",
    )
    # It may hold credentials (user:password@, ?api_key=): API Sync Managers'
    # alone, and neither tracked nor shown to others; they see, and the chatter
    # tracks, the masked copy below.  A manager reads an administrators'
    # configuration's masked too (UrlWithCredentials).
    request_url = UrlWithCredentials(
        string="Request URL",
        groups=MANAGER_GROUP,
        help="URL of the external API (http or https). {key} placeholders are filled "
        "from the mapped payload, e.g. https://api.example.com/contacts/{external_id}.",
    )
    request_url_masked = fields.Char(
        string="Request URL (masked)",
        compute="_compute_request_url_masked",
        store=True,
        tracking=True,
        help="The Request URL with its credentials masked: the user name and password, "
        "and the values of credential-like query keys (api_key, token, signature...).",
    )
    connection_timeout = fields.Integer(
        string="Connection Timeout in Seconds",
        default=5,
        help="Seconds to wait for the external server to accept the connection (1-60).",
    )
    read_timeout = fields.Integer(
        string="Read Timeout in Seconds",
        default=15,
        help="Seconds to wait for the external server's answer once connected (1-300).",
    )
    authorization_type = fields.Selection(
        [("no_auth", "No Auth"), ("basic_auth", "Basic Auth"), ("bearer_token", "Bearer Token")],
        required=True,
        default="no_auth",
        tracking=True,
        help="How callers authenticate (In) or how Odoo authenticates to the external "
        "API (Out). A new In configuration gets Bearer Token with a generated token.",
    )
    admin_only = fields.Boolean(
        compute="_compute_admin_only",
        string="Administrators Only",
        help="Only Settings administrators can change this configuration: it runs as "
        "another user than you, holds a Python Script or has a Trigger Action, itself or "
        "through a configuration on its Mapping Model chain.",
    )
    open_to_writes = fields.Boolean(
        compute="_compute_open_to_writes",
        help="An In configuration without authorization lets anyone create, change or "
        "delete records through its write methods.",
    )
    login = fields.Char(help="User name for Basic authentication.")
    password, password_encrypted = secret_fields(
        "password",
        "Password",
        "Password for Basic authentication.",
    )
    bearer_token, bearer_token_encrypted = secret_fields(
        "bearer_token",
        "Bearer Token",
        "Token for Bearer authentication, with or without the leading 'Bearer '.",
    )
    limit = fields.Integer(
        default=100,
        help="In: default and maximum number of records a list returns, and maximum "
        "size of a batch. Out: maximum number of records sent per scheduled run.",
    )
    is_paginated = fields.Boolean(
        string="Is paginated?",
        help="In: lists are returned page by page (query parameter 'page'). "
        "Out: records are sent as arrays of at most Page Size objects.",
    )
    page_size = fields.Integer(
        default=100, help="Number of records per page or per request."
    )
    trigger_action_model_id = fields.Many2one(
        "ir.model",
        string="Trigger Action Model",
        ondelete="set null",
        domain=[("model", "in", TRIGGER_ACTION_MODELS)],
        help="Kind of automation that fires this configuration: a scheduled action, "
        "an automation rule or a server action.",
    )
    trigger_action_model_name = fields.Char(
        related="trigger_action_model_id.model",
        string="Trigger Action Model Name",
        help="Technical name of the Trigger Action Model.",
    )
    trigger_action_id = fields.Many2oneReference(
        string="Trigger Action",
        copy=False,  # the automation of this configuration, not of its copies
        model_field="trigger_action_model_name",
        help="The automation that calls this configuration. Choose the Trigger Action "
        "Model first.",
    )
    company_id = fields.Many2one(
        "res.company",
        string="Company",
        default=lambda self: self.env.company,
        help="Company whose records this configuration sees; leave empty to share it.",
    )
    line_ids = fields.One2many(
        "bj.api.sync.config.line",
        "config_id",
        string="Configuration Lines",
        copy=True,
        help="Mapped fields: one line per field exchanged with the external API.",
    )
    header_ids = fields.One2many(
        "bj.api.sync.header",
        "config_id",
        string="Headers",
        copy=True,
        help="Extra HTTP headers sent on outbound calls, or expected on inbound ones.",
    )
    param_ids = fields.One2many(
        "bj.api.sync.param",
        "config_id",
        string="Parameters",
        copy=True,
        help="Query parameters of inbound GET requests mapped to domain terms.",
    )

    # -- inbound hardening ----------------------------------------------
    run_as_user_id = fields.Many2one(
        "res.users",
        string="Run As User",
        tracking=True,
        check_company=True,
        default=lambda self: self._bj_default_run_as_user(),
        domain=[("share", "=", False)],
        help="Inbound calls and outbound exports (their scripts too) run as this user, so "
        "its access rights, field groups and record rules apply. It must be active and "
        "allowed in the Company; never the superuser. Default: the user who creates the "
        "configuration.",
    )
    ip_allowlist = fields.Text(
        string="IP Allowlist",
        help="IPv4/IPv6 addresses or CIDR ranges allowed to call this endpoint, one per "
        "line or separated by commas. Empty: any address.",
    )
    signature_secret, signature_secret_encrypted = secret_fields(
        "signature_secret",
        "Signature Secret",
        "When set, every inbound call must carry X-BJET-Signature: t=<unix time>,v1=<hex "
        "HMAC-SHA256 of '<t>.<METHOD>.<path?query>.<raw body>'>, keyed with this secret: "
        "<t> as in the header, the method in capitals, the path and query string exactly "
        "as sent, and the raw body (empty for reads).",
    )
    rate_limit_per_minute = fields.Integer(
        string="Rate Limit per Minute",
        help="Maximum inbound calls per minute for this configuration, shared by all "
        "Odoo workers; 0 means no limit.",
    )

    # -- outbound triggers and delivery ----------------------------------
    trigger_on_create = fields.Boolean(
        string="Send on Create", help="Queue a delivery when a record of the Model is created."
    )
    trigger_on_write = fields.Boolean(
        string="Send on Update", help="Queue a delivery when a record of the Model is updated."
    )
    trigger_on_unlink = fields.Boolean(
        string="Send on Delete",
        help="Queue a delivery when a record is deleted; the payload is captured before "
        "the record disappears.",
    )
    watched_field_ids = fields.Many2many(
        "ir.model.fields",
        string="Watched Fields",
        domain="[('model_id', '=', model_id)]",
        help="Send on Update and the generated \"On save\" rule send a change only when one of "
        "these fields changed value. Empty: the fields the lines send (any change when a line "
        "runs a Python Script or sends a field that is not stored).",
    )
    max_attempts = fields.Integer(
        string="Maximum Attempts",
        default=5,
        help="Delivery attempts before a job is dead-lettered.",
    )
    user_id = fields.Many2one(
        "res.users",
        string="Responsible",
        tracking=True,
        check_company=True,
        default=lambda self: self.env.user,
        help="Notified (activity and chatter message) when deliveries fail for good.",
    )

    # -- one endpoint across all companies ---------------------------------

    def init(self):
        cr = self.env.cr
        if tools.index_exists(cr, ENDPOINT_INDEX):
            return
        cr.execute(tools.SQL("""
            SELECT endpoint FROM bj_api_sync_config WHERE %s
            GROUP BY endpoint HAVING COUNT(*) > 1
        """, ENDPOINT_INDEX_WHERE))
        duplicates = [row[0] for row in cr.fetchall()]
        if duplicates:
            # Created by a module update once resolved; until then the lookup
            # answers 404 for these endpoints rather than pick a configuration.
            _logger.warning("Endpoints %s are used by several active configurations: "
                            "archive all but one, then update the module.", duplicates)
            return
        cr.execute(tools.SQL("""
            CREATE UNIQUE INDEX %s ON bj_api_sync_config (endpoint)
            WHERE %s
        """, tools.SQL.identifier(ENDPOINT_INDEX), ENDPOINT_INDEX_WHERE))

    @contextmanager
    def _bj_unique_endpoint(self, endpoints):
        """Turn a violation of the endpoint index by the enclosed writes of
        ``endpoints`` into a clear error."""
        try:
            with self.env.cr.savepoint():  # flushed, so the index decides here
                yield
        except errors.UniqueViolation as error:
            if error.diag.constraint_name != ENDPOINT_INDEX:
                raise
            raise ValidationError(
                _("Endpoint %(endpoint)s is already used by another active configuration.",
                  endpoint=", ".join(repr(endpoint) for endpoint in endpoints if endpoint))
            ) from None

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            # A new In endpoint is not open by default: Bearer Token, with a token.
            if vals.get("request_type") == "in":
                vals.setdefault("authorization_type", "bearer_token")
                if vals["authorization_type"] == "bearer_token" and not vals.get("bearer_token"):
                    vals["bearer_token"] = secrets.token_urlsafe(GENERATED_TOKEN_BYTES)
        with self._bj_unique_endpoint([vals.get("endpoint") for vals in vals_list]):
            return super().create(vals_list)

    def write(self, vals):
        if "trigger_action_model_id" in vals and "trigger_action_id" not in vals:
            # A Trigger Action is a record of its model: under another model, the
            # same id would name a record the addon did not create.
            self.filtered(lambda config: config.trigger_action_id and (
                config.trigger_action_model_id.id != (vals["trigger_action_model_id"] or False)
            )).write({"trigger_action_id": False})
        if {"endpoint", "request_type", "active"}.isdisjoint(vals):
            result = super().write(vals)
        else:
            endpoints = [vals["endpoint"]] if vals.get("endpoint") else self.mapped("endpoint")
            with self._bj_unique_endpoint(endpoints):
                result = super().write(vals)
        if "company_id" in vals:
            self._bj_sync_log_company()
        return result

    def _bj_sync_log_company(self):
        """Logs follow their configuration's company.  They keep it when the
        configuration is deleted (a related field would empty it, and so show
        them to every company), hence a plain column updated here."""
        logs = self.env["bj.api.log"]
        logs.flush_model(["company_id", "config_id"])
        for config in self:
            self.env.cr.execute(
                "UPDATE bj_api_log SET company_id = %s WHERE config_id = %s",
                [config.company_id.id or None, config.id],
            )
        logs.invalidate_model(["company_id"])

    @api.depends("filter_domain", "model_id", "run_as_user_id", "company_id", "request_type")
    @api.depends_context("uid")
    def _compute_filter_domain_count(self):
        """Counted as saving checks the domain, and its refusal shown as text, so
        that a form holding any Filter Domain opens."""
        for config in self:
            config.filter_domain_count = 0
            config.filter_domain_problem = False
            if not config.model_id:
                continue
            if not (self.env.is_system() or config.run_as_user_id == self.env.user):
                # Counted as the Run As User: for anyone else, a window on what it sees.
                config.filter_domain_problem = _(
                    "Counted for the Run As User and Settings administrators only.")
                continue
            try:
                config.filter_domain_count = config._bj_count_in_scope()
            except Exception as error:  # noqa: BLE001 - the form opens whatever Odoo raises
                config.filter_domain_problem = str(error) or type(error).__name__

    @api.depends("request_type", "authorization_type", "http_method_ids")
    def _compute_open_to_writes(self):
        for config in self:
            config.open_to_writes = (
                config.request_type == "in"
                and config.authorization_type == "no_auth"
                and any(name in WRITE_METHODS for name in config.http_method_ids.mapped("name"))
            )

    # -- constraints -------------------------------------------------------

    @api.constrains("request_type", "endpoint")
    def _check_endpoint(self):
        for config in self.filtered(lambda c: c.request_type == "in"):
            if not config.endpoint:
                raise ValidationError(_("An inbound configuration needs an Endpoint."))
            if not ENDPOINT_PATTERN.match(config.endpoint):
                raise ValidationError(
                    _(
                        "Endpoint %(endpoint)r is not URL-safe: use lowercase letters, digits, "
                        "'-' and '_', starting with a letter or a digit.",
                        endpoint=config.endpoint,
                    )
                )

    # -- the Request URL is no oracle ----------------------------------------

    def _bj_check_url_query(self, spec):
        """A domain, an order, a group or an aggregate on the Request URL would
        tell its credentials, one comparison at a time, to those who read it
        masked (``UrlWithCredentials``): only Settings administrators use it
        there; others have the masked copy.  ``spec``: a field name, a path or
        a read_group spec."""
        if spec.split(":")[0].split(".")[0] == "request_url" and not self.env.is_system():
            raise AccessError(_("Only Settings administrators may search, sort or group "
                                "by the Request URL; use Request URL (masked)."))

    def _condition_to_sql(self, alias, fname, operator, value, query):
        self._bj_check_url_query(fname)
        return super()._condition_to_sql(alias, fname, operator, value, query)

    def _order_field_to_sql(self, alias, field_name, direction, nulls, query):
        self._bj_check_url_query(field_name)
        return super()._order_field_to_sql(alias, field_name, direction, nulls, query)

    def _read_group_groupby(self, groupby_spec, query):
        self._bj_check_url_query(groupby_spec)
        return super()._read_group_groupby(groupby_spec, query)

    def _read_group_select(self, aggregate_spec, query):
        self._bj_check_url_query(aggregate_spec)
        return super()._read_group_select(aggregate_spec, query)

    @api.depends("request_url")
    def _compute_request_url_masked(self):
        for config in self:
            config.request_url_masked = masking.mask_url(config.request_url) or False

    @api.constrains("request_type", "request_url")
    def _check_request_url(self):
        for config in self.filtered(lambda c: c.request_type == "out"):
            if not config.request_url:
                raise ValidationError(_("An outbound configuration needs a Request URL."))
            # The messages do not quote the URL: a refused one may hold credentials
            # where no parse finds them.
            parsed = urlparse(config.request_url)
            try:
                valid = (parsed.scheme in ("http", "https") and bool(parsed.hostname)
                         and parsed.port != 0)
            except ValueError:  # ``port`` of a port that is not a number
                valid = False
            if not valid:
                raise ValidationError(_(
                    "The Request URL must be an http:// or https:// URL with a host "
                    "(and a numeric port, if any)."))
            if masking.is_ambiguous_url(config.request_url):
                raise ValidationError(_(
                    "In the Request URL, a '?' or '#' in the user name or password, or an "
                    "'@' after the host, must be percent-encoded (%(codes)s).",
                    codes="%3F, %23, %40"))

    @api.constrains("request_type", "http_method_ids")
    def _check_http_methods(self):
        for config in self.filtered(lambda c: c.request_type == "out"):
            if len(config.http_method_ids) != 1:
                raise ValidationError(
                    _("An outbound configuration must have exactly one HTTP method.")
                )

    @api.constrains("connection_timeout", "read_timeout")
    def _check_timeouts(self):
        for config in self:
            low, high = CONNECTION_TIMEOUT_RANGE
            if not low <= config.connection_timeout <= high:
                raise ValidationError(
                    _("Connection Timeout must be between %(low)s and %(high)s seconds.",
                      low=low, high=high)
                )
            low, high = READ_TIMEOUT_RANGE
            if not low <= config.read_timeout <= high:
                raise ValidationError(
                    _("Read Timeout must be between %(low)s and %(high)s seconds.",
                      low=low, high=high)
                )

    @api.constrains("limit", "page_size", "max_attempts", "rate_limit_per_minute")
    def _check_positive_numbers(self):
        for config in self:
            if config.limit <= 0:
                raise ValidationError(_("Limit must be a positive number."))
            if config.page_size <= 0:
                raise ValidationError(_("Page Size must be a positive number."))
            if config.max_attempts <= 0:
                raise ValidationError(_("Maximum Attempts must be a positive number."))
            if config.rate_limit_per_minute < 0:
                raise ValidationError(_("Rate Limit per Minute cannot be negative."))

    @api.constrains("line_ids", "request_type")
    def _check_record_identifier(self):
        for config in self:
            identifiers = config.line_ids.filtered("is_identifier")
            if config.line_ids and len(identifiers) != 1:
                raise ValidationError(
                    _(
                        "Configuration %(name)r must have exactly one Record Identifier line "
                        "(it has %(count)s).",
                        name=config.name,
                        count=len(identifiers),
                    )
                )
            field = identifiers.field_id
            model_field = field and self.env[field.model]._fields.get(field.name)
            if (config.request_type == "in" and model_field and field.name != "id"
                    and model_field.compute and not model_field.inverse):
                # The ORM sets its value from other fields: the API cannot write it,
                # and a change of those fields changes which record it names.
                raise ValidationError(_(
                    "Configuration %(name)r: %(field)s is computed and cannot be written; "
                    "it cannot be the Record Identifier of an inbound configuration.",
                    name=config.name, field=field.field_description))

    def _bj_check_external_keys(self):
        """Two lines cannot share an External API Key: the later would silently
        overwrite the earlier.  Execute scripts exchange no key."""
        for config in self:
            lines_by_key = {}
            for line in config.line_ids:
                if line.value_type in SCRIPT_TYPES and line.script_mode == MODE_EXECUTE:
                    continue
                key = line.external_key or line.field_id.name
                if key in lines_by_key:
                    raise ValidationError(
                        _(
                            "Configuration %(name)r: fields %(first)s and %(second)s share the "
                            "External API Key %(key)r; give each line its own key.",
                            name=config.name,
                            first=lines_by_key[key].field_id.field_description,
                            second=line.field_id.field_description,
                            key=key,
                        )
                    )
                lines_by_key[key] = line

    @api.constrains("request_type", "param_ids")
    def _check_params_inbound_only(self):
        if any(config.request_type != "in" and config.param_ids for config in self):
            raise ValidationError(_("Parameters can only be set on inbound configurations."))

    @api.constrains("model_id", "line_ids", "param_ids", "watched_field_ids")
    def _check_fields_belong_to_model(self):
        for config in self:
            for field in (config.line_ids.field_id | config.param_ids.field_id
                          | config.watched_field_ids):
                if field.model_id != config.model_id:
                    raise ValidationError(
                        _(
                            "Field %(field)s does not belong to model %(model)s of "
                            "configuration %(name)r.",
                            field=field.display_name,
                            model=config.model_id.name,
                            name=config.name,
                        )
                    )

    @api.constrains("filter_domain", "model_id", "run_as_user_id")
    def _check_filter_domain(self):
        for config in self:
            try:
                config._bj_get_filter_domain()
            except Exception as error:  # noqa: BLE001 - whatever the expression raises
                raise ValidationError(
                    _("Filter Domain of %(name)r is not a valid domain: %(error)s",
                      name=config.name, error=error)
                ) from error

    @api.constrains("request_type", "run_as_user_id", "company_id")
    def _check_run_as_user(self):
        for config in self:
            problem = run_as.user_problem(config.run_as_user_id, config.company_id)
            if problem:
                raise ValidationError(
                    _("Configuration %(name)r cannot run: %(problem)s.", name=config.name,
                      problem=problem)
                )
        self.line_ids._check_field_groups()

    @api.constrains("model_id", "run_as_user_id")
    def _check_run_as_user_reads_model(self):
        for config in self:
            if not (config.model_id and config.run_as_user_id):
                continue
            if not self.env[config.model_name].with_user(config.run_as_user_id).has_access("read"):
                raise ValidationError(_(
                    "Configuration %(name)r cannot run: its Run As User %(login)s may not read "
                    "%(model)s.", name=config.name, login=config.run_as_user_id.login,
                    model=config.model_id.name))

    @api.constrains("trigger_action_model_id")
    def _check_trigger_action_model(self):
        for config in self:
            kind = config.trigger_action_model_id.model
            if kind and kind not in TRIGGER_ACTION_MODELS:
                raise ValidationError(
                    _("Trigger Action Model of %(name)r must be a scheduled action, an "
                      "automation rule or a server action, not %(model)s.",
                      name=config.name, model=config.trigger_action_model_id.name)
                )

    @api.constrains("ip_allowlist")
    def _check_ip_allowlist(self):
        for config in self:
            config._bj_get_ip_networks()

    # -- configurations that act as someone else are administrators' ---------

    def _bj_configs(self):
        return self

    def _bj_admin_only(self, lock=False):
        """Those of these configurations that only Settings administrators may
        change, for the user of ``self.env``: the configurations that run as
        another user than that one, hold a script (a line of a script type, or
        with a script waiting to be switched on) or have a Trigger Action; and
        through Mapping Models, every configuration that reaches one of them and
        every one they reach (a child's lines run under its parent's identity,
        and feed its scripts).  Changing any of them changes what runs, when,
        for whom or as whom.

        ``lock``: serialize this decision with every other one on the same
        chains (``_bj_lock_chains``) before taking it."""
        if not self:
            return self
        line_model = self.env["bj.api.sync.config.line"]
        line_model.flush_model(["config_id", "value_type", "python_script", "mapping_config_id"])
        self.flush_model(["run_as_user_id", "trigger_action_id"])
        cr = self.env.cr
        cr.execute(
            """
            SELECT config_id, CASE WHEN value_type = %s THEN mapping_config_id END,
                   value_type IN %s OR COALESCE(BTRIM(python_script), '') <> ''
            FROM bj_api_sync_config_line
            """,
            [VALUE_MAPPING, tuple(SCRIPT_TYPES)],
        )
        seeds, children, parents = set(), defaultdict(set), defaultdict(set)
        for config_id, mapping_id, script in cr.fetchall():
            if script:
                seeds.add(config_id)
            if mapping_id:
                children[config_id].add(mapping_id)
                parents[mapping_id].add(config_id)
        chains = {config_id: _reachable([config_id], parents) | _reachable([config_id], children)
                  for config_id in self.ids}
        if lock:
            self._bj_lock_chains(set().union(*chains.values()))
        cr.execute(
            """
            SELECT id FROM bj_api_sync_config
            WHERE run_as_user_id IS DISTINCT FROM %s OR COALESCE(trigger_action_id, 0) <> 0
            """,
            [self.env.uid],
        )
        seeds.update(row[0] for row in cr.fetchall())
        return self.filtered(lambda config: chains[config.id] & seeds)

    def _bj_lock_chains(self, config_ids):
        """Update, without changing anything, the rows of ``config_ids`` (these
        configurations and their Mapping Model chains), in id order.  A
        transaction deciding on one of these rows later waits for this one,
        then fails with a serialization error that Odoo retries on current
        data; so does one that decided on a snapshot taken before this one
        committed.  A row lock alone would not do: under REPEATABLE READ,
        PostgreSQL raises that error only for rows the other transaction updated."""
        self.env.cr.execute(
            """
            UPDATE bj_api_sync_config SET write_date = write_date
            WHERE id IN (SELECT id FROM bj_api_sync_config WHERE id = ANY(%s)
                         ORDER BY id FOR NO KEY UPDATE)
            """,
            [sorted(config_ids)],
        )

    @api.depends("run_as_user_id", "trigger_action_id", "line_ids.value_type",
                 "line_ids.python_script", "line_ids.mapping_config_id")
    @api.depends_context("uid")
    def _compute_admin_only(self):
        origins = self._origin  # the saved configurations, in a form's onchange too
        locked = origins.browse() if self.env.is_system() else origins._bj_admin_only()
        for config in self:
            config.admin_only = config._origin in locked

    @api.model
    def _get_view(self, view_id=None, view_type="form", **options):
        """Every field of the form is read-only while ``admin_only``: for the
        users who may not change the configuration (fields of the lines' lists
        follow their one2many)."""
        arch, view = super()._get_view(view_id, view_type, **options)
        if view_type == "form":
            for node in arch.xpath("//field[not(ancestor::field)]"):
                readonly = node.get("readonly")
                if readonly:
                    node.set("readonly", f"admin_only or ({readonly})")
                elif not self._fields[node.get("name")].readonly:
                    node.set("readonly", "admin_only")
            if not arch.xpath("//field[@name='admin_only']"):
                etree.SubElement(arch, "field", name="admin_only", invisible="1")
        return arch, view

    def _bj_notify_run_as_off(self):
        """Tell the Responsible of each configuration that its Run As User can no
        longer run it (archived, or removed from its company): a chatter message
        and a to-do.  The integration answers or fails with the same reason."""
        admin = self.env.ref("base.user_admin")
        for config in self.sudo():
            problem = run_as.user_problem(config.run_as_user_id, config.company_id)
            if not problem:
                continue
            note = _("This integration is off: %(problem)s. Choose another Run As User, or "
                     "archive the configuration.", problem=problem)
            config.message_post(body=note, subtype_xmlid="mail.mt_note")
            responsible = config.user_id if config.user_id.active else admin
            config.activity_schedule("mail.mail_activity_data_todo", note=note,
                                     summary=_("Integration off"), user_id=responsible.id)

    # -- helpers -----------------------------------------------------------

    @api.model
    def _bj_default_run_as_user(self):
        """The creating user; the administrator account when data files or
        scripts create the configuration as the superuser, who may not be one."""
        if self.env.user._is_superuser():
            return self.env.ref("base.user_admin", raise_if_not_found=False)
        return self.env.user

    def _bj_get_filter_domain(self):
        """The Filter Domain as a list, evaluated now and validated against the Model:
        its query is planned by PostgreSQL once (EXPLAIN, never run), so that what
        PostgreSQL refuses (an integer field compared with text) is refused when
        saved rather than at every run.  Planned, not run: a refusal never
        depends on the records there are, which would tell the user about records
        they may not read.  On a cursor that answers a failed statement instead
        of logging it."""
        self.ensure_one()
        domain = evaluate_domain(parse_domain(self.filter_domain), self.env)
        if self.model_name:
            self._bj_check_searchable(self.env[self.model_name], domain)
            with self.env.cr.savepoint():
                quiet = self.env(cr=QuietCursor(self.env.cr), su=True)
                query = quiet[self.model_name]._search(domain)
                quiet.cr.execute(tools.SQL("EXPLAIN %s", query.select()))
        return domain

    def _bj_check_searchable(self, model, domain):
        """Refuse a leaf of ``domain`` whose path crosses a field that cannot be
        searched (Odoo would log an error and match every record) or that the Run
        As User may not read (its searches would fail, and with them every save
        that fires the configuration)."""
        for leaf in domain:
            if not isinstance(leaf, (list, tuple)) or len(leaf) != 3:
                continue
            path, operator, value = leaf
            current = model
            for name in str(path).split("."):
                field = current._fields.get(name)
                if field is None:
                    break  # the search names it
                if not field._description_searchable:
                    raise ValidationError(_(
                        "Field %(field)s (%(name)s) of %(model)s cannot be searched: it is "
                        "not stored.", field=field.string, name=name, model=current._name))
                user = self.run_as_user_id
                if user and not run_as.field_readable(user, field):
                    raise ValidationError(_(
                        "Field %(field)s (%(name)s) of %(model)s is restricted to %(groups)s: the "
                        "Run As User %(login)s may not search it.", field=field.string, name=name,
                        model=current._name, groups=run_as.group_names(self.env, field.groups),
                        login=user.login))
                if not field.relational:
                    break
                current = self.env[field.comodel_name]
            else:
                if operator in ("any", "not any") and isinstance(value, (list, tuple)):
                    self._bj_check_searchable(current, value)

    def _bj_get_ip_networks(self):
        """The IP Allowlist as ``ip_network`` objects (raises ValidationError)."""
        self.ensure_one()
        networks = []
        for entry in re.split(r"[\s,;]+", self.ip_allowlist or ""):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError as error:
                raise ValidationError(
                    _("%(entry)r in the IP Allowlist is not an IP address or CIDR range.",
                      entry=entry)
                ) from error
        return networks

    def _bj_get_identifier_line(self):
        self.ensure_one()
        return self.line_ids.filtered("is_identifier")[:1]

    def _bj_get_company_domain(self):
        """Domain of the records of this configuration's company (and shared ones)."""
        self.ensure_one()
        if self.company_id and "company_id" in self.env[self.model_name]._fields:
            return ["|", ("company_id", "=", False), ("company_id", "=", self.company_id.id)]
        return []

    # -- the compiled plan (core/plan.py) -------------------------------------

    @api.model
    @tools.ormcache("endpoint")
    def _bj_inbound_config_id(self, endpoint):
        """Id of the active inbound configuration of ``endpoint``; unknown
        endpoints raise, so that callers cannot fill the cache with names."""
        # The endpoint index leaves at most one match.  Where a module update
        # found several (see ``init``) there is no index yet, and the endpoint
        # answers 404 rather than serve either configuration.
        configs = self.sudo().with_context(active_test=True).search(
            [("endpoint", "=", endpoint), ("request_type", "=", "in")], limit=2
        )
        if len(configs) != 1:
            raise LookupError(endpoint)
        return configs.id

    def _bj_plan(self):
        """This configuration's compiled plan: what every request, delivery and
        scheduled run reads of it, built once and cached (see
        ``bj.api.plan.source.mixin`` for when the cache is dropped)."""
        self.ensure_one()
        return self._bj_plan_for(self.id)

    @api.model
    @tools.ormcache("config_id")
    def _bj_plan_for(self, config_id):
        return self.sudo().browse(config_id)._bj_compile_plan()

    def _bj_compile_plan(self, parents=()):
        """Build the plan; ``parents`` are the configurations mapping through this
        one, so that Mapping Models that map back are refused, not followed."""
        self.ensure_one()
        config = self.sudo()
        if config.id in parents:
            raise ValidationError(
                _("The Mapping Models of %(name)r map back to it.", name=config.name)
            )
        lines = tuple(
            config._bj_compile_line(line, parents + (config.id,))
            for line in config.line_ids.sorted(lambda line: (line.sequence, line.id))
            if line.field_id.name in self.env[config.model_name]._fields
        )
        return ConfigPlan(
            **config._bj_scope_values(),
            lines=lines,
            identifier=next((line for line in lines if line.is_identifier), None),
            auth=AuthPlan(
                type=config.authorization_type,
                login=config.login or "",
                password=config.password or "",
                bearer_token=strip_bearer(config.bearer_token),
                signature_secret=config.signature_secret or "",
                header_secrets=tuple(value for header in config.header_ids
                                     if header.is_secret and (value := header._bj_sent_value())),
            ),
            methods=frozenset(config.http_method_ids.mapped("name")),
            params=tuple(ParamPlan(param.key, param.field_id.name, param.domain_operator)
                         for param in config.param_ids),
            networks=tuple(config._bj_get_ip_networks()),
            rate_limit=config.rate_limit_per_minute,
            limit=config.limit,
            is_paginated=config.is_paginated,
            page_size=config.page_size,
            # System parameters too: changing one clears the registry cache.
            max_body_size=get_int_param(self.env, PARAM_MAX_BODY_SIZE, DEFAULT_MAX_BODY_SIZE),
            log_body_max_size=self.env["bj.api.log"]._bj_body_max_size(),
            delivery=config._bj_compile_delivery(),
            triggers=config._bj_compile_triggers(),
            has_scripts=any(line.is_script or (line.child and line.child.has_scripts)
                            for line in lines),
        )

    def _bj_scope_values(self):
        """The ScopePlan values of this configuration, saved or in a form."""
        self.ensure_one()
        try:
            filter_template = parse_domain(self.filter_domain)
        except DomainRefused as error:
            # A Filter Domain saved before it was data (Python the grammar refuses):
            # the configuration's error, answered as such, until someone saves it anew.
            raise UserError(_("The Filter Domain of %(name)r cannot be used: %(error)s",
                              name=self.name, error=error)) from None
        return {
            "config_id": self._origin.id or None,
            "name": self.name,
            "request_type": self.request_type,
            "model": self.model_name,
            "company_id": self.company_id.id or None,
            "run_as_uid": self.run_as_user_id.id or None,
            "filter_template": filter_template,
            "company_domain": tuple(self._bj_get_company_domain()),
        }

    def _bj_count_in_scope(self):
        """How many records this configuration's scope matches now, chosen as its
        API chooses them (as the Run As User, in its company, archived records too
        for Out).  Raises what saving would refuse: a Filter Domain that is not data,
        a field that cannot be searched, what PostgreSQL refuses (on a cursor that
        does not log it)."""
        self.ensure_one()
        plan = ScopePlan(**self._bj_scope_values())
        quiet = self.env(cr=QuietCursor(self.env.cr))
        if plan.request_type == "out":
            model = outbound.delivery_model(quiet, plan)
        else:
            model = run_as.user_env(quiet, plan, check=False)[plan.model]
        domain = scope_domain(model.env, plan)
        self._bj_check_searchable(model, domain)
        # Flushed first, and a savepoint that leaves the cache alone: the form's
        # unsaved values live there while this computes.
        self.env.flush_all()
        with self.env.cr.savepoint(flush=False):
            return model.search_count(domain)

    def _bj_compile_line(self, line, parents):
        field = self.env[self.model_name]._fields[line.field_id.name]
        relational = field.type in RELATIONAL_TYPES
        child = None
        if line.value_type == VALUE_MAPPING and relational and line.mapping_config_id:
            child = line.mapping_config_id._bj_compile_plan(parents)
        selection = None
        if field.type == "selection":
            selection = tuple(key for key, _label in field._description_selection(self.env))
        return LinePlan(
            line_id=line.id,
            model=self.model_name,
            key=line.external_key or field.name,
            label=line_label(line.external_key, field.string),
            field=field.name,
            ttype=field.type,
            value_type=line.value_type,
            store=bool(field.store and field.column_type),
            writable=field.name != "id" and not (field.compute and not field.inverse),
            searchable=bool(field._description_searchable),
            comodel=field.comodel_name if relational else None,
            selection=selection,
            is_identifier=line.is_identifier,
            script=(compile_script(line.python_script, line.script_mode)
                    if line.value_type in SCRIPT_TYPES else None),
            child=child,
        )

    def _bj_compile_delivery(self):
        if self.request_type != "out":
            return None
        url = self.request_url or ""
        return DeliveryPlan(
            url=url,
            method=self.http_method_ids[:1].name or "POST",
            headers=tuple((header.key, header._bj_sent_value())
                          for header in self.header_ids if header.key),
            connect_timeout=self.connection_timeout,
            read_timeout=self.read_timeout,
            max_attempts=self.max_attempts,
            base_delay=self.retry_base_delay,
            max_delay=self.retry_max_delay,
            options=tuple(http_client.environment_options(url).items()) if url else (),
            url_secrets=masking.url_secrets(url),
        )

    def _bj_compile_triggers(self):
        if self.request_type != "out":
            return None
        return TriggerPlan(
            on_create=self.trigger_on_create,
            on_write=self.trigger_on_write,
            on_unlink=self.trigger_on_unlink,
            watched=self._bj_trigger_field_names(),
            send_inbound=self.send_inbound_changes,
        )

    def _bj_trigger_field_names(self):
        """The fields whose change Send on Update and the generated "On save"
        rule send: the Watched Fields, else the stored fields the lines send.
        Empty (any change) when a line runs a Python Script or sends a field
        that is not stored or is computed (stored or not, related included):
        its value may derive from any other field, and a recompute does not go
        through write."""
        self.ensure_one()
        if self.watched_field_ids:
            return frozenset(self.watched_field_ids.mapped("name"))
        fields_ = self.env[self.model_name]._fields
        names = set()
        for line in self.line_ids:
            field = fields_.get(line.field_id.name)
            if line.value_type in SCRIPT_TYPES or not (field and field.store) or field.compute:
                return frozenset()
            names.add(field.name)
        return frozenset(names)

    def copy_data(self, default=None):
        """The copy of an In configuration gets a free endpoint (``<endpoint>-copy``,
        ``-copy-2``…), and a new token when it uses a Bearer Token; a copy by
        someone who may not choose other users runs as them and notifies them."""
        vals_list = super().copy_data(default=default)
        default = default or {}
        for config, vals in zip(self, vals_list, strict=True):
            if not self.env.is_system():
                # Whoever may not choose other users duplicates as themselves.
                for name in ("run_as_user_id", "user_id"):
                    if name not in default:
                        vals[name] = self.env.uid
            if "name" not in default:
                vals["name"] = _("%s (copy)", config.name)
            if config.request_type != "in":
                continue
            if "endpoint" not in default:
                vals["endpoint"] = config._bj_free_endpoint(f"{config.endpoint}-copy")
            if vals.get("authorization_type") == "bearer_token" and "bearer_token" not in default:
                vals["bearer_token"] = secrets.token_urlsafe(GENERATED_TOKEN_BYTES)
        return vals_list

    def _bj_free_endpoint(self, base):
        """``base``, or ``base-2``, ``base-3``… : the first no configuration uses."""
        taken = set(self.with_context(active_test=False).sudo().search(
            [("endpoint", "=like", f"{base}%")]).mapped("endpoint"))
        endpoint, number = base, 1
        while endpoint in taken:
            number += 1
            endpoint = f"{base}-{number}"
        return endpoint

    @api.onchange("request_type")
    def _onchange_request_type(self):
        if self.request_type == "out" and len(self.http_method_ids) > 1:
            self.http_method_ids = self.http_method_ids[:1]
        if self._origin:
            return
        # A new form follows the create() default: In gets a generated Bearer
        # Token, shown in clear until the first save, masked afterwards.
        if self.request_type == "in" and self.authorization_type == "no_auth":
            self.authorization_type = "bearer_token"
            self.bearer_token = secrets.token_urlsafe(GENERATED_TOKEN_BYTES)
        elif self.request_type == "out" and self.authorization_type == "bearer_token":
            self.authorization_type = "no_auth"
            self.bearer_token = False

    @api.onchange("trigger_action_model_id")
    def _onchange_trigger_action_model_id(self):
        self.trigger_action_id = False

    @api.onchange("is_paginated", "limit")
    def _onchange_page_size(self):
        if self.is_paginated and self.page_size > self.limit > 0:
            self.page_size = self.limit

    # -- actions -------------------------------------------------------------

    def _bj_check_may_use(self, button):
        """Refuse ``button``, which uses these configurations' credentials and
        runs them as their Run As User, to a user who may not change them as
        they are: the checks a write by that user passes (the API Sync Manager
        group, write access and record rules, ``_bj_check_admin_only`` with its
        row locks).  An administrator's configuration would otherwise reach,
        as another user, what the user's own rights refuse."""
        check_group(self.env, MANAGER_GROUP)
        self.check_access("write")
        try:
            self._bj_check_admin_only()
        except AccessError as error:
            raise AccessError(_(
                "%(button)s uses the configuration's credentials and runs it as its Run As "
                "User: only those who may change it may use it. %(reason)s",
                button=button, reason=error.args[0])) from error

    def action_rotate_encryption_key(self):
        check_group(self.env, MANAGER_GROUP)
        count = self._bj_rotate_encryption_key()
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "success",
                "title": _("Secrets re-encrypted"),
                "message": (_("1 secret now uses the new key.") if count == 1 else
                            _("%(count)s secrets now use the new key.", count=count)),
                "sticky": False,
            },
        }

    def action_generate_bearer_token(self):
        """Give inbound configurations a fresh random Bearer Token, shown once: the
        form masks saved tokens, so the notification is the one place to copy it."""
        check_group(self.env, MANAGER_GROUP)
        for config in self:
            config.write({
                "authorization_type": "bearer_token",
                "bearer_token": secrets.token_urlsafe(GENERATED_TOKEN_BYTES),
            })
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "warning",
                "title": _("New Bearer Token: copy it now, it is not shown again"),
                "message": "\n".join(f"{config.name}: {config.bearer_token}" for config in self),
                "sticky": True,
                "next": {"type": "ir.actions.client", "tag": "soft_reload"},
            },
        }

    def action_view_logs(self):
        check_group(self.env, USER_GROUP)
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("bjet_api_sync.action_bj_api_log")
        action["domain"] = [("config_id", "=", self.id)]
        action["context"] = {"default_config_id": self.id}
        return action


def _reachable(starts, edges):
    """``starts`` and every node reachable from them through ``edges``."""
    seen, todo = set(starts), list(starts)
    while todo:
        for node in edges[todo.pop()] - seen:
            seen.add(node)
            todo.append(node)
    return seen
