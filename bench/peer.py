"""`python -m bench.peer`: Customer Graph against GraphQL Hive Gateway, side by side, in one run (issue 14, part 4).

Both gateways serve the same estate and the same work: billing accounts with invoices plus contact-center
interactions for 50 customers, round-robin, from 16 connections. Ours is asked by customer id (its crosswalk
finds the accounts and phone numbers); Hive Gateway (Mesh compose over bench/openapi/*.json, bench/peer_hive.py)
by the systems' own keys, taken from the estate's ground truth. Before any load, and again after it, every
gateway's answer for each of the 50 customers is mapped to plain records (bench/peer_records.py) and compared with
the others': the run stops when they differ.

The gateways under test, all running at once:
  Customer Graph, no cache          `cache.enabled: false`: every record read from its source
  Customer Graph, record cache      the default record cache, warm
  Customer Graph, response cache    `cache.responses` on, where this build's config knows it (else left out)
  Hive Gateway, no cache            `hive-gateway supergraph`, default config
  Hive Gateway, response cache      its `responseCaching` (in memory, one global session, 30 s TTL)
Each gets --warmup seconds of the load first (Hive's JIT is at speed after about 10 s), then --rounds rounds
of --seconds each, the order reversed every other round, so drift on a shared machine hits both sides alike.
Per gateway: throughput, p50/p99 latency, CPU per request (/proc/<pid>/stat utime + stime of the process
tree, bench/common.py) and the largest RSS seen (sampled every 0.25 s). Ratios are paired per round.
The load generator is this process (one asyncio loop); it shares the machine's cores with the gateways and the
estate, as the output says.

  python -m bench.peer [--rounds 3] [--seconds 6] [--warmup 10] [--clients 16] [--customers 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import itertools
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

import config as gateway_settings
from bench import peer_hive, peer_records
from bench.common import cpu_s, p50, pct, rss_mb, table
from bench.suite import Env, environment
from cache.settings import CacheSettings
from estate.servers import BILLING_API_KEY
from tests.harness import Estate, gateway_config, http, start_gateway

CUSTOMERS = 50
HIVE = f"Hive Gateway {peer_hive.PACKAGES['@graphql-hive/gateway']}"
# Issue 14's targets, ours / Hive's, as (measure, bound, at least?).
UNCACHED_TARGETS = (("throughput", 1.5, True), ("CPU per request", 0.6, False), ("RSS", 0.25, False))
CACHED_TARGETS = (("throughput", 1.5, True), ("RSS", 0.25, False))


@dataclass
class Sample:
    """One gateway under load for a while."""
    seconds: float
    latencies_ms: list[float]
    failed: int  # non-200 answers, or answers with errors
    cpu_s: float
    rss_mb: float  # the largest seen
    source_calls: int  # HTTP requests billing and contact served meanwhile
    client_cpu_s: float  # the load generator's own CPU meanwhile (this process)

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.seconds

    @property
    def cpu_ms(self) -> float:
        return self.cpu_s * 1000 / max(1, len(self.latencies_ms))

    @property
    def calls_per_request(self) -> float:
        return self.source_calls / max(1, len(self.latencies_ms))


@dataclass
class Contestant:
    name: str
    url: str
    pid: int
    payloads: list[bytes]  # one per customer, JSON-encoded once
    headers: dict[str, str]
    normalise: Callable[[dict[str, Any]], peer_records.Records]
    samples: list[Sample] = field(default_factory=list)


SOURCES = ("billing", "contact")


def source_calls(est: Estate) -> int:
    return sum(est.stats(s)["requests"] for s in SOURCES)


async def drive(c: Contestant, est: Estate, clients: int, seconds: float) -> Sample:
    """`clients` connections posting the customers' queries round-robin for `seconds`."""
    turn = itertools.count()
    latencies: list[float] = []
    failed = 0
    peak = rss_mb(c.pid)
    headers = {**c.headers, "content-type": "application/json"}
    until = time.monotonic() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal failed
        while time.monotonic() < until:
            body = c.payloads[next(turn) % len(c.payloads)]
            start = time.perf_counter()
            try:
                async with session.post(c.url, data=body, headers=headers) as resp:
                    answer = await resp.read()
            except (aiohttp.ClientError, asyncio.TimeoutError):
                failed += 1  # counted, not timed: the table's failed column says so
                continue
            latencies.append((time.perf_counter() - start) * 1000)
            failed += resp.status != 200 or b'"errors"' in answer

    async def watch() -> None:
        nonlocal peak
        while time.monotonic() < until:
            peak = max(peak, rss_mb(c.pid))
            await asyncio.sleep(0.25)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        calls0, cpu0, own0, t0 = source_calls(est), cpu_s(c.pid), time.process_time(), time.monotonic()
        await asyncio.gather(watch(), *(client(session) for _ in range(clients)))
        elapsed, cpu, own = time.monotonic() - t0, cpu_s(c.pid) - cpu0, time.process_time() - own0
    return Sample(elapsed, latencies, failed, cpu, max(peak, rss_mb(c.pid)), source_calls(est) - calls0, own)


