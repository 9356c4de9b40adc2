#!/usr/bin/env python3
"""Benchmark of the inbound REST API against Odoo's own ways of doing the same.

Run by ``make bench`` (scripts/harness.py) against one running Odoo server, with
BJET_BENCH_URL, BJET_BENCH_DB and BJET_ADDONS_PATH set and PostgreSQL reachable
through the usual PG* variables.  It logs in as admin/admin, creates its own
Bearer-protected configuration on Contacts (logging on, as always) and compares
records per second:

* single POST          vs JSON-RPC ``execute_kw`` ``create`` of the same partner
* POST of 100-record batches vs in-process ORM ``create(vals_list)`` (committed,
  with the API's context keys, so that neither side writes chatter messages)
* GET of one record    vs JSON-RPC ``search_read`` of the same record

Both sides of a comparison run the same number of times, one call each in
turn (which goes first alternates), and each call is timed on its own: a slow
spell of a shared machine then falls on both sides alike, where blocks of calls
would let it fall on one.  Every figure and ratio is printed; the exit code is 1
when a target ratio is missed.
"""

import os
import secrets
import sys
import time

import requests

URL = os.environ.get("BJET_BENCH_URL", "http://127.0.0.1:8069").rstrip("/")
DB = os.environ.get("BJET_BENCH_DB", "")
ADDONS_PATH = os.environ.get("BJET_ADDONS_PATH", "")
LOGIN, PASSWORD = "admin", "admin"

SINGLE_CALLS = 200
GET_CALLS = 750  # GETs are quick: more of them to average the noise out
BATCH_SIZE = 100
BATCH_CALLS = 10
WARM_UP = 10
TARGETS = {"single POST": 1.0, "batch POST": 0.7, "GET one": 1.0}


class JsonRpc:
    def __init__(self, session):
        self.session = session
        self.uid = self.call("common", "login", DB, LOGIN, PASSWORD)
        if not self.uid:
            sys.exit(f"cannot log in to {DB} as {LOGIN}")

    def call(self, service, method, *args):
        response = self.session.post(f"{URL}/jsonrpc", json={
            "jsonrpc": "2.0", "method": "call", "id": 1,
            "params": {"service": service, "method": method, "args": list(args)},
        }, timeout=60)
        response.raise_for_status()
        body = response.json()
        if "error" in body:
            raise RuntimeError(body["error"]["data"]["message"])
        return body["result"]

    def execute(self, model, method, *args, **kwargs):
        return self.call("object", "execute_kw", DB, self.uid, PASSWORD, model, method,
                         list(args), kwargs)


def make_configuration(rpc, token):
    endpoint = f"bench-{secrets.token_hex(4)}"
    field_ids = {
        name: rpc.execute("ir.model.fields", "search",
                          [("model", "=", "res.partner"), ("name", "=", name)])[0]
        for name in ("id", "name", "email", "phone")
    }
    method_ids = rpc.execute("bj.http.method", "search", [])
    rpc.execute("bj.api.sync.config", "create", [{
        "name": "Inbound benchmark",
        "request_type": "in",
        "endpoint": endpoint,
        "model_id": rpc.execute("ir.model", "search", [("model", "=", "res.partner")])[0],
        "http_method_ids": [(6, 0, method_ids)],
        "authorization_type": "bearer_token",
        "bearer_token": token,
        "run_as_user_id": rpc.uid,
        "limit": BATCH_SIZE,
        "line_ids": [
            (0, 0, {"sequence": 1, "field_id": field_ids["id"], "external_key": "res_id",
                    "value_type": "plain", "is_identifier": True}),
            (0, 0, {"sequence": 2, "field_id": field_ids["name"], "external_key": "name",
                    "value_type": "plain"}),
            (0, 0, {"sequence": 3, "field_id": field_ids["email"], "external_key": "email",
                    "value_type": "plain"}),
            (0, 0, {"sequence": 4, "field_id": field_ids["phone"], "external_key": "phone",
                    "value_type": "plain"}),
        ],
    }])
    return f"{URL}/bj_api_sync/v1/{endpoint}"


def partner(prefix, index):
    return {"name": f"{prefix} {index}", "email": f"{prefix.lower()}{index}@bench.example.com",
            "phone": f"+32 2 555 {index:04d}"}


