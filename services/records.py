"""Business records as the mapping engine (core/engine.py) sees them.

The engine is pure: it maps rows of field values and asks its caller for what
needs the database.  This module is that caller's side, in one environment: it
reads records into rows, finds related records and runs scripts.
"""

from odoo import models
from odoo.osv import expression

from ..core import engine
from ..core.engine import Row
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
        if line.is_script and with_scripts:
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
