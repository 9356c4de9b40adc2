"""Tenancy: every record of a configuration follows its company, and the access
matrix companies x roles x operations holds on every model of the addon."""

import logging
from datetime import datetime

from odoo import Command, tools
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import new_test_user, tagged
from odoo.tools import SQL, mute_logger

from ..models.bj_api_sync_config import ENDPOINT_INDEX
from .common import MANAGER_GROUP, USER_GROUP, BjApiSyncCase, LocalTimeoutsMixin

_logger = logging.getLogger(__name__)

SYSTEM_GROUP = "base.group_system"
ROLES = {"user": USER_GROUP, "manager": MANAGER_GROUP, "admin": SYSTEM_GROUP}
OPERATIONS = ("read", "write", "create", "unlink")
# Companies of the records, seen by users who are members of company A only.
COMPANIES = ("A", "B", "shared")

# The group each object button checks in Python: buttons are callable over RPC
# by anyone who can read the record, whatever the view's groups=.
ACTION_GROUPS = {
    ("bj.api.sync.config", "action_rotate_encryption_key"): MANAGER_GROUP,
    ("bj.api.sync.config", "action_generate_bearer_token"): MANAGER_GROUP,
    ("bj.api.sync.config", "action_test_connection"): MANAGER_GROUP,
    ("bj.api.sync.config", "action_create_trigger_action"): SYSTEM_GROUP,
    ("bj.api.sync.config", "action_view_logs"): USER_GROUP,
    ("bj.api.sync.config", "action_view_jobs"): USER_GROUP,
    ("bj.api.sync.job", "action_retry"): MANAGER_GROUP,
    ("bj.api.sync.job", "action_cancel"): MANAGER_GROUP,
    ("bj.api.sync.job", "action_view_logs"): USER_GROUP,
}

# The expected outcome table: operations (r, w, c, u) each role may do on the
# records of its own company and on shared ones (without a company).  Records
# of company B are out of reach of every role, Settings administrators
# included: they are API Sync Managers by implied group, and record rules
# apply to them as to anyone but the superuser.
ALLOWED = {
    "bj.api.sync.config": {"user": "r", "manager": "rwcu", "admin": "rwcu"},
    "bj.api.sync.config.line": {"user": "r", "manager": "rwcu", "admin": "rwcu"},
    "bj.api.sync.header": {"user": "r", "manager": "rwcu", "admin": "rwcu"},
    "bj.api.sync.param": {"user": "r", "manager": "rwcu", "admin": "rwcu"},
    "bj.api.idempotency": {"user": "", "manager": "ru", "admin": "ru"},
    # Jobs and logs are the addon's bookkeeping: written by its own code only
    # (core/field_access.py); Retry and Cancel are buttons.
    "bj.api.sync.job": {"user": "r", "manager": "ru", "admin": "ru"},
    "bj.api.log": {"user": "r", "manager": "ru", "admin": "ru"},
    "bj.api.rate.limit": {"user": "", "manager": "ru", "admin": "ru"},
}


def expected_outcome(model, role, company, operation):
    allowed = company != "B" and operation[0] in ALLOWED[model][role]
    return "allowed" if allowed else "denied"


