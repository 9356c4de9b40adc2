"""Identifiers that the post-write check (``InboundRequest._settle``) does not
see as the other requests see them: a record moved into a configuration's
scope without its identifier being written, a translated identifier read in
the caller's language, and a check that searches as superuser where the Run
As User sees less (an oracle, and a POST redirected to a record the user may
not see), a one2many line creating another configuration's identifier, a
computed identifier (refused on save), archived records (out of scope, as
documented) and the key rows' cleanup under an old snapshot.  Each test fails
while its hole is open."""

from odoo import api
from odoo.exceptions import ValidationError
from odoo.tests import tagged

from ..core import inbound
from ..services.inbound_request import InboundRequest
from .common import BjApiSyncCase
from .test_inbound_upsert_attacks import UpsertKit
from .test_inbound_upsert_race import retrying


@tagged("post_install", "-at_install")
class TestIdentifierScopeAttacks(UpsertKit, BjApiSyncCase):

    def serve_in(self, cr, context, method, endpoint, body=None, identifier=None):
        """Like ``serve``, with the request context the controller would get
        (e.g. ``lang`` from the caller's Accept-Language)."""
        env = api.Environment(cr, None, dict(context))
        call = self.call(method, endpoint, body, identifier)
        tries = []

        def attempt():
            tries.append(1)
            return InboundRequest(env, call, attempt=len(tries)).serve()

        answer = retrying(attempt, env)
        return answer.status, answer.body

    def test_a_write_moves_a_record_into_the_scope(self):
        """Configuration A: identifier ref, scope "is a company".  Configuration B
        (identified by email) sets is_company on a person whose ref is a
        company's ref: the ref is not written, so _settle never checks A's
        scope, and A now has two records with that ref (every GET 409)."""
        by_ref = self.committed_config("scope-by-ref", "ref", "ref")
        by_email = self.committed_lines_config(
            "scope-by-email", "email",
            {"email": "email", "is_company": "is_company", "name": "name"})
        (ref,) = self.refs(20)
        email = f"{ref}@example.com"
        with self.committed_env() as env:
            env["bj.api.sync.config"].search([("endpoint", "=", by_ref)]).filter_domain = \
                "[('is_company', '=', True)]"
            env["res.partner"].create([
                {"name": f"{ref}-company", "ref": ref, "is_company": True},
                {"name": f"{ref}-person", "ref": ref, "email": email, "is_company": False}])
        with self.registry.cursor() as cr:
            put = self.serve(cr, "PUT", by_email, {"is_company": True}, email)
            got = self.serve(cr, "GET", by_ref, identifier=ref)
        self.assertEqual(got[0], 200, f"one record of ref {ref} in A's scope after {put[:2]}: "
                                      f"{got[:2]}")

    def _drop_categories(self):
        with self.committed_env() as env:
            env.cr.execute("DELETE FROM res_partner_category WHERE name->>'en_US' LIKE %s",
                           (f"{self.tag}%",))

    def _french(self):
        with self.committed_env() as env:
            lang = env["res.lang"].with_context(active_test=False).search(
                [("code", "=", "fr_FR")])
            was_active = lang.active
            env["res.lang"]._activate_lang("fr_FR")

        def restore():
            if not was_active:
                with self.committed_env() as env:
                    env["res.lang"].with_context(active_test=False).search(
                        [("code", "=", "fr_FR")]).active = False
        self.addCleanup(restore)

    def test_a_translated_identifier_in_two_languages(self):
        """The category name is translated; the caller's Accept-Language sets the
        request's lang.  A French caller renames <a> to <b> (fr only); an
        English POST of <b> finds nothing in English, creates, and _settle
        compares in English: no 409.  The French GET of <b> then sees two
        records (409)."""
        self._french()
        self.addCleanup(self._drop_categories)
        endpoint = self.committed_endpoint(
            "tr-category", [("name", "name", {"is_identifier": True})],
            model="res.partner.category")
        first, second = self.refs(21, 2)
        en, fr = {"lang": "en_US"}, {"lang": "fr_FR"}
        with self.registry.cursor() as cr:
            created = self.serve_in(cr, en, "POST", endpoint, {"name": first})
            renamed = self.serve_in(cr, fr, "PUT", endpoint, {"name": second}, first)
            posted = self.serve_in(cr, en, "POST", endpoint, {"name": second})
            got = self.serve_in(cr, fr, "GET", endpoint, identifier=second)
        self.assertEqual(got[0], 200, f"one category named {second}: {created}, {renamed}, "
                                      f"{posted}, {got}")

    def _other_company_partner(self, ref):
        with self.committed_env() as env:
            company = env["res.company"].create({"name": f"{self.tag}-co"})
            self.addCleanup(self._drop_company, company.id)
            partner = env["res.partner"].create({"name": f"{ref}-theirs", "ref": ref,
                                                 "company_id": company.id})
            return partner.id

    def _drop_company(self, company_id):
        with self.committed_env() as env:
            env.cr.execute("DELETE FROM res_partner WHERE company_id = %s", (company_id,))
            env["res.company"].browse(company_id).unlink()

    def test_a_post_is_no_oracle_of_another_company(self):
        """A shared configuration (no company) whose Run As User is in the main
        company only: POSTing a ref that a partner of another company holds
        answers otherwise than POSTing an unused one: _settle searches as
        superuser, the API client learns which refs the other company uses."""
        endpoint = self.committed_config("oracle-ref", "ref", "ref")
        with self.committed_env() as env:
            env["bj.api.sync.config"].search([("endpoint", "=", endpoint)]).company_id = False
        used, unused = self.refs(22, 2)
        theirs = self._other_company_partner(used)
        with self.registry.cursor() as cr:
            fresh = self.serve(cr, "POST", endpoint, {"ref": unused, "name": f"{self.tag}-a"})
            probe = self.serve(cr, "POST", endpoint, {"ref": used, "name": f"{self.tag}-b"})
        with self.committed_env() as env:
            their_name = env["res.partner"].browse(theirs).name
        self.assertEqual(their_name, f"{used}-theirs", "another company's partner untouched")
        self.assertEqual((probe[0], sorted(probe[1])), (fresh[0], sorted(fresh[1])),
                         f"the same kind of answer, whatever another company holds: "
                         f"{fresh[:2]} vs {probe[:2]}")

    def test_a_post_of_an_archived_records_identifier(self):
        """Archived records are out of a configuration's scope, as out of every
        Odoo search (active_test; docs/API.md): a POST of an
        archived contact's ref creates one active contact and leaves the
        archived one untouched."""
        by_ref = self.committed_config("arch-by-ref", "ref", "ref")
        (ref,) = self.refs(23)
        with self.committed_env() as env:
            archived = env["res.partner"].create(
                {"name": f"{ref}-old", "ref": ref, "active": False}).id
        with self.registry.cursor() as cr:
            posted = self.serve(cr, "POST", by_ref, {"ref": ref, "name": f"{ref}-new"})
        self.assertEqual(posted[0], 201, posted)
        with self.committed_env() as env:
            partners = env["res.partner"].with_context(active_test=False).search(
                [("ref", "=", ref)])
            self.assertEqual(sorted((p.name, p.active) for p in partners),
                             [(f"{ref}-new", True), (f"{ref}-old", False)])
            self.assertEqual(partners.filtered(lambda p: not p.active).id, archived)

    def test_a_computed_identifier_is_refused(self):
        """A stored computed field without inverse (commercial_company_name,
        computed from the name of a company) changes with its dependencies,
        which no request names: it cannot be an inbound Record Identifier."""
        with self.assertRaisesRegex(ValidationError, "is computed and cannot be written"):
            self.committed_lines_config(
                "comp-by-ccn", "company", {"company": "commercial_company_name", "name": "name"})

    def test_the_cleanup_under_a_snapshot_older_than_the_key(self):
        """A request whose snapshot predates another's POST of <ref> (and the
        key row's touch) must fail to serialize, however old the row: the
        cleanup keeps rows a live snapshot predates (an hour's age was not
        enough: nothing bounds a transaction in threaded mode), else that
        request touches the key afresh and creates a second record."""
        endpoint = self.committed_config("gc-ref", "ref", "ref")
        (ref,) = self.refs(25)
        old = self.registry.cursor()
        self.addCleanup(old.close)
        old.execute("SELECT 1")  # the old request's snapshot, taken first
        with self.registry.cursor() as cr:
            first = self.serve(cr, "POST", endpoint, {"ref": ref, "name": f"{ref}-1"})
        with self.committed_env() as env:
            env.cr.execute("UPDATE bj_api_identifier_lock"
                           " SET touched_at = touched_at - interval '2 hours' WHERE id = ANY(%s)",
                           [inbound.identifier_lock_keys("res.partner", "ref", [ref])])
            env["bj.api.identifier.lock"]._gc_old_keys()
        answer = failed = None
        try:
            answer = InboundRequest(api.Environment(old, None, {}), self.call(
                "POST", endpoint, {"ref": ref, "name": f"{ref}-2"})).serve()
            old.commit()
        except Exception as error:  # noqa: BLE001 - a serialization failure is the fix
            failed = error
            old.rollback()
        answer = answer and (answer.status, answer.body)
        self.assertEqual(self.count("ref", ref), 1,
                         f"one record of {ref}: {first[:2]}, {answer}, "
                         f"failed: {failed}")

    def test_a_one2many_creates_a_record_of_another_configurations_identifier(self):
        """Configuration P's child_ids line maps its contacts through
        configuration C (identified by ref): the contacts are created by a
        CREATE command in P's write; _settle checks only the records the request
        wrote itself, so a contact with an existing ref is created beside it."""
        by_ref = self.committed_config("o2m-child", "ref", "ref")
        with self.committed_env() as env:
            child_id = env["bj.api.sync.config"].search([("endpoint", "=", by_ref)]).id
        parent = self.committed_endpoint("o2m-parent", [
            ("name", "name", {"is_identifier": True}),
            ("child_ids", "contacts", {"value_type": "relational_mapping",
                                       "mapping_config_id": child_id}),
        ])
        (ref,) = self.refs(26)
        with self.committed_env() as env:
            env["res.partner"].create({"name": f"{ref}-existing", "ref": ref})
        with self.registry.cursor() as cr:
            posted = self.serve(cr, "POST", parent, {
                "name": f"{ref}-company", "contacts": [{"ref": ref, "name": f"{ref}-child"}]})
            got = self.serve(cr, "GET", by_ref, identifier=ref)
        self.assertEqual(self.count("ref", ref), 1,
                         f"one contact with ref {ref}: {posted[:2]}, {got[:2]}")