def answer(c: Contestant, i: int) -> peer_records.Records:
    status, _, body = http("POST", c.url, c.payloads[i], {**c.headers, "content-type": "application/json"})
    if status != 200:
        raise peer_records.Mismatch(f"{c.name} answered HTTP {status}: {body[:300]!r}")
    return c.normalise(json.loads(body))


def check(contestants: list[Contestant], customers: list[str]) -> None:
    """Every gateway returns the same records for every customer as the first one does; stops the run if not."""
    first, others = contestants[0], contestants[1:]
    try:
        for i, customer in enumerate(customers):
            want = answer(first, i)
            if not want["accounts"] or not want["interactions"]:
                raise SystemExit(f"{customer}: {first.name} found no accounts or no interactions; the check "
                                 "would prove nothing")
            for c in others:
                diff = peer_records.difference(customer, want, answer(c, i))
                if diff:
                    raise SystemExit(f"the gateways disagree ({first.name} vs {c.name}): {diff}")
    except peer_records.Mismatch as err:
        raise SystemExit(f"no comparable answer for {customer}: {err}") from None


def pick(env: Env, n: int) -> list[str]:
    """The first n customers with billing accounts and contact-center interactions."""
    t = env.truth
    found = [g for g in sorted(t.ids) if t.ids[g]["billing"] and t.interactions(g)]
    if len(found) < n:
        raise SystemExit(f"the estate has only {len(found)} customers with accounts and interactions")
    return found[:n]


def cache_setups() -> tuple[list[tuple[str, dict[str, Any]]], str]:
    """Our gateways' `cache:` sections by name, and why the response cache is missing if it is: it is left
    out where this build's config has no `cache.responses`, and explicitly off in the other setups where it has
    (it is on by default there)."""
    if "responses" not in CacheSettings.model_fields:
        return [("no cache", {"enabled": False}), ("record cache", {})], \
            "not available in this build (its config has no cache.responses)"
    off = {"responses": {"enabled": False}}
    return [("no cache", {"enabled": False, **off}), ("record cache", off),
            ("response cache", {"responses": {"enabled": True}})], ""


def start_ours(env: Env, stack: ExitStack, customers: list[str]) -> tuple[list[Contestant], str]:
    """Our gateways (no cache, record cache, response cache where available); and why one is missing."""
    setups, missing = cache_setups()
    payloads = [json.dumps(peer_records.ours_payload(g)).encode() for g in customers]
    out = []
    for label, cache in setups:
        cfg = gateway_config(env.est)
        cfg["cache"] = {**cfg.get("cache", {}), **cache}
        gateway_settings.parse(copy.deepcopy(cfg))  # a refused section fails here, with its message
        gw = start_gateway(cfg, env.work, "ours-" + label.replace(" ", "-"))
        stack.callback(gw.stop)
        out.append(Contestant(f"Customer Graph, {label}", gw.url + "/graphql", gw.proc.pid, payloads, gw.auth(),
                              peer_records.ours))
    return out, missing


def start_hive(env: Env, stack: ExitStack, customers: list[str]) -> list[Contestant]:
    npm = peer_hive.install()
    urls = {s: env.est.url(s) for s in ("billing", "contact")}
    supergraph = peer_hive.compose(npm, env.work, urls, BILLING_API_KEY)
    t = env.truth
    payloads = [json.dumps(peer_records.hive_payload(t.ids[g]["billing"], t.ids[g]["contact"])).encode()
                for g in customers]
    out = []
    for label, setup in (("no cache", "plain"), ("response cache", "response cache")):
        hive = peer_hive.start(npm, env.work, supergraph, setup)
        stack.callback(hive.stop)
        out.append(Contestant(f"{HIVE}, {label}", hive.url + "/graphql", hive.proc.pid, payloads, {},
                              peer_records.hive))
    return out


def measure(contestants: list[Contestant], est: Estate, args: argparse.Namespace) -> None:
    for c in contestants:
        warm = asyncio.run(drive(c, est, args.clients, args.warmup))
        print(f"warm-up {c.name}: {warm.rps:,.0f} req/s, {warm.failed} failed", flush=True)
    for r in range(args.rounds):
        for c in contestants if r % 2 == 0 else contestants[::-1]:
            c.samples.append(asyncio.run(drive(c, est, args.clients, args.seconds)))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{c.name} {c.samples[-1].rps:,.0f}/s"
                                                          for c in contestants), flush=True)


def gateway_rows(contestants: list[Contestant]) -> list[tuple[Any, ...]]:
    rows = []
    for c in contestants:
        latencies = [ms for s in c.samples for ms in s.latencies_ms]
        rows.append((c.name, round(p50([s.rps for s in c.samples])), p50(latencies), pct(latencies, .99),
                     p50([s.cpu_ms for s in c.samples]), max(s.rss_mb for s in c.samples),
                     p50([s.calls_per_request for s in c.samples]),
                     round(100 * p50([s.client_cpu_s / s.seconds for s in c.samples])),
                     sum(s.failed for s in c.samples)))
    return rows


