#!/usr/bin/env python3
"""Limits under attack, over real HTTP against a running Odoo server.

Run by ``BENCH=bruteforce make bench`` (scripts/harness.py), with the same
environment as bench/inbound.py; the server is threaded, so parallel requests
are served in parallel, each in a transaction of its own.  Three parts:

1. Rate limit: PARALLEL authenticated calls released together against a
   Rate Limit of LIMIT per minute give exactly LIMIT answers 200, the rest 429.
2. Brute force: BRUTE_FORCE_CALLS wrong-token calls give 401 for the first
   failures allowed per address and minute (the system parameter's default),
   then only 429, within each minute.
3. Timing: with that limit off, wrong tokens of the right length that differ
   from the real one in their first byte or in their last byte, sent in turn
   (SAMPLES each), with a third set identical to the second to measure the
   noise.  The medians of "first" and "last" differ by no more than the noise:
   the larger of the difference between the two identical sets and the
   99.9th percentile of that difference over bootstrap resamples.

Every figure is printed; the exit code is 1 when a check fails.
"""

import random
import statistics
import sys
import threading
import time
from collections import Counter

import requests
from inbound import DB, URL, JsonRpc, make_configuration

PARALLEL = 40
LIMIT = 20
BRUTE_FORCE_CALLS = 1000
FAILURES_PER_MINUTE = 20  # bjet_api_sync.auth_failures_per_minute by default
FAILURE_PARAMETER = "bjet_api_sync.auth_failures_per_minute"
SAMPLES = 1500
RESAMPLES = 2000


def configuration(rpc, token, **values):
    """A Bearer-protected configuration on Contacts: (its id, the URL of one record)."""
    base = make_configuration(rpc, token)
    endpoint = base.rsplit("/", 1)[1]
    config_id = rpc.execute("bj.api.sync.config", "search", [("endpoint", "=", endpoint)])[0]
    if values:
        rpc.execute("bj.api.sync.config", "write", [config_id], values)
    partner_id = rpc.execute("res.partner", "search", [], limit=1)[0]
    return config_id, f"{base}/{partner_id}"


def start_of_a_minute(margin_after=2, room=30):
    """Wait until at least ``room`` seconds of the current minute are left."""
    into = time.time() % 60
    if into < margin_after or into > 60 - room:
        time.sleep((60 - into) % 60 + margin_after)


