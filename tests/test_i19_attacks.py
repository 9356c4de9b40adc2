"""Attacks on issue 19's work, each a failing test until the code is fixed:
what a user does, and what goes wrong."""

from odoo import Command
from odoo.exceptions import AccessError, ValidationError
from odoo.tests import Form, tagged

from .common import BjApiHttpCase, BjApiSyncCase, LocalTimeoutsMixin, generated_secret

ONLY_FOR_THEM = "Counted for the Run As User and Settings administrators only."


@tagged("post_install", "-at_install")
class TestI19FilterDomainAttacks(BjApiSyncCase):
    def test_domains_odoo_rejects_with_other_errors_crash_the_form(self):
        """A manager types, in the Filter Domain's text field, a condition that
        the grammar accepts but Odoo's search refuses with an AssertionError,
        a TypeError or a KeyError rather than a ValueError: an ``any`` whose
        value is not a domain (``('category_id', 'any', 'abc')``, a natural slip
        for ``('category_id.name', '=', 'abc')``), ``child_of`` a nested list,
        ``any`` on a field that is not relational.  Matching Records recomputes
        at each keystroke's onchange; ``_compute_filter_domain_count`` catches
        only UserError, ValueError and psycopg2 errors, so the onchange RPC
        raises and the web client shows the "Oops! Something went wrong"
        dialog the issue's point 2 removes, instead of naming the problem under
        the field (and Save would refuse it as a Validation Error)."""
        config = self.make_config(filter_domain="[]")
        form = Form(config)
        for text in ("[('category_id', 'any', 'abc')]",
                     "[('parent_id', 'not any', None)]",
                     "[('parent_id', 'child_of', [[1]])]",
                     "[('parent_id.name', 'any', [])]"):
            with self.subTest(text=text):
                try:
                    form.filter_domain = text
                    shown = (form.filter_domain_count, form.filter_domain_problem)
                except Exception as error:  # noqa: BLE001 - what the onchange raises is the bug
                    self.fail(f"typing {text} raises {type(error).__name__}: {error} "
                              "(the form's onchange fails: an error dialog)")
                self.assertEqual(shown[0], 0)
                self.assertTrue(shown[1], "the problem is named under the field")
                with self.assertRaisesRegex(ValidationError, "is not a valid domain"):
                    form.save()

    def test_count_computed_for_an_administrator_is_served_to_a_manager(self):
        """Matching Records is counted only for the Run As User and Settings
        administrators, but the field declares no ``depends_context('uid')``:
        its value goes into the transaction's cache, shared by every
        environment.  Once anything in the transaction reads the count as an
        administrator or with ``sudo()``, a manager reading the same
        configuration gets that number (what the Run As User sees) instead of
        "Counted for the Run As User and Settings administrators only"."""
        self.env["res.partner"].create([{"name": f"Leak {n}", "ref": f"LEAK-{n}"}
                                        for n in range(3)])
        config = self.make_config(filter_domain="[('ref', '=like', 'LEAK-%')]")
        self.assertEqual(config.sudo().filter_domain_count, 3)
        as_manager = config.with_user(self.sync_manager)
        self.assertEqual((as_manager.filter_domain_count, as_manager.filter_domain_problem),
                         (0, ONLY_FOR_THEM))


@tagged("post_install", "-at_install")
class TestI19ScriptWarningAttacks(BjApiSyncCase):
    def test_evaluate_scripts_that_end_without_result_get_no_warning(self):
        """An administrator keeps, in the Script dialog, an Evaluate script
        whose only ``result`` is gone when the script ends, so the field is
        written null, and the dialog's check (``binds_name``) says nothing:
        the name of a caught exception (Python deletes it at the end of the
        ``except`` block), a variable deleted with ``del``, a walrus inside a
        lambda (the lambda's own variable, even when the lambda sits in a
        comprehension), a ``global result`` in a function that never assigns
        it.  The issue's point 4: an Evaluate script that never sets
        ``result`` gets a warning."""
        lines = self.env["bj.api.sync.config.line"]
        for case, source in (
                ("the name of a caught exception",
                 "try:\n    value = datetime.strptime(request_data['birthday'], '%m/%d/%Y')\n"
                 "except ValueError as result:\n    value = None\n"),
                ("a deleted variable", "result = request_data.get('email')\ndel result\n"),
                ("a walrus in a lambda inside a comprehension",
                 "cleaners = [(lambda: (result := value.strip())) for value in ['a ']]\n"),
                ("a global declaration never assigned",
                 "def convert():\n    global result\n    return 1\n\nconvert()\n")):
            with self.subTest(case):
                checked = lines.check_python_script(source, "evaluate")
                self.assertFalse(checked["error"])
                self.assertTrue(checked["warning"], f"{case}: no warning, the field gets null")