class TenancyCase(BjApiSyncCase):
    """Companies A (the test company) and B; users of company A only."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company_a = cls.env.company
        cls.company_b = cls.env["res.company"].create({"name": "BJET Tenancy B"})
        cls.runner_b = new_test_user(
            cls.env, login="bj_tenancy_runner_b", groups="base.group_user",
            company_id=cls.company_b.id, company_ids=[Command.set(cls.company_b.ids)],
        )
        cls.users = {
            role: new_test_user(
                cls.env, login=f"bj_tenancy_{role}", groups=group,
                company_id=cls.company_a.id, company_ids=[Command.set(cls.company_a.ids)],
            )
            for role, group in ROLES.items()
        }

    @classmethod
    def company_values(cls, company):
        """Values of an inbound configuration of ``company`` (A, B or shared)."""
        if company == "B":
            return {"company_id": cls.company_b.id, "run_as_user_id": cls.runner_b.id,
                    "user_id": cls.runner_b.id}
        # The manager's own: one running as another user is administrators'
        # (TestScriptLock), whatever its company.
        manager = cls.users["manager"]
        return {"company_id": cls.company_a.id if company == "A" else False,
                "run_as_user_id": manager.id, "user_id": manager.id}


@tagged("post_install", "-at_install")
class TestTenancyMatrix(TenancyCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.configs = {}
        cls.out_configs = {}
        cls.records = {}
        for company in COMPANIES:
            values = cls.company_values(company)
            config = cls.make_partner_config(
                name=f"Tenancy {company}",
                header_ids=[Command.create({"key": "X-Tenant", "value": company})],
                param_ids=[Command.create({"key": "res_name",
                                           "field_id": cls.partner_field("name").id})],
                **values,
            )
            out_config = cls.make_partner_config(
                name=f"Tenancy out {company}", request_type="out",
                **values,
            )
            cls.configs[company] = config
            cls.out_configs[company] = out_config
            cls.records[company] = {
                "bj.api.sync.config": config,
                "bj.api.sync.config.line": config.line_ids.filtered(
                    lambda line: line.field_id.name == "name"),
                "bj.api.sync.header": config.header_ids,
                "bj.api.sync.param": config.param_ids,
                "bj.api.idempotency": cls.env["bj.api.idempotency"].create(
                    cls.idempotency_values(config)),
                "bj.api.sync.job": cls.env["bj.api.sync.job"].create(cls.job_values(out_config)),
                "bj.api.log": cls.env["bj.api.log"].create(cls.log_values(config)),
                "bj.api.rate.limit": cls.env["bj.api.rate.limit"].create(
                    cls.rate_limit_values(config)),
            }

    # -- values of each model, for create and write --------------------------------

    @classmethod
    def idempotency_values(cls, config):
        return {"config_id": config.id, "key": f"key-{config.id}", "request_target": "POST /x"}

    @classmethod
    def job_values(cls, config):
        return {"config_id": config.id, "event": "manual", "res_model": "res.partner",
                "res_ids": str(cls.env.user.partner_id.id)}

    @classmethod
    def log_values(cls, config):
        return {"config_id": config.id, "company_id": config.company_id.id, "direction": "in",
                "state": "success", "url": "/bj_api_sync/v1/tenancy"}

    @classmethod
    def rate_limit_values(cls, config):
        return {"config_id": config.id, "window_start": datetime(2026, 1, 1, 12, 0), "hits": 1}

    def create_values(self, model, company):
        """Values of a new record of ``model`` in ``company``."""
        config, out_config = self.configs[company], self.out_configs[company]
        return {
            "bj.api.sync.config": lambda: {
                "name": "New", "request_type": "out", "model_id": self.partner_model.id,
                "request_url": "http://127.0.0.1:9/new",
                "http_method_ids": [Command.set(self.method_post.ids)],
                **self.company_values(company),
            },
            "bj.api.sync.config.line": lambda: {
                "config_id": config.id, "field_id": self.partner_field("email").id,
                "value_type": "plain", "external_key": "new"},
            "bj.api.sync.header": lambda: {"config_id": config.id, "key": "X-New"},
            "bj.api.sync.param": lambda: {"config_id": config.id, "key": "new",
                                          "field_id": self.partner_field("email").id},
            "bj.api.idempotency": lambda: {**self.idempotency_values(config), "key": "new"},
            "bj.api.sync.job": lambda: self.job_values(out_config),
            "bj.api.log": lambda: self.log_values(config),
            "bj.api.rate.limit": lambda: {**self.rate_limit_values(config),
                                          "window_start": datetime(2026, 1, 1, 12, 1)},
        }[model]()

    # A harmless field to read and a value to write, per model.
    FIELDS = {
        "bj.api.sync.config": ("name", "Renamed"),
        "bj.api.sync.config.line": ("external_key", "renamed"),
        "bj.api.sync.header": ("key", "X-Renamed"),
        "bj.api.sync.param": ("key", "renamed"),
        "bj.api.idempotency": ("key", "renamed"),
        "bj.api.sync.job": ("res_ids", "1"),
        "bj.api.log": ("url", "/renamed"),
        "bj.api.rate.limit": ("hits", 2),
    }

    def run_operation(self, model, user, company, operation):
        record = self.records[company][model].with_user(user)
        name, value = self.FIELDS[model]
        if operation == "read":
            visible = record.search([("id", "=", record.id)])
            values = record.read([name])
            self.assertEqual(visible, record, "read but not found by search")
            self.assertEqual(values[0]["id"], record.id)
        elif operation == "write":
            record.write({name: value})
        elif operation == "create":
            record.browse().create(self.create_values(model, company))
        else:
            record.unlink()
        self.env.flush_all()

    def outcome(self, model, user, company, operation):
        """``allowed`` or ``denied``; every cell runs in a savepoint rolled back after it."""
        savepoint = self.env.cr.savepoint()
        try:
            self.run_operation(model, user, company, operation)
            return "allowed"
        except AccessError:
            return "denied"
        finally:
            savepoint.close(rollback=True)

    def test_access_matrix(self):
        failures = []
        cells = 0
        for model in ALLOWED:
            for role, user in self.users.items():
                for company in COMPANIES:
                    for operation in OPERATIONS:
                        expected = expected_outcome(model, role, company, operation)
                        try:
                            actual = self.outcome(model, user, company, operation)
                        except Exception as error:  # noqa: BLE001 - named in the failure
                            actual = f"{type(error).__name__}: {error}"
                        cells += 1
                        if actual != expected:
                            failures.append(f"{model} | {role} of company A | {operation} | "
                                            f"record of company {company}: expected "
                                            f"{expected}, got {actual}")
        _logger.info("Access matrix: %s cells checked, %s as expected.",
                     cells, cells - len(failures))
        self.assertEqual(cells, len(ALLOWED) * len(ROLES) * len(COMPANIES) * len(OPERATIONS))
        self.assertFalse(failures, "\n".join(failures))

    def test_manager_cannot_rewrite_another_companys_script(self):
        line = self.records["B"]["bj.api.sync.config.line"]
        for role in ("manager", "admin"):
            with self.subTest(role=role), self.assertRaises(AccessError):
                line.with_user(self.users[role]).write({
                    "value_type": "python_plain", "python_script": "'hacked'",
                })
        self.assertEqual(line.value_type, "plain")

    def test_another_companys_lines_are_not_reachable_through_their_configuration(self):
        for role, user in self.users.items():
            with self.subTest(role=role):
                lines = self.env["bj.api.sync.config.line"].with_user(user).search([])
                self.assertFalse(lines & self.configs["B"].line_ids)
                self.assertLessEqual(self.configs["A"].line_ids | self.configs["shared"].line_ids,
                                     lines)


@tagged("post_install", "-at_install")
class TestTenancyFollowsConfiguration(TenancyCase):
    """Records follow their configuration's company; relations stay in it."""

    def test_records_follow_the_configuration_company(self):
        config = self.make_partner_config(
            header_ids=[Command.create({"key": "X-A", "value": "a"})],
            param_ids=[Command.create({"key": "res_name",
                                       "field_id": self.partner_field("name").id})],
        )
        out = self.make_partner_config(request_type="out")
        job = self.env["bj.api.sync.job"].create({"config_id": out.id, "event": "manual"})
        claim_id, _stored = self.env["bj.api.idempotency"]._bj_claim(
            config.id, "k", "POST /x", "body-hash")
        idempotency = self.env["bj.api.idempotency"].browse(claim_id)
        log = self.env["bj.api.log"].browse(self.env["bj.api.log"]._bj_write_in_transaction({
            "config_id": config.id, "company_id": config.company_id.id, "direction": "in",
            "state": "success",
        }))
        records = [*config.line_ids, *config.header_ids, *config.param_ids, idempotency, log]
        for record in records:
            self.assertEqual(record.company_id, self.company_a, record)
        self.assertEqual(job.company_id, self.company_a)

        config.write({"company_id": self.company_b.id, "run_as_user_id": self.runner_b.id,
                      "user_id": self.runner_b.id})
        out.write({"company_id": self.company_b.id, "run_as_user_id": self.runner_b.id,
                   "user_id": self.runner_b.id})
        for record in (*records, job):
            self.assertEqual(record.company_id, self.company_b, record)

        config.write({"company_id": False})
        for record in records:
            self.assertFalse(record.company_id, record)

    def test_module_update_fills_the_new_company_columns(self):
        """A database installed before these columns, then updated (-u): the
        registry creates each column and computes it for the existing rows."""
        config = self.make_partner_config(
            header_ids=[Command.create({"key": "X-B", "value": "b"})],
            param_ids=[Command.create({"key": "res_name",
                                       "field_id": self.partner_field("name").id})],
            **self.company_values("B"),
        )
        self.env["bj.api.idempotency"]._bj_claim(config.id, "k", "POST /x", "body-hash")
        models = ("bj.api.sync.config.line", "bj.api.sync.header", "bj.api.sync.param",
                  "bj.api.idempotency")
        self.env.flush_all()
        for model_name in models:
            self.env.cr.execute(SQL("ALTER TABLE %s DROP COLUMN company_id",
                                    SQL.identifier(self.env[model_name]._table)))
        self.env.invalidate_all()
        # What a module update runs on the models of the module.
        self.env.registry.init_models(self.env.cr, models, {"module": "bjet_api_sync"},
                                      install=False)
        for model_name in models:
            table = SQL.identifier(self.env[model_name]._table)
            self.env.cr.execute(SQL("SELECT DISTINCT company_id FROM %s WHERE config_id = %s",
                                    table, config.id))
            self.assertEqual(self.env.cr.fetchall(), [(self.company_b.id,)], model_name)

    def test_logs_keep_their_company_when_the_configuration_is_deleted(self):
        config = self.make_config(**self.company_values("B"))
        log = self.env["bj.api.log"].create({
            "config_id": config.id, "company_id": self.company_b.id, "direction": "in",
            "state": "success",
        })
        config.unlink()
        self.assertFalse(log.config_id)
        self.assertEqual(log.company_id, self.company_b)
        with self.assertRaises(AccessError):
            log.with_user(self.users["admin"]).read(["url"])

    def test_run_as_user_and_responsible_must_belong_to_the_company(self):
        for field in ("run_as_user_id", "user_id"):
            with self.subTest(field=field), \
                    self.assertRaisesRegex(UserError, "compan|not allowed in"):
                self.make_config(**{**self.company_values("B"), field: self.sync_user.id})
        config = self.make_config(**self.company_values("A"))
        with self.assertRaisesRegex(UserError, "compan|not allowed in"):
            config.company_id = self.company_b
        # Shared configurations accept any user.
        self.make_config(company_id=False)

    def test_mapping_model_must_belong_to_the_company(self):
        countries_b = self.make_country_config(request_type="out", **self.company_values("B"))
        lines = [("id", "res_id", {"is_identifier": True}),
                 ("country_id", "country", {"value_type": "relational_mapping",
                                            "mapping_config_id": countries_b.id})]
        for company in ("A", "shared"):
            with self.subTest(company=company), self.assertRaisesRegex(UserError, "compan"):
                self.make_config(lines=lines, **self.company_values(company))
        config = self.make_config(lines=lines, **self.company_values("B"))
        self.assertEqual(config.line_ids.mapping_config_id, countries_b)
        countries_b.company_id = False  # a shared Mapping Model fits every configuration
        self.make_config(lines=lines, **self.company_values("A"))


