"""Inbound REST API: ``/bj_api_sync/v1/<endpoint>[/<identifier>]``.

Thin on purpose: it turns the HTTP request into an ``InboundCall``, hands it to
``bj.api.sync.config._inbound_serve`` (authentication, method check, mapping,
ORM, log) and turns the answer back into HTTP.  No session is ever saved, so
no cookie is ever set.

The database is chosen the way Odoo chooses it for any route (a single
database, ``--database`` or ``--db-filter``), as for Odoo's own webhooks.
"""

import functools

from odoo import SUPERUSER_ID, http
from odoo.http import request

from ..core import inbound

ROUTE = inbound.API_PREFIX


class BjApiSyncConfigController(http.Controller):
    @http.route(
        # The bare prefix too, so that a forgotten endpoint gets a JSON 404 as well.
        [ROUTE, f"{ROUTE}/<string:endpoint>", f"{ROUTE}/<string:endpoint>/<path:identifier>"],
        type="http",
        auth="none",
        methods=list(inbound.ROUTE_METHODS),
        csrf=False,
        save_session=False,
        # auth="none" routes start read-only by default; writes would be replayed.
        readonly=False,
    )
    def bj_api_sync(self, endpoint="", identifier=None, **_params):
        # A retried request (serialization failure) gets a fresh session object
        # whose saving is enabled again: disable it on every call.
        request.session.can_save = False
        httprequest = request.httprequest
        call = inbound.InboundCall(
            method=httprequest.method,
            path=httprequest.path,
            endpoint=endpoint,
            identifier=identifier,
            headers=dict(httprequest.headers.items()),
            query=list(httprequest.args.items(multi=True)),
            remote_addr=httprequest.remote_addr,
            # Cached by werkzeug, so a retried request reads the same bytes.
            read_body=functools.partial(httprequest.get_data, cache=True),
            content_length=httprequest.content_length,
        )
        env = request.env(user=SUPERUSER_ID, su=True)
        answer = env["bj.api.sync.config"]._inbound_serve(call)
        return request.make_response(
            answer.encode(),
            headers=[("Content-Type", "application/json; charset=utf-8"), *answer.headers.items()],
            status=answer.status,
        )
