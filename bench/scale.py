"""`python -m bench.scale`: is a cold full view's cost flat with the estate's size?

Section 6 of `python -m bench` times a small estate's views on a long-used gateway, then starts the big
estate and times its views once, wall clock only: one noisy neighbour on a 2-core machine moves that
ratio (1.31 in one run, 0.99 in another). Here both estates and two identically configured fresh
gateways run side by side, rounds interleave (alternating which goes first), and each round reports
gateway CPU per cold view (what the gateway costs) and p50 latency (which also holds the estate's own
sources). Every view sends `Cache-Control: no-cache`, so neither the response cache nor the record cache
answers it. Prints medians and ranges over rounds (CPU comes from /proc in 10 ms ticks: use enough views).

Measured (2 shared cores, 7 rounds of 60 views): CPU 5.33 vs 5.67 ms/view, p50 7.85 vs 8.39 ms, ratio
of medians 1.05-1.07, per-round ratios 0.77-1.42 either way. Every SQL read is an index search
(EXPLAIN QUERY PLAN: xref by golden_id/system_key, match_keys by match_key, orders by account_email
joined to order_lines by its key, customers by cust_no); the estate's HTTP sources are dict lookups.

  python -m bench.scale [--big 100000] [--rounds 7] [--views 30]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
from pathlib import Path

from bench.common import cpu_s, p50, table
from bench.suite import timed
from tests.harness import LIVE, Gateway, gateway_config, start_estate, start_gateway
from tests.queries import CUSTOMER_FULL


def _round(gw: Gateway, ids: list[str]) -> tuple[float, float]:
    """(gateway CPU ms per view, p50 latency ms) over one round of cold views."""
    cpu0 = cpu_s(gw.proc.pid)
    times = [timed(gw, CUSTOMER_FULL, {"id": g}, LIVE) for g in ids]
    return (cpu_s(gw.proc.pid) - cpu0) * 1000 / len(ids), p50(times)


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--views", type=int, default=30, help="cold views per estate per round")
    args = parser.parse_args()
    sizes = (args.small, args.big)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        estates = [start_estate(work / f"e{n}", customers=n) for n in sizes]
        gws = [start_gateway(gateway_config(e), work, f"g{n}") for e, n in zip(estates, sizes)]
        try:
            rng = random.Random(14)
            for gw, n in zip(gws, sizes):  # connections up, plan compiled, first-use imports done
                for _ in range(10):
                    timed(gw, CUSTOMER_FULL, {"id": f"C-{rng.randint(1, n):06d}"}, LIVE)
            cpu: list[list[float]] = [[], []]
            lat: list[list[float]] = [[], []]
            for r in range(args.rounds):
                order = (0, 1) if r % 2 == 0 else (1, 0)
                for i in order:
                    ids = [f"C-{rng.randint(1, sizes[i]):06d}" for _ in range(args.views)]
                    c, ms = _round(gws[i], ids)
                    cpu[i].append(c)
                    lat[i].append(ms)
        finally:
            for gw in gws:
                gw.stop()
            for e in estates:
                e.stop()
    cpu_ratio = [b / s for s, b in zip(*cpu)]
    lat_ratio = [b / s for s, b in zip(*lat)]
    rows = [(f"{sizes[i]:,}", _spread(cpu[i]), _spread(lat[i])) for i in (0, 1)]
    rows.append(("ratio big/small, per round", _spread(cpu_ratio), _spread(lat_ratio)))
    print(table(f"Scale: cold full view (no-cache), {args.rounds} interleaved rounds of {args.views} views, "
                "median (range)", ("estate", "gateway CPU ms/view", "p50 ms"), rows))


if __name__ == "__main__":
    main()
