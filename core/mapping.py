"""The mapping engine: Odoo records <-> JSON objects, through configuration lines.

One engine serves both directions.  ``export_records`` serialises records for
inbound GET answers and outbound payloads; ``import_values`` turns incoming
JSON objects into ORM values.  Both work column by column (one line for every
record, then the next line) so that prefetching and relational look-ups cost
one query per line and batch instead of one per record, while a script still
sees the changes that earlier lines made to its own ``request_data``.
"""

import base64
import datetime
import logging

from odoo import Command
from odoo.exceptions import UserError
from odoo.tools import float_compare
from odoo.tools import safe_eval as safe_eval_module
from odoo.tools.safe_eval import safe_eval

from . import convert
from .exceptions import MappingError

_logger = logging.getLogger("bj.api.mapping")

SCRIPT_TYPES = ("python_plain", "relational_python")
RELATIONAL_TYPES = ("many2one", "one2many", "many2many")
# Name of the variable a multi-statement Evaluate script assigns its value to.
RESULT_VARIABLE = "result"


# -- scripts -------------------------------------------------------------------


def script_context(env, model, records, record, request_data):
    """The variables a configuration line's Python Script can use."""
    return {
        "env": env,
        "model": model,
        "records": records,
        "record": record,
        "request_data": request_data,
        "time": safe_eval_module.time,
        "datetime": safe_eval_module.datetime,
        "dateutil": safe_eval_module.dateutil,
        "timezone": safe_eval_module.pytz.timezone,
        "float_compare": float_compare,
        "b64encode": base64.b64encode,
        "b64decode": base64.b64decode,
        "UserError": UserError,
        "Command": Command,
    }


def _is_expression(code):
    try:
        compile(code, "<script>", "eval")
    except SyntaxError:
        return False
    return True


def run_script(line, record, request_data, index=None):
    """Run ``line``'s script for ``record``; return ``(has_value, value)``.

    Evaluate mode yields the expression's value, or the ``result`` variable set
    by statements; Execute mode runs the statements for their side effects.
    Any failure, sandbox violations included, becomes a ``MappingError`` that
    names the line.
    """
    model = line.env[line.config_id.model_name]
    record = record if record is not None else model
    context = script_context(model.env, model, record, record, request_data)
    code = (line.python_script or "").strip()
    evaluate = line.script_mode != "execute"
    try:
        if evaluate and _is_expression(code):
            return True, safe_eval(code, context, mode="eval")
        safe_eval(code, context, mode="exec", nocopy=True)
    except UserError as error:
        raise MappingError(
            f"Script of line {line.external_key or line.field_id.name!r}: {error.args[0]}",
            line_id=line.id,
            index=index,
        ) from error
    except Exception as error:  # noqa: BLE001 - any script failure is the caller's error
        _logger.info("Script of configuration line %s failed: %s", line.id, error)
        raise MappingError(
            f"Script of line {line.external_key or line.field_id.name!r} failed: {error}",
            line_id=line.id,
            index=index,
        ) from error
    if evaluate:
        return RESULT_VARIABLE in context, context.get(RESULT_VARIABLE)
    return False, None


def python_to_json(value):
    """JSON form of a value a script returned (records become ids)."""
    if hasattr(value, "_name") and hasattr(value, "ids"):
        return value.ids if len(value) != 1 else value.id
    if isinstance(value, datetime.datetime):
        return convert.to_json("datetime", value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, (list, tuple)):
        return [python_to_json(item) for item in value]
    if isinstance(value, dict):
        return {key: python_to_json(item) for key, item in value.items()}
    return value


def script_value_to_orm(field, value):
    """ORM value for what a Relational with Python Script returned."""
    if hasattr(value, "_name") and hasattr(value, "ids"):
        if field.type == "many2one":
            return value[:1].id
        return [Command.set(value.ids)]
    if field.type in ("one2many", "many2many") and isinstance(value, (list, tuple)) and all(
        isinstance(item, int) and not isinstance(item, bool) for item in value
    ):
        return [Command.set(list(value))]
    return value


# -- export ----------------------------------------------------------------------


