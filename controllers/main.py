"""Inbound REST API: ``/bj_api_sync/v1/<endpoint>[/<identifier>]``.

Thin on purpose: it turns the HTTP request into an ``InboundCall``, hands it to
an ``InboundRequest`` (services/inbound_request.py) and turns the answer back
into HTTP.  No session is ever saved, so no cookie is ever set.

The database is chosen the way Odoo chooses it for any route (a single
database, ``--database`` or ``--db-filter``), as for Odoo's own webhooks.
"""

from werkzeug.exceptions import ClientDisconnected

from odoo import http
from odoo.http import request

from ..core import inbound
from ..services.inbound_request import InboundRequest

ROUTE = inbound.API_PREFIX
# Odoo replays a request after a concurrency failure with the same WSGI
# environ: counting there tells the handler which try it serves.
ATTEMPT_KEY = "bjet_api_sync.attempt"


def read_body(httprequest):
    """The raw body; cached by werkzeug, so a retried request reads the same bytes."""
    try:
        return httprequest.get_data(cache=True)
    except ClientDisconnected:
        raise inbound.InboundError(
            400, "The client closed the connection before sending the whole body."
        ) from None


class BjApiSyncConfigController(http.Controller):
    @http.route(
        # The bare prefix too, so that a forgotten endpoint gets a JSON 404 as well.
        [ROUTE, f"{ROUTE}/<string:endpoint>",
         f"{ROUTE}/<string:endpoint>/<bj_api_path:identifier>"],
        type="http",
        auth="none",
        # Every method, so that PATCH, TRACE and friends get a logged JSON 405
        # instead of werkzeug's HTML page.
        methods=None,
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
        environ = httprequest.environ
        environ[ATTEMPT_KEY] = environ.get(ATTEMPT_KEY, 0) + 1
        call = inbound.InboundCall(
            method=httprequest.method,
            path=httprequest.path,
            endpoint=endpoint,
            identifier=identifier,
            headers=dict(httprequest.headers.items()),
            query=list(httprequest.args.items(multi=True)),
            remote_addr=httprequest.remote_addr,
            read_body=lambda: read_body(httprequest),
            content_length=httprequest.content_length,
            # The request line's path and query as sent, which a signature signs
            # (werkzeug's server and gunicorn keep it as RAW_URI).
            target=environ.get("RAW_URI", ""),
        )
        answer = InboundRequest(request.env, call, attempt=environ[ATTEMPT_KEY]).serve()
        return request.make_response(
            answer.encode(),
            headers=[("Content-Type", "application/json; charset=utf-8"), *answer.headers.items()],
            status=answer.status,
        )