def rate_limit_is_exact(rpc):
    token = f"bench-{random.randbytes(16).hex()}"
    _config_id, url = configuration(rpc, token, rate_limit_per_minute=LIMIT)
    start = threading.Barrier(PARALLEL)
    statuses = []

    def call():
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {token}"
            # Connected before the start, by a call that counts nowhere.
            session.get(f"{URL}/web/health", timeout=60)
            start.wait(60)
            statuses.append(session.get(url, timeout=60).status_code)

    start_of_a_minute(room=45)
    threads = [threading.Thread(target=call) for _thread in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    counts = Counter(statuses)
    ok = counts == Counter({200: LIMIT, 429: PARALLEL - LIMIT})
    print(f"rate limit   {PARALLEL} parallel calls against {LIMIT}/min: "
          f"{dict(sorted(counts.items()))}  {'ok' if ok else 'FAILED'}")
    return ok


def brute_force(session, url):
    """BRUTE_FORCE_CALLS wrong-token calls: (ok, statuses, seconds by status)."""
    rows = []
    start_of_a_minute()
    for index in range(BRUTE_FORCE_CALLS):
        started = time.perf_counter()
        response = session.get(url, headers={"Authorization": f"Bearer wrong-{index}"},
                               timeout=60)
        rows.append((int(time.time() // 60), response.status_code,
                     time.perf_counter() - started, response.headers.get("Retry-After")))
    ok = True
    for minute in sorted({row[0] for row in rows}):
        statuses = [row[1] for row in rows if row[0] == minute]
        refused = statuses.count(401)
        # Within a minute: the allowed failures first, then only 429.
        ok &= statuses == [401] * refused + [429] * (len(statuses) - refused)
        ok &= refused <= FAILURES_PER_MINUTE
    first_minute = [row[1] for row in rows if row[0] == rows[0][0]]
    ok &= first_minute[:FAILURES_PER_MINUTE] == [401] * FAILURES_PER_MINUTE
    ok &= all(row[3] for row in rows if row[1] == 429)
    counts = Counter(row[1] for row in rows)
    seconds = {status: statistics.median(row[2] for row in rows if row[1] == status)
               for status in counts}
    print(f"brute force  {BRUTE_FORCE_CALLS} wrong-token calls over "
          f"{len({row[0] for row in rows})} minute(s): {dict(sorted(counts.items()))}; "
          f"first {FAILURES_PER_MINUTE} answers 401: "
          f"{first_minute[:FAILURES_PER_MINUTE] == [401] * FAILURES_PER_MINUTE}; median "
          + ", ".join(f"{status} {seconds[status] * 1000:.2f} ms" for status in sorted(seconds))
          + f"  {'ok' if ok else 'FAILED'}")
    return ok


def median_noise(first, second):
    """99.9th percentile of |median(a) - median(b)| for resamples of the pooled sets."""
    pooled = first + second
    rng = random.Random(12)
    differences = sorted(
        abs(statistics.median(rng.choices(pooled, k=len(first)))
            - statistics.median(rng.choices(pooled, k=len(second))))
        for _resample in range(RESAMPLES)
    )
    return differences[int(len(differences) * 0.999) - 1]


def timing_is_flat(session, url, token):
    """Wrong first byte vs wrong last byte, and an identical set for the noise."""
    def flip(char):
        return "A" if char != "A" else "B"

    tokens = {
        "first": flip(token[0]) + token[1:],
        "last": token[:-1] + flip(token[-1]),
        "last again": token[:-1] + flip(token[-1]),
    }
    samples = {name: [] for name in tokens}
    names = list(tokens)
    for index in range(SAMPLES):
        # A rotating order: none of the sets always goes first.
        for name in names[index % 3:] + names[:index % 3]:
            headers = {"Authorization": f"Bearer {tokens[name]}"}
            started = time.perf_counter()
            response = session.get(url, headers=headers, timeout=60)
            samples[name].append(time.perf_counter() - started)
            if response.status_code != 401:
                print(f"timing       expected 401, got {response.status_code}")
                return False
    medians = {name: statistics.median(values) for name, values in samples.items()}
    difference = medians["first"] - medians["last"]
    identical = medians["last again"] - medians["last"]
    noise = max(abs(identical), median_noise(samples["last"], samples["last again"]))
    ok = abs(difference) <= noise
    print(f"timing       {SAMPLES} calls per set, medians (us): "
          + ", ".join(f"{name} {value * 1e6:.1f}" for name, value in medians.items())
          + f"; first - last {difference * 1e6:+.1f} us, identical sets {identical * 1e6:+.1f} us,"
          f" noise bound {noise * 1e6:.1f} us  {'ok' if ok else 'FAILED'}")
    return ok


def main():
    if not DB:
        sys.exit("BJET_BENCH_DB is not set")
    rpc = JsonRpc(requests.Session())
    print(f"Brute-force benchmark on {DB} at {URL} (threaded server, one client address)")
    ok = rate_limit_is_exact(rpc)
    token = f"bench-{random.randbytes(24).hex()}"
    _config_id, url = configuration(rpc, token)
    with requests.Session() as session:
        ok &= brute_force(session, url)
        rpc.execute("ir.config_parameter", "set_param", FAILURE_PARAMETER, "0")
        try:
            ok &= timing_is_flat(session, url, token)
        finally:
            rpc.execute("ir.config_parameter", "set_param", FAILURE_PARAMETER, False)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
