"""Mixed load with faults injected mid-run: prints a table (a script, not a test).

  python -m bench.load [--clients 20] [--seconds 40] [--customers 2000] [--no-cache]

Starts its own estate and gateway (default settings from gateway.yaml). Workload: single-customer
full views, point-of-sale lookups by phone, 100-customer lists. Faults: billing down from 25% to
50% of the run, loyalty flapping (30% 503s) from 50% to 75%. Reports requests, HTTP 5xx, GraphQL
errors by code, latency percentiles (overall and during the faults) and the gateway's memory.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from bench.common import pct, rss_mb
from tests.harness import Estate, Gateway, gateway_config, start_estate, start_gateway
from tests.queries import CUSTOMER_FULL, CUSTOMERS_FULL, POINT_OF_SALE
from tests.truth import Truth

LIST = "query($ids: [ID!]!) { customers(ids: $ids) { id name segment accounts { balance overdue } " \
       "tickets(unresolved: true) { id } loyalty { tier } } }"


class Load:
    def __init__(self, gw: Gateway, est: Estate, phones: list[str], customers: int) -> None:
        self.gw, self.est, self.phones, self.customers = gw, est, phones, customers
        self.latencies: list[tuple[float, float]] = []  # (started, seconds)
        self.statuses: Counter[int] = Counter()
        self.codes: Counter[str] = Counter()
        self.crashed = 0

    def request(self, rng: random.Random) -> dict[str, object]:
        roll = rng.random()
        if roll < 0.6:
            return {"query": CUSTOMER_FULL, "variables": {"id": f"C-{rng.randint(1, self.customers):06d}"}}
        if roll < 0.9:
            return {"query": POINT_OF_SALE, "variables": {"phone": rng.choice(self.phones)}}
        start = rng.randint(1, self.customers - 100)
        return {"query": LIST, "variables": {"ids": [f"C-{n:06d}" for n in range(start, start + 100)]}}

    async def client(self, session: aiohttp.ClientSession, seed: int, until: float) -> None:
        rng = random.Random(seed)
        while time.monotonic() < until:
            started = time.monotonic()
            try:
                async with session.post(self.gw.url + "/graphql", json=self.request(rng),
                                        headers=self.gw.auth()) as resp:
                    body = await resp.json()
                    self.statuses[resp.status] += 1
                    for e in body.get("errors", []):
                        self.codes[e.get("extensions", {}).get("code", "?")] += 1
            except (aiohttp.ClientError, ValueError):
                self.crashed += 1
            self.latencies.append((started, time.monotonic() - started))

    async def faults(self, seconds: float) -> list[tuple[float, float]]:
        t0 = time.monotonic()
        await asyncio.sleep(seconds * 0.25)
        self.est.faults("billing", {"down": True})
        await asyncio.sleep(seconds * 0.25)
        self.est.faults("billing", {})
        self.est.faults("loyalty", {"status": 503, "fail_rate": 0.3})
        await asyncio.sleep(seconds * 0.25)
        self.est.faults("loyalty", {})
        return [(t0 + seconds * 0.25, t0 + seconds * 0.75)]

    async def run(self, clients: int, seconds: float, faults: bool = True) -> list[tuple[float, float]]:
        until = time.monotonic() + seconds
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            fault_task = asyncio.create_task(self.faults(seconds)) if faults else None
            await asyncio.gather(*(self.client(session, i, until) for i in range(clients)))
            return await fault_task if fault_task else []


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--no-cache", action="store_true", help="every read goes to the sources")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        est = start_estate(Path(tmp) / "data", args.customers)
        cfg = gateway_config(est)
        if args.no_cache:
            cfg["cache"] = {"enabled": False}
        gw = start_gateway(cfg, Path(tmp))
        try:
            from estate.generate import generate
            truth = Truth(generate(est.customers, est.seed, est.as_of))
            phones = [r["phone_home"] for r in truth.est.crm]
            mem_boot = rss_mb(gw.proc.pid)
            for first in range(1, args.customers + 1, 100):  # every customer once: the cache at its working size
                gw.gql(CUSTOMERS_FULL, {"ids": [f"C-{n:06d}" for n in range(first, min(first + 100,
                                                                                        args.customers + 1))]})
            warm = Load(gw, est, phones, args.customers)  # a full mixed round first, so "start" is steady state
            asyncio.run(warm.run(args.clients, 10, faults=False))
            mem_start = rss_mb(gw.proc.pid)
            load = Load(gw, est, phones, args.customers)
            windows = asyncio.run(load.run(args.clients, args.seconds))
            time.sleep(3)
            mem_end = rss_mb(gw.proc.pid)
        finally:
            gw.stop()
            est.stop()
    lat = [s * 1000 for _, s in load.latencies]
    during = [s * 1000 for t, s in load.latencies if any(a <= t <= b for a, b in windows)]
    total = len(lat)
    rows = [
        ("requests served", f"{total} ({total / args.seconds:.0f}/s, {args.clients} clients)"),
        ("HTTP statuses", ", ".join(f"{k}: {v}" for k, v in sorted(load.statuses.items()))),
        ("HTTP 5xx", str(sum(v for k, v in load.statuses.items() if k >= 500))),
        ("crashed requests", str(load.crashed)),
        ("GraphQL errors", ", ".join(f"{k}: {v}" for k, v in load.codes.most_common()) or "none"),
        ("latency p50/p95/p99 ms", f"{statistics.median(lat):.0f} / {pct(lat, .95):.0f} / {pct(lat, .99):.0f}"),
        ("during faults p50/p95/p99", f"{statistics.median(during):.0f} / {pct(during, .95):.0f} / "
                                      f"{pct(during, .99):.0f}"),
        ("gateway RSS boot / warm", f"{mem_boot:.1f} MB / {mem_start:.1f} MB (every customer viewed once, "
                                    "then 10 s of the same load)"),
        ("gateway RSS warm -> end", f"{mem_start:.1f} MB -> {mem_end:.1f} MB ({(mem_end / mem_start - 1) * 100:+.1f}%)"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
