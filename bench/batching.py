"""Source calls and latency of the composed view: prints a table (not a test).

  python -m bench.batching [--customers 2000] [--rounds 20]

Starts its own estate and gateway on free loopback ports, then for 1 and for 100 customers with
every field: calls per source (counted at each source's /__stats and the gateway's /readyz) and
p50/p95 latency over the rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from tests.harness import Estate, Gateway, gateway_config, http, start_estate, start_gateway
from tests.queries import CUSTOMERS_FULL

SQL = ("crosswalk", "crm", "shop")


def sql_calls(gw: Gateway) -> dict[str, int]:
    sources = json.loads(http("GET", gw.url + "/readyz")[2])["sources"]
    return {n: sources[n]["calls"] for n in SQL}


def measure(est: Estate, gw: Gateway, ids: list[str], rounds: int) -> tuple[dict[str, int], list[float]]:
    est.reset_stats()
    before = sql_calls(gw)
    gw.gql(CUSTOMERS_FULL, {"ids": ids})
    after = sql_calls(gw)
    calls = {n: after[n] - before[n] for n in SQL} | {n: est.stats(n)["requests"] for n in est.ports}
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        answer = gw.gql(CUSTOMERS_FULL, {"ids": ids})
        times.append((time.perf_counter() - start) * 1000)
        assert "errors" not in answer
    return calls, times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        est = start_estate(Path(tmp) / "data", args.customers)
        gw = start_gateway(gateway_config(est), Path(tmp))
        try:
            rows = {}
            for n in (1, 100):
                ids = [f"C-{i:06d}" for i in range(1, n + 1)]
                rows[n] = measure(est, gw, ids, args.rounds)
        finally:
            gw.stop()
            est.stop()
    sources = list(rows[1][0])
    print(f"{'source':<12}" + "".join(f"{f'calls, {n} cust.':>18}" for n in rows))
    for s in sources:
        print(f"{s:<12}" + "".join(f"{rows[n][0][s]:>18}" for n in rows))
    for label, fn in (("p50 ms", statistics.median), ("p95 ms", lambda t: sorted(t)[int(len(t) * 0.95) - 1])):
        print(f"{label:<12}" + "".join(f"{fn(rows[n][1]):>18.1f}" for n in rows))


if __name__ == "__main__":
    main()
