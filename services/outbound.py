"""What outbound calls need of the ORM, all read from the configuration's plan:
the records in scope, their payloads, the request headers and the log rows."""

from odoo.exceptions import AccessError
from odoo.osv import expression

from ..core import http_client, masking
from . import run_as
from .filter_domain import scope_domain
from .records import export_records


def delivery_model(env, plan):
    """The configuration's model as the outbox sees it when choosing records:
    as its Run As User, in its company, so that no record that user may not
    read is ever matched, queued or counted."""
    return run_as.user_env(env, plan, check=False, active_test=False)[plan.model]


def records_in_scope(env, plan, ids):
    """Existing records of ``ids`` in scope, in the given order, and the ids left out.

    In scope: those the Run As User may read (none when it may not read the
    model or a field of the Filter Domain) that match the Filter Domain and the Company."""
    model = delivery_model(env, plan)
    try:
        found = model.search(expression.AND([[("id", "in", list(ids))],
                                             scope_domain(model.env, plan)]))
    except AccessError:
        # The user may not read the model, or a field of the Filter Domain,
        # any more: it sees nothing, and nobody's save fails for it.
        return model.browse(), list(ids)
    position = {record_id: index for index, record_id in enumerate(ids)}
    records = found.sorted(key=lambda record: position[record.id])
    kept = set(found.ids)
    return records, [record_id for record_id in ids if record_id not in kept]


def export_payloads(env, plan, records):
    """JSON objects of ``records``, exported as the Run As User (its scripts too).

    Raises ``RunAsUserError`` when that user cannot run the configuration now,
    ``AccessError`` when it may not read a mapped field or one of the records."""
    records = records.with_env(run_as.user_env(env, plan, active_test=False))
    run_as.check_readable(plan, records)
    return export_records(plan, records, with_scripts=True)


def auth_headers(plan):
    auth = plan.auth
    return http_client.auth_headers(auth.type, auth.login, auth.password, auth.bearer_token)


def request_headers(plan, body=True):
    """Headers of an outbound request: JSON, authorization, then the Headers rows."""
    defaults = {"Accept": http_client.JSON_CONTENT_TYPE}
    if body:
        defaults["Content-Type"] = http_client.JSON_CONTENT_TYPE
    return http_client.merge_headers(defaults, auth_headers(plan), dict(plan.delivery.headers))


def log_values(plan, result, body=None, records_text=None, attempt=1, headers=None,
               error=None, job_id=False):
    """``bj.api.log`` values of one outbound attempt (``result`` None: never sent)."""
    delivery = plan.delivery
    values = {
        "config_id": plan.config_id,
        "company_id": plan.company_id or False,
        "direction": "out",
        "res_model": plan.model,
        "res_ids": records_text,
        "attempt": attempt,
        "job_id": job_id,
        "request_body": body,
        "request_headers": headers or {},
        "method": delivery.method if delivery else False,
        "url": delivery.url if delivery else False,
        "state": "error",
        "error_message": error,
    }
    if result is not None:
        values.update(
            method=result.method,
            url=result.url,
            status_code=result.status_code or 0,
            # A server may quote the URL it was sent, credentials and all.
            response_body=masking.mask_text(result.text, result.secrets),
            duration_ms=result.duration_ms,
            state="success" if result.ok else "error",
            error_message=error or result.error or (
                False if result.ok else f"HTTP {result.describe()}"
            ),
        )
    return values
