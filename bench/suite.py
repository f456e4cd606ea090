"""The seven measurements of `python -m bench`: each starts what it needs and returns a table."""

from __future__ import annotations

import asyncio
import gc
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import cpu_s, p50, pct, rss_mb, table
from bench.floor import Floor
from estate.generate import generate
from tests.harness import LIVE, Estate, Gateway, gateway_config, http, start_estate, start_gateway
from tests.queries import CUSTOMER_FULL, CUSTOMERS_FULL, POINT_OF_SALE
from tests.truth import Truth

HTTP_SOURCES = ("billing", "helpdesk", "contact", "marketing", "loyalty", "warranty", "analytics", "shipping", "staff")
LEVEL_1 = ("billing", "helpdesk", "contact", "marketing", "loyalty", "warranty", "analytics")
LEVEL_2 = ("shipping", "staff")
# Different per source, 20 to 80 ms: the critical path is the slowest of each level, summed.
LATENCY_MS = {"billing": 20, "helpdesk": 80, "contact": 40, "marketing": 60, "loyalty": 30, "warranty": 70,
              "analytics": 50, "shipping": 45, "staff": 25}
SQL = ("crosswalk", "crm", "shop")


@dataclass
class Env:
    est: Estate
    truth: Truth
    work: Path

    def everywhere(self, n: int) -> list[str]:
        """Customers known to every system, with parcels and agent contacts (the fullest views)."""
        t = self.truth
        out = []
        for g in sorted(t.ids):
            if all(t.ids[g][s] for s in LEVEL_1) and any(t.est.shipping.get(o["order_number"]) for o in t.orders(g)) \
                    and any(i["agentId"] for i in t.interactions(g)):
                out.append(g)
        return out[:n]


def sql_calls(gw: Gateway) -> dict[str, int]:
    return {n: s["calls"] for n, s in json.loads(http("GET", gw.url + "/readyz")[2])["sources"].items() if n in SQL}