@tagged("post_install", "-at_install")
class TestI19TestConnectionAttacks(LocalTimeoutsMixin, BjApiHttpCase):
    def test_manager_reads_what_an_administrators_configuration_serves(self):
        """An administrator's In configuration serves System Parameters as the
        administrator, behind a Bearer token (Settings administrators' alone: it
        runs as another user, its token reads as empty for managers).  An API
        Sync Manager, who may neither change it nor read System Parameters,
        clicks Test Connection on it: the server calls the endpoint with the
        administrator's token, as the administrator, and logs the answer, whose
        Response Body the manager then reads in Logs: the first record the
        configuration serves, a secret value included.  Test Connection reaches
        what the manager's own rights and a write would refuse."""
        admin = self.env.ref("base.user_admin")
        self.env["ir.config_parameter"].set_param("bj.attack.secret", "S3CRET-VALUE")
        self.env["ir.config_parameter"].set_param("web.base.url", self.base_url())
        model = "ir.config_parameter"
        config = self.env["bj.api.sync.config"].create({
            "name": "Parameters", "request_type": "in", "endpoint": "parameters",
            "model_id": self.env["ir.model"]._get_id(model),
            "http_method_ids": [Command.set(self.method_get.ids)],
            "authorization_type": "bearer_token", "bearer_token": generated_secret(),
            "run_as_user_id": admin.id,
            "filter_domain": "[('key', '=', 'bj.attack.secret')]",
            "line_ids": [Command.create({
                "field_id": self.env["ir.model.fields"]._get(model, name).id,
                "external_key": name, "is_identifier": name == "id"})
                for name in ("id", "key", "value")],
        })
        manager = self.sync_manager
        self.assertFalse(self.env[model].with_user(manager).has_access("read"))
        self.assertTrue(config.with_user(manager).admin_only)
        # Refused, as a write would be (bj.api.sync.config._bj_check_may_use).
        with self.assertRaisesRegex(AccessError, "Test Connection uses the configuration's "
                                    "credentials .* Only Settings administrators may change"):
            config.with_user(manager).action_test_connection()
        self.env.invalidate_all()
        seen = self.env["bj.api.log"].with_user(manager).search(
            [("config_id", "=", config.id)]).mapped("response_body")
        self.assertNotIn("S3CRET-VALUE", "\n".join(filter(None, seen)),
                         "the manager reads a System Parameter through Test Connection")





@tagged("post_install", "-at_install")
class TestI19FilterDomainOracle(BjApiSyncCase):
    def test_a_hidden_record_is_read_through_database_errors(self):
        """An API Sync Manager, Run As User of their own configuration and in
        one company only, types in the Filter Domain a condition on a contact
        of another company, which their record rules hide, followed by
        ``('name', '=like', '\\')``: a pattern PostgreSQL refuses only when it
        compares it with a row.  The row reaches that comparison only when the
        conditions before it hold, so Matching Records (counted as the manager,
        but PostgreSQL tests the record rule after the written conditions)
        names "LIKE pattern must not end with escape character" exactly when
        the guess is right, and Save (which searches as the superuser) refuses
        exactly then.  One guess per keystroke, the manager reads the hidden
        contact's email: the count and the refusal are an oracle on records
        the Run As User may not read."""
        other = self.env["res.company"].create({"name": "Other Company"})
        hidden = self.env["res.partner"].create({
            "name": "Hidden", "email": "alice@secret.example", "company_id": other.id})
        manager = self.sync_manager
        self.assertFalse(self.env["res.partner"].with_user(manager).search(
            [("id", "=", hidden.id)]), "the manager may not read the contact")
        config = self.make_config(run_as_user_id=manager.id).with_user(manager)
        outcomes = {}
        for guess in ("alice%", "bob%"):
            text = (f"[('id', '=', {hidden.id}), ('email', '=like', '{guess}'), "
                    "('name', '=like', '\\\\')]")
            form = Form(config)
            form.filter_domain = text
            counted = (form.filter_domain_count, bool(form.filter_domain_problem))
            try:
                with self.env.cr.savepoint():
                    form.save()
                saved = True
            except ValidationError:
                saved = False
            outcomes[guess] = (counted, saved)
        self.assertEqual(outcomes["alice%"], outcomes["bob%"],
                         "a right guess and a wrong one must look the same to the manager")