def timed(function, count):
    started = time.perf_counter()
    for index in range(count):
        function(index)
    return time.perf_counter() - started


def timed_in_turn(ours, theirs, count):
    """Seconds spent in ``ours`` and in ``theirs`` over ``count`` calls of each."""
    spent = [0.0, 0.0]
    for index in range(count):
        order = ((0, ours), (1, theirs)) if index % 2 == 0 else ((1, theirs), (0, ours))
        for side, function in order:
            started = time.perf_counter()
            function(index)
            spent[side] += time.perf_counter() - started
    return spent


class OrmBaseline:
    """``create(vals_list)`` in this process, on the benchmark database, as admin."""

    def __init__(self):
        import odoo
        from odoo.modules.registry import Registry

        args = [f"--database={DB}", "--log-level=warn", "--max-cron-threads=0"]
        if ADDONS_PATH:
            args.append(f"--addons-path={ADDONS_PATH}")
        odoo.tools.config.parse_config(args)
        self.odoo = odoo
        self.registry = Registry(DB)

    def create_batch(self, vals_list):
        from odoo.addons.bjet_api_sync.services.inbound_request import WRITE_CONTEXT

        odoo = self.odoo
        with self.registry.cursor() as cr:
            env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
            admin = env.ref("base.user_admin")
            # The API's context keys: the same chatter work (none) on both sides.
            env(user=admin.id, context=WRITE_CONTEXT)["res.partner"].create(vals_list)
            env.flush_all()
        # Leaving the block commits, like the API request does.


def main():
    if not DB:
        sys.exit("BJET_BENCH_DB is not set")
    token = secrets.token_urlsafe(32)
    api, rpc_session = requests.Session(), requests.Session()
    api.headers.update({"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    rpc = JsonRpc(rpc_session)
    base = make_configuration(rpc, token)
    orm = OrmBaseline()

    def api_post(index, prefix="Api"):
        response = api.post(base, json=partner(prefix, index), timeout=60)
        assert response.status_code == 201, response.text
        return response.json()["data"]["res_id"]

    def rpc_create(index):
        rpc.execute("res.partner", "create", [partner("Rpc", index)])

    target_id = api_post(0, "Target")

    def api_get(_index):
        response = api.get(f"{base}/{target_id}", timeout=60)
        assert response.status_code == 200, response.text

    def rpc_read(_index):
        rpc.execute("res.partner", "search_read", [("id", "=", target_id)],
                    fields=["name", "email", "phone"])

    def api_batch(index):
        items = [partner("ApiBatch", index * BATCH_SIZE + i) for i in range(BATCH_SIZE)]
        response = api.post(base, json=items, timeout=120)
        assert response.status_code == 201, response.text

    def orm_batch(index):
        orm.create_batch(
            [partner("OrmBatch", index * BATCH_SIZE + i) for i in range(BATCH_SIZE)]
        )

    for function in (api_post, rpc_create, api_get, rpc_read):
        timed(function, WARM_UP)
    api_batch(10_000)
    orm_batch(10_000)

    comparisons = [
        ("single POST", api_post, rpc_create, SINGLE_CALLS, 1, "JSON-RPC create"),
        ("batch POST", api_batch, orm_batch, BATCH_CALLS, BATCH_SIZE, "ORM create"),
        ("GET one", api_get, rpc_read, GET_CALLS, 1, "JSON-RPC search_read"),
    ]
    failed = False
    print(f"Inbound API benchmark on {DB} at {URL} (logging on, calls in turn)")
    for name, ours, theirs, calls, records, reference in comparisons:
        ours_time, theirs_time = timed_in_turn(ours, theirs, calls)
        total = calls * records
        ours_rate, theirs_rate = total / ours_time, total / theirs_time
        ratio = ours_rate / theirs_rate
        verdict = "ok" if ratio >= TARGETS[name] else "MISSED"
        failed |= ratio < TARGETS[name]
        print(f"{name:12} {ours_rate:9.1f} records/s   {reference:22} {theirs_rate:9.1f} "
              f"records/s   ratio {ratio:5.2f} (target >= {TARGETS[name]:.1f}) {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
