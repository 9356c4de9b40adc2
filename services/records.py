"""Business records as the mapping engine (core/engine.py) sees them.

The engine is pure: it maps rows of field values and asks its caller for what
needs the database.  This module is that caller's side, in one environment: it
reads records into rows, finds related records and runs scripts.
"""

import re

from odoo import models
from odoo.osv import expression

from ..core import engine
from ..core.engine import CREATE, Row
from ..core.exceptions import MappingError
from ..core.plan import X2MANY_TYPES
from .filter_domain import scope_domain
from .scripts import ScriptRunner


def read_value(record, line):
    value = record[line.field]
    if isinstance(value, models.BaseModel):
        return value.ids if line.ttype in X2MANY_TYPES else value.id
    return value


def read_rows(plan, records, with_scripts):
    """Rows of ``records`` for ``plan``, related rows of Mapping Model lines
    included.  Script lines' fields are not read when their scripts run."""
    # Only what the cache lacks (a search_fetch already read the columns of an
    # answer): fetch() checks access again, evaluating the record rules in
    # Python on every column of the model.
    cache = records.env.cache
    missing = [name for name in plan.stored_fields()
               if next(cache.get_missing_ids(records, records._fields[name]), None)]
    if missing:
        records.fetch(missing)
    rows = [Row({}, record) for record in records]
    for line in plan.lines:
        if (line.is_script and with_scripts) or not line.exchanges:
            continue
        if line.is_mapping:
            related = records[line.field]
            child_rows = dict(zip(related.ids, read_rows(line.child, related, with_scripts),
                                  strict=True))
            for row, record in zip(rows, records, strict=True):
                ids = record[line.field].ids
                row.values[line.field] = (
                    child_rows[ids[0]] if ids else None
                ) if line.ttype == "many2one" else [child_rows[i] for i in ids]
            continue
        for row, record in zip(rows, records, strict=True):
            row.values[line.field] = read_value(record, line)
    return rows


class Relations:
    """Related records, found in ``env`` (the engine's ``relations``)."""

    def __init__(self, env):
        self.env = env

    def existing_ids(self, model, ids):
        # A search, not exists(): ids of records the user may not read (record
        # rules, other companies) are refused like ids that do not exist.
        records = self.env[model].with_context(active_test=False).search([("id", "in", ids)])
        return set(records.ids)

    def ids_by_identifier(self, plan, values):
        wanted = list(dict.fromkeys(values))
        if not wanted:
            return {}
        field = plan.identifier.field
        records = self.env[plan.model].search(
            expression.AND([scope_domain(self.env, plan), [(field, "in", wanted)]])
        )
        found = {}
        for record in records:
            found.setdefault(read_value(record, plan.identifier), record.id)
        return found


def export_records(plan, records, with_scripts):
    """JSON objects of ``records`` (in their environment) through ``plan``."""
    rows = read_rows(plan, records, with_scripts)
    return engine.export_rows(plan, rows, ScriptRunner(records.env) if with_scripts else None)


def import_values(plan, model, items, existing=None):
    """ORM values of ``items`` for ``model`` (its environment runs the scripts)."""
    env = model.env
    return engine.import_items(plan, items, Relations(env), ScriptRunner(env), handles=existing)


# -- what the database takes ---------------------------------------------------------

# PostgreSQL refuses a B-tree index entry over 2,704 bytes (a third of a page);
# compression lets some longer values through, not all.  Text for an indexed
# column, or for a field that an indexed stored field is computed from (a
# contact's name makes its complete_name), is refused above this many bytes:
# the same answer whatever its compression, with room for the other columns of
# the entry.
INDEXED_TEXT_MAX_BYTES = 2000
BTREE_INDEXES = (True, "btree", "btree_not_null")
UNIQUE_COLUMNS = re.compile(r"unique\s*\(([^)]*)\)", re.IGNORECASE)
TEXT_TYPES = ("char", "text", "html")
# x2many commands that carry a record's values: CREATE (0, 0, vals), UPDATE (1, id, vals).
UPDATE = 1


def line_of_field(plan, model, field):
    """The first line of ``plan`` or of its Mapping Models filling ``model``'s ``field``."""
    for line in plan.lines:
        if line.model == model and line.field == field and line.exchanges:
            return line
        found = line.child and line_of_field(line.child, model, field)
        if found:
            return found
    return None