def ratios(ours: Contestant, peer: Contestant) -> dict[str, list[float]]:
    """Ours / Hive's per measure: throughput and CPU paired per round (back to back); RSS the largest each
    process reached over the whole run (node's heap grows and shrinks with its collections from round to round)."""
    pairs = list(zip(ours.samples, peer.samples))
    return {"throughput": [a.rps / b.rps for a, b in pairs], "CPU per request": [a.cpu_ms / b.cpu_ms for a, b in pairs],
            "RSS": [max(s.rss_mb for s in ours.samples) / max(s.rss_mb for s in peer.samples)]}


def spread(values: list[float]) -> str:
    return f"{p50(values):.2f} ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else f"{values[0]:.2f}"


def verdict(values: list[float], bound: float, at_least: bool) -> str:
    """Whether the median meets the bound, and whether single rounds fell on both sides of it."""
    met = [v >= bound if at_least else v <= bound for v in values]
    median = p50(values) >= bound if at_least else p50(values) <= bound
    return ("yes" if median else "no") + (" (rounds straddle it)" if any(met) and not all(met) else "")


def comparison_rows(by_name: dict[str, Contestant]) -> list[tuple[Any, ...]]:
    settings = (("both uncached", "Customer Graph, no cache", f"{HIVE}, no cache", UNCACHED_TARGETS),
                ("ours record cache vs Hive uncached", "Customer Graph, record cache", f"{HIVE}, no cache", ()),
                ("both with response caches", "Customer Graph, response cache", f"{HIVE}, response cache",
                 CACHED_TARGETS))
    rows: list[tuple[Any, ...]] = []
    for setting, ours, peer, targets in settings:
        if ours not in by_name:
            continue
        r = ratios(by_name[ours], by_name[peer])
        bounds = {measure: (bound, at_least) for measure, bound, at_least in targets}
        for measure, values in r.items():
            target = bounds.get(measure)
            rows.append((setting, measure, spread(values),
                         f"{'>=' if target[1] else '<='} {target[0]}" if target else "",
                         verdict(values, *target) if target else ""))
    return rows


def machine() -> str:
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}, load average "
            f"{load} at the start")


def report(contestants: list[Contestant], missing: str, args: argparse.Namespace, start_note: str) -> str:
    work = (f"billing accounts with invoices plus contact-center interactions for {CUSTOMERS} customers "
            f"round-robin, {args.clients} connections, {args.rounds} rounds of {args.seconds:g} s after "
            f"{args.warmup:g} s of warm-up each")
    first = table(f"Peer benchmark: {work}",
                  ("gateway", "req/s", "p50 ms", "p99 ms", "CPU ms/request", "RSS MB (max)", "source calls/request",
                   "client CPU %", "failed"),
                  gateway_rows(contestants))
    second = table("Ours / Hive's: median (range) of the rounds' ratios; RSS: largest seen over the run",
                   ("setting", "measure", "ratio", "target", "met"),
                   comparison_rows({c.name: c for c in contestants}))
    notes = [f"Both with response caches: {missing}." if missing else "",
             f"Machine: {start_note}.",
             "The load generator (this Python process, one asyncio loop) and the demo estate share these cores "
             "with the gateways; on a machine shared with other work the absolute figures vary, the paired "
             "ratios less.",
             "Client CPU %: the load generator's own share of one core while it drove that gateway; near 100 "
             "the client, not the gateway, bounds the throughput.",
             "Source calls: HTTP requests the estate's billing and contact served, per request answered (ours "
             "also reads its crosswalk, SQLite, which is not counted here).",
             "Every gateway's records for all 50 customers were compared before and after the load: the same."]
    return "\n".join([first, second, *filter(None, notes)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--warmup", type=float, default=10, help="seconds of load per gateway first (>= 10)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--customers", type=int, default=2000, help="the estate's size")
    args = parser.parse_args()
    if args.warmup < 10:
        parser.error("--warmup must be at least 10 s: Hive's JIT needs about that to be at speed")
    start_note = machine()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        env = environment(Path(tmp), args.customers)
        stack.callback(env.est.stop)
        customers = pick(env, CUSTOMERS)
        ours, missing = start_ours(env, stack, customers)
        hive = start_hive(env, stack, customers)
        # Measured in this order (reversed every other round): each pair compared stands side by side.
        contestants = [ours[0], hive[0], *ours[1:], hive[1]]
        # Hive's uncached answers first: the reference the others are compared with.
        reference = [hive[0], *(c for c in contestants if c is not hive[0])]
        check(reference, customers)
        print(f"records checked: {len(contestants)} gateways agree on {CUSTOMERS} customers", flush=True)
        measure(contestants, env.est, args)
        check(reference, customers)
    print()
    print(report(contestants, missing, args, start_note))


if __name__ == "__main__":
    main()