def _line_label(line):
    return line.external_key or line.field_id.name


def _export_column(line, records):
    """Values of one non-script line for every record, in order."""
    field_name = line.field_id.name
    ttype = line.field_id.ttype
    if line.value_type == "relational_mapping" and ttype in RELATIONAL_TYPES:
        related = records.mapped(field_name)
        child_export = export_records(line.mapping_config_id, related)
        child_rows = dict(zip(related.ids, child_export, strict=True))
        if ttype == "many2one":
            return [child_rows.get(record[field_name].id) for record in records]
        return [[child_rows[rid] for rid in record[field_name].ids] for record in records]
    return [convert.to_json(ttype, record[field_name]) for record in records]


def _fetch_mapped_columns(records, lines):
    """Read the columns the lines map, in one query, instead of every column of
    the model as the first field access would; nothing when already in cache."""
    cache = records.env.cache
    missing = [
        name for name in {line.field_id.name for line in lines
                          if line.value_type not in SCRIPT_TYPES}
        if name != "id" and records._fields[name].store
        and next(cache.get_missing_ids(records, records._fields[name]), None)
    ]
    if missing:
        records.fetch(missing)


def export_records(config, records):
    """Serialise ``records`` through ``config``'s lines: a list of JSON objects."""
    lines = config.line_ids.sorted("sequence")
    rows = [{} for _record in records]
    if not records:
        return rows
    _fetch_mapped_columns(records, lines)
    columns = {
        line.id: _export_column(line, records)
        for line in lines
        if line.value_type not in SCRIPT_TYPES
    }
    for line in lines:
        key = line.external_key or line.field_id.name
        if line.id in columns:
            for row, value in zip(rows, columns[line.id], strict=True):
                row[key] = value
            continue
        for index, (record, row) in enumerate(zip(records, rows, strict=True)):
            has_value, value = run_script(line, record, row, index=index)
            if has_value:
                row[key] = python_to_json(value)
    return rows


# -- import ----------------------------------------------------------------------


def _convert_plain(line, value, index):
    field = line.field_id
    model_field = line.env[line.config_id.model_name]._fields[field.name]
    selection = None
    if field.ttype == "selection":
        selection = model_field._description_selection(line.env)
    try:
        converted = convert.from_json(field.ttype, value, selection=selection)
    except ValueError as error:
        raise MappingError(
            f"Invalid value for {_line_label(line)!r}: {error}", line_id=line.id, index=index
        ) from error
    if field.ttype in ("one2many", "many2many"):
        return [Command.set(converted)]
    return converted


def _check_existing_ids(line, values_by_index, model_name):
    """Plain many2one/x2many ids must exist: one query for the whole batch."""
    wanted = set()
    for value in values_by_index.values():
        if isinstance(value, int) and not isinstance(value, bool):
            wanted.add(value)
        elif isinstance(value, list):
            for command in value:
                wanted.update(command[2])
    if not wanted:
        return
    existing = set(line.env[model_name].browse(sorted(wanted)).exists().ids)
    for index, value in values_by_index.items():
        ids = {value} if isinstance(value, int) else {i for c in value for i in c[2]}
        missing = sorted(ids - existing)
        if missing:
            raise MappingError(
                f"Invalid value for {_line_label(line)!r}: no {model_name} record with id "
                + ", ".join(str(i) for i in missing),
                line_id=line.id,
                index=index,
            )


def _identifier_values(child, raw_values, line, index_of):
    """Resolve identifier values through ``child``'s Record Identifier in one search."""
    identifier_line = child._get_identifier_line()
    if not identifier_line:
        raise MappingError(
            f"Mapping Model {child.name!r} of line {_line_label(line)!r} has no Record "
            "Identifier line.",
            line_id=line.id,
        )
    key = identifier_line.external_key or identifier_line.field_id.name
    converted = {}
    for position, raw in enumerate(raw_values):
        if isinstance(raw, dict):
            raw = raw.get(key)
        try:
            converted[position] = convert.from_json(identifier_line.field_id.ttype, raw)
        except ValueError as error:
            raise MappingError(
                f"Invalid value for {_line_label(line)!r}: {error}",
                line_id=line.id,
                index=index_of[position],
            ) from error
    found = child._records_by_identifier(list(converted.values()))
    resolved = []
    for position, value in converted.items():
        if value not in found:
            raise MappingError(
                f"Invalid value for {_line_label(line)!r}: no {child.model_name} record with "
                f"{key} = {value!r}",
                line_id=line.id,
                index=index_of[position],
            )
        resolved.append(found[value])
    return resolved