@tagged("post_install", "-at_install")
class TestUniqueEndpoint(TenancyCase):
    """One active inbound configuration per endpoint, whatever the companies."""

    def setUp(self):
        super().setUp()
        self.config_b = self.make_config(endpoint="tenancy-shared", **self.company_values("B"))
        self.admin_a = self.users["admin"]

    def test_index_exists(self):
        self.assertTrue(tools.index_exists(self.env.cr, ENDPOINT_INDEX))

    @mute_logger("odoo.sql_db")  # the refused INSERT / UPDATE
    def test_another_company_cannot_take_an_endpoint_it_does_not_see(self):
        configs = self.env["bj.api.sync.config"].with_user(self.admin_a)
        self.assertFalse(configs.search([("endpoint", "=", "tenancy-shared")]))
        with self.assertRaisesRegex(ValidationError, "'tenancy-shared' is already used"):
            configs.create({
                "name": "Taken", "request_type": "in", "model_id": self.partner_model.id,
                "endpoint": "tenancy-shared", "run_as_user_id": self.integration_user.id,
                "http_method_ids": [Command.set(self.method_get.ids)],
            })
        own = self.make_config(endpoint="tenancy-own").with_user(self.admin_a)
        with self.assertRaisesRegex(ValidationError, "'tenancy-shared' is already used"):
            own.write({"endpoint": "tenancy-shared"})
        self.assertEqual(own.endpoint, "tenancy-own")

    @mute_logger("odoo.sql_db")
    def test_archived_configurations_release_their_endpoint(self):
        self.config_b.active = False
        taken = self.make_config(endpoint="tenancy-shared")
        with self.assertRaisesRegex(ValidationError, "already used"):
            self.config_b.active = True
        self.assertEqual(self.env["bj.api.sync.config"]._bj_inbound_config_id("tenancy-shared"),
                         taken.id)

    def test_update_with_duplicates_keeps_them_unanswered(self):
        """A database where companies already share an endpoint: the module
        update reports them and skips the index; the endpoint answers 404 (no
        configuration) rather than serve either."""
        self.env.cr.execute(f"DROP INDEX {ENDPOINT_INDEX}")
        self.make_config(endpoint="tenancy-shared")
        configs = self.env["bj.api.sync.config"]
        with self.assertLogs("odoo.addons.bjet_api_sync.models.bj_api_sync_config",
                             "WARNING") as logs:
            configs.init()
        self.assertIn("tenancy-shared", logs.output[0])
        self.assertFalse(tools.index_exists(self.env.cr, ENDPOINT_INDEX))
        with self.assertRaises(LookupError):
            configs._bj_inbound_config_id("tenancy-shared")


