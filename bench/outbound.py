#!/usr/bin/env python3
"""Outbound benchmark: outbox delivery rate and the cost of write triggers.

Run by ``make bench`` (scripts/harness.py), which passes BJET_BENCH_DB,
BJET_ADDONS_PATH and the PostgreSQL environment of a database where the addon
is installed.  Odoo is imported in-process against that database; a fast HTTP
sink runs in a child process on 127.0.0.1.  Measures, best of a few runs:

1. a plain ``requests.Session`` loop posting the payloads (the practical limit),
2. the outbox delivery worker, one record per request,
3. the outbox delivery worker, Page Size 100 per request,
4. 1,000 partner writes (one transaction each) with and without an on-write trigger,
   in alternate runs; with the trigger, the server's delivery cron is active, as in
   production, and its backlog is drained before the next run without.

Prints the figures and ratios; exits 1 when a target is missed.
"""

import asyncio
import json
import os
import subprocess
import sys
import time

RECORDS = 2000
WRITES = 1000
PAGE_SIZE = 100
RUNS = 3
WRITE_RUNS = 5  # the write timings are the noisiest
TARGET_PER_RECORD_VS_PLAIN = 0.7
TARGET_PAGINATED_VS_PER_RECORD = 3.0
TARGET_TRIGGER_WRITE_OVERHEAD = 1.25
CRON_LOCK_WAIT = 120  # seconds
SINK_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 11\r\n\r\n{\"ok\":true}")


# -- the sink: a minimal keep-alive HTTP/1.1 server, run as a child process -----------


