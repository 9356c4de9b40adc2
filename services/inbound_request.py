"""One inbound REST call, from authentication to its log row.

The controller parses HTTP into an ``InboundCall`` and hands it to an
:class:`InboundRequest`, which always answers and always logs: resolve the
plan, authenticate, check the method, read the body, then map and run the ORM
operation as the configuration's Run As User (never the superuser; ``sudo()``
only touches the addon's own tables) inside a savepoint, so that a failed
request writes nothing.  The log row is written afterwards in the same
transaction, which commits it whether or not the work succeeded.  Creates and
updates (POST, PUT) touch a key row per identifier value (``bj.api.identifier.lock``)
in Odoo's REPEATABLE READ, so that concurrent upserts never duplicate a record
(see ``InboundRequest._settle``).
"""

import hashlib
import json
import logging
import re
import time
import traceback
from dataclasses import dataclass

import psycopg2
import psycopg2.errors

from odoo import models, tools
from odoo.exceptions import AccessDenied, AccessError, RedirectWarning, UserError
from odoo.osv import expression
from odoo.service.model import (
    MAX_TRIES_ON_CONCURRENCY_FAILURE,
    PG_CONCURRENCY_EXCEPTIONS_TO_RETRY,
    _as_validation_error,
)

from ..core import convert, engine, inbound
from ..core.exceptions import MappingError
from ..core.inbound import InboundError, InboundResponse
from ..core.plan import RELATIONAL_TYPES, X2MANY_TYPES
from . import run_as
from .filter_domain import scope_domain
from .quiet_cursor import QuietCursor
from .records import (
    Relations,
    StorableCheck,
    export_records,
    import_values,
    line_of_column,
    line_of_index,
    read_value,
)

_logger = logging.getLogger("bj.api.inbound")

# Query keys with a meaning of their own; never read as field filters.  A
# tuple: the 400 for an unknown key lists them in this order.
RESERVED_QUERY_KEYS = ("limit", "offset", "page", "order")
ORDER_TERM = re.compile(r"^(?P<key>[^\s]+)(?:\s+(?P<direction>asc|desc))?$", re.IGNORECASE)
UNSORTABLE_TYPES = (*X2MANY_TYPES, "binary")
# Errors of the ORM or the database that a caller's values cause: a 400 naming
# the batch item at fault.  The database's: its classes of errors about the
# values (22 data exception, 23 integrity constraint violation, 54 program limit
# exceeded: an index entry too large).  OverflowError: a number the ORM cannot
# round to the field's precision (1e308 on a monetary field).
DATABASE_CLIENT_ERRORS = (psycopg2.DataError, psycopg2.IntegrityError,
                          psycopg2.errors.ProgramLimitExceeded)
# ValueError and TypeError: raised by a model's own code on the caller's values;
# RedirectWarning: Odoo's refusal with a way out (a contact of an active user).
CLIENT_ERRORS = (UserError, RedirectWarning, *DATABASE_CLIENT_ERRORS, OverflowError,
                 ValueError, TypeError)
# The index an entry too large was for, as PostgreSQL names it.
INDEX_NAME = re.compile(r'for index "([^"]+)"')
# Context key set on every inbound write, so outbound triggers can tell the
# change came from an external system and not echo it back.
INBOUND_CONTEXT_KEY = "bj_api_sync_inbound_config_id"


# Key of the cursor's ``postcommit.data`` (a per-transaction dictionary of
# Odoo's that savepoints leave alone: ``precommit.data`` is cleared at every
# flush) under which an inbound request collects the records it creates or
# writes: {model name: ids}, filled at the ORM's lowest level (models/base.py),
# so that one2many commands and stored recomputations count too.
WRITTEN_KEY = "bjet_api_sync.inbound_written"


def note_written(records):
    """Record that ``records`` were created or written, while an inbound request
    collects (see WRITTEN_KEY)."""
    written = records.env.cr.postcommit.data.get(WRITTEN_KEY)
    if written is not None and records:
        written.setdefault(records._name, set()).update(records.ids)


@dataclass(frozen=True)
class InboundOrigin:
    """The value of INBOUND_CONTEXT_KEY: an object no RPC context can hold (JSON
    has no such type), so that no caller hides its own changes from outbound
    triggers by naming the key."""

    config_id: int
