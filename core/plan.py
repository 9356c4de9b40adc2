"""The compiled plan of a configuration: immutable plain data, no ORM.

``bj.api.sync.config._bj_plan()`` builds one per configuration (following its
Mapping Models) and caches it in the registry; any change of a configuration,
its lines, parameters, headers or HTTP methods drops the cache.  Inbound calls,
outbound deliveries, the schedule and Test Connection all read this one shape.
"""

from dataclasses import dataclass, field

# Field types whose values are other records.
RELATIONAL_TYPES = ("many2one", "one2many", "many2many")
X2MANY_TYPES = ("one2many", "many2many")
# Value Calculation Types of a configuration line.
VALUE_PLAIN = "plain"
VALUE_MAPPING = "relational_mapping"
VALUE_SCRIPT = "python_plain"
VALUE_RELATIONAL_SCRIPT = "relational_python"
SCRIPT_TYPES = (VALUE_SCRIPT, VALUE_RELATIONAL_SCRIPT)
# Script modes.
MODE_EVALUATE = "evaluate"
MODE_EXECUTE = "execute"
BEARER_SCHEME = "bearer"


def line_label(external_key, field_label):
    """How every message names a configuration line: by its External API Key,
    else by its field's label (a technical field name means nothing to whoever
    reads the message, and an Execute line exchanges no key of that name)."""
    return external_key or field_label


def strip_bearer(token):
    """A token as stored may carry the ``Bearer`` scheme; the plan keeps it bare."""
    token = (token or "").strip()
    scheme, _sep, rest = token.partition(" ")
    return rest.strip() if scheme.lower() == BEARER_SCHEME and rest else token


@dataclass(frozen=True)
class Script:
    """A line's Python Script, checked and compiled once per plan."""

    mode: str
    # The code object Odoo's sandbox compiled (opcodes checked); evaluated as an
    # expression when ``is_expression``, else run as statements.  None when the
    # script does not compile: ``error`` says why, and running it fails with that.
    code: object = field(repr=False, compare=False)
    is_expression: bool
    error: str = ""

    @property
    def evaluates(self):
        return self.mode != MODE_EXECUTE


@dataclass(frozen=True)
class LinePlan:
    """One configuration line and the field it maps."""

    line_id: int
    model: str  # the configuration's model
    key: str  # External API Key, else the field name
    label: str  # how messages name the line (line_label)
    field: str
    ttype: str
    value_type: str
    store: bool  # a column: fetched with the records, sortable
    writable: bool  # not ``id``, not computed without inverse
    searchable: bool
    comodel: str | None
    selection: tuple | None  # allowed keys of a selection field
    is_identifier: bool
    script: Script | None
    child: "ConfigPlan | None"  # the Mapping Model, for Relational with Mapping Model

    @property
    def is_script(self):
        return self.value_type in SCRIPT_TYPES

    @property
    def is_mapping(self):
        return self.value_type == VALUE_MAPPING and self.ttype in RELATIONAL_TYPES

    @property
    def exchanges(self):
        """Whether the line exchanges its key: an Execute script only rewrites
        ``request_data`` for the lines after it; it is in no answer, payload or
        query, and fills no field."""
        return not (self.is_script and not self.script.evaluates)


@dataclass(frozen=True)
class ParamPlan:
    key: str
    field: str
    operator: str


@dataclass(frozen=True)
class AuthPlan:
    """Credentials: kept out of ``repr`` so that a plan never leaks them into a
    log line or a traceback.  The Bearer token is stored without its scheme."""

    type: str
    login: str
    password: str = field(repr=False)
    bearer_token: str = field(repr=False)
    signature_secret: str = field(repr=False)
    # Values of the Headers rows marked Secret, whichever the direction: masked
    # in the logs wherever they appear.
    header_secrets: tuple = field(repr=False)

    @property
    def secrets(self):
        return (*(v for v in (self.password, self.bearer_token, self.signature_secret) if v),
                *self.header_secrets)


@dataclass(frozen=True)
class DeliveryPlan:
    """What an outbound request of this configuration needs."""

    url: str
    method: str
    # Headers rows may carry API keys: out of repr too.
    headers: tuple = field(repr=False)  # ((name, value), ...)
    connect_timeout: int
    read_timeout: int
    max_attempts: int
    base_delay: int
    max_delay: int
    options: tuple = ()  # requests' environment options (proxies, CA bundle), as pairs
    # The credentials written in the Request URL (masking.url_secrets).
    url_secrets: tuple = field(default=(), repr=False)

    @property
    def timeout(self):
        return (self.connect_timeout, self.read_timeout)


@dataclass(frozen=True)
class TriggerPlan:
    on_create: bool
    on_write: bool
    on_unlink: bool
    watched: frozenset
    send_inbound: bool


@dataclass(frozen=True)
class ScopePlan:
    """Which records a configuration sees, and as whom: all that choosing them
    reads (services/filter_domain.py, services/run_as.py).  The form builds one
    of its unsaved values to count the records they match."""

    config_id: int | None  # None for a configuration not saved yet
    name: str
    request_type: str
    model: str
    company_id: int | None
    run_as_uid: int | None
    # The parsed Filter Domain (core/domain_terms.py), evaluated at
    # each use: it may compare with the current time (services/filter_domain.py).
    filter_template: object = field(repr=False, compare=False)
    company_domain: tuple  # the records of the configuration's company


@dataclass(frozen=True)
class ConfigPlan(ScopePlan):
    lines: tuple  # LinePlan, in sequence order
    identifier: LinePlan | None
    auth: AuthPlan
    methods: frozenset
    params: tuple  # ParamPlan
    networks: tuple  # ip_network objects of the IP Allowlist
    rate_limit: int
    limit: int
    is_paginated: bool
    page_size: int
    max_body_size: int
    log_body_max_size: int
    delivery: DeliveryPlan | None
    triggers: TriggerPlan | None
    # A line of this configuration or of its Mapping Models runs a script.
    has_scripts: bool

    def line(self, key):
        """The line exchanging ``key``, or None."""
        return next((line for line in self.lines if line.key == key and line.exchanges), None)

    @property
    def secrets(self):
        return (*self.auth.secrets, *(self.delivery.url_secrets if self.delivery else ()))

    @property
    def batch_size(self):
        """Records per outbound request."""
        return self.page_size if self.is_paginated else 1

    def stored_fields(self):
        """The columns an answer or a payload reads: fetched with the records in
        one query rather than every column, as the first field access would."""
        return [line.field for line in self.lines
                if line.store and line.field != "id" and line.exchanges]
