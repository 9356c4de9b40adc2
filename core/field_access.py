"""Who may write each field of the addon's models: the one table, and its rules.

Deny by default: a field of an addon model absent from ``FIELD_ACCESS`` is
refused to everyone but the addon's own code (which writes as the superuser).
``models/bj_api_access.py`` applies it to every create and write (so to copy,
``load()``, ``web_save`` and one2many commands, which go through them); the
tests walk every field of every model against it.  Plain Python, no ORM.
"""

from collections import namedtuple

from .plan import SCRIPT_TYPES

# Levels of the writing user, from the groups it has.
NOBODY_LEVEL = 0  # no API Sync group
USER_LEVEL = 1  # API Sync User
MANAGER_LEVEL = 2  # API Sync Manager
ADMIN_LEVEL = 3  # Settings administrator (base.group_system)
NEVER = 4  # above every user: only the addon's own code

# A rule: the level needed to write the field, and what narrows it.
#   create_only: set when the record is created, never changed afterwards;
#   names_self: below ADMIN_LEVEL, the value may only be the writing user;
#   requires: (field, value) the record must have for this one to be set: the
#       condition of the view's readonly attribute; value a selection key, or
#       None for any value;
#   admin_values: values only ADMIN_LEVEL may give (the forms offer them to
#       Settings administrators alone: bj_api_access.offer_admin_values).
Rule = namedtuple("Rule", "level create_only names_self requires admin_values",
                  defaults=(False, False, None, ()))

MANAGER = Rule(MANAGER_LEVEL)
ADMIN = Rule(ADMIN_LEVEL)
NOBODY = Rule(NEVER)
ON_CREATE = Rule(MANAGER_LEVEL, create_only=True)
# A res.users field that only notifies: below ADMIN_LEVEL, oneself.
OWN_USER = Rule(MANAGER_LEVEL, names_self=True)

# Columns the ORM itself maintains.
ORM_FIELDS = ("id", "create_uid", "create_date", "write_uid", "write_date")
# What mail.thread and mail.activity.mixin add: written by the chatter's own code.
CHATTER_FIELDS = (
    "message_follower_ids", "message_partner_ids", "message_ids", "website_message_ids",
    "activity_ids", "activity_type_id", "activity_summary",
)

FIELD_ACCESS = {
    "bj.api.sync.config": {
        **dict.fromkeys(ORM_FIELDS + CHATTER_FIELDS, NOBODY),
        **dict.fromkeys((
            "name", "active", "request_type", "model_id", "filter_domain", "http_method_ids",
            "endpoint", "request_url", "connection_timeout", "read_timeout",
            "authorization_type", "login", "password", "bearer_token", "limit",
            "is_paginated", "page_size", "trigger_action_model_id", "company_id", "line_ids",
            "header_ids", "param_ids", "ip_allowlist", "signature_secret",
            "rate_limit_per_minute", "trigger_on_create", "trigger_on_write",
            "trigger_on_unlink", "watched_field_ids", "max_attempts", "send_inbound_changes",
            "trigger_on_schedule", "schedule_interval_number", "schedule_interval_type",
            "schedule_last_sync", "retry_base_delay", "retry_max_delay",
        ), MANAGER),
        # Created by Create Trigger Action (administrators only) for this
        # configuration, which is administrators' as a whole from then on
        # (bj.api.sync.config._bj_admin_only).
        "trigger_action_id": Rule(ADMIN_LEVEL, requires=("trigger_action_model_id", None)),
        # Whom everything of the configuration runs as: an administrator's choice.  A
        # new configuration defaults to its creator, a duplicate to the duplicating
        # user (bj.api.sync.config.copy_data), and a configuration running as
        # anyone but the writing user is administrators' as a whole
        # (bj.api.sync.config._bj_admin_only).
        "run_as_user_id": ADMIN,
        # Whom failed deliveries notify.
        "user_id": OWN_USER,
        # The addon's bookkeeping.
        **dict.fromkeys((
            "model_name", "password_encrypted", "bearer_token_encrypted",
            "signature_secret_encrypted", "schedule_cron_id", "schedule_last_sync_id",
            "job_ids", "request_url_masked",
        ), NOBODY),
    },
    "bj.api.sync.config.line": {
        **dict.fromkeys(ORM_FIELDS + ("company_id",), NOBODY),
        "config_id": ON_CREATE,
        **dict.fromkeys(("sequence", "field_id", "external_key", "is_identifier"), MANAGER),
        # A script type is code, and makes the whole configuration Settings
        # administrators' (bj.api.plan.source.mixin).
        "value_type": Rule(MANAGER_LEVEL, admin_values=SCRIPT_TYPES),
        "mapping_config_id": Rule(MANAGER_LEVEL, requires=("value_type", "relational_mapping")),
        # Scripts are code: administrators' alone.
        "script_mode": ADMIN,
        "python_script": ADMIN,
    },
    "bj.api.sync.header": {
        **dict.fromkeys(ORM_FIELDS + ("company_id", "secret_value_encrypted"), NOBODY),
        "config_id": ON_CREATE,
        **dict.fromkeys(("sequence", "key", "value", "is_secret", "secret_value"), MANAGER),
    },
    "bj.api.sync.param": {
        **dict.fromkeys(ORM_FIELDS + ("company_id",), NOBODY),
        "config_id": ON_CREATE,
        **dict.fromkeys(("sequence", "key", "field_id", "domain_operator"), MANAGER),
    },
    # Shared by every configuration, scripted ones included.
    "bj.http.method": {
        **dict.fromkeys(ORM_FIELDS, NOBODY),
        "name": ADMIN,
        "sequence": ADMIN,
    },
}

# Models only the addon's code writes (logs, queue, counters): every field, NOBODY.
INTERNAL_MODELS = frozenset({
    "bj.api.log", "bj.api.sync.job", "bj.api.idempotency", "bj.api.rate.limit",
    "bj.api.auth.failure", "bj.api.signature", "bj.api.identifier.lock",
})


def guarded(model_name):
    """Whether writes to ``model_name`` go through the table (the addon's models)."""
    return model_name.startswith("bj.") or model_name in FIELD_ACCESS


def rule_of(model_name, field_name):
    """The rule of a field; NOBODY when the table has no row for it."""
    return FIELD_ACCESS.get(model_name, {}).get(field_name, NOBODY)


def needed_level(rule, *, creating, names_self):
    """The level a user needs to give a field a new value.

    ``names_self``: the value is the writing user.
    """
    if rule.level == NEVER or (rule.create_only and not creating):
        return NEVER
    if rule.names_self and not names_self:
        return ADMIN_LEVEL
    return rule.level
