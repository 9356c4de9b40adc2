"""Upserts that duplicated under a first fix (an advisory lock per identifier
value as sent, POST and PUT in READ COMMITTED), and what READ COMMITTED let
through.  Each must hold under the key rows of ``bj.api.identifier.lock``.

Four classes, each with more than one vector:
- an identifier value written by a request that does not hold that value's
  lock (a PUT renaming by URL, another configuration, a second line on the
  identifier field);
- a lookup and a lock on the value as sent, when the record stores another
  (a model that rewrites it, a field that rounds it), even inside one batch;
- an identifier through a Mapping Model compared as a raw id (POST overwrites,
  DELETE deletes a contact of another company);
- READ COMMITTED: a write computed from a row another transaction changes
  (stale stored computed fields, on the named row and on another one), an
  upsert racing a DELETE answered 400, and the rollback (to switch isolation)
  of what Odoo wrote before the controller.

Real transactions: a request is served on a cursor of its own and left
uncommitted while another one runs in a thread (which either finishes or waits
for a lock), then committed.  The READ COMMITTED tests hold under REPEATABLE
READ through Odoo's replay on a serialization failure.
"""

import secrets
import threading
import time

from werkzeug.test import Client

from odoo import SUPERUSER_ID, api, http
from odoo.service import security
from odoo.tests import tagged

from ..core import inbound
from ..services.inbound_request import InboundRequest
from .common import BjApiSyncCase
from .test_inbound_upsert_race import InboundWorkersMixin


class UpsertKit(InboundWorkersMixin):
    """Configurations, held requests and counts of the tests below."""

    def committed_lines_config(self, name, identifier, keys):
        """An inbound configuration on Contacts with plain lines ``keys`` (external
        key → field), identified by the key ``identifier``; returns its endpoint."""
        return self.committed_endpoint(name, [
            (field_name, key, {"is_identifier": key == identifier})
            for key, field_name in keys.items()])

    def _drop_data(self):
        with self.committed_env() as env:
            env.cr.execute("DELETE FROM res_partner WHERE website LIKE %s",
                           (f"%{self.tag}%",))
            # A line may name another of these configurations as its Mapping Model.
            env.cr.execute("DELETE FROM bj_api_sync_config_line WHERE config_id = ANY(%s)",
                           (self.config_ids,))
        return super()._drop_data()

    def refs(self, size, count=1):
        return [f"{self.tag}-{size}-{secrets.token_hex(3)}" for _index in range(count)]

    def held(self, method, endpoint, body=None, identifier=None):
        """A request served on a transaction of its own, not committed yet."""
        cr = self.registry.cursor()
        self.addCleanup(cr.close)
        answer = InboundRequest(api.Environment(cr, None, {}),
                                self.call(method, endpoint, body, identifier)).serve()
        return cr, answer

    def waiting_on_lock(self):
        with self.registry.cursor() as cr:
            cr.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                       " AND wait_event_type = 'Lock'")
            return cr.fetchone()[0] > 0

    def meanwhile(self, holder, *request):
        """Serve ``request`` in a thread while ``holder`` (a cursor) is open; commit
        ``holder`` once the request is done or waits for a lock; its answer."""
        result = {}

        def run():
            with self.registry.cursor() as cr:
                try:
                    result["answer"] = self.serve(cr, *request)
                except Exception as error:  # noqa: BLE001 - reported below
                    result["answer"] = error

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 30
        while thread.is_alive() and not self.waiting_on_lock():
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        holder.commit()
        thread.join(60)
        self.assertFalse(thread.is_alive())
        self.assertIsInstance(result["answer"], tuple, result["answer"])
        return result["answer"]

    def count(self, field, value):
        with self.committed_env() as env:
            return env["res.partner"].with_context(active_test=False).search_count(
                [(field, "=", value)])

    def mapped_identifier(self):
        """A configuration whose Record Identifier is a many2one with a Mapping
        Model: the body names the parent company by that configuration's
        identifier, its color index (an integer).  A company whose color is the
        id of another company, which has a contact (the bystander).  Returns
        ``(endpoint, color, company_id, bystander_id)``."""
        by_color = self.committed_lines_config("atk-color", "code",
                                               {"code": "color", "name": "name"})
        with self.committed_env() as env:
            other = env["res.partner"].create({"name": f"{self.tag}-other", "is_company": True})
            bystander = env["res.partner"].create({"name": f"{self.tag}-bystander",
                                                   "parent_id": other.id})
            company = env["res.partner"].create({"name": f"{self.tag}-company",
                                                 "is_company": True, "color": other.id})
            by_color_id = env["bj.api.sync.config"].search([("endpoint", "=", by_color)]).id
            ids = other.id, company.id, bystander.id
        endpoint = self.committed_endpoint("atk-by-company", [
            ("parent_id", "company", {"value_type": "relational_mapping",
                                      "mapping_config_id": by_color_id, "is_identifier": True}),
            ("name", "name", None),
        ])
        return endpoint, *ids

    def renamed_by_a_user(self, contact_id):
        """The cursor of a user's transaction that renamed the contact to
        <tag>-new, flushed, not committed yet."""
        user_cr = self.registry.cursor()
        self.addCleanup(user_cr.close)
        user_env = api.Environment(user_cr, SUPERUSER_ID, {})
        user_env["res.partner"].browse(contact_id).write({"name": f"{self.tag}-new"})
        user_env.flush_all()
        return user_cr

    def assertBystanderUntouched(self, bystander_id, parent_id, answer):
        with self.committed_env() as env:
            bystander = env["res.partner"].browse(bystander_id).exists()
            self.assertEqual((bystander.name, bystander.parent_id.id),
                             (f"{self.tag}-bystander", parent_id),
                             f"a contact of another company is left alone: {answer}")


