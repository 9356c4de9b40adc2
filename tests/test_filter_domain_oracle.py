"""A Filter Domain tells a user nothing about records they may not read.

Matching Records counts as the Run As User, and Save checks the domain: neither
may answer differently because of a record hidden from that user.  PostgreSQL
tests record rules after the written conditions, so a value it refused only
when comparing it with a row would be such an answer (``check_patterns``); the
save check only plans the query.  The sweep walks every operator of Odoo's
domains over every kind of field, with ordinary and hostile values, once with a
hidden record matching the conditions before it and once without.
"""

from odoo.osv import expression
from odoo.tests import tagged

from .common import BjApiSyncCase

# Paths of res.partner: every kind of field a Filter Domain meets.
PATHS = ("name", "comment", "color", "partner_latitude", "date", "write_date", "is_company",
         "type", "parent_id", "child_ids", "category_id", "category_id.name")
VALUES = ("\\", "a\\", "%", "x", "", "2024-13-45", -1, 2**63, 1.5, True, None, [],
          [1, "a"], [("name", "=like", "\\")])


@tagged("post_install", "-at_install")
class TestDomainOracle(BjApiSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        other = cls.env["res.company"].create({"name": "Hidden Company"})
        cls.hidden = cls.env["res.partner"].create({
            "name": "Hidden", "email": "alice@secret.example", "company_id": other.id})
        cls.config = cls.make_config(run_as_user_id=cls.sync_manager.id)

    def outcomes(self):
        """What the manager sees, for each domain of the sweep: the count, the
        problem named under the field, and Save's refusal."""
        seen = {}
        configs = self.env["bj.api.sync.config"].with_user(self.sync_manager)
        values = {name: self.config[name] for name in (
            "name", "request_type", "model_id", "run_as_user_id", "company_id")}
        for path in PATHS:
            for operator in expression.TERM_OPERATORS:
                for value in VALUES:
                    text = (f"[('id', '=', {self.hidden.id}), ('email', '=like', 'alice%'), "
                            f"({path!r}, {operator!r}, {value!r})]")
                    form = configs.new({**values, "filter_domain": text})
                    # Read first: the savepoint's rollback below empties the cache.
                    counted = (form.filter_domain_count, form.filter_domain_problem)
                    try:
                        with self.env.cr.savepoint():
                            form._bj_get_filter_domain()
                        refused = None
                    except Exception as error:  # noqa: BLE001 - compared, whatever it is
                        refused = f"{type(error).__name__}: {error}"
                    seen[text] = (*counted, refused)
        return seen

    def test_nothing_depends_on_a_hidden_record(self):
        self.assertFalse(self.env["res.partner"].with_user(self.sync_manager).search(
            [("id", "=", self.hidden.id)]), "the manager may not read the contact")
        matching = self.outcomes()
        self.hidden.email = "bob@secret.example"
        self.env.flush_all()
        missing = self.outcomes()
        differ = {text: (matching[text], missing[text]) for text in matching
                  if matching[text] != missing[text]}
        self.assertFalse(differ, "the manager can tell whether a hidden record matches: "
                                 + "\n".join(f"{text}: {a} / {b}"
                                             for text, (a, b) in list(differ.items())[:10]))
        # The sweep met both kinds of answers.
        self.assertTrue(any(problem for _count, problem, _refused in matching.values()))
        self.assertTrue(any(refused is None for *_seen, refused in matching.values()))
