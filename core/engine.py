"""The mapping engine: functions of (plan, data), no ORM.

``export_rows`` turns records, given as rows of field values, into JSON objects;
``import_items`` turns incoming JSON objects into ORM values.  What needs the
database is asked of the caller: ``relations`` finds related records, and
``scripts`` runs a line's Python Script (both see records only as the opaque
``handle`` of a :class:`Row`).

Scripts run in their configuration's direction: an ``In`` configuration's
scripts turn the incoming payload into field values, and its answers show the
values stored; an ``Out`` configuration's scripts compute payload values from
the record.  A script runs once per item and call.
"""

import datetime
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import convert
from .exceptions import MappingError
from .plan import X2MANY_TYPES, LinePlan

# ORM write commands, as tuples (odoo.fields.Command without the ORM).
SET, CREATE = 6, 0


def command_set(ids):
    return (SET, 0, list(ids))


def command_create(values):
    return (CREATE, 0, values)


@dataclass
class Row:
    """A record as the engine sees it: field values as ``read()`` gives them
    (many2one: an id or False; x2many: a list of ids), except that a line with a
    Mapping Model holds the related rows (a Row or None; a list of Rows)."""

    values: dict
    handle: Any = field(default=None, repr=False)  # the record, for scripts


class Relations(Protocol):
    def existing_ids(self, model: str, ids: list) -> set:
        """Which of ``ids`` are records of ``model`` the caller may use."""

    def ids_by_identifier(self, plan, values: list) -> dict:
        """``{identifier value: record id}`` of the records in ``plan``'s scope."""


class Scripts(Protocol):
    def __call__(self, line: LinePlan, handle, request_data: dict, index) -> tuple:
        """Run ``line``'s script; ``(has_value, value)``."""


# -- export ----------------------------------------------------------------------


def is_recordset(value):
    return hasattr(value, "_name") and hasattr(value, "ids")


def python_to_json(value):
    """JSON form of a value a script returned (records become ids)."""
    if is_recordset(value):
        return value.ids if len(value) != 1 else value.id
    if isinstance(value, datetime.datetime):
        return convert.to_json("datetime", value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list | tuple):
        return [python_to_json(item) for item in value]
    if isinstance(value, dict):
        return {key: python_to_json(item) for key, item in value.items()}
    return value


def export_rows(plan, rows, scripts=None):
    """JSON objects (External API Key -> value) of ``rows``, in order.

    With ``scripts`` (outbound payloads), script lines compute their value from
    the record and see the object built so far as ``request_data``; without
    (inbound answers), every line shows the value stored in its field, but
    Execute lines, which exchange no key.
    """
    objects = []
    for index, row in enumerate(rows):
        obj = {}
        for line in plan.lines:
            if not line.exchanges and scripts is None:
                continue
            if line.is_script and scripts is not None:
                has_value, value = scripts(line, row.handle, obj, index)
                if has_value:
                    obj[line.key] = python_to_json(value)
            elif line.is_mapping:
                related = row.values.get(line.field)
                if line.ttype == "many2one":
                    obj[line.key] = (export_rows(line.child, [related], scripts)[0]
                                     if related else None)
                else:
                    obj[line.key] = export_rows(line.child, related or [], scripts)
            else:
                obj[line.key] = convert.to_json(line.ttype, row.values.get(line.field))
        objects.append(obj)
    return objects


# -- import ----------------------------------------------------------------------


def _invalid(line, error, index):
    return MappingError(f"Invalid value for {line.label!r}: {error}", line_id=line.line_id,
                        index=index)


def _convert_plain(line, value, index):
    try:
        converted = convert.from_json(line.ttype, value, selection=line.selection)
    except ValueError as error:
        raise _invalid(line, error, index) from error
    if line.ttype in X2MANY_TYPES:
        return [command_set(converted)]
    return converted


def _ids_of(value):
    if isinstance(value, int) and not isinstance(value, bool):
        return {value}
    return {record_id for command in value for record_id in command[2]}


def _check_existing_ids(line, values_by_index, relations):
    """Plain many2one/x2many ids must be of records the user may read: one
    question for the whole batch."""
    wanted = set()
    for value in values_by_index.values():
        wanted |= _ids_of(value)
    if not wanted:
        return
    existing = relations.existing_ids(line.comodel, sorted(wanted))
    for index, value in values_by_index.items():
        missing = sorted(_ids_of(value) - existing)
        if missing:
            raise _invalid(line, f"no {line.comodel} record with id "
                           + ", ".join(str(i) for i in missing)
                           + " that the Run As User may read", index)


def identifier_value(plan, raw):
    """The ORM value of an identifier sent as JSON (raises ValueError)."""
    return convert.from_json(plan.identifier.ttype, raw)


