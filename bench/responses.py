"""`python -m bench.responses`: the response cache against the record cache alone, in one run on one estate.

Two gateways of this working tree serve the same estate: one with `cache.responses.enabled: false` (every
request executes over records fresh in the in-process tier), one with the response cache on (a repeat
is answered with its stored bytes). Each round loads each gateway in turn, the order alternating between
rounds, with 16 clients for --seconds per workload, each gateway refreshed with no-cache requests just
before its loads (so no record's TTL runs out meanwhile: helpdesk tickets live 15 s):

  point of sale        POINT_OF_SALE by phone, 300 phones (table 5 of `python -m bench`)
  billing + contacts   billing accounts with invoices and contact-center interactions, 50 customers
                       round-robin (the peer benchmark's work, issue 14)

Gateway CPU is the gateway process's (/proc utime + stime, bench.common.cpu_s) over the requests it served.

  python -m bench.responses [--rounds 4] [--seconds 4] [--customers 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.ab import _refresh
from bench.common import cpu_s, p50, pct, table
from bench.suite import _load, environment
from tests.harness import Gateway, gateway_config, start_gateway
from tests.queries import POINT_OF_SALE

CLIENTS = 16
BILLING_CONTACTS = """query Accounts($id: ID!) { customer(id: $id) { id name
  accounts { number status balance currency invoices { number issuedOn dueOn amount amountPaid status } }
  interactions(first: 20) { id channel startedAt agentId outcome summary } } }"""
TARGET_MS = 0.25  # issue 14: a warm point-of-sale request


@dataclass
class Runs:
    """One gateway's figures per workload, a list per round."""
    gw: Gateway
    rps: dict[str, list[float]] = field(default_factory=dict)
    p50: dict[str, list[float]] = field(default_factory=dict)
    p99: dict[str, list[float]] = field(default_factory=dict)
    cpu_ms: dict[str, list[float]] = field(default_factory=dict)

    def run(self, name: str, payloads: list[dict[str, Any]], seconds: float) -> None:
        pid = self.gw.proc.pid
        start = cpu_s(pid)
        times = asyncio.run(_load(self.gw.url + "/graphql", payloads, CLIENTS, seconds, self.gw.auth()))
        self.cpu_ms.setdefault(name, []).append((cpu_s(pid) - start) * 1000 / len(times))
        self.rps.setdefault(name, []).append(len(times) / seconds)
        self.p50.setdefault(name, []).append(p50(times))
        self.p99.setdefault(name, []).append(pct(times, .99))


def workloads(env: Any) -> dict[str, list[dict[str, Any]]]:
    phones = [r["phone_home"] for r in env.truth.est.crm[:300]]
    ids = [g for g in sorted(env.truth.ids) if env.truth.ids[g]["billing"] and env.truth.ids[g]["contact"]][:50]
    return {"point of sale": [{"query": POINT_OF_SALE, "variables": {"phone": p}} for p in phones],
            "billing + contacts": [{"query": BILLING_CONTACTS, "variables": {"id": g}} for g in ids]}


def refresh(gw: Gateway, work: dict[str, list[dict[str, Any]]]) -> None:
    for payloads in work.values():
        asyncio.run(_refresh(gw.url + "/graphql", payloads, gw.auth()))


def report(sides: dict[str, Runs], names: list[str], rounds: int, seconds: float) -> str:
    rows = []
    base = sides["records only"]
    for name in names:
        for label, runs in sides.items():
            ratio = [b / r for b, r in zip(base.cpu_ms[name], runs.cpu_ms[name])]  # paired per round
            rows.append((name, label, round(p50(runs.rps[name])), f"{p50(runs.p50[name]):.2f}",
                         f"{p50(runs.p99[name]):.2f}", f"{p50(runs.cpu_ms[name]):.3f}",
                         f"{min(runs.cpu_ms[name]):.3f}-{max(runs.cpu_ms[name]):.3f}", f"{p50(ratio):.2f}",
                         f"<= {TARGET_MS}" if name == "point of sale" and label != "records only" else ""))
    title = (f"Response cache vs record cache alone: {CLIENTS} clients, {seconds:g} s per workload per round, "
             f"{rounds} alternating rounds; medians over rounds")
    header = ("workload", "gateway", "req/s", "p50 ms", "p99 ms", "CPU ms/request", "CPU range",
              "CPU saved (x)", "target")
    return table(title, header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.responses", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--customers", type=int, default=2000)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-responses-") as tmp:
        env = environment(Path(tmp), args.customers)
        sides: dict[str, Runs] = {}
        try:
            for label, responses in (("records only", False), ("records + responses", True)):
                cfg = gateway_config(env.est)
                cfg["cache"]["responses"] = {"enabled": responses}
                sides[label] = Runs(start_gateway(cfg, Path(tmp), label.replace(" ", "-").replace("+", "and")))
            work = workloads(env)
            for runs in sides.values():  # warm-up: every record and answer cached, the interpreter warm
                refresh(runs.gw, work)
                for payloads in work.values():
                    asyncio.run(_load(runs.gw.url + "/graphql", payloads, CLIENTS, 2, runs.gw.auth()))
            order = list(sides.values())
            for r in range(args.rounds):
                for runs in order if r % 2 == 0 else order[::-1]:
                    refresh(runs.gw, work)  # just before its loads, which end within the shortest TTL
                    for name, payloads in work.items():
                        runs.run(name, payloads, args.seconds)
                line = "  ".join(f"{label}: " + " / ".join(f"{v[-1]:.3f}" for v in runs.cpu_ms.values())
                                 for label, runs in sides.items())
                print(f"round {r + 1}/{args.rounds}: CPU ms/request {line}", flush=True)
        finally:
            for runs in sides.values():
                runs.gw.stop()
            env.est.stop()
        print()
        print(report(sides, list(work), args.rounds, args.seconds))
    print(f"{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