def timed(gw: Gateway, query: str, variables: dict[str, Any], headers: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    answer = gw.gql(query, variables, headers)
    elapsed = (time.perf_counter() - start) * 1000
    assert "errors" not in answer, answer["errors"][:2]
    return elapsed


def batching(env: Env, gw: Gateway) -> dict[str, Any]:
    ids = [f"C-{n:06d}" for n in range(1, 101)]
    env.est.reset_stats()
    before = sql_calls(gw)
    gw.gql(CUSTOMERS_FULL, {"ids": ids}, LIVE)
    after = sql_calls(gw)
    calls = {n: after[n] - before[n] for n in SQL} | {n: env.est.stats(n)["requests"] for n in HTTP_SOURCES}
    helpdesk_keys = sum(len(env.truth.ids[g]["helpdesk"]) for g in ids)
    levels = {"crosswalk": 0, "crm": 0, "shop": 1, **{s: 1 for s in LEVEL_1}, **{s: 2 for s in LEVEL_2}}
    rows = [(s, levels[s], c, f"{helpdesk_keys} requesters, concurrent" if s == "helpdesk" else "1 per level")
            for s, c in calls.items()]
    return {"title": "1. Batching: customers(ids: [100 ids]) with every field, calls per source",
            "header": ("source", "level", "calls", "target"), "rows": rows, "data": calls}


def _inject(est: Estate) -> None:
    for s, ms in LATENCY_MS.items():
        est.faults(s, {"latency_ms": ms})


async def _floor_views(env: Env, ids: list[str], rounds: int) -> tuple[list[float], float]:
    floor = Floor(env.est.data, env.est.ports)
    await floor.open()
    gc.freeze()  # the floor's collections must not walk this process's ground truth (the gateway freezes too)
    try:
        for g in ids:
            await floor.view(g)  # connections up
        times = []
        cpu0 = time.process_time()
        for i in range(rounds):
            start = time.perf_counter()
            await floor.view(ids[i % len(ids)])
            times.append((time.perf_counter() - start) * 1000)
        return times, (time.process_time() - cpu0) * 1000 / rounds
    finally:
        await floor.close()


def _gateway_views(gw: Gateway, ids: list[str], rounds: int) -> tuple[list[float], float]:
    for g in ids:
        timed(gw, CUSTOMER_FULL, {"id": g}, LIVE)
    cpu0 = cpu_s(gw.proc.pid)
    times = [timed(gw, CUSTOMER_FULL, {"id": ids[i % len(ids)]}, LIVE) for i in range(rounds)]
    return times, (cpu_s(gw.proc.pid) - cpu0) * 1000 / rounds


def parallelism_and_floor(env: Env, gw: Gateway, rounds: int) -> list[dict[str, Any]]:
    ids = env.everywhere(10)
    out: dict[str, Any] = {}
    for label, inject in (("no injected latency", False), ("20-80 ms per source", True)):
        if inject:
            _inject(env.est)
        try:
            g_times, g_cpu = _gateway_views(gw, ids, rounds)
            f_times, f_cpu = asyncio.run(_floor_views(env, ids, rounds))
        finally:
            env.est.clear_faults()
        out[label] = {"gateway_p50": p50(g_times), "gateway_p95": pct(g_times, .95), "floor_p50": p50(f_times),
                      "gateway_cpu_ms": g_cpu, "floor_cpu_ms": f_cpu}
    critical = max(LATENCY_MS[s] for s in LEVEL_1) + max(LATENCY_MS[s] for s in LEVEL_2)
    lat = out["20-80 ms per source"]
    par = {"title": "2. Parallelism: one customer's full view, cold, sources slowed by 20-80 ms each",
           "header": ("measure", "ms", "ratio", "target"),
           "rows": [("critical path (slowest per level, summed)", float(critical), "", ""),
                    ("gateway p50", lat["gateway_p50"], round(lat["gateway_p50"] / critical, 3), "<= 1.15"),
                    ("gateway p95", lat["gateway_p95"], round(lat["gateway_p95"] / critical, 3), "")],
           "data": {"critical_ms": critical, **lat}}
    rows = []
    for label, m in out.items():
        rows.append((f"p50 latency, {label}", m["gateway_p50"], m["floor_p50"],
                     round(m["gateway_p50"] / m["floor_p50"], 2), "<= 1.3"))
        rows.append((f"CPU ms/request, {label}", m["gateway_cpu_ms"], m["floor_cpu_ms"],
                     round(m["gateway_cpu_ms"] / m["floor_cpu_ms"], 2), "<= 2"))
    limit = {"title": "3. The limit: gateway vs a plain asyncio + aiohttp/aiosqlite script, same data, same sources",
             "header": ("measure", "gateway", "floor", "ratio", "target"), "rows": rows, "data": out}
    return [par, limit]


def naive(env: Env, gw: Gateway, rounds: int) -> dict[str, Any]:
    cfg = gateway_config(env.est)
    cfg["gateway"]["naive"] = True
    slow = start_gateway(cfg, env.work, "naive")
    ids = [f"C-{n:06d}" for n in range(1, 101)]
    rows, data = [], {}
    try:
        for label, inject in (("no injected latency", False), ("20-80 ms per source", True)):
            if inject:
                _inject(env.est)
            try:
                env.est.reset_stats()
                real = [timed(gw, CUSTOMERS_FULL, {"ids": ids}, LIVE) for _ in range(rounds)]
                real_calls = sum(env.est.stats(s)["requests"] for s in HTTP_SOURCES) / rounds
                env.est.reset_stats()
                base = [timed(slow, CUSTOMERS_FULL, {"ids": ids}) for _ in range(rounds)]
                base_calls = sum(env.est.stats(s)["requests"] for s in HTTP_SOURCES) / rounds
            finally:
                env.est.clear_faults()
            rows.append((label, p50(base), p50(real), round(p50(base) / p50(real), 1), int(base_calls),
                         int(real_calls)))
            data[label] = {"naive_p50": p50(base), "gateway_p50": p50(real), "naive_http_calls": base_calls,
                           "gateway_http_calls": real_calls}
    finally:
        slow.stop()
    return {"title": "4. Naive baseline (a fetch per field and key, no DataLoader, no cache) vs the gateway, "
                     "customers(ids: [100]) with every field",
            "header": ("sources", "naive p50 ms", "gateway p50 ms", "speed-up", "naive HTTP calls",
                       "gateway HTTP calls"), "rows": rows, "data": data}


async def _load(url: str, payloads: list[dict[str, Any]], clients: int, seconds: float,
                headers: dict[str, str] | None = None) -> list[float]:
    times: list[float] = []
    until = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        async def client(i: int) -> None:
            rng = random.Random(i)
            while time.monotonic() < until:
                start = time.perf_counter()
                async with session.post(url, json=rng.choice(payloads), headers=headers) as resp:
                    await resp.read()
                    assert resp.status == 200
                times.append((time.perf_counter() - start) * 1000)

        await asyncio.gather(*(client(i) for i in range(clients)))
    return times


def throughput(env: Env, seconds: float) -> dict[str, Any]:
    phones = [r["phone_home"] for r in env.truth.est.crm[:300]]
    payloads = [{"query": POINT_OF_SALE, "variables": {"phone": p}} for p in phones]
    rows, data = [], {}
    for workers in (1, 2):
        gw = start_gateway(gateway_config(env.est), env.work, f"throughput-{workers}", workers=workers)
        try:
            asyncio.run(_load(gw.url + "/graphql", payloads, 8, 4, gw.auth()))  # warm every worker's cache
            cpu0 = cpu_s(gw.proc.pid)
            times = asyncio.run(_load(gw.url + "/graphql", payloads, 8, seconds, gw.auth()))
            cpu_ms = (cpu_s(gw.proc.pid) - cpu0) * 1000 / len(times)
        finally:
            gw.stop()
        rows.append((workers, round(len(times) / seconds), p50(times), pct(times, .99), cpu_ms, "<= 1"))
        data[workers] = {"rps": len(times) / seconds, "p50_ms": p50(times), "p99_ms": pct(times, .99),
                         "cpu_ms_per_request": cpu_ms}
    return {"title": f"5. Throughput: point-of-sale query (phone lookup; identities, open tickets, offers), "
                     f"warm cache, 8 clients, {seconds:g} s",
            "header": ("workers", "requests/s", "p50 ms", "p99 ms", "gateway CPU ms/request", "target"),
            "rows": rows, "data": data}


def _cold_views(gw: Gateway, customers: int, n: int) -> list[float]:
    rng = random.Random(5)
    ids = [f"C-{rng.randint(1, customers):06d}" for _ in range(n)]
    for g in ids[:10]:
        timed(gw, CUSTOMER_FULL, {"id": g}, LIVE)
    return [timed(gw, CUSTOMER_FULL, {"id": g}, LIVE) for g in ids]


VIEW = """query($ids: [ID!]!) { customers(ids: $ids) { id name phones identities { system id }
  accounts { number balance } orders(first: 5) { number total } tickets(first: 5) { id status }
  loyalty { tier } } }"""


def scale_and_memory(env: Env, gw: Gateway, big_customers: int, rounds: int) -> list[dict[str, Any]]:
    small = _cold_views(gw, env.est.customers, rounds)
    big_est = start_estate(env.work / "big", customers=big_customers)
    try:
        cfg = gateway_config(big_est)
        cfg["cache"] = {"max_entries": 150_000, "max_bytes": 64 * 1024 * 1024}
        big = start_gateway(cfg, env.work, "big")
        try:
            large = _cold_views(big, big_customers, rounds)
            start_mb = rss_mb(big.proc.pid)
            t0 = time.monotonic()
            for first in range(1, big_customers + 1, 100):
                big.gql(VIEW, {"ids": [f"C-{n:06d}" for n in range(first, min(first + 100, big_customers + 1))]})
            viewing_s = time.monotonic() - t0
            end_mb = rss_mb(big.proc.pid)
            cache = json.loads(http("GET", big.url + "/readyz")[2])["cache"]
        finally:
            big.stop()
    finally:
        big_est.stop()
    scale = {"title": f"6. Scale: cold single-customer full view, estate of {env.est.customers:,} vs "
                      f"{big_customers:,} customers",
             "header": ("estate", "p50 ms", "p95 ms", "ratio to small"),
             "rows": [(f"{env.est.customers:,}", p50(small), pct(small, .95), 1.0),
                      (f"{big_customers:,}", p50(large), pct(large, .95), round(p50(large) / p50(small), 2))],
             "data": {"small_p50": p50(small), "large_p50": p50(large)}}
    evictions = sum(s.get("evictions", 0) for s in cache["sources"].values())
    memory = {"title": f"7. Memory: gateway after viewing {big_customers:,} distinct customers "
                       f"({viewing_s:.0f} s, 100 per request), cache bound 150,000 entries / 64 MiB",
              "header": ("measure", "value"),
              "rows": [("RSS at start (after 1 warm-up view), MB", start_mb), ("RSS after, MB", end_mb),
                       ("cache entries (bound 150,000)", cache["entries"]),
                       ("cache MiB (bound 64)", cache["bytes"] / 1024 / 1024), ("evictions", evictions)],
              "data": {"rss_start_mb": start_mb, "rss_end_mb": end_mb, "cache": cache}}
    return [scale, memory]


def environment(work: Path, customers: int) -> Env:
    est = start_estate(work / "data", customers=customers)
    return Env(est, Truth(generate(est.customers, est.seed, est.as_of)), work)


__all__ = ["Env", "environment", "batching", "parallelism_and_floor", "naive", "throughput", "scale_and_memory",
           "table", "start_gateway", "gateway_config"]
