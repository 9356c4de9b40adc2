"""Deleting the addon's old rows (log rows, finished deliveries) in batches."""

from datetime import timedelta

from odoo import fields

from ..core.transactions import auto_commit

# Rows deleted per batch; each batch is committed, so the cleanup never holds
# long locks and an interrupted one keeps what it did.
BATCH_SIZE = 5_000


def delete_older_than(model, days, date_field, domain=()):
    """Delete the records of ``model`` (within ``domain``) whose ``date_field``
    is more than ``days`` days old; ``days`` <= 0 keeps everything.

    Oldest first, BATCH_SIZE at a time, committing after each batch outside
    tests (Odoo's autovacuum idiom).  Returns how many records were deleted.
    """
    if days <= 0:
        return 0
    cutoff = fields.Datetime.now() - timedelta(days=days)
    domain = [*domain, (date_field, "<", cutoff)]
    model = model.sudo().with_context(active_test=False)
    commit = auto_commit()
    deleted = 0
    # In id order: old rows come first on the primary key, whatever the model's _order.
    while records := model.search(domain, order="id", limit=BATCH_SIZE):
        records.unlink()
        deleted += len(records)
        if commit:
            model.env.cr.commit()
    return deleted