async def _sink_connection(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            writer.write(SINK_RESPONSE)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _serve_sink():
    server = await asyncio.start_server(_sink_connection, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def start_sink():
    process = subprocess.Popen([sys.executable, __file__, "--sink"], stdout=subprocess.PIPE,
                               text=True)
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}/sink"


# -- the measurements ----------------------------------------------------------------


def best_time(function, runs=RUNS):
    times = []
    for _run in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def open_registry():
    import odoo
    from odoo.tools import config

    config.parse_config(["-d", os.environ["BJET_BENCH_DB"],
                         f"--addons-path={os.environ['BJET_ADDONS_PATH']}", "--log-level=warn"])
    return odoo.modules.registry.Registry(os.environ["BJET_BENCH_DB"])


class Bench:
    def __init__(self, registry, sink_url):
        from odoo import SUPERUSER_ID, api

        self.registry = registry
        self.sink_url = sink_url
        self.cr = registry.cursor()
        self.env = api.Environment(self.cr, SUPERUSER_ID, {"tracking_disable": True})
        self.created = []

    def make_config(self, name, **values):
        from odoo import Command

        env = self.env
        field = env["ir.model.fields"]._get
        lines = [("id", "res_id", True), ("name", "name", False), ("email", "email", False),
                 ("phone", "phone", False), ("city", "city", False)]
        config = env["bj.api.sync.config"].create({
            "name": name,
            "request_type": "out",
            "model_id": env["ir.model"]._get_id("res.partner"),
            "request_url": self.sink_url,
            "run_as_user_id": env.ref("base.user_admin").id,
            "http_method_ids": [Command.set(env.ref("bjet_api_sync.bj_http_method_post").ids)],
            "line_ids": [Command.create({"field_id": field("res.partner", fname).id,
                                         "external_key": key, "value_type": "plain",
                                         "is_identifier": ident, "sequence": index})
                         for index, (fname, key, ident) in enumerate(lines)],
            **values,
        })
        self.created.append(config)
        self.cr.commit()
        return config

    def set_worker_active(self, active):
        """(De)activate the delivery cron, waiting while the server is running it."""
        cron = self.env.ref("bjet_api_sync.ir_cron_bj_api_sync_deliver")
        deadline = time.monotonic() + CRON_LOCK_WAIT
        while not cron.try_write({"active": active}):
            self.cr.rollback()
            if time.monotonic() > deadline:
                raise SystemExit("the delivery cron stays busy on the server")
            time.sleep(0.2)
        self.cr.commit()

    def drain(self):
        jobs = self.env["bj.api.sync.job"]
        while jobs._cron_deliver_jobs():
            pass

    def delivery_time(self, config, partners):
        def run():
            self.env["bj.api.sync.job"]._bj_enqueue(config._bj_plan(), partners, "manual")
            self.cr.commit()
            started = time.perf_counter()
            self.drain()
            run.elapsed.append(time.perf_counter() - started)

        run.elapsed = []
        for _run in range(RUNS):
            run()
        failed = self.env["bj.api.sync.job"].search_count(
            [("config_id", "=", config.id), ("state", "!=", "done")])
        if failed:
            raise SystemExit(f"{failed} deliveries of {config.name} did not succeed")
        return min(run.elapsed)

    def plain_loop_time(self, config, partners):
        import requests

        from odoo.addons.bjet_api_sync.services import outbound

        payloads = [json.dumps(item)
                    for item in outbound.export_payloads(self.env, config._bj_plan(), partners)]
        headers = {"Content-Type": "application/json", "Accept": "application/json"}

        def run():
            with requests.Session() as session:
                for body in payloads:
                    session.post(self.sink_url, data=body, headers=headers,
                                 timeout=(5, 15)).raise_for_status()

        return best_time(run)

    def writes_once(self, partners):
        started = time.perf_counter()
        for index, partner in enumerate(partners):
            partner.write({"city": f"City {index} {time.perf_counter_ns()}"})
            self.cr.commit()
        return time.perf_counter() - started

    def write_times(self, partners, config):
        """Best times of the writes without and with ``config``'s on-write trigger."""
        times = {False: [], True: []}
        for _run in range(WRITE_RUNS):
            for triggered in (False, True):
                config.trigger_on_write = triggered
                self.cr.commit()
                # As in production: with the trigger, the server's cron threads
                # deliver meanwhile, woken by the writes' commits.
                self.set_worker_active(triggered)
                if not triggered:
                    self.drain()
                times[triggered].append(self.writes_once(partners))
        self.set_worker_active(False)
        self.drain()
        return min(times[False]), min(times[True])

    def cleanup(self, partners):
        self.cr.rollback()  # after a failure, the transaction may be aborted
        jobs = self.env["bj.api.sync.job"].search([("config_id", "in", [c.id for c in
                                                                           self.created])])
        self.env["bj.api.log"].search([("job_id", "in", jobs.ids)]).unlink()
        jobs.unlink()
        for config in self.created:
            config.unlink()
        partners.unlink()
        self.cr.commit()
        self.cr.close()


def main():
    sink, sink_url = start_sink()
    bench = Bench(open_registry(), sink_url)
    env = bench.env
    partners = env["res.partner"]
    try:
        # The bench drives the worker itself: keep the server's cron threads out.
        bench.set_worker_active(False)
        partners = partners.create([
            {"name": f"Bench {i}", "email": f"bench{i}@example.com", "phone": f"+32 {i}",
             "city": "Brussels"} for i in range(RECORDS)])
        bench.cr.commit()
        per_record = bench.make_config("Bench per record")
        paginated = bench.make_config("Bench paginated", is_paginated=True,
                                      page_size=PAGE_SIZE)
        plain = bench.plain_loop_time(per_record, partners)
        record_time = bench.delivery_time(per_record, partners)
        paged_time = bench.delivery_time(paginated, partners)
        without, with_trigger = bench.write_times(partners[:WRITES],
                                                  bench.make_config("Bench on write"))
    finally:
        bench.set_worker_active(True)
        bench.cleanup(partners)
        sink.terminate()
        sink.wait()

    rate = {name: RECORDS / seconds for name, seconds in
            (("plain", plain), ("record", record_time), ("paged", paged_time))}
    ratios = {
        "per-record delivery / plain requests loop": (rate["record"] / rate["plain"],
                                                      TARGET_PER_RECORD_VS_PLAIN, ">="),
        "paginated delivery / per-record delivery": (rate["paged"] / rate["record"],
                                                     TARGET_PAGINATED_VS_PER_RECORD, ">="),
        "writes with on-write trigger / without": (with_trigger / without,
                                                   TARGET_TRIGGER_WRITE_OVERHEAD, "<="),
    }
    print(f"records: {RECORDS}, page size {PAGE_SIZE}, best of {RUNS} runs "
          f"({WRITE_RUNS} for the writes)")
    print(f"plain requests.Session loop  {rate['plain']:8.0f} records/s")
    print(f"outbox, one record/request   {rate['record']:8.0f} records/s")
    print(f"outbox, paginated            {rate['paged']:8.0f} records/s")
    print(f"{WRITES} partner writes, no trigger   {without:6.2f} s "
          f"({without / WRITES * 1000:.2f} ms each)")
    print(f"{WRITES} partner writes, on-write     {with_trigger:6.2f} s "
          f"({with_trigger / WRITES * 1000:.2f} ms each)")
    missed = []
    for label, (value, target, sense) in ratios.items():
        ok = value >= target if sense == ">=" else value <= target
        print(f"{'ok  ' if ok else 'MISS'} {label}: {value:.2f} (target {sense} {target})")
        if not ok:
            missed.append(label)
    return 1 if missed else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--sink"]:
        asyncio.run(_serve_sink())
    else:
        sys.exit(main())
