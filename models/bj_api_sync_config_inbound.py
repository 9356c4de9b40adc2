"""The inbound REST API of ``bj.api.sync.config``: the request pipeline.

authenticate -> check method -> resolve configuration -> transform -> ORM ->
respond -> log.  The controller parses HTTP into an ``InboundCall`` and hands it
to :meth:`_inbound_serve`, which always answers and always logs.  Business
records are read and written as the configuration's Run As User, never as the
superuser, inside a savepoint: a failed request writes nothing.

What a request needs of its configuration is an ``InboundSpec``, built once and
cached in the registry, so that reading it costs no query; any change of a
configuration, a line or a parameter drops it (see ``bj.api.spec.source.mixin``).
"""

import json
import logging
import re
import time
from contextlib import nullcontext

import psycopg2

from odoo import api, models, tools
from odoo.exceptions import AccessError, UserError
from odoo.osv import expression
from odoo.service.model import PG_CONCURRENCY_EXCEPTIONS_TO_RETRY, _as_validation_error

from ..core import convert, inbound
from ..core.exceptions import MappingError
from ..core.inbound import InboundError, InboundResponse, InboundSpec, LineSpec
from ..core.mapping import SCRIPT_TYPES
from .bj_api_log import get_int_param

_logger = logging.getLogger("bj.api.inbound")

PARAM_MAX_BODY_SIZE = "bjet_api_sync.inbound_max_body_size"
DEFAULT_MAX_BODY_SIZE = 10 * 1024 * 1024
# Query keys with a meaning of their own; never read as field filters.
RESERVED_QUERY_KEYS = frozenset({"limit", "offset", "page", "order"})
ORDER_TERM = re.compile(r"^(?P<key>[^\s]+)(?:\s+(?P<direction>asc|desc))?$", re.IGNORECASE)
RELATIONAL_TYPES = ("many2one", "one2many", "many2many")
UNSORTABLE_TYPES = ("one2many", "many2many", "binary")
# Context key set on every inbound write, so outbound triggers can tell the
# change came from an external system and not echo it back.
INBOUND_CONTEXT_KEY = "bj_api_sync_inbound_config_id"