@tagged("post_install", "-at_install")
class TestUpsertAttacks(UpsertKit, BjApiSyncCase):
    # -- an identifier written by a request that does not hold its lock ----------

    def test_put_renaming_to_an_identifier_races_a_post_of_it(self):
        """PUT /<old> {"ref": new} holds the lock of <old> only: a POST of <new>
        meanwhile creates a second record with ref <new>."""
        endpoint = self.committed_config("atk-rename", "ref", "ref")
        old, new = self.refs(2, 2)
        with self.committed_env() as env:
            env["res.partner"].create({"name": old, "ref": old})
        holder, answer = self.held("PUT", endpoint, {"ref": new, "name": f"{self.tag}-put"}, old)
        self.assertEqual(answer.status, 200, answer.body)
        self.meanwhile(holder, "POST", endpoint, {"ref": new, "name": f"{self.tag}-post"})
        self.assertEqual(self.count("ref", new), 1, "one record with the renamed identifier")

    def test_put_renaming_to_an_existing_identifier(self):
        """No race at all: PUT /<a> {"ref": <b>} when <b> exists makes two records
        with ref <b>; every later GET, PUT and DELETE of <b> answers 409."""
        endpoint = self.committed_config("atk-rename-seq", "ref", "ref")
        first, second = self.refs(2, 2)
        with self.committed_env() as env:
            env["res.partner"].create([{"name": first, "ref": first},
                                       {"name": second, "ref": second}])
        with self.registry.cursor() as cr:
            status, body, _headers, _tries = self.serve(cr, "PUT", endpoint, {"ref": second},
                                                        first)
        self.assertEqual(self.count("ref", second), 1, (status, body))

    def test_another_configuration_writes_the_identifier(self):
        """A configuration identified by email writes ref: it takes the lock of the
        email, not of the ref, and a POST of that ref by the configuration
        identified by ref creates a second record meanwhile."""
        by_ref = self.committed_config("atk-by-ref", "ref", "ref")
        by_email = self.committed_lines_config(
            "atk-by-email", "email", {"email": "email", "ref": "ref", "name": "name"})
        (ref,) = self.refs(3)
        email = f"{ref}@example.com"
        with self.committed_env() as env:
            env["res.partner"].create({"name": ref, "email": email})
        holder, answer = self.held("PUT", by_email, {"ref": ref}, email)
        self.assertEqual(answer.status, 200, answer.body)
        self.meanwhile(holder, "POST", by_ref, {"ref": ref, "name": f"{self.tag}-post"})
        self.assertEqual(self.count("ref", ref), 1, "one record with this ref")

    def test_a_second_line_on_the_identifier_field(self):
        """Two lines may map one field: POST {"ref": <new>, "code": <existing>}
        locks and looks up <new>, and creates a record whose ref is <existing>."""
        endpoint = self.committed_lines_config(
            "atk-two-lines", "ref", {"ref": "ref", "code": "ref", "name": "name"})
        new, existing = self.refs(5, 2)
        with self.committed_env() as env:
            env["res.partner"].create({"name": existing, "ref": existing})
        with self.registry.cursor() as cr:
            status, body, _headers, _tries = self.serve(
                cr, "POST", endpoint, {"ref": new, "code": existing, "name": f"{self.tag}-2"})
        self.assertEqual(self.count("ref", existing), 1, (status, body))

    # -- the identifier the search compares is not the one the record stores ----

    def test_one_batch_of_two_spellings_of_one_stored_identifier(self):
        """One batch: "<host>" and "http://<host>" are two identifiers for the
        request, one website once stored: two records."""
        endpoint = self.committed_lines_config("atk-website-batch", "website",
                                               {"website": "website", "name": "name"})
        website = f"{self.tag}.example.org"
        with self.registry.cursor() as cr:
            status, body, _headers, _tries = self.serve(cr, "POST", endpoint, [
                {"website": website, "name": f"{self.tag}-a"},
                {"website": f"http://{website}", "name": f"{self.tag}-b"}])
        self.assertLessEqual(self.count("website", f"http://{website}"), 1, (status, body))

    def test_an_identifier_the_model_rewrites(self):
        """A contact's website is stored cleaned ("example.com" becomes
        "http://example.com"): the upsert searches for what was sent, never finds
        what it created, and each POST makes another record."""
        endpoint = self.committed_lines_config("atk-website", "website",
                                               {"website": "website", "name": "name"})
        website = f"{self.tag}.example.com"
        for index in range(2):
            with self.registry.cursor() as cr:
                status, body, _headers, _tries = self.serve(
                    cr, "POST", endpoint, {"website": website, "name": f"{self.tag}-{index}"})
            self.assertIn(status, (200, 201), body)
        with self.committed_env() as env:
            found = env["res.partner"].search_count([("website", "like", website)])
        self.assertLessEqual(found, 1, "at most one record for one identifier")

    def test_an_identifier_the_field_rounds(self):
        """A float with digits (10, 7) stores 1.00000001 and 1.00000002 as
        1.0000000; their locks differ (the key is the value as sent), so
        concurrent POSTs of the two both create."""
        endpoint = self.committed_lines_config("atk-latitude", "lat",
                                               {"lat": "partner_latitude", "name": "name"})
        name = f"{self.tag}-lat"
        holder, answer = self.held("POST", endpoint, {"lat": 1.00000001, "name": name})
        self.assertEqual(answer.status, 201, answer.body)
        self.meanwhile(holder, "POST", endpoint, {"lat": 1.00000002, "name": name})
        with self.committed_env() as env:
            found = env["res.partner"].search_count([("name", "=", name)])
        self.assertLessEqual(found, 1, "at most one record with latitude 1.0000000")

    def test_an_identifier_through_a_mapping_model(self):
        """POST {"company": <color>}: the upsert looks for contacts whose parent's
        *id* is the color, not whose parent has it: it finds the bystander, a
        contact of another company, and overwrites it (name and company)."""
        endpoint, color, company_id, bystander_id = self.mapped_identifier()
        with self.registry.cursor() as cr:
            status, body, _headers, _tries = self.serve(
                cr, "POST", endpoint, {"company": color, "name": f"{self.tag}-posted"})
        self.assertBystanderUntouched(bystander_id, color, (status, body))
        with self.committed_env() as env:
            self.assertEqual(env["res.partner"].search_count([("parent_id", "=", company_id)]),
                             1 if status in (200, 201) else 0)

    def test_a_delete_through_a_mapping_model(self):
        """DELETE /<color>: the company with that color has no contact (404), but
        the bystander, whose company's id is the color, is deleted."""
        endpoint, color, _company_id, bystander_id = self.mapped_identifier()
        with self.registry.cursor() as cr:
            answer = self.serve(cr, "DELETE", endpoint, identifier=color)
        self.assertBystanderUntouched(bystander_id, color, answer)

    # -- READ COMMITTED: what REPEATABLE READ replayed, now answered -------------

    def test_an_upsert_racing_a_delete(self):
        """A DELETE of <ref> (not committed yet) and a POST upsert of <ref>: in any
        serial order the POST succeeds (it updates, then the DELETE removes; or
        the DELETE removes, then it creates).  Under READ COMMITTED the POST
        found the record, waits for the DELETE's row lock, updates nothing, and
        answers an error: a caller's valid upsert refused, nothing written."""
        endpoint = self.committed_config("atk-delete", "ref", "ref")
        (ref,) = self.refs(4)
        with self.committed_env() as env:
            env["res.partner"].create({"name": ref, "ref": ref})
        holder, answer = self.held("DELETE", endpoint, identifier=ref)
        self.assertEqual(answer.status, 200, answer.body)
        status, body, _headers, _tries = self.meanwhile(
            holder, "POST", endpoint, {"ref": ref, "name": f"{self.tag}-post"})
        # 503 is the addon's "busy, retry" answer, which loses nothing either.
        self.assertIn(status, (200, 201, 503), body)
        if status != 503:
            self.assertEqual(self.count("ref", ref), 1, "the upsert's record exists")

    # -- READ COMMITTED: a write computed from what another transaction changed --

    def test_a_concurrent_write_keeps_stored_computed_fields_consistent(self):
        """A user renames a contact in Odoo (REPEATABLE READ, not committed yet)
        while a PUT moves it under a company.  The PUT computes the contact's
        complete_name from the old name, waits for the user's row lock, and
        under READ COMMITTED overwrites the row with it: the name is new, the
        complete_name says the old one.  Under REPEATABLE READ the PUT's update
        failed to serialize and Odoo replayed it on the new name."""
        endpoint = self.committed_lines_config(
            "atk-parent", "ref", {"ref": "ref", "parent": "parent_id"})
        (ref,) = self.refs(1)
        with self.committed_env() as env:
            company = env["res.partner"].create({"name": f"{self.tag}-Company",
                                                 "is_company": True})
            contact = env["res.partner"].create({"name": f"{self.tag}-old", "ref": ref})
            company_id, contact_id = company.id, contact.id
        user_cr = self.renamed_by_a_user(contact_id)
        status, body, _headers, _tries = self.meanwhile(
            user_cr, "PUT", endpoint, {"parent": company_id}, ref)
        self.assertEqual(status, 200, body)
        with self.committed_env() as env:
            contact = env["res.partner"].browse(contact_id)
            self.assertEqual((contact.name, contact.parent_id.id), (f"{self.tag}-new", company_id))
            self.assertEqual(contact.complete_name, f"{self.tag}-Company, {self.tag}-new")


    def test_a_write_of_another_row_keeps_its_computed_fields_consistent(self):
        """The other way round, on a row the request does not name: a PUT renames
        a company, which recomputes its contact's complete_name, while a user
        renames that contact (not committed yet).  The PUT writes the contact's
        complete_name from the contact's old name over the user's committed
        row."""
        endpoint = self.committed_lines_config("atk-company", "ref",
                                               {"ref": "ref", "name": "name"})
        (ref,) = self.refs(2)
        with self.committed_env() as env:
            company = env["res.partner"].create({"name": f"{self.tag}-Old Co",
                                                 "is_company": True, "ref": ref})
            contact_id = env["res.partner"].create({"name": f"{self.tag}-old",
                                                    "parent_id": company.id}).id
        user_cr = self.renamed_by_a_user(contact_id)
        status, body, _headers, _tries = self.meanwhile(
            user_cr, "PUT", endpoint, {"name": f"{self.tag}-New Co"}, ref)
        self.assertEqual(status, 200, body)
        with self.committed_env() as env:
            contact = env["res.partner"].browse(contact_id)
            self.assertEqual(contact.name, f"{self.tag}-new")
            self.assertEqual(contact.complete_name, f"{self.tag}-New Co, {self.tag}-new")