def _identifier_values(line, raw_values, owners, relations):
    """Resolve identifier values through the Mapping Model's Record Identifier."""
    child = line.child
    if not child.identifier:
        raise MappingError(
            f"Mapping Model {child.name!r} of line {line.label!r} has no Record Identifier "
            "line.",
            line_id=line.line_id,
        )
    key = child.identifier.key
    converted = []
    for raw, owner in zip(raw_values, owners, strict=True):
        if isinstance(raw, dict):
            raw = raw.get(key)
        try:
            converted.append(identifier_value(child, raw))
        except ValueError as error:
            raise _invalid(line, error, owner) from error
    found = relations.ids_by_identifier(child, [v for v in converted if v is not False])
    resolved = []
    for value, owner in zip(converted, owners, strict=True):
        if value not in found:
            raise _invalid(line, f"no {child.model} record with {key} = {value!r}", owner)
        resolved.append(found[value])
    return resolved


def _import_mapping(line, items, present, relations, scripts):
    """Values of a Relational with Mapping Model line, by item index, for the
    ``present`` items that write its key."""
    key = line.key
    if line.ttype == "many2one":
        filled = [i for i in present if items[i][key] is not None]
        ids = _identifier_values(line, [items[i][key] for i in filled], filled, relations)
        result = dict(zip(filled, ids, strict=True))
        result.update({i: False for i in present if items[i][key] is None})
        return result
    for i in present:
        if not isinstance(items[i][key] or [], list):
            raise _invalid(line, "expected a list", i)
    result = {}
    if line.ttype == "one2many":
        for i in present:
            children = items[i][key] or []
            if not all(isinstance(child, dict) for child in children):
                raise _invalid(line, "expected a list of objects", i)
            child_vals = import_items(line.child, children, relations, scripts, parent_index=i)
            result[i] = [command_create(vals) for vals in child_vals]
        return result
    flat, owners = [], []
    for i in present:
        for value in items[i][key] or []:
            flat.append(value)
            owners.append(i)
    ids = _identifier_values(line, flat, owners, relations)
    for i in present:
        result[i] = [command_set([rid for rid, owner in zip(ids, owners, strict=True)
                                  if owner == i])]
    return result


def script_value_to_orm(line, value):
    """ORM value for what a line's script returned (raises ValueError).

    Records become ids, a list of ids a set command; a Relational with Python
    Script may also return ORM commands.  Other values are checked as the API
    checks JSON (:func:`convert.from_script`).
    """
    if is_recordset(value):
        if line.ttype == "many2one":
            return value[:1].id
        if line.ttype in X2MANY_TYPES:
            return [command_set(value.ids)]
        raise ValueError(f"{value._name} records cannot fill a field of type {line.ttype}")
    if line.ttype in X2MANY_TYPES and convert.is_command_list(value):
        return list(value)
    if not isinstance(value, datetime.date):  # kept whole: no ISO round trip
        value = python_to_json(value)
    converted = convert.from_script(line.ttype, value, selection=line.selection)
    return [command_set(converted)] if line.ttype in X2MANY_TYPES else converted


def _import_line(line, items, writes, relations, scripts, vals_list, handles):
    if line.is_script:
        for i, item in enumerate(items):
            if line.script.evaluates and not writes(i, line.key):
                continue
            has_value, value = scripts(line, handles[i], item, i)
            if has_value:
                try:
                    vals_list[i][line.field] = script_value_to_orm(line, value)
                except ValueError as error:
                    raise MappingError(
                        f"The script of line {line.label!r} returned a value its field cannot "
                        f"take: {error}", line_id=line.line_id, index=i,
                    ) from error
        return
    if not line.writable:
        return  # ``id`` and computed fields are read-only through the API
    present = [i for i, item in enumerate(items) if line.key in item and writes(i, line.key)]
    if line.is_mapping:
        values = _import_mapping(line, items, present, relations, scripts)
    else:
        values = {i: _convert_plain(line, items[i][line.key], i) for i in present}
        if line.comodel:
            _check_existing_ids(line, {i: v for i, v in values.items() if v}, relations)
    for i, value in values.items():
        vals_list[i][line.field] = value


def import_items(plan, items, relations, scripts, handles=None, parent_index=None):
    """ORM values for incoming JSON objects, one dict per item.

    ``handles`` (same length as ``items``, entries may be None) are the records
    being updated, given to scripts as ``record``.  Scripts may change their
    item (``request_data``) before later lines read it.  Keys that are not
    mapped are ignored.  An update writes only the keys its caller sent,
    whatever the scripts add to its item (Execute scripts always run; the
    other lines of keys not sent are skipped): a partial PUT changes only what
    it sends.  Errors name the item's index, or
    ``parent_index`` for the nested objects of a one2many.
    """
    handles = handles or [None] * len(items)
    vals_list = [{} for _item in items]
    sent = [frozenset(item) if isinstance(item, dict) else frozenset() for item in items]

    def writes(index, key):
        return handles[index] is None or key in sent[index]

    try:
        for position, item in enumerate(items):
            if not isinstance(item, dict):
                raise MappingError("Each record must be a JSON object.", index=position)
        for line in plan.lines:
            _import_line(line, items, writes, relations, scripts, vals_list, handles)
    except MappingError as error:
        if parent_index is not None:
            error.index = parent_index
        raise
    return vals_list
