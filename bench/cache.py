"""Warm-cache vs cold full Customer view: prints a table (a script, not a test).

  python -m bench.cache [--requests 300] [--customers 2000]

One client, sequential requests for single customers with every field. Cold: each customer seen
for the first time. Warm: the same customers again. Reports latency, gateway CPU per request
(from /proc) and source calls per request (the sources' /__stats plus the SQL sources' counters).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import cpu_s
from tests.harness import Estate, Gateway, gateway_config, http, start_estate, start_gateway
from tests.queries import CUSTOMER_FULL


def source_calls(est: Estate, gw: Gateway) -> int:
    sql = json.loads(http("GET", gw.url + "/readyz")[2])["sources"]
    return sum(est.stats(s)["requests"] for s in est.ports) + sum(sql[s]["calls"] for s in ("crosswalk", "crm", "shop"))


def run(est: Estate, gw: Gateway, ids: list[str]) -> dict[str, float]:
    est.reset_stats()
    calls0, cpu0 = source_calls(est, gw), cpu_s(gw.proc.pid)
    times = []
    for gid in ids:
        start = time.perf_counter()
        answer = gw.gql(CUSTOMER_FULL, {"id": gid})
        times.append((time.perf_counter() - start) * 1000)
        assert "errors" not in answer, answer["errors"]
    n = len(ids)
    return {"p50 ms": statistics.median(times), "p95 ms": sorted(times)[int(n * 0.95) - 1],
            "gateway CPU ms/request": (cpu_s(gw.proc.pid) - cpu0) * 1000 / n,
            "source calls/request": (source_calls(est, gw) - calls0) / n}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--customers", type=int, default=2000)
    args = parser.parse_args()
    ids = [f"C-{n:06d}" for n in range(1, args.requests + 1)]
    with tempfile.TemporaryDirectory() as tmp:
        est = start_estate(Path(tmp) / "data", args.customers)
        gw = start_gateway(gateway_config(est), Path(tmp))
        try:
            gw.gql(CUSTOMER_FULL, {"id": f"C-{args.customers:06d}"})  # connections and imports, not the cache
            cold = run(est, gw, ids)
            warm = run(est, gw, ids)
        finally:
            gw.stop()
            est.stop()
    print(f"{'full Customer view, 1 customer':<32}{'cold':>10}{'warm':>10}{'warm/cold':>11}")
    for key in cold:
        print(f"{key:<32}{cold[key]:>10.2f}{warm[key]:>10.2f}{warm[key] / cold[key] if cold[key] else 0:>11.2f}")


if __name__ == "__main__":
    main()