@tagged("post_install", "-at_install")
class TestBeginRollback(InboundWorkersMixin, BjApiSyncCase):
    """What Odoo wrote before the controller stays: ``ir.http._authenticate``
    checks a session cookie and inserts the session's device log row
    (``res.device.log``, the "Devices" audit of a user) in the request's
    transaction.  Through Odoo's WSGI application, outside test mode, a GET and
    a POST keep that row (a first fix rolled it back for POST and PUT)."""

    def device_logs(self, sid):
        with self.committed_env() as env:
            env.cr.execute("SELECT count(*) FROM res_device_log WHERE session_identifier = %s",
                           [sid[:42]])
            return env.cr.fetchone()[0]

    def logged_in_session(self):
        """A saved session of the admin user, as after a login in the browser."""
        session = http.root.session_store.new()
        session.update(http.get_default_session(), db=self.registry.db_name)
        with self.committed_env() as env:
            session.uid = env.ref("base.user_admin").id
            session.session_token = security.compute_session_token(session, env)
        http.root.session_store.save(session)
        self.addCleanup(http.root.session_store.delete, session)
        return session.sid

    def test_the_device_log_of_a_session_survives(self):
        endpoint = self.committed_config("atk-device", "ref", "ref")
        client = Client(http.root, use_cookies=False)  # keeps the Cookie header
        path = f"{inbound.API_PREFIX}/{endpoint}"
        for method, body in (("GET", None), ("POST", {"ref": f"{self.tag}-r", "name": self.tag})):
            with self.subTest(method=method):
                sid = self.logged_in_session()
                response = client.open(
                    path, method=method, json=body,
                    headers={"Cookie": f"session_id={sid}", "User-Agent": "Mozilla/5.0 atk"})
                self.assertIn(response.status_code, (200, 201), response.get_data())
                self.assertEqual(self.device_logs(sid), 1, "the session's device is logged")