def _import_relational_mapping(line, items, indexes):
    """Values of a Relational with Mapping Model line for several items."""
    child = line.mapping_config_id
    key = line.external_key or line.field_id.name
    ttype = line.field_id.ttype
    result = {}
    present = [i for i in indexes if key in items[i]]
    if ttype == "many2one":
        raw = [items[i][key] for i in present if items[i][key] is not None]
        filled = [i for i in present if items[i][key] is not None]
        ids = _identifier_values(child, raw, line, filled)
        result.update(dict(zip(filled, ids, strict=True)))
        result.update({i: False for i in present if items[i][key] is None})
        return result
    for i in present:
        value = items[i][key]
        if value is None:
            value = []
        if not isinstance(value, list):
            raise MappingError(
                f"Invalid value for {key!r}: expected a list", line_id=line.id, index=i
            )
    if ttype == "one2many":
        for i in present:
            children = items[i][key] or []
            if not all(isinstance(child_item, dict) for child_item in children):
                raise MappingError(
                    f"Invalid value for {key!r}: expected a list of objects",
                    line_id=line.id,
                    index=i,
                )
            child_vals = import_values(child, children, parent_index=i)
            result[i] = [Command.create(vals) for vals in child_vals]
        return result
    flat, owners = [], []
    for i in present:
        for value in items[i][key] or []:
            flat.append(value)
            owners.append(i)
    ids = _identifier_values(child, flat, line, owners)
    for i in present:
        owned = [rid for rid, owner in zip(ids, owners, strict=True) if owner == i]
        result[i] = [Command.set(owned)]
    return result


def _import_line(line, field, items, records, vals_list):
    """Fill ``vals_list`` with the values of one line for every item."""
    indexes = range(len(items))
    key = line.external_key or line.field_id.name
    if line.value_type in SCRIPT_TYPES:
        for i in indexes:
            has_value, value = run_script(line, records[i], items[i], index=i)
            if has_value:
                if line.value_type == "relational_python":
                    value = script_value_to_orm(field, value)
                vals_list[i][field.name] = value
        return
    if field.name == "id" or (field.compute and not field.inverse):
        return  # ``id`` and computed fields are read-only through the API
    if line.value_type == "relational_mapping" and field.type in RELATIONAL_TYPES:
        values = _import_relational_mapping(line, items, indexes)
    else:
        values = {i: _convert_plain(line, items[i][key], i) for i in indexes if key in items[i]}
        if field.type in RELATIONAL_TYPES:
            _check_existing_ids(line, {i: v for i, v in values.items() if v}, field.comodel_name)
    for i, value in values.items():
        vals_list[i][field.name] = value


def import_values(config, items, records=None, parent_index=None):
    """Turn incoming JSON objects into ORM values, one dict per item.

    ``records`` (same length as ``items``, entries may be None) are the existing
    records being updated, given to scripts as ``record``.  Scripts may change
    their item (``request_data``) before later lines read it.  Keys that are not
    mapped are ignored; the identifier line is only written when it is a real
    field (not ``id``).  Errors name the item's index, or ``parent_index`` for
    the nested objects of a one2many.
    """
    records = records or [None] * len(items)
    model = config.env[config.model_name]
    vals_list = [{} for _item in items]
    try:
        for position, item in enumerate(items):
            if not isinstance(item, dict):
                raise MappingError("Each record must be a JSON object.", index=position)
        for line in config.line_ids.sorted("sequence"):
            _import_line(line, model._fields[line.field_id.name], items, records, vals_list)
    except MappingError as error:
        if parent_index is not None:
            error.index = parent_index
        raise
    return vals_list