class BjApiSyncConfig(models.Model):
    _inherit = "bj.api.sync.config"

    # -- entry point ----------------------------------------------------------

    @api.model
    def _inbound_serve(self, call):
        """Answer one inbound HTTP call and write its log row.

        Serialization failures propagate so that Odoo retries the whole request
        in a fresh transaction (how concurrent idempotent duplicates resolve).
        """
        started = time.monotonic()
        spec = None
        secrets = inbound.submitted_secrets(call.header("Authorization"))
        try:
            spec = self._inbound_spec_for(call.endpoint)
            secrets += spec.secrets
            self._inbound_authorize(spec, call)
            payload = self._inbound_payload(spec, call)
            # A failed request must leave nothing behind; a read without scripts
            # has nothing to undo.
            reads_only = call.method == "GET" and not spec.has_scripts
            undo = nullcontext() if reads_only else self.env.cr.savepoint()
            with undo:
                response = self._inbound_execute(spec, call, payload)
        except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
            raise
        except Exception as error:  # noqa: BLE001 - every failure becomes an answer
            answer = self._inbound_error(error)
            response = inbound.error_response(answer)
            if answer.status == 500:
                # For the log only: the caller learns nothing about the server.
                response.error = f"{answer.message} {type(error).__name__}: {error}"
        self._inbound_log(spec, call, response, started, secrets)
        return response

    @api.model
    def _inbound_error(self, error, index=None):
        """The ``InboundError`` answering ``error``; unexpected ones are a bare 500."""
        if isinstance(error, InboundError):
            return error
        if isinstance(error, MappingError):
            index = error.index if error.index is not None else index
            return InboundError(400, error.message, line_id=error.line_id, index=index)
        if isinstance(error, AccessError):
            return InboundError(403, f"Access refused: {error.args[0]}", index=index)
        if isinstance(error, UserError):  # ValidationError included
            return InboundError(400, error.args[0], index=index)
        if isinstance(error, psycopg2.IntegrityError):
            return InboundError(400, _as_validation_error(self.env, error).args[0], index=index)
        if isinstance(error, psycopg2.DataError):
            return InboundError(
                400, f"The database refused a value: {error.diag.message_primary}", index=index
            )
        _logger.exception("Inbound API request failed unexpectedly")
        return InboundError(500, "Internal server error: the server log has the details.")

    # -- resolve, authenticate, check method --------------------------------------

    @api.model
    def _inbound_spec_for(self, endpoint):
        if not endpoint:
            raise InboundError(404, f"Name the endpoint: {inbound.API_PREFIX}/<endpoint>.")
        return self._inbound_spec(endpoint)

    @tools.ormcache("endpoint")
    def _inbound_spec(self, endpoint):
        """The ``InboundSpec`` of the active inbound configuration of ``endpoint``.

        Unknown endpoints raise, so they are not cached: callers cannot fill
        the cache with names of their choosing.
        """
        config = self.sudo().search(
            [("endpoint", "=", endpoint), ("request_type", "=", "in")], limit=1
        )
        if not config:
            raise InboundError(
                404, f"No active inbound configuration has the endpoint {endpoint!r}."
            )
        model = self.env[config.model_name]

        def line_spec(line):
            return LineSpec(
                line.id, line.external_key or line.field_id.name, line.field_id.name,
                line.value_type, line.mapping_config_id.id or None,
            )

        identifier = config._get_identifier_line()
        snapshot = self._mapping_snapshot(config.id)
        # System parameters are in the spec too: changing one clears the registry
        # cache, and with it every cached spec.
        return InboundSpec(
            config_id=config.id,
            name=config.name,
            model_name=config.model_name,
            company_id=config.company_id.id or None,
            company_parent_path=config.company_id.parent_path or None,
            run_as_uid=config.run_as_user_id.id or None,
            authorization_type=config.authorization_type,
            login=config.login or "",
            password=config.password or "",
            bearer_token=config.bearer_token or "",
            signature_secret=config.signature_secret or "",
            secrets=tuple(config._bj_secret_values()),
            networks=tuple(config._get_ip_networks()),
            rate_limit=config.rate_limit_per_minute,
            limit=config.limit,
            is_paginated=config.is_paginated,
            page_size=config.page_size,
            methods=frozenset(config.http_method_ids.mapped("name")),
            scope_domain=tuple(config._get_scope_domain()),
            identifier=line_spec(identifier) if identifier else None,
            identifier_type=identifier.field_id.ttype or "",
            lines=tuple(line_spec(line) for line in config.line_ids
                        if line.field_id.name in model._fields),
            params=tuple((param.key, param.field_id.name, param.domain_operator)
                         for param in config.param_ids),
            mapping_snapshot=snapshot,
            has_scripts=any(
                value in SCRIPT_TYPES
                for model_name, name, _ids, values in snapshot
                if (model_name, name) == ("bj.api.sync.config.line", "value_type")
                for value in values
            ),
            max_body_size=get_int_param(self.env, PARAM_MAX_BODY_SIZE, DEFAULT_MAX_BODY_SIZE),
            log_body_max_size=self.env["bj.api.log"]._body_max_size(),
        )

    @api.model
    def _inbound_authorize(self, spec, call):
        """IP allowlist, rate limit, credentials, then the HTTP method."""
        address = inbound.client_address(
            call.remote_addr, call.header("X-Forwarded-For"), tools.config["proxy_mode"]
        )
        if not inbound.address_allowed(address, spec.networks):
            raise InboundError(403, f"Address {address} is not in the IP Allowlist.")
        if spec.rate_limit:
            wait = self.env["bj.api.rate.limit"]._hit(spec.config_id, spec.rate_limit)
            if wait:
                raise InboundError(
                    429,
                    f"More than {spec.rate_limit} calls per minute: retry in {wait} s.",
                    headers={"Retry-After": str(wait)},
                )
        if not inbound.check_credentials(
            spec.authorization_type, call.header("Authorization"),
            login=spec.login, password=spec.password, token=spec.bearer_token,
        ):
            raise InboundError(
                401,
                "Missing or invalid credentials.",
                headers={"WWW-Authenticate": inbound.challenge(spec.authorization_type)},
            )
        allowed = inbound.allowed_methods(spec.methods, call.identifier is not None)
        if call.method not in allowed:
            raise InboundError(
                405,
                f"Method {call.method} is not allowed here; "
                f"allowed: {', '.join(allowed) or 'none'}.",
                headers={"Allow": ", ".join(allowed)},
            )

    @api.model
    def _inbound_payload(self, spec, call):
        """Read the body (413), check its signature (401) and parse it (415/400)."""
        body = call.body(spec.max_body_size)
        if spec.signature_secret:
            reason = inbound.verify_signature(
                spec.signature_secret, call.header(inbound.SIGNATURE_HEADER), body, time.time()
            )
            if reason:
                raise InboundError(
                    401, reason, headers={"WWW-Authenticate": f'Signature realm="{inbound.REALM}"'}
                )
        if call.method not in ("POST", "PUT"):
            return None
        payload = inbound.parse_json_body(body, call.header("Content-Type"))
        if payload is None:
            raise InboundError(400, f"A {call.method} request needs a JSON body.")
        return payload

    # -- transform, ORM, respond ---------------------------------------------------

    @api.model
    def _inbound_model(self, spec):
        """The configuration's model as the Run As User, in the configuration's company."""
        user = self.env["res.users"].sudo().browse(spec.run_as_uid)
        if not user or user._is_superuser():
            raise InboundError(500, "The configuration has no valid Run As User.")
        company_id = spec.company_id or user.company_id.id
        env = self.env(
            user=user.id,
            su=False,
            context=dict(
                self.env.context,
                allowed_company_ids=[company_id],
                # The API log already records who created what; a chatter message
                # and a follower per record would only flood the integration user.
                mail_create_nolog=True,
                mail_create_nosubscribe=True,
                **{INBOUND_CONTEXT_KEY: spec.config_id},
            ),
        )
        model = env[spec.model_name]
        if "company_id" in model._fields:
            # Multi-company record rules test ('company_id', 'parent_of',
            # company_ids), which reads the company's parent_path, and with it
            # every column of res.company.  A company's place in the hierarchy
            # never changes (res.company refuses to write parent_id): the spec
            # keeps it, for the configuration's company.
            company = env["res.company"].browse(company_id)
            if company_id == spec.company_id:
                env.cache.insert_missing(
                    company, company._fields["parent_path"], [spec.company_parent_path]
                )
            else:
                company.sudo().fetch(["parent_path"])
        return model

    @api.model
    def _inbound_execute(self, spec, call, payload):
        """Replay a stored answer, or run the operation (and store its answer)."""
        key = inbound.idempotency_key(call) if call.method in inbound.WRITE_METHODS else None
        claim_id = None
        if key:
            claim_id, stored = self.env["bj.api.idempotency"]._claim(
                spec.config_id, key, f"{call.method} {call.path}"
            )
            if stored:
                return self._inbound_replay(stored)
        model = self._inbound_model(spec)
        if call.method == "GET":
            if call.identifier is None:
                response = self._inbound_list(spec, model, call.query_dict())
            else:
                response = self._inbound_get(spec, model, call.identifier)
        elif call.method == "POST":
            response = self._inbound_create(spec, model, payload)
        elif call.method == "PUT":
            response = self._inbound_update(spec, model, payload, call.identifier)
        else:
            response = self._inbound_delete(spec, model, call.identifier)
        if claim_id:
            self.env["bj.api.idempotency"]._complete(claim_id, response)
        return response

    @api.model
    def _inbound_replay(self, stored):
        return InboundResponse(
            stored.status_code,
            json.loads(stored.response_body),
            headers={"Idempotent-Replayed": "true"},
            res_model=stored.res_model or "",
            res_ids=[int(res_id) for res_id in (stored.res_ids or "").split(",") if res_id],
        )

    @api.model
    def _inbound_engine(self, spec, model):
        """The configuration, in ``model``'s environment, for the mapping engine.

        The engine runs scripts, looks related records up and reads the records
        it is given as the Run As User, without superuser rights.  That user
        usually may not read configurations, and reading them on every request
        would cost several queries: the spec keeps the mapping snapshot (Odoo
        checks access rights when it fetches, not when it reads the cache).
        """
        self._seed_mapping_snapshot(spec.mapping_snapshot)
        return self.sudo().browse(spec.config_id).with_env(model.env)

    @api.model
    def _inbound_stored_fields(self, spec, model):
        """The stored columns the lines read, fetched with the records in one query
        rather than every column of the model as the first field access would."""
        return [line.field_name for line in spec.lines
                if not line.is_script and model._fields[line.field_name].store]

    @api.model
    def _inbound_respond(self, spec, model, records, status=200, many=True, facts=None):
        """Answer with ``records``, whose mapped columns the caller has fetched."""
        rows = self._inbound_engine(spec, model)._export_records(records)
        return InboundResponse(
            status,
            inbound.success_body(rows if many else rows[0], **(facts or {})),
            res_model=spec.model_name,
            res_ids=records.ids,
        )

    @api.model
    def _inbound_identifier(self, spec, raw, index=None):
        """The identifier line and the ORM value of the identifier ``raw``."""
        line = spec.identifier
        if not line:
            raise InboundError(500, f"Configuration {spec.name!r} has no Record Identifier line.")
        try:
            return line, convert.from_json(spec.identifier_type, raw)
        except ValueError as error:
            raise InboundError(
                400, f"Invalid identifier {line.key!r}: {error}", line_id=line.line_id, index=index
            ) from error

    @api.model
    def _inbound_find(self, spec, model, identifier):
        """The one record in scope whose Record Identifier is ``identifier`` (404/409)."""
        line, value = self._inbound_identifier(spec, identifier)
        records = model.search_fetch(
            expression.AND([list(spec.scope_domain), [(line.field_name, "=", value)]]),
            self._inbound_stored_fields(spec, model),
            limit=2,
            order="id",  # any order tells one from several; the model's may cost joins
        )
        if not records:
            raise InboundError(404, f"No record with {line.key} = {identifier!r}.")
        if len(records) > 1:
            raise InboundError(409, f"Several records have {line.key} = {identifier!r}.")
        return records

    @api.model
    def _inbound_get(self, spec, model, identifier):
        return self._inbound_respond(spec, model, self._inbound_find(spec, model, identifier),
                                     many=False)

    @api.model
    def _inbound_delete(self, spec, model, identifier):
        record = self._inbound_find(spec, model, identifier)
        response = self._inbound_respond(spec, model, record, many=False)
        record.unlink()
        return response

    # -- lists ---------------------------------------------------------------------

    @api.model
    def _inbound_int(self, query, name, default, minimum):
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

    @api.model
    def _inbound_list(self, spec, model, query):
        """A page of the records in scope, filtered and ordered by the query."""
        limit = min(self._inbound_int(query, "limit", spec.limit, 1), spec.limit)
        offset = self._inbound_int(query, "offset", 0, 0)
        facts = {}
        if spec.is_paginated:
            page = self._inbound_int(query, "page", 1, 1)
            limit = min(spec.page_size, limit)
            if "page" in query:
                offset = (page - 1) * limit
            facts = {"page": page, "page_size": limit}
        domain = expression.AND([
            list(spec.scope_domain),
            self._inbound_param_domain(spec, model, query),
            self._inbound_filter_domain(spec, model, query),
        ])
        records = model.search_fetch(
            domain, self._inbound_stored_fields(spec, model), offset=offset, limit=limit,
            order=self._inbound_order(spec, model, query),
        )
        if len(records) < limit and (records or not offset):
            total = offset + len(records)
        else:
            total = model.search_count(domain)
        facts = {"count": len(records), "total": total, "limit": limit, "offset": offset, **facts}
        return self._inbound_respond(spec, model, records, facts=facts)

    @api.model
    def _inbound_query_value(self, model, field_name, raw, label, operator="="):
        """Convert a query-string value to what a domain on ``field_name`` compares."""
        field = model._fields[field_name]
        try:
            if operator in ("ilike", "not ilike"):
                return raw
            if operator == "in":
                return [
                    self._inbound_query_value(model, field_name, part.strip(), label)
                    for part in raw.split(",")
                    if part.strip()
                ]
            if field.type in RELATIONAL_TYPES:
                return convert.parse_id(raw)
            selection = None
            if field.type == "selection":
                selection = field._description_selection(model.env)
            return convert.from_json(field.type, raw, selection=selection)
        except ValueError as error:
            raise InboundError(400, f"Query parameter {label!r}: {error}.") from error

    @api.model
    def _inbound_param_domain(self, spec, model, query):
        """Domain terms of the Parameters rows present in the query string."""
        terms = [
            [(field_name, operator,
              self._inbound_query_value(model, field_name, query[key], key, operator))]
            for key, field_name, operator in spec.params
            if key in query and key not in RESERVED_QUERY_KEYS
        ]
        return expression.AND(terms) if terms else []

    @api.model
    def _inbound_filter_domain(self, spec, model, query):
        """Equality terms of ``<external key>=<value>`` query parameters."""
        param_keys = {key for key, _field, _operator in spec.params}
        terms = []
        for key, raw in query.items():
            line = spec.line(key)
            if line is None or key in RESERVED_QUERY_KEYS or key in param_keys:
                continue
            field = model._fields[line.field_name]
            if line.is_script or not field._description_searchable:
                raise InboundError(
                    400, f"Records cannot be filtered on {key!r}.", line_id=line.line_id
                )
            if line.value_type == "relational_mapping" and field.type in RELATIONAL_TYPES:
                # Compared with the related record's identifier, as the API shows it.
                child = self.sudo().browse(line.mapping_config_id)._get_identifier_line()
                path = f"{field.name}.{child.field_id.name}"
                value = self._inbound_query_value(
                    model.env[field.comodel_name], child.field_id.name, raw, key
                )
            else:
                path, value = field.name, self._inbound_query_value(model, field.name, raw, key)
            terms.append([(path, "=", value)])
        return expression.AND(terms) if terms else []

    @api.model
    def _inbound_order(self, spec, model, query):
        """``order=<key> [asc|desc], ...`` on mapped keys, as an ORM order."""
        raw = (query.get("order") or "").strip()
        if not raw:
            return None
        terms = []
        for part in raw.split(","):
            match = ORDER_TERM.match(part.strip())
            line = match and spec.line(match["key"])
            if not line:
                raise InboundError(
                    400,
                    f"Cannot order by {part.strip()!r}: use mapped keys, each optionally "
                    "followed by asc or desc.",
                )
            field = model._fields[line.field_name]
            if line.is_script or not field.store or field.type in UNSORTABLE_TYPES:
                raise InboundError(400, f"Cannot order by {line.key!r}.", line_id=line.line_id)
            terms.append(f"{field.name} {(match['direction'] or 'asc').lower()}")
        if not any(term.startswith("id ") for term in terms):
            terms.append("id asc")  # stable pages when the sort key has ties
        return ", ".join(terms)

    # -- writes --------------------------------------------------------------------

    @api.model
    def _inbound_items(self, spec, payload):
        """``(items, many)``: the JSON objects of a body that is an object or an array."""
        if isinstance(payload, dict):
            return [payload], False
        if not isinstance(payload, list):
            raise InboundError(400, "The body must be a JSON object or an array of objects.")
        if not payload:
            raise InboundError(400, "The batch is empty.")
        if len(payload) > spec.limit:
            raise InboundError(
                400, f"A batch holds at most {spec.limit} records; this one has {len(payload)}."
            )
        for index, item in enumerate(payload):
            if not isinstance(item, dict):
                raise InboundError(400, "Each record must be a JSON object.", index=index)
        return payload, True

    @api.model
    def _inbound_existing(self, spec, model, items, required, many):
        """The record in scope each item names by its identifier key, or None.

        One search for the whole batch.  With ``required`` (PUT without an
        identifier in the URL) the key is mandatory and the record must exist.
        """
        line = spec.identifier

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
            _line, value = self._inbound_identifier(spec, item[line.key], index if many else None)
            if value in wanted:
                fail(400, f"Records {wanted[value]} and {index} have the same {line.key} "
                          f"{item[line.key]!r}.", index)
            wanted[value] = index
        found = {}
        if wanted:
            domain = [(line.field_name, "in", list(wanted))]
            for record in model.search(expression.AND([list(spec.scope_domain), domain])):
                value = record[line.field_name]
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

    @api.model
    def _inbound_create(self, spec, model, payload):
        """POST: create the new records, update those whose identifier exists (upsert)."""
        items, many = self._inbound_items(spec, payload)
        existing = self._inbound_existing(spec, model, items, required=False, many=many)
        vals_list = self._inbound_import(spec, model, items, existing, many)
        new_indexes = [index for index, record in enumerate(existing) if record is None]
        created = self._inbound_orm_create(
            model, [vals_list[i] for i in new_indexes], new_indexes if many else [None]
        )
        records = dict(zip(new_indexes, created, strict=True))
        for index, record in enumerate(existing):
            if record is not None:
                self._inbound_orm_write(record, vals_list[index], index if many else None)
                records[index] = record
        ordered = model.browse([records[index].id for index in range(len(items))])
        status = 201 if new_indexes else 200
        return self._inbound_respond_written(spec, model, ordered, status=status, many=many)

    @api.model
    def _inbound_update(self, spec, model, payload, identifier):
        """PUT: update the record named in the URL, or those named in the body."""
        if identifier is not None:
            if not isinstance(payload, dict):
                raise InboundError(400, "The body must be one JSON object.")
            items, many = [payload], False
            existing = [self._inbound_find(spec, model, identifier)]
        else:
            items, many = self._inbound_items(spec, payload)
            existing = self._inbound_existing(spec, model, items, required=True, many=many)
        vals_list = self._inbound_import(spec, model, items, existing, many)
        for index, (record, vals) in enumerate(zip(existing, vals_list, strict=True)):
            self._inbound_orm_write(record, vals, index if many else None)
        records = model.browse([record.id for record in existing])
        return self._inbound_respond_written(spec, model, records, many=many)

    @api.model
    def _inbound_import(self, spec, model, items, existing, many):
        """ORM values of ``items``; a single object's errors carry no index."""
        try:
            return self._inbound_engine(spec, model)._import_values_list(items, existing)
        except MappingError as error:
            if not many:
                error.index = None
            raise

    @api.model
    def _inbound_respond_written(self, spec, model, records, status=200, many=True):
        """Answer with the records as stored (defaults, computed fields, x2many order)."""
        model.env.flush_all()
        records.invalidate_recordset()
        records.fetch(self._inbound_stored_fields(spec, model))
        return self._inbound_respond(spec, model, records, status=status, many=many)

    @api.model
    def _inbound_orm_create(self, model, vals_list, indexes):
        """Create all records at once; on failure, find the item at fault."""
        if not vals_list:
            return model
        if indexes == [None]:
            # A single object: the request's savepoint undoes it, no index to find.
            return model.create(vals_list)
        try:
            with self.env.cr.savepoint():
                return model.create(vals_list)
        except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
            raise
        except (UserError, psycopg2.IntegrityError, psycopg2.DataError) as error:
            if len(vals_list) == 1:
                raise self._inbound_error(error, indexes[0]) from error
            # Slow path, errors only: create one by one to name the culprit.
            for index, vals in zip(indexes, vals_list, strict=True):
                try:
                    with self.env.cr.savepoint():
                        model.create(vals)
                except (UserError, psycopg2.IntegrityError, psycopg2.DataError) as item_error:
                    raise self._inbound_error(item_error, index) from item_error
            raise

    @api.model
    def _inbound_orm_write(self, record, vals, index):
        if index is None:
            record.write(vals)
            return
        # In a batch, flush each write on its own so that an error names its item.
        try:
            with self.env.cr.savepoint():
                record.write(vals)
        except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
            raise
        except (UserError, psycopg2.IntegrityError, psycopg2.DataError) as error:
            raise self._inbound_error(error, index) from error

    # -- log -------------------------------------------------------------------------

    @api.model
    def _inbound_log(self, spec, call, response, started, secrets):
        query = "&".join(f"{key}={value}" for key, value in call.query)
        self.env["bj.api.log"].sudo()._write_log(
            {
                "config_id": spec.config_id if spec else False,
                "direction": "in",
                "method": call.method,
                "url": f"{call.path}?{query}" if query else call.path,
                "request_headers": call.headers,
                "request_body": call.body_if_read(),
                "status_code": response.status,
                "response_body": response.encode(),
                "duration_ms": int((time.monotonic() - started) * 1000),
                "state": "success" if response.is_success else "error",
                "error_message": response.error or False,
                "res_model": response.res_model or False,
                "res_ids": response.res_ids or False,
                "request_id": call.request_id,
                "company_id": (spec.company_id if spec else None) or False,
            },
            secrets=secrets,
            max_size=spec.log_body_max_size if spec else None,
        )
