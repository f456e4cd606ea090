"""`python -m bench`: how close the gateway is to the physical limit, in one command.

Starts its own estate and gateways on free loopback ports, prints seven tables and saves them as
JSON (bench/results/latest.json), and a breakdown of where a view's CPU goes; then what auth, policy and
limits cost and what attacks cost before they are refused (bench/security.py). Nothing here is a test; figures vary run to run on a noisy machine.

  python -m bench [--quick] [--big 100000] [--rounds 40] [--seconds 10]

Not part of this run (about 3 minutes of its own): `python -m bench.ab [--base REF] [--head REF]`, the
gateway at a base commit (default 05d9d81, before issue 11) against this working tree on one estate, CPU
per cold full view and per warm point-of-sale request in alternating rounds, with the floor (bench/ab.py);
`python -m bench.telemetry` (about 4 minutes), what metrics and tracing cost in CPU per request, off
against on and against exporting to a loopback OTLP receiver (bench/telemetry.py); and `python -m
bench.responses` (about 2 minutes), CPU per request and throughput with the response cache against the
record cache alone (bench/responses.py); `python -m bench.events` and `python -m bench.subscriptions`,
event-to-view and event-to-subscriber latency and the 500-subscriber fan-out; and `python -m bench.peer`
(about 3-4 minutes; installs Hive Gateway and Mesh compose from npm on first use, outside the repository),
the same work against GraphQL Hive Gateway.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import breakdown, security, suite
from tests.harness import gateway_config, start_gateway

OUT = Path(__file__).resolve().parent / "results" / "latest.json"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small rounds, and scale/memory on 20,000 customers")
    parser.add_argument("--big", type=int, default=100_000, help="the large estate for scale and memory")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=10.0, help="throughput run length")
    args = parser.parse_args()
    if args.quick:
        args.big, args.rounds, args.seconds = 20_000, 15, 4.0
    tables: list[dict[str, Any]] = []
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        env = suite.environment(Path(tmp), 2000)
        gw = start_gateway(gateway_config(env.est), Path(tmp))
        try:
            steps = [lambda: [suite.batching(env, gw)],
                     lambda: suite.parallelism_and_floor(env, gw, args.rounds),
                     lambda: [breakdown.breakdown(env.est, gw, env.everywhere(10), args.rounds * 5)],
                     lambda: [suite.naive(env, gw, max(3, args.rounds // 8))],
                     lambda: [suite.throughput(env, args.seconds)],
                     lambda: suite.scale_and_memory(env, gw, args.big, args.rounds),
                     lambda: security.run(env, args.quick)]
            for step in steps:
                for t in step():
                    print(suite.table(t["title"], t["header"], t["rows"]), flush=True)
                    tables.append(t)
        finally:
            gw.stop()
            env.est.stop()
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M"),
                               "seconds": round(time.time() - started), "tables": tables}, indent=1, default=str))
    print(f"machine: {machine()}; {time.time() - started:.0f} s; saved to {OUT}")


if __name__ == "__main__":
    main()