@tagged("post_install", "-at_install")
class TestStoredIdentifiers(UpsertKit, BjApiSyncCase):
    """What the answers say once identifiers are compared as stored, and the
    key rows' cleanup."""

    def test_a_rename_to_an_existing_identifier_is_a_409_naming_it(self):
        endpoint = self.committed_config("uniq-rename", "ref", "ref")
        first, second = self.refs(6, 2)
        with self.committed_env() as env:
            first_id = env["res.partner"].create({"name": first, "ref": first}).id
            env["res.partner"].create({"name": second, "ref": second})
        with self.registry.cursor() as cr:
            status, body, _headers, _tries = self.serve(
                cr, "PUT", endpoint, {"ref": second, "name": f"{self.tag}-x"}, first)
        self.assertEqual((status, body["error"]), (409, f"Another record has ref = {second!r}."))
        with self.committed_env() as env:
            self.assertEqual(env["res.partner"].browse(first_id).read(["name", "ref"])[0],
                             {"id": first_id, "name": first, "ref": first}, "nothing written")

    def test_another_configuration_is_named(self):
        self.committed_config("uniq-by-ref", "ref", "ref")
        by_email = self.committed_lines_config(
            "uniq-by-email", "email", {"email": "email", "ref": "ref", "name": "name"})
        (ref,) = self.refs(7)
        with self.committed_env() as env:
            env["res.partner"].create({"name": ref, "ref": ref})
        with self.registry.cursor() as cr:
            status, body, _headers, _tries = self.serve(
                cr, "POST", by_email, {"email": f"{ref}@example.com", "ref": ref, "name": ref})
        self.assertEqual(status, 409, body)
        self.assertEqual(body["error"], f"Another record has ref = {ref!r} (the Record "
                                        f"Identifier of configuration 'uniq-by-ref').")
        self.assertEqual(self.count("email", f"{ref}@example.com"), 0, "nothing written")

    def test_a_rewritten_identifier_updates_its_record(self):
        """The second POST of "<host>" finds the record stored as "http://<host>"
        and updates it."""
        endpoint = self.committed_lines_config("uniq-website", "website",
                                               {"website": "website", "name": "name"})
        website = f"{self.tag}.example.net"
        answers = []
        for index in range(2):
            with self.registry.cursor() as cr:
                answers.append(self.serve(cr, "POST", endpoint,
                                          {"website": website, "name": f"{self.tag}-{index}"}))
        (first, first_body, *_rest), (second, second_body, *_rest2) = answers
        self.assertEqual((first, second), (201, 200), second_body)
        self.assertEqual(first_body["data"]["website"], f"http://{website}")
        self.assertEqual(second_body["data"]["name"], f"{self.tag}-1")
        self.assertEqual(self.count("website", f"http://{website}"), 1)

    def test_get_put_delete_by_url_through_a_mapping_model(self):
        """/<color> names the contact of the company with that color."""
        endpoint, color, company_id, bystander_id = self.mapped_identifier()
        with self.committed_env() as env:
            contact_id = env["res.partner"].create({"name": f"{self.tag}-mine",
                                                    "parent_id": company_id}).id
        with self.registry.cursor() as cr:
            got = self.serve(cr, "GET", endpoint, identifier=color)
            put = self.serve(cr, "PUT", endpoint, {"name": f"{self.tag}-put"}, color)
            unknown = self.serve(cr, "GET", endpoint, identifier=color + 10**6)
        self.assertEqual((got[0], got[1]["data"]["name"]), (200, f"{self.tag}-mine"), got)
        self.assertEqual(put[0], 200, put)
        self.assertEqual(unknown[0], 404, unknown)
        with self.committed_env() as env:
            self.assertEqual(env["res.partner"].browse(contact_id).name, f"{self.tag}-put")
        with self.registry.cursor() as cr:
            deleted = self.serve(cr, "DELETE", endpoint, identifier=color)
        self.assertEqual(deleted[0], 200, deleted)
        with self.committed_env() as env:
            self.assertFalse(env["res.partner"].browse(contact_id).exists())
        self.assertBystanderUntouched(bystander_id, color, deleted)

    def test_old_key_rows_are_cleaned_up(self):
        locks = self.env["bj.api.identifier.lock"]
        keys = inbound.identifier_lock_keys("res.partner", "ref", [f"{self.tag}-{index}"
                                                                   for index in range(3)])
        locks._bj_touch(keys)
        self.env.cr.execute(
            "UPDATE bj_api_identifier_lock SET touched_at = touched_at - interval '2 hours'"
            " WHERE id = ANY(%s)", [keys[:2]])
        locks._gc_old_keys()
        self.env.cr.execute("SELECT id FROM bj_api_identifier_lock WHERE id = ANY(%s)", [keys])
        self.assertEqual([key for (key,) in self.env.cr.fetchall()], keys[2:])