# The API log already records who created what: a chatter message and a
# follower per record would only flood the integration user.
WRITE_CONTEXT = {"mail_create_nolog": True, "mail_create_nosubscribe": True}
# An archived Run As User, or one not allowed in the configuration's company,
# turns the integration off until an administrator fixes it.
RUN_AS_OFF_STATUS = 503


class StoredElsewhere(Exception):  # noqa: N818 - a signal, not an error
    """Records created by an upsert whose identifier, as stored, is another
    record's: ``records`` maps their batch index to that record's id."""

    def __init__(self, records):
        super().__init__(records)
        self.records = records


class InboundRequest:
    """Serve one ``InboundCall`` in the request's environment ``env``."""

    def __init__(self, env, call, attempt=1):
        self.env = env  # the request's own (auth="none": no user yet)
        self.call = call
        # Odoo replays the whole request on a concurrency failure; on its last
        # try the failure is answered (503) and logged here instead.
        self.last_try = attempt >= MAX_TRIES_ON_CONCURRENCY_FAILURE
        self.started = time.monotonic()
        self.plan = None
        self.secrets = inbound.submitted_secrets(call.header("Authorization"))
        # Every statement of the request, its work on the caller's values
        # included: a statement the database refuses is answered, not logged
        # with the caller's data (see QuietCursor); a concurrency failure is
        # Odoo's to retry (it logs the retry at INFO), or answered 503 at the
        # last try, and an unexpected error is logged by _error, without values.
        self.cr = QuietCursor(env.cr)
        self.env = env(cr=self.cr)

    # -- entry point ------------------------------------------------------------

    def serve(self):
        """The answer to the call; its log row is written in the same transaction."""
        try:
            inbound.check_call_text(self.call)
            self.plan = self._resolve_plan()
            self.secrets += list(self.plan.secrets)
            self._authorize()
            payload = self._payload()
            data = self.cr.postcommit.data
            data[WRITTEN_KEY] = {}
            try:
                with self.cr.savepoint():
                    response = self._execute(payload)
            finally:
                data.pop(WRITTEN_KEY, None)
        except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
            if not self.last_try:
                raise
            response = inbound.error_response(InboundError(
                503, "The records are busy with concurrent changes: retry in a moment.",
                headers={"Retry-After": "1"},
            ))
        except Exception as error:  # noqa: BLE001 - every failure becomes an answer
            answer = self._error(error)
            response = inbound.error_response(answer)
            if answer.status == 500:
                # For the log only: the caller learns nothing about the server.
                response.error = f"{answer.message} {type(error).__name__}: {error}"
        self._log(response)
        return response

    def _error(self, error, index=None):
        """The ``InboundError`` answering ``error``; unexpected ones are a bare 500."""
        if isinstance(error, InboundError):
            return error
        if isinstance(error, MappingError):
            index = error.index if error.index is not None else index
            return InboundError(400, error.message, line_id=error.line_id, index=index)
        if isinstance(error, AccessError | AccessDenied):
            return InboundError(403, f"Access refused: {error.args[0]}", index=index)
        if isinstance(error, UserError | RedirectWarning):  # ValidationError included
            return InboundError(400, error.args[0], index=index)
        if isinstance(error, DATABASE_CLIENT_ERRORS):
            return self._database_error(error, index)
        if isinstance(error, OverflowError):
            return InboundError(400, f"A number is out of range: {error}.", index=index)
        if isinstance(error, ValueError | TypeError):
            # Raised by a model's own code on the caller's values (an unparsable
            # website): the caller's error.  The server log gets where, not the
            # message, which may quote the values.
            frame = traceback.extract_tb(error.__traceback__)[-1]
            _logger.warning("Inbound values refused by %s at %s:%s (%s)", frame.name,
                            frame.filename, frame.lineno, type(error).__name__)
            return InboundError(400, f"The values were refused: {error}", index=index)
        if isinstance(error, psycopg2.Error):
            # Its text may quote the caller's values (DETAIL): the server log gets
            # the kind of error and where it happened, not the values.
            _logger.error("Inbound API request failed unexpectedly: %s (SQLSTATE %s) %s\n%s",
                          type(error).__name__, error.pgcode, error.diag.message_primary,
                          "".join(traceback.format_tb(error.__traceback__)))
        else:
            _logger.exception("Inbound API request failed unexpectedly")
        return InboundError(500, "Internal server error: the server log has the details.")

    def _database_error(self, error, index):
        """The 400 answering what the database refused of the caller's values,
        naming the line when the database names the column or the index."""
        line = line_of_column(self.env.registry, self.plan, error.diag.table_name,
                              error.diag.column_name)
        index_name = INDEX_NAME.search(error.diag.message_primary or "")
        if not line and index_name:
            line = line_of_index(self.env.cr, self.env.registry, self.plan, index_name[1])
        if isinstance(error, psycopg2.IntegrityError):
            # Read as the superuser: it names the model and fields of the constraint.
            message = _as_validation_error(self.env(su=True), error).args[0]
        elif isinstance(error, psycopg2.DataError):
            message = f"The database refused a value: {error.diag.message_primary}"
        else:
            message = f"A value is too large for the database: {error.diag.message_primary}"
        if line:
            message = f"Invalid value for {line.label!r}: {message}"
        return InboundError(400, message, line_id=line and line.line_id, index=index)

    # -- resolve, authenticate, read the body -------------------------------------

    def _resolve_plan(self):
        endpoint = self.call.endpoint
        if not endpoint:
            raise InboundError(404, f"Name the endpoint: {inbound.API_PREFIX}/<endpoint>.")
        configs = self.env["bj.api.sync.config"].sudo()
        try:
            return configs._bj_plan_for(configs._bj_inbound_config_id(endpoint))
        except LookupError:
            raise InboundError(
                404, f"No active inbound configuration has the endpoint {endpoint!r}."
            ) from None

    def _authorize(self):
        """IP allowlist, failed authentications of the address, credentials and
        signature; then the rate limit, which counts authenticated calls only,
        and the HTTP method."""
        plan, call = self.plan, self.call
        address = inbound.client_address(
            call.remote_addr, call.header("X-Forwarded-For"), tools.config["proxy_mode"]
        )
        if not inbound.address_allowed(address, plan.networks):
            raise InboundError(403, f"Address {address} is not in the IP Allowlist.")
        failures = self.env["bj.api.auth.failure"].sudo()
        wait = failures._bj_wait(address)
        if wait:
            raise InboundError(
                429,
                f"Too many failed authentications from {address}: retry in {wait} s.",
                headers={"Retry-After": str(wait)},
            )
        failure = self._authentication_failure()
        if failure:
            failures._bj_fail(address)
            raise failure
        if plan.rate_limit:
            wait = self.env["bj.api.rate.limit"].sudo()._bj_hit(plan.config_id, plan.rate_limit)
            if wait:
                raise InboundError(
                    429,
                    f"More than {plan.rate_limit} calls per minute: retry in {wait} s.",
                    headers={"Retry-After": str(wait)},
                )
        allowed = inbound.allowed_methods(plan.methods, call.identifier is not None)
        if call.method not in allowed:
            raise InboundError(
                405,
                f"Method {call.method} is not allowed here; "
                f"allowed: {', '.join(allowed) or 'none'}.",
                headers={"Allow": ", ".join(allowed)},
            )

    def _authentication_failure(self):
        """The 401 refusing the credentials or the signature, or None when both
        hold; the signature's check reads the body (413) and uses the signature."""
        plan, call = self.plan, self.call
        auth = plan.auth
        if not inbound.check_credentials(
            auth.type, call.header("Authorization"),
            login=auth.login, password=auth.password, token=auth.bearer_token,
        ):
            return InboundError(
                401,
                "Missing or invalid credentials.",
                headers={"WWW-Authenticate": inbound.challenge(auth.type)},
            )
        if not auth.signature_secret:
            return None
        body = call.body(plan.max_body_size)
        try:
            timestamp, signature = inbound.verify_signature(
                auth.signature_secret, call.header(inbound.SIGNATURE_HEADER), call.method,
                call.target, body, time.time(),
            )
        except InboundError as error:
            return error
        expires_at = timestamp + inbound.SIGNATURE_TOLERANCE
        if not self.env["bj.api.signature"].sudo()._bj_use(plan.config_id, signature, expires_at):
            return inbound.signature_error(
                f"This {inbound.SIGNATURE_HEADER} signature was already used: "
                "sign every request afresh."
            )
        return None

    def _payload(self):
        """Read the body (413) and parse it (415/400)."""
        plan, call = self.plan, self.call
        body = call.body(plan.max_body_size)
        if call.method not in ("POST", "PUT"):
            return None
        payload = inbound.parse_json_body(body, call.header("Content-Type"))
        if payload is None:
            raise InboundError(400, f"A {call.method} request needs a JSON body.")
        return payload

    # -- the operation, as the Run As User ------------------------------------------

    def _model(self):
        """The configuration's model as the Run As User, in the configuration's company."""
        plan = self.plan
        try:
            env = run_as.user_env(self.env, plan, **WRITE_CONTEXT,
                                  **{INBOUND_CONTEXT_KEY: InboundOrigin(plan.config_id)})
        except run_as.RunAsUserError as error:
            raise InboundError(RUN_AS_OFF_STATUS, error.args[0]) from None
        return env(cr=self.cr)[plan.model]

    def _execute(self, payload):
        """Replay a stored answer, or run the operation (and store its answer)."""
        call = self.call
        key = inbound.idempotency_key(call) if call.method in inbound.WRITE_METHODS else None
        idempotency = self.env["bj.api.idempotency"].sudo()
        claim_id = None
        if key:
            claim_id, stored = idempotency._bj_claim(
                self.plan.config_id, key, f"{call.method} {call.path}",
                hashlib.sha256(call.body_if_read()).hexdigest(),
            )
            if stored:
                return self._replay(stored)
        model = self._model()
        if call.method == "GET":
            if call.identifier is None:
                response = self._list(model, call.query_dict())
            else:
                response = self._respond(self._find(model, call.identifier), many=False)
        elif call.method == "POST":
            response = self._create(model, payload)
        elif call.method == "PUT":
            response = self._update(model, payload, call.identifier)
        else:
            record = self._find(model, call.identifier)
            response = self._respond(record, many=False)
            record.unlink()
        if claim_id:
            idempotency._bj_complete(claim_id, response)
        return response

    def _replay(self, stored):
        return InboundResponse(
            stored.status_code,
            json.loads(stored.response_body),
            headers={"Idempotent-Replayed": "true"},
            res_model=stored.res_model or "",
            res_ids=[int(res_id) for res_id in (stored.res_ids or "").split(",") if res_id],
        )

    def _respond(self, records, status=200, many=True, facts=None):
        """Answer with ``records`` as stored: an answer never runs import scripts."""
        rows = export_records(self.plan, records, with_scripts=False)
        return InboundResponse(
            status,
            inbound.success_body(rows if many else rows[0], **(facts or {})),
            res_model=self.plan.model,
            res_ids=records.ids,
        )

    def _identifier(self, model, raw, index=None):
        """The identifier line and the ORM value of the identifier ``raw``.

        Through a Mapping Model, the identifier means what the line maps: the id
        of the related record whose own identifier (in that configuration's
        scope) is ``raw``, or None when there is none, never ``raw`` read as an id.
        """
        line = self.plan.identifier
        if not line:
            raise InboundError(
                500, f"Configuration {self.plan.name!r} has no Record Identifier line."
            )
        try:
            if not line.is_mapping:
                return line, engine.identifier_value(self.plan, raw)
            child = line.child
            if not child.identifier:
                raise InboundError(
                    500, f"Mapping Model {child.name!r} of line {line.label!r} has no Record "
                         "Identifier line.", line_id=line.line_id)
            if isinstance(raw, dict):
                raw = raw.get(child.identifier.key)
            value = engine.identifier_value(child, raw)
            return line, Relations(model.env).ids_by_identifier(child, [value]).get(value)
        except ValueError as error:
            raise InboundError(
                400, f"Invalid identifier {line.label!r}: {error}", line_id=line.line_id,
                index=index) from error

    def _find(self, model, identifier, lock=False):
        """The one record in scope whose Record Identifier is ``identifier``
        (404/409); with ``lock``, found once its key row is touched (_touch)."""
        line, value = self._identifier(model, identifier)
        if value is None:
            raise InboundError(404, f"No record with {line.key} = {identifier!r}.")
        if lock:
            self._touch(self.plan.model, [(line.field, value)])
        records = model.search_fetch(
            expression.AND([scope_domain(model.env, self.plan), [(line.field, "=", value)]]),
            self.plan.stored_fields(),
            limit=2,
            order="id",  # any order tells one from several; the model's may cost joins
        )
        if not records:
            raise InboundError(404, f"No record with {line.key} = {identifier!r}.")
        if len(records) > 1:
            raise InboundError(409, f"Several records have {line.key} = {identifier!r}.")
        return records

    # -- lists ---------------------------------------------------------------------

    @staticmethod
    def _int(query, name, default, minimum):
        raw = query.get(name)
        if raw in (None, ""):
            return default
        try:
            value = convert.parse_integer(raw)
        except ValueError as error:
            raise InboundError(400, f"Query parameter {name!r}: {error}.") from error
        if value < minimum:
            raise InboundError(400, f"Query parameter {name!r} must be at least {minimum}.")
        return value

    def _check_query_keys(self, query):
        """Refuse (400) the query keys a list would not read, so that a misspelt or
        unmapped filter never answers unfiltered records."""
        plan = self.plan
        reserved = [key for key in RESERVED_QUERY_KEYS if key != "page" or plan.is_paginated]
        accepted = list(dict.fromkeys([
            *reserved,
            *(param.key for param in plan.params),
            *(line.key for line in plan.lines if line.searchable and not line.is_script),
        ]))
        # A mapped key that cannot be filtered on gets its own 400, naming its line.
        unknown = [key for key in query if key not in accepted
                   and (key in RESERVED_QUERY_KEYS or plan.line(key) is None)]
        if not unknown:
            return
        if unknown == ["page"]:
            raise InboundError(400, "Query parameter 'page': this list is not paginated; "
                                    "use limit and offset.")
        raise InboundError(
            400,
            f"Unknown query parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; accepted: {', '.join(accepted)}.",
        )

    def _list(self, model, query):
        """A page of the records in scope, filtered and ordered by the query."""
        plan = self.plan
        self._check_query_keys(query)
        limit = min(self._int(query, "limit", plan.limit, 1), plan.limit)
        offset = self._int(query, "offset", 0, 0)
        facts = {}
        if plan.is_paginated:
            page = self._int(query, "page", 1, 1)
            limit = min(plan.page_size, limit)
            if "page" in query:
                offset = (page - 1) * limit
            facts = {"page": page, "page_size": limit}
        domain = expression.AND([
            scope_domain(model.env, plan),
            self._param_domain(model, query),
            self._filter_domain(model, query),
        ])
        records = model.search_fetch(
            domain, plan.stored_fields(), offset=offset, limit=limit,
            order=self._order(model, query),
        )
        if len(records) < limit and (records or not offset):
            total = offset + len(records)
        else:
            total = model.search_count(domain)
        facts = {"count": len(records), "total": total, "limit": limit, "offset": offset, **facts}
        return self._respond(records, facts=facts)

    def _query_value(self, model, field_name, raw, label, operator="="):
        """Convert a query-string value to what a domain on ``field_name`` compares."""
        field = model._fields[field_name]
        try:
            if operator in ("ilike", "not ilike"):
                return raw
            if operator == "in":
                return [
                    self._query_value(model, field_name, part.strip(), label)
                    for part in raw.split(",")
                    if part.strip()
                ]
            if field.type in RELATIONAL_TYPES:
                return convert.parse_id(raw)
            selection = None
            if field.type == "selection":
                selection = [key for key, _label in field._description_selection(model.env)]
            return convert.from_json(field.type, raw, selection=selection)
        except ValueError as error:
            raise InboundError(400, f"Query parameter {label!r}: {error}.") from error

    def _param_domain(self, model, query):
        """Domain terms of the Parameters rows present in the query string."""
        terms = [
            [(param.field, param.operator,
              self._query_value(model, param.field, query[param.key], param.key, param.operator))]
            for param in self.plan.params
            if param.key in query and param.key not in RESERVED_QUERY_KEYS
        ]
        return expression.AND(terms) if terms else []

    def _filter_domain(self, model, query):
        """Equality terms of ``<external key>=<value>`` query parameters."""
        param_keys = {param.key for param in self.plan.params}
        terms = []
        for key, raw in query.items():
            line = self.plan.line(key)
            if line is None or key in RESERVED_QUERY_KEYS or key in param_keys:
                continue
            if line.is_script or not line.searchable:
                raise InboundError(
                    400, f"Records cannot be filtered on {line.label!r}.", line_id=line.line_id
                )
            if line.is_mapping and line.child.identifier:
                # Compared with the related record's identifier, as the API shows it.
                child = line.child.identifier
                path = f"{line.field}.{child.field}"
                value = self._query_value(model.env[line.comodel], child.field, raw, key)
            else:
                path, value = line.field, self._query_value(model, line.field, raw, key)
            terms.append([(path, "=", value)])
        return expression.AND(terms) if terms else []

    def _order(self, model, query):
        """``order=<key> [asc|desc], ...`` on mapped keys, as an ORM order."""
        raw = (query.get("order") or "").strip()
        if not raw:
            return None
        terms = []
        for part in raw.split(","):
            match = ORDER_TERM.match(part.strip())
            line = match and self.plan.line(match["key"])
            if not line:
                raise InboundError(
                    400,
                    f"Cannot order by {part.strip()!r}: use mapped keys, each optionally "
                    "followed by asc or desc.",
                )
            if line.is_script or not line.store or line.ttype in UNSORTABLE_TYPES:
                raise InboundError(400, f"Cannot order by {line.label!r}.", line_id=line.line_id)
            terms.append(f"{line.field} {(match['direction'] or 'asc').lower()}")
        if not any(term.startswith("id ") for term in terms):
            terms.append("id asc")  # stable pages when the sort key has ties
        return ", ".join(terms)

    # -- writes --------------------------------------------------------------------

    def _items(self, payload):
        """``(items, many)``: the JSON objects of a body that is an object or an array."""
        if isinstance(payload, dict):
            return [payload], False
        if not isinstance(payload, list):
            raise InboundError(400, "The body must be a JSON object or an array of objects.")
        if not payload:
            raise InboundError(400, "The batch is empty.")
        if len(payload) > self.plan.limit:
            raise InboundError(
                400,
                f"A batch holds at most {self.plan.limit} records (the configuration's Limit); "
                f"this one has {len(payload)}. Split it, or raise the Limit of the API "
                "Configuration.",
            )
        for index, item in enumerate(payload):
            if not isinstance(item, dict):
                raise InboundError(400, "Each record must be a JSON object.", index=index)
        return payload, True

    def _existing(self, model, items, required, many):
        """The record in scope each item names by its identifier key, or None.

        One search for the whole batch.  With ``required`` (PUT without an
        identifier in the URL) the key is mandatory and the record must exist.
        """
        line = self.plan.identifier

        def fail(status, message, index):
            raise InboundError(
                status, message, line_id=line and line.line_id, index=index if many else None
            )

        wanted = {}
        for index, item in enumerate(items):
            if line is None or item.get(line.key) is None:
                if required:
                    fail(400, "The record lacks its identifier.", index)
                continue
            _line, value = self._identifier(model, item[line.key], index if many else None)
            if value is None:
                # A related record that does not exist: the import refuses it (400).
                if required:
                    fail(404, f"No record with {line.key} = {item[line.key]!r}.", index)
                continue
            if value in wanted:
                fail(400, f"Records {wanted[value]} and {index} have the same {line.key} "
                          f"{item[line.key]!r}.", index)
            wanted[value] = index
        found = {}
        if wanted:
            self._touch(self.plan.model, [(line.field, value) for value in wanted])
            domain = [(line.field, "in", list(wanted))]
            scope = scope_domain(model.env, self.plan)
            for record in model.search(expression.AND([scope, domain])):
                value = record[line.field]
                value = value.id if isinstance(value, models.BaseModel) else value
                if value in found:
                    fail(409, f"Several records have {line.key} = {value!r}.", wanted[value])
                found[value] = record
        existing = [None] * len(items)
        for value, index in wanted.items():
            existing[index] = found.get(value)
            if required and existing[index] is None:
                fail(404, f"No record with {line.key} = {items[index][line.key]!r}.", index)
        return existing

    def _create(self, model, payload):
        """POST: create the new records, update those whose identifier exists (upsert)."""
        items, many = self._items(payload)
        existing = self._existing(model, items, required=False, many=many)
        try:
            with self.cr.savepoint():
                return self._upsert(model, items, existing, many, rebind=True)
        except StoredElsewhere as moved:
            # The value as stored is another record's: the upsert updates that one.
            for index, record_id in moved.records.items():
                existing[index] = model.browse(record_id)
        return self._upsert(model, items, existing, many, rebind=False)

    def _upsert(self, model, items, existing, many, rebind):
        vals_list = self._import(model, items, existing, many)
        new_indexes = [index for index, record in enumerate(existing) if record is None]
        created = self._orm_create(
            model, [vals_list[i] for i in new_indexes], new_indexes if many else [None]
        )
        records = dict(zip(new_indexes, created, strict=True))
        for index, record in enumerate(existing):
            if record is not None:
                self._orm_write(record, vals_list[index], index if many else None)
                records[index] = record
        self._settle(model, [(index, records[index], index in new_indexes)
                             for index in range(len(items))], many, rebind)
        ordered = model.browse([records[index].id for index in range(len(items))])
        status = 201 if new_indexes else 200
        return self._respond_written(ordered, status=status, many=many)

    def _update(self, model, payload, identifier):
        """PUT: update the record named in the URL, or those named in the body."""
        if identifier is not None:
            if not isinstance(payload, dict):
                raise InboundError(400, "The body must be one JSON object.")
            items, many = [payload], False
            existing = [self._find(model, identifier, lock=True)]
        else:
            items, many = self._items(payload)
            existing = self._existing(model, items, required=True, many=many)
        vals_list = self._import(model, items, existing, many)
        for index, (record, vals) in enumerate(zip(existing, vals_list, strict=True)):
            self._orm_write(record, vals, index if many else None)
        self._settle(model, [(index, record, False) for index, record in enumerate(existing)],
                     many, False)
        records = model.browse([record.id for record in existing])
        return self._respond_written(records, many=many)

    def _touch(self, model_name, pairs):
        """Touch the key rows of ``(field, value)`` pairs of ``model_name`` (see
        ``bj.api.identifier.lock``): a concurrent request of one of these
        identifier values waits for this transaction, then fails to serialize
        and is replayed on a snapshot that sees what this one committed."""
        keys = set()
        for field_name, value in pairs:
            keys.update(inbound.identifier_lock_keys(model_name, field_name, [value]))
        self.env["bj.api.identifier.lock"].sudo()._bj_touch(sorted(keys))

    def _identifier_plans(self, model_names):
        """Plans of the active inbound configurations of ``model_names`` that have
        a Record Identifier: each one's identifier must stay unique in its
        scope, whichever configuration writes it."""
        configs = self.env["bj.api.sync.config"].sudo()
        plans = []
        for config_id in configs.search([("request_type", "=", "in"),
                                         ("model_name", "in", list(model_names))]).ids:
            try:
                plan = configs._bj_plan_for(config_id)
            except UserError:
                continue  # a configuration that cannot compile serves no request either
            if plan.identifier:
                plans.append(plan)
        return plans

    def _scoped(self, model, plan):
        """``plan``'s model as its Run As User (unchecked: it only chooses records)
        and the domain of its scope: what that configuration's API sees."""
        if plan.config_id != self.plan.config_id:
            model = run_as.user_env(self.env, plan, check=False)(cr=self.cr)[plan.model]
        return model, scope_domain(model.env, plan)

    def _settle(self, model, written, many, rebind):
        """After the writes, keep every identifier unique, as stored.

        ``written``: ``(index, record, created)`` per item.  Every record the
        request created or wrote, of any model (``note_written``: one2many
        commands and stored recomputations included), is checked against every
        active inbound configuration of its model that has a Record Identifier:
        if the record is in that configuration's scope, its identifier value is
        read as stored (a model may rewrite it, a field round it, a
        dependency recompute it), its key row touched (_touch), then no other
        record in that scope may have it: else 409, the request's savepoint
        undoing its work.  Scope and searches are the configuration's Run As
        User's: records it cannot see do not exist for the API, so no answer
        depends on them.  With ``rebind``, a record the request created whose
        own identifier, as stored, is one other record's raises
        StoredElsewhere: the upsert updates that record instead."""
        model.env.flush_all()
        changed = self.cr.postcommit.data.get(WRITTEN_KEY) or {}
        items = {record.id: (index, created) for index, record, created in written}
        checks = []  # (plan, scoped model, scope, record, value)
        for plan in self._identifier_plans(changed):
            line = plan.identifier
            scoped, scope = self._scoped(model, plan)
            for record in scoped.search(expression.AND([
                    scope, [("id", "in", sorted(changed[plan.model]))]])):
                value = read_value(record, line)
                if value not in (None, False):
                    checks.append((plan, scoped, scope, record, value))
        for model_name in {check[0].model for check in checks}:
            self._touch(model_name, [(plan.identifier.field, value) for plan, *_rest, value
                                     in checks if plan.model == model_name])
        moved = {}
        for plan in {check[0].config_id: check[0] for check in checks}.values():
            line = plan.identifier
            mine = [check for check in checks if check[0] is plan]
            _plan, scoped, scope, *_rest = mine[0]
            holders = {}
            for record in scoped.search(expression.AND([
                    scope, [(line.field, "in", list({check[-1] for check in mine}))]])):
                holders.setdefault(read_value(record, line), []).append(record.id)
            for *_head, record, value in mine:
                others = [other for other in holders.get(value, []) if other != record.id]
                if not others:
                    continue
                ours = plan.model == self.plan.model and items.get(record.id)
                index, created = ours or (None, False)
                if (rebind and created and plan.config_id == self.plan.config_id
                        and len(others) == 1 and others[0] not in items
                        and others[0] not in moved.values()):
                    moved[index] = others[0]
                    continue
                where = "" if plan.config_id == self.plan.config_id else (
                    f" (the Record Identifier of configuration {plan.name!r})")
                raise InboundError(
                    409, f"Another record has {line.key} = {value!r}{where}.",
                    line_id=line.line_id if plan is self.plan else None,
                    index=index if many else None)
        if moved:
            raise StoredElsewhere(moved)

    def _import(self, model, items, existing, many):
        """ORM values of ``items``, refused (400) where the database would refuse
        them; a single object's errors carry no index."""
        try:
            vals_list = import_values(self.plan, model, items, existing)
            StorableCheck(self.plan).check(model, vals_list, existing)
            return vals_list
        except MappingError as error:
            if not many:
                error.index = None
            raise

    def _respond_written(self, records, status=200, many=True):
        """Answer with the records as stored (defaults, computed fields, x2many order)."""
        records.env.flush_all()
        records.invalidate_recordset()
        return self._respond(records, status=status, many=many)

    def _orm_create(self, model, vals_list, indexes):
        """Create all records at once; on failure, find the item at fault."""
        if not vals_list:
            return model
        if indexes == [None]:
            # A single object: the request's savepoint undoes it, no index to find.
            return model.create(vals_list)
        try:
            with self.cr.savepoint():
                return model.create(vals_list)
        except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
            raise
        except CLIENT_ERRORS as error:
            if len(vals_list) == 1:
                raise self._error(error, indexes[0]) from error
            # Slow path, errors only: create one by one to name the culprit.
            for index, vals in zip(indexes, vals_list, strict=True):
                try:
                    with self.cr.savepoint():
                        model.create(vals)
                except CLIENT_ERRORS as item_error:
                    raise self._error(item_error, index) from item_error
            raise

    def _orm_write(self, record, vals, index):
        if index is None:
            record.write(vals)
            return
        # In a batch, flush each write on its own so that an error names its item.
        try:
            with self.cr.savepoint():
                record.write(vals)
        except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
            raise
        except CLIENT_ERRORS as error:
            raise self._error(error, index) from error

    # -- log -------------------------------------------------------------------------

    def _log(self, response):
        """One log row, in the request's transaction: after the savepoint, so it
        commits whether or not the work did."""
        call, plan = self.call, self.plan
        query = "&".join(f"{key}={value}" for key, value in call.query)
        self.env["bj.api.log"].sudo()._bj_write_in_transaction(
            {
                "config_id": plan.config_id if plan else False,
                "direction": "in",
                "method": call.method,
                "url": f"{call.path}?{query}" if query else call.path,
                "request_headers": call.headers,
                "request_body": call.body_if_read(),
                "status_code": response.status,
                "response_body": response.encode(),
                "duration_ms": int((time.monotonic() - self.started) * 1000),
                "state": "success" if response.is_success else "error",
                "error_message": response.error or False,
                "res_model": response.res_model or False,
                "res_ids": response.res_ids or False,
                "request_id": call.request_id,
                "company_id": (plan.company_id if plan else None) or False,
            },
            secrets=self.secrets,
            max_size=plan.log_body_max_size if plan else None,
        )
