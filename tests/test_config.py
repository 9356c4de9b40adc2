from datetime import datetime, time, timedelta

from dateutil.relativedelta import relativedelta
from freezegun import freeze_time

from odoo import Command
from odoo.exceptions import UserError, ValidationError
from odoo.tests import Form, tagged
from odoo.tools import config as config_options
from odoo.tools import mute_logger

from ..services.filter_domain import scope_domain
from .common import BjApiSyncCase


@tagged("post_install", "-at_install")
class TestConfigDefaults(BjApiSyncCase):
    def test_http_method_records(self):
        methods = self.env["bj.http.method"].search([])
        self.assertEqual(methods.mapped("name"), ["GET", "POST", "PUT", "DELETE"])

    def test_defaults(self):
        config = self.make_config(request_type="out")
        self.assertEqual(config.connection_timeout, 5)
        self.assertEqual(config.read_timeout, 15)
        self.assertEqual(config.limit, 100)
        self.assertEqual(config.page_size, 100)
        self.assertFalse(config.is_paginated)
        self.assertEqual(config.authorization_type, "no_auth")
        self.assertEqual(config.company_id, self.env.company)
        self.assertEqual(config.filter_domain, "[]")
        self.assertEqual(config.max_attempts, 5)
        self.assertTrue(config.active)
        self.assertEqual(config.model_name, "res.partner")

    def test_run_as_user_defaults_to_the_creator(self):
        """The original's setup steps name no Run As User."""
        documented = {"name": "Contacts", "request_type": "in", "endpoint": "contacts",
                      "model_id": self.partner_model.id,
                      "http_method_ids": [Command.set(self.all_methods.ids)]}
        configs = self.env["bj.api.sync.config"]
        self.assertEqual(configs.create(documented).run_as_user_id,
                         self.env.ref("base.user_admin"), "the superuser's: the administrator")
        mine = configs.with_user(self.sync_manager).create({**documented, "endpoint": "mine"})
        self.assertEqual(mine.run_as_user_id, self.sync_manager)

    def test_line_defaults(self):
        config = self.make_partner_config()
        line = config.line_ids.filtered("is_identifier")
        self.assertEqual(line.field_id.name, "id")
        self.assertEqual(line.script_mode, "evaluate")
        self.assertEqual(config._bj_get_identifier_line(), line)