@tagged("post_install", "-at_install")
class TestActionGroups(LocalTimeoutsMixin, TenancyCase):
    """Every action_* method checks its group itself."""

    def test_every_action_has_an_expected_group(self):
        actions = {
            (model_name, name)
            for model_name in self.env.registry
            if model_name.startswith("bj.")
            for name in dir(self.env.registry[model_name])
            if name.startswith("action_")
            and getattr(self.env.registry[model_name], name).__module__.startswith(
                "odoo.addons.bjet_api_sync.")
        }
        self.assertEqual(actions, set(ACTION_GROUPS))

    def test_actions_refuse_roles_without_their_group(self):
        config = self.make_partner_config(
            request_type="out", trigger_action_model_id=self.env["ir.model"]._get_id(
                "ir.actions.server"), **self.company_values("A"))
        job = self.env["bj.api.sync.job"].create({"config_id": config.id, "event": "manual"})
        records = {"bj.api.sync.config": config, "bj.api.sync.config.line": config.line_ids[0],
                   "bj.api.sync.job": job}
        cells = 0
        for (model, action), group in ACTION_GROUPS.items():
            for role, user in self.users.items():
                allowed = user.has_group(group)
                cells += 1
                with self.subTest(action=f"{model}.{action}", role=role, allowed=allowed):
                    savepoint = self.env.cr.savepoint()
                    try:
                        getattr(records[model].with_user(user), action)()
                        outcome = "allowed"
                    except AccessError as error:
                        outcome = f"denied: {error}"
                    except UserError:  # the group passed; the record's state refused
                        outcome = "allowed"
                    finally:
                        savepoint.close(rollback=True)
                    self.assertEqual(outcome.startswith("allowed"), allowed, outcome)
        _logger.info("Object buttons: %s calls checked.", cells)