def line_of_column(registry, plan, table, column):
    """The line filling ``table``'s ``column`` (as the database names them), or
    else one filling a field that the column's stored field is computed from;
    None when no line does."""
    if not (plan and table and column):
        return None
    model = next((cls for cls in registry.values()
                  if cls._table == table and not cls._abstract), None)
    if model is None:
        return None
    line = line_of_field(plan, model._name, column)
    field = model._fields.get(column)
    if line or field is None:
        return line
    # Text first: a too large index entry is made of text (the name of a contact
    # rather than whether it is a company).
    sources = sorted({path.split(".")[0] for path in registry.field_depends[field]},
                     key=lambda name: (model._fields[name].type not in TEXT_TYPES, name))
    return next((line for name in sources if (line := line_of_field(plan, model._name, name))),
                None)


def line_of_index(cr, registry, plan, index):
    """The line filling a column of the database index named ``index``, or None."""
    cr.execute("""
        SELECT t.relname, a.attname FROM pg_index i
        JOIN pg_class x ON x.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(i.indkey)
        WHERE x.relname = %s
    """, [index])
    return next((line for table, column in cr.fetchall()
                 if (line := line_of_column(registry, plan, table, column))), None)


class StorableCheck:
    """Refuse (a MappingError naming the key and the item) the ORM values the
    database would refuse, before anything is written: a required field left
    empty, text longer than its field's ``size`` or too large for an index, and
    the same in the records that x2many commands create or update.  What it
    learns of a model is kept for the whole batch."""

    def __init__(self, plan):
        self.plan = plan
        self.indexed = {}  # model name: indexed_text_sources
        self.required = {}  # model name: (required fields to fill, their defaults)

    def check(self, model, vals_list, existing=None):
        existing = existing or [None] * len(vals_list)
        for index, (vals, record) in enumerate(zip(vals_list, existing, strict=True)):
            self._check_values(self.plan, model, vals, record is None, index)

    def _indexed(self, model):
        """Text fields of ``model`` whose values go into a B-tree index entry:
        indexed ones (by the field or a UNIQUE constraint), and those an
        indexed stored field is computed from."""
        if model._name not in self.indexed:
            names = {name for name, field in model._fields.items()
                     if field.index in BTREE_INDEXES}
            for _name, definition, _message in model._sql_constraints:
                for columns in UNIQUE_COLUMNS.findall(definition):
                    names.update(column.strip().strip('"') for column in columns.split(","))
            sources = set()
            for name in names:
                field = model._fields.get(name)
                if field is not None and field.store and field.type in TEXT_TYPES:
                    sources.add(name)
                    sources.update(path.split(".")[0] for path in model.pool.field_depends[field])
            self.indexed[model._name] = sources
        return self.indexed[model._name]

    def _required(self, model):
        """The required fields a new record must get, and their defaults.

        Not those Odoo fills itself: computed or related fields, and the link to
        an ``_inherits`` parent (created with the record)."""
        if model._name not in self.required:
            parents = set(model._inherits.values())
            names = [name for name, field in model._fields.items()
                     if field.required and field.store and not field.compute and not field.related
                     and name not in parents]
            self.required[model._name] = (names, model.default_get(names) if names else {})
        return self.required[model._name]

    def _check_values(self, plan, model, vals, creating, index, inverse=None):
        def refuse(name, reason):
            line = plan and line_of_field(plan, model._name, name)
            if line:
                raise MappingError(f"Invalid value for {line.label!r}: {reason}",
                                   line_id=line.line_id, index=index)
            # No line fills it (a required field the payload left out).
            raise MappingError(f"Invalid value for field {model._fields[name].string!r} "
                               f"({name}): {reason}", index=index)

        indexed = self._indexed(model)
        for name, value in vals.items():
            field = model._fields[name]
            if field.required and field.type != "boolean" and (value is None or value is False):
                refuse(name, "the field is required.")
            if isinstance(value, str):
                if field.type == "char" and field.size and len(value) > field.size:
                    refuse(name, f"longer than {field.size} characters.")
                if name in indexed and len(value.encode()) > INDEXED_TEXT_MAX_BYTES:
                    refuse(name, f"longer than {INDEXED_TEXT_MAX_BYTES} bytes, the most an "
                                 "indexed field takes.")
            if field.type in X2MANY_TYPES and isinstance(value, list | tuple):
                line = plan and line_of_field(plan, model._name, name)
                self._check_commands(line.child if line else None, model, field, value, index)
        if creating:
            names, defaults = self._required(model)
            for name in names:
                # The one2many creating the record fills its inverse.
                if name not in vals and name not in defaults and name != inverse:
                    refuse(name, "the field is required.")

    def _check_commands(self, plan, model, field, commands, index):
        comodel = model.env[field.comodel_name]
        for command in commands:
            if isinstance(command, list | tuple) and len(command) == 3 and \
                    command[0] in (CREATE, UPDATE) and isinstance(command[2], dict):
                self._check_values(plan, comodel, command[2], command[0] == CREATE, index,
                                   inverse=getattr(field, "inverse_name", None))