@tagged("post_install", "-at_install")
class TestConfigConstraints(BjApiSyncCase):
    def assertInvalid(self, message_part, **values):
        with self.assertRaises(ValidationError) as caught:
            self.make_config(**values)
        self.assertIn(message_part, str(caught.exception))

    def test_endpoint_required_for_in(self):
        self.assertInvalid("needs an Endpoint", endpoint=False)

    def test_endpoint_must_be_url_safe(self):
        for endpoint in ("Res Partner", "-partners", "a/b", "partners?x=1", "UPPER"):
            with self.subTest(endpoint=endpoint):
                self.assertInvalid("not URL-safe", endpoint=endpoint)
        self.make_config(endpoint="res-partner_2")

    @mute_logger("odoo.sql_db")  # the INSERT and UPDATE that the unique index refuses
    def test_endpoint_unique_among_active(self):
        first = self.make_config(endpoint="partners")
        self.assertInvalid("already used", endpoint="partners")
        first.active = False
        second = self.make_config(endpoint="partners")
        with self.assertRaises(ValidationError):
            first.active = True
        second.active = False
        first.active = True

    def test_endpoint_not_required_for_out(self):
        self.make_config(request_type="out", endpoint=False)

    def test_request_url(self):
        self.assertInvalid("needs a Request URL", request_type="out", request_url=False)
        self.assertInvalid("http:// or https://", request_type="out",
                           request_url="ftp://example.com/x")
        self.assertInvalid("http:// or https://", request_type="out", request_url="example.com")
        self.make_config(request_type="out", request_url="https://api.example.com/contacts/{id}")

    def test_out_has_exactly_one_method(self):
        self.assertInvalid("exactly one HTTP method", request_type="out",
                           http_method_ids=[Command.clear()])
        self.assertInvalid(
            "exactly one HTTP method",
            request_type="out",
            http_method_ids=[Command.set((self.method_get | self.method_post).ids)],
        )

    def test_in_may_have_several_methods(self):
        config = self.make_config()
        self.assertEqual(len(config.http_method_ids), 4)

    def test_timeouts(self):
        for field_name, bad, good in (
            ("connection_timeout", (0, 61, -1), (1, 60)),
            ("read_timeout", (0, 301), (1, 300)),
        ):
            for value in bad:
                with self.subTest(field=field_name, value=value):
                    self.assertInvalid("must be between", request_type="out", **{field_name: value})
            for value in good:
                self.make_config(request_type="out", **{field_name: value})

    def test_positive_numbers(self):
        self.assertInvalid("Limit must be a positive number", limit=0)
        self.assertInvalid("Page Size must be a positive number", page_size=-5)
        self.assertInvalid("Maximum Attempts", max_attempts=0)
        self.assertInvalid("cannot be negative", rate_limit_per_minute=-1)

    def test_exactly_one_record_identifier(self):
        with self.assertRaisesRegex(ValidationError, "exactly one Record Identifier"):
            self.make_config(lines=[("name", "name", None), ("email", "email", None)])
        with self.assertRaisesRegex(ValidationError, "exactly one Record Identifier"):
            self.make_config(lines=[
                ("id", "id", {"is_identifier": True}),
                ("email", "email", {"is_identifier": True}),
            ])
        config = self.make_config()  # no lines at all is fine
        self.assertFalse(config.line_ids)

    def test_a_computed_record_identifier_is_refused_inbound(self):
        """Every computed field without inverse of Contacts (but ``id``, and those
        restricted to groups, refused before): the API
        cannot write it and other fields change it.  Outbound configurations
        only send it."""
        partners = self.env["res.partner"]
        computed = [name for name, field in partners._fields.items()
                    if field.compute and not field.inverse and name != "id" and not field.groups
                    and self.env["ir.model.fields"]._get("res.partner", name)]
        self.assertIn("commercial_company_name", computed)
        for name in computed:
            with self.subTest(name), self.assertRaisesRegex(
                    ValidationError, "is computed and cannot be written"):
                self.make_config(lines=[(name, name, {"is_identifier": True})])
        self.make_config(request_type="out", lines=[
            ("commercial_company_name", "commercial_company_name", {"is_identifier": True})])
        self.make_config(lines=[("id", "id", {"is_identifier": True})])

    def test_removing_identifier_line_is_refused(self):
        config = self.make_partner_config()
        with self.assertRaisesRegex(ValidationError, "exactly one Record Identifier"):
            config.line_ids.filtered("is_identifier").is_identifier = False

    def test_line_field_belongs_to_model(self):
        login_field = self.env["ir.model.fields"]._get("res.users", "login")
        config = self.make_partner_config()
        with self.assertRaisesRegex(ValidationError, "does not belong to model"):
            config.line_ids[1].field_id = login_field

    def test_mapping_model_rules(self):
        country_config = self.make_config(
            model="res.country", lines=[("code", "code", {"is_identifier": True})]
        )
        other_partner_config = self.make_partner_config()
        partner = self.make_partner_config()
        country_field = self.partner_field("country_id")
        name_field = self.partner_field("name")
        line = self.env["bj.api.sync.config.line"]
        with self.assertRaisesRegex(ValidationError, "needs a relational field"):
            line.create({"config_id": partner.id, "field_id": name_field.id,
                         "external_key": "name_mapped", "value_type": "relational_mapping",
                         "mapping_config_id": country_config.id})
        # Each refused line has a key of its own: the refusal checked is not the
        # duplicate key of a line refused before it.
        with self.assertRaisesRegex(ValidationError, "must be a configuration on Country"):
            line.create({"config_id": partner.id, "field_id": country_field.id,
                         "external_key": "country_partner", "value_type": "relational_mapping",
                         "mapping_config_id": other_partner_config.id})
        with self.assertRaisesRegex(ValidationError, "choose the Mapping Model"):
            line.create({"config_id": partner.id, "field_id": country_field.id,
                         "external_key": "country_unset", "value_type": "relational_mapping"})
        good = line.create({"config_id": partner.id, "field_id": country_field.id,
                            "value_type": "relational_mapping", "external_key": "country",
                            "mapping_config_id": country_config.id})
        self.assertEqual(good.mapping_config_id, country_config)

    def test_script_required_for_script_types(self):
        config = self.make_partner_config()
        with self.assertRaisesRegex(ValidationError, "Python Script is required"):
            self.env["bj.api.sync.config.line"].create({
                "config_id": config.id,
                "field_id": self.partner_field("comment").id,
                "value_type": "python_plain",
            })

    def test_parameters_only_on_in(self):
        with self.assertRaisesRegex(ValidationError, "only be set on inbound"):
            self.make_config(
                request_type="out",
                param_ids=[Command.create({"key": "q", "field_id": self.partner_field("name").id})],
            )
        config = self.make_config(
            param_ids=[Command.create({"key": "q", "field_id": self.partner_field("name").id,
                                       "domain_operator": "ilike"})],
        )
        self.assertEqual(config.param_ids.domain_operator, "ilike")
        self.assertEqual(
            dict(config.param_ids._fields["domain_operator"].selection)["ilike"], "contains"
        )

    def test_run_as_user(self):
        self.assertInvalid("needs a Run As User", run_as_user_id=False)
        self.assertInvalid("cannot run as the superuser",
                           run_as_user_id=self.env.ref("base.user_root").id)

    def test_ip_allowlist(self):
        self.assertInvalid("not an IP address", ip_allowlist="10.0.0.0/8\nnot-an-ip")
        config = self.make_config(ip_allowlist="10.0.0.0/8, 2001:db8::/32\n127.0.0.1")
        self.assertEqual(len(config._bj_get_ip_networks()), 3)

    def test_filter_domain_validated(self):
        self.assertInvalid("not a valid domain", filter_domain="[('no_such_field', '=', 1)]")
        self.assertInvalid("not a valid domain", filter_domain="not a domain")
        self.assertInvalid("not a valid domain", filter_domain="('is_company', '=', True)")
        self.assertInvalid("not a valid domain", filter_domain="[('name', '=', env.user.name)]")
        self.assertInvalid("not a valid domain", filter_domain="[('name', '=', ().__class__)]")
        config = self.make_config(filter_domain="[('is_company', '=', True)]")
        self.assertEqual(config._bj_get_filter_domain(), [("is_company", "=", True)])

    def test_filter_domain_is_data_for_everyone(self):
        """The reviewers' vector read the master password through a callable of the
        old evaluation context; the text is now parsed, never evaluated, whoever
        writes it, over the ORM as over the form."""
        vector = ("[('id', '=', int('{0.__globals__[sandbox].odoo.tools.config.options"
                  "[admin_passwd]}'.format(context_today)))]")
        admin = self.env.ref("base.user_admin")
        for user in (self.sync_manager, admin):
            values = {"name": "Walk", "request_type": "out", "request_url": "http://127.0.0.1:9/",
                      "model_id": self.partner_model.id, "filter_domain": vector,
                      "run_as_user_id": user.id}
            with self.subTest(user=user.login), self.assertRaises(ValidationError) as caught:
                self.env["bj.api.sync.config"].with_user(user).create(values)
            self.assertIn("is not allowed in a Filter Domain", str(caught.exception))
            self.assertNotIn(config_options.get("admin_passwd") or "admin", str(caught.exception))

    def test_filter_domain_saved_before_it_was_data(self):
        """One stored with Python the grammar refuses is the configuration's clear
        error when it runs, not a server error."""
        config = self.make_config()
        self.env.cr.execute("UPDATE bj_api_sync_config SET filter_domain = %s WHERE id = %s",
                            ["[('name', '=', env.user.name)]", config.id])
        self.env.invalidate_all()
        self.env.registry.clear_cache()
        with self.assertRaisesRegex(UserError, "Filter Domain of .* cannot be used: reading"):
            config._bj_plan()

    def test_filter_domain_is_searched_once_when_saved(self):
        """What PostgreSQL would refuse at every run is refused when saved, without
        the "bad query" ERROR line of a failed statement."""
        with self.assertNoLogs("odoo.sql_db", "ERROR"):
            self.assertInvalid("not a valid domain", filter_domain="[('id', '=', 'abc')]")
        with self.assertNoLogs("odoo.sql_db", "ERROR"):
            self.assertInvalid("NUL", filter_domain="[('name', '=', 'a\\x00')]")

    def test_filter_domain_without_a_value_now_is_the_configurations_error(self):
        """A date term pushed off the calendar by the user's time zone."""
        config = self.make_config(company_id=False, filter_domain=(
            "[('create_date', '<', (datetime.datetime(9998, 12, 31, 23) + timedelta(days=365))"
            ".to_utc())]"))
        env = self.env(context=dict(self.env.context, tz="Pacific/Honolulu"))
        with self.assertRaisesRegex(UserError, "Filter Domain of .* cannot be used now"):
            scope_domain(env, config._bj_plan())

    def test_filter_domain_of_the_domain_editor(self):
        """What Odoo's domain editor writes for "today" and "in the last 7 days"
        (datetime.combine(...).to_utc() in the user's time zone)."""
        user = self.env.user
        user.tz = "Asia/Tokyo"
        config = self.make_config(company_id=False, filter_domain=(
            "[('create_date', '>=', datetime.datetime.combine(context_today() + "
            "relativedelta(days=-7), datetime.time(0, 0, 0)).to_utc()"
            ".strftime(\"%Y-%m-%d %H:%M:%S\")), "
            "('write_date', '<', context_today().strftime(\"%Y-%m-%d\")), ('user_id', '=', uid)]"))
        with freeze_time(datetime(2031, 3, 15, 22, 30)):
            self.assertEqual(scope_domain(self.env, config._bj_plan()), [
                ("create_date", ">=", "2031-03-08 15:00:00"),
                ("write_date", "<", "2031-03-16"),
                ("user_id", "=", self.env.uid),
            ])

    def test_filter_domain_names_are_evaluated_at_each_use(self):
        """datetime (module and class), timedelta, relativedelta and context_today()."""
        config = self.make_config(company_id=False, filter_domain=(
            "[('write_date', '>=', datetime.now() - timedelta(days=7)),"
            " ('write_date', '<=', datetime.datetime.now()),"
            " ('create_date', '>=', datetime.combine(context_today() - relativedelta(months=1),"
            " datetime.time(0, 0, 0)))]"))
        plan = config._bj_plan()
        env = self.env(context=dict(self.env.context, tz="UTC"))
        for now in (datetime(2031, 1, 31, 12, 0), datetime(2031, 3, 15, 12, 0)):
            with freeze_time(now):
                self.assertEqual(scope_domain(env, plan), [
                    ("write_date", ">=", now - timedelta(days=7)),
                    ("write_date", "<=", now),
                    ("create_date", ">=",
                     datetime.combine(now.date() - relativedelta(months=1), time.min)),
                ])
        self.assertIs(config._bj_plan(), plan, "one plan: its domain moves with the clock")


@tagged("post_install", "-at_install")
class TestConfigForm(BjApiSyncCase):
    def test_in_form_visibility(self):
        with Form(self.env["bj.api.sync.config"]) as form:
            form.name = "Contacts in"
            form.request_type = "in"
            form.model_id = self.partner_model
            form.endpoint = "contacts"
            form.run_as_user_id = self.integration_user
            for visible in ("endpoint", "http_method_ids", "limit", "is_paginated", "param_ids"):
                self.assertFalse(form._get_modifier(visible, "invisible"), visible)
            for hidden in ("request_url", "connection_timeout", "read_timeout",
                           "trigger_action_model_id", "trigger_action_id", "page_size",
                           "login", "password"):
                self.assertTrue(form._get_modifier(hidden, "invisible"), hidden)
            # A new In configuration uses a generated Bearer Token.
            self.assertFalse(form._get_modifier("bearer_token", "invisible"))
            form.is_paginated = True
            self.assertFalse(form._get_modifier("page_size", "invisible"))
            form.authorization_type = "basic_auth"
            self.assertFalse(form._get_modifier("login", "invisible"))
            self.assertFalse(form._get_modifier("password", "invisible"))
            self.assertTrue(form._get_modifier("bearer_token", "invisible"))
            form.authorization_type = "bearer_token"
            self.assertFalse(form._get_modifier("bearer_token", "invisible"))
            self.assertTrue(form._get_modifier("login", "invisible"))
            form.bearer_token = "Bearer abc"
        config = form.record
        self.assertEqual(config.endpoint, "contacts")
        self.assertEqual(config.bearer_token, "Bearer abc")

    def test_out_form_visibility(self):
        with Form(self.env["bj.api.sync.config"]) as form:
            form.name = "Contacts out"
            form.request_type = "out"
            form.model_id = self.partner_model
            form.request_url = "https://api.example.com/contacts"
            form.http_method_ids.add(self.method_post)
            form.run_as_user_id = self.integration_user
            for visible in ("request_url", "connection_timeout", "read_timeout",
                            "trigger_action_model_id", "trigger_action_id", "run_as_user_id"):
                self.assertFalse(form._get_modifier(visible, "invisible"), visible)
            for hidden in ("endpoint", "param_ids"):
                self.assertTrue(form._get_modifier(hidden, "invisible"), hidden)
            self.assertTrue(form._get_modifier("endpoint", "invisible"))
            # Trigger Action is read-only until its model is chosen.
            self.assertTrue(form._get_modifier("trigger_action_id", "readonly"))
            form.trigger_action_model_id = self.env["ir.model"]._get("ir.cron")
            self.assertFalse(form._get_modifier("trigger_action_id", "readonly"))
        self.assertEqual(form.record.http_method_ids, self.method_post)
        self.assertEqual(form.record.connection_timeout, 5)
        self.assertEqual(form.record.read_timeout, 15)


@tagged("post_install", "-at_install")
class TestFieldHelp(BjApiSyncCase):
    def test_every_field_has_a_tooltip(self):
        """The original shows a '?' tooltip on every field; so do we."""
        magic = {"id", "display_name", "create_uid", "create_date", "write_uid", "write_date"}
        missing = []
        for model_name in self.env.registry:
            for name, field in self.env[model_name]._fields.items():
                if name in magic or field._module != "bjet_api_sync":
                    continue
                if not field.help:
                    missing.append(f"{model_name}.{name}")
        self.assertFalse(missing, "fields without help")
