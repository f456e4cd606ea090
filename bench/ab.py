"""`python -m bench.ab`: the gateway at a base git ref against this working tree, in one run on one estate.

Only ratios from one run mean anything on a shared, noisy machine, so both checkouts' gateways serve the same
estate side by side and are measured in rounds (base first in even rounds, head first in odd ones), each
round's requests in chunks alternating between the two (ABBA), with the floor script (bench/floor.py)
measured in every round too. Each figure is the gateway process's CPU per request (/proc/<pid>/stat
utime + stime, as the other benchmarks read it); head/base is paired per round:

  cold full view, cache off        CUSTOMER_FULL on a gateway with `cache.enabled: false`
  cold full view, no-cache header  CUSTOMER_FULL with `Cache-Control: no-cache` on a caching gateway: every
                                   record read live and written back to the cache (table 3 of `python -m
                                   bench`, the README's 4.25 ms)
  warm point of sale               POINT_OF_SALE from 8 clients, every record fresh in the cache (table 5's
                                   0.43 ms); the cache is refreshed with no-cache requests just before each
                                   round, so no record's TTL (helpdesk tickets: 15 s) runs out during one

The base runs from a temporary `git worktree` of its ref, with this interpreter, cwd and PYTHONPATH set to the
worktree (checked: its modules import from there); its config comes from its own tests.harness.gateway_config.
`--head REF` measures a commit instead of the working tree (also from a temporary worktree); the same ref
on both sides is an A/A run, whose spread is the noise.

  python -m bench.ab [--base 05d9d81] [--head REF] [--rounds 8] [--views 100] [--seconds 3] [--chunks 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import cpu_s, p50, table
from bench.suite import Env, _floor_views, _load, environment
from tests.harness import LIVE, ROOT, Gateway, free_port_base, http
from tests.queries import CUSTOMER_FULL, POINT_OF_SALE

BASE = "05d9d81"  # the last commit before issue 11's work
LIMIT = 1.10  # issue 11, "Speed kept": within 10% of today's or better
CLIENTS = 8  # as table 5
MODULES = ("gateway", "config", "server.app", "resolvers.context", "connectors", "schema", "tests.harness")

# Run with cwd = a checkout: its own gateway_config over our estate, written as YAML; prints its tokens and
# where its modules came from (argv[1] is JSON: data, ports, overrides, out).
CONFIG_SNIPPET = """
import importlib, json, sys
from pathlib import Path
import yaml
from tests import harness
args = json.loads(sys.argv[1])

class Estate:  # what gateway_config reads of an estate
    data = Path(args["data"])
    ports = args["ports"]
    def url(self, source, path=""):
        return f"http://127.0.0.1:{self.ports[source]}{path}"

cfg = harness.gateway_config(Estate())
for section, values in args["overrides"].items():
    cfg.setdefault(section, {}).update(values)
Path(args["out"]).write_text(yaml.safe_dump(cfg))
files = {m: importlib.import_module(m).__file__ for m in args["modules"]}
print(json.dumps({"tokens": harness.tokens_for(cfg), "modules": files}))
"""


@contextmanager
def checkout(ref: str | None, path: Path) -> Iterator[tuple[Path, str]]:
    """This working tree (ref None), or a detached `git worktree` of ref at `path`, removed afterwards;
    yields its folder and a name for it."""
    if ref is None:
        yield ROOT, "working tree"
        return
    sha = _git("rev-parse", "--verify", f"{ref}^{{commit}}").strip()
    _git("worktree", "add", "--detach", str(path), sha)
    try:
        yield path, sha[:7]
    finally:
        _git("worktree", "remove", "--force", str(path))


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def _child_env(root: Path) -> dict[str, str]:
    """This interpreter's environment, importing from `root` first (before the editable install's finder)."""
    env = {k: v for k, v in os.environ.items() if k != "CUSTOMER_GRAPH_TYPES"}  # types from root's sources/
    return {**env, "PYTHONPATH": str(root), "PYTHONUNBUFFERED": "1"}


def write_config(root: Path, env: Env, out: Path, overrides: dict[str, dict[str, Any]]) -> dict[str, str]:
    """`root`'s own gateway config over our estate, written to `out`; returns its role tokens."""
    args = {"data": str(env.est.data.resolve()), "ports": env.est.ports, "overrides": overrides, "out": str(out),
            "modules": MODULES}
    done = subprocess.run([sys.executable, "-c", CONFIG_SNIPPET, json.dumps(args)], check=False, cwd=root,
                          env=_child_env(root), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"config of {root} failed:\n{done.stderr[-2000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    strays = {m: f for m, f in answer["modules"].items() if not Path(f).resolve().is_relative_to(root.resolve())}
    if strays:
        raise RuntimeError(f"modules imported from outside {root}: {strays}")
    tokens: dict[str, str] = answer["tokens"]
    return tokens


def launch(root: Path, config: Path, tokens: dict[str, str], log: Path) -> Gateway:
    """`python gateway.py serve` of the checkout at `root`, one worker, on a free port."""
    port = free_port_base(1) + 1
    proc = subprocess.Popen([sys.executable, "gateway.py", "serve", "--config", str(config), "--port", str(port),
                             "--workers", "1"], cwd=root, env=_child_env(root), stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    gw = Gateway(proc, port, log, tokens)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:  # the log goes with the temporary folder: show its end
            raise RuntimeError(f"gateway of {root} exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if http("GET", gw.url + "/healthz", timeout=2)[0] == 200:
                return gw
        except OSError:
            pass
        time.sleep(0.1)
    gw.stop()
    raise RuntimeError(f"gateway of {root} did not answer:\n{log.read_text()[-2000:]}")


@dataclass
class Side:
    """One checkout's two gateways (record cache on and off) and its CPU ms per request, per round."""
    name: str
    cached: Gateway
    uncached: Gateway
    ms: dict[str, list[float]] = field(default_factory=dict)
    misses: list[int] = field(default_factory=list)  # source calls during each warm point-of-sale chunk

    def stop(self) -> None:
        for gw in (self.cached, self.uncached):
            gw.stop()


def start_side(name: str, root: Path, env: Env, work: Path) -> Side:
    gateways = []
    try:
        for label, overrides in (("cached", {}), ("uncached", {"cache": {"enabled": False}})):
            path = work / f"{root.name}-{label}.yaml"
            tokens = write_config(root, env, path, overrides)
            gateways.append(launch(root, path, tokens, work / f"{root.name}-{label}.log"))
    except BaseException:
        for gw in gateways:
            gw.stop()
        raise
    return Side(name, cached=gateways[0], uncached=gateways[1])


@dataclass
class Work:
    """What the gateways are asked: the fullest customers' views, point-of-sale lookups by phone."""
    ids: list[str]
    payloads: list[dict[str, Any]]
    args: argparse.Namespace

    @property
    def chunk_views(self) -> int:
        return max(1, int(self.args.views) // int(self.args.chunks))


def views(gw: Gateway, ids: list[str], n: int, headers: dict[str, str] | None) -> int:
    for i in range(n):
        answer = gw.gql(CUSTOMER_FULL, {"id": ids[i % len(ids)]}, headers)
        assert "errors" not in answer, answer["errors"][:2]
    return n


async def _refresh(url: str, payloads: list[dict[str, Any]], headers: dict[str, str]) -> None:
    """Every payload once, read live (Cache-Control: no-cache), so every record it needs is freshly cached."""
    todo = iter(payloads)
    async with aiohttp.ClientSession() as session:
        async def client() -> None:
            for payload in todo:
                async with session.post(url, json=payload, headers={**headers, **LIVE}) as resp:
                    assert resp.status == 200, await resp.text()
                    await resp.read()

        await asyncio.gather(*(client() for _ in range(CLIENTS)))


def source_calls(gw: Gateway) -> int:
    return sum(s["calls"] for s in json.loads(http("GET", gw.url + "/readyz")[2])["sources"].values())


def cold_off(side: Side, work: Work) -> int:
    return views(side.uncached, work.ids, work.chunk_views, None)


def cold_live(side: Side, work: Work) -> int:
    return views(side.cached, work.ids, work.chunk_views, LIVE)


def warm_pos(side: Side, work: Work) -> int:
    """8 clients for a chunk's share of --seconds; notes the source calls it caused (0 when all was warm)."""
    gw = side.cached
    calls = source_calls(gw)
    sent = len(asyncio.run(_load(gw.url + "/graphql", work.payloads, CLIENTS, work.args.seconds / work.args.chunks,
                                 gw.auth())))
    side.misses.append(source_calls(gw) - calls)
    return sent


def refresh(side: Side, work: Work) -> None:
    asyncio.run(_refresh(side.cached.url + "/graphql", work.payloads, side.cached.auth()))


@dataclass
class Measure:
    gateway: Callable[[Side], Gateway]
    send: Callable[[Side, Work], int]  # one chunk of requests; returns how many
    prepare: Callable[[Side, Work], None] | None = None  # before each round's chunks


MEASURES = {
    "cold full view, cache off": Measure(lambda s: s.uncached, cold_off),
    "cold full view, no-cache header": Measure(lambda s: s.cached, cold_live),
    # refreshed just before the round's chunks, which end well within the shortest TTL (helpdesk tickets: 15 s)
    "warm point of sale, 8 clients": Measure(lambda s: s.cached, warm_pos, refresh),
}


def one_round(name: str, m: Measure, order: list[Side], work: Work) -> None:
    """CPU ms per request of each side, its chunks alternating with the other's (ABBA...), appended to side.ms."""
    for side in order:
        if m.prepare:
            m.prepare(side, work)
    cpu = [0.0] * len(order)
    sent = [0] * len(order)
    for c in range(work.args.chunks):
        for i in range(len(order)) if c % 2 == 0 else reversed(range(len(order))):
            pid = m.gateway(order[i]).proc.pid
            start = cpu_s(pid)
            sent[i] += m.send(order[i], work)
            cpu[i] += cpu_s(pid) - start
    for i, side in enumerate(order):
        side.ms.setdefault(name, []).append(cpu[i] * 1000 / sent[i])


def warm_up(sides: list[Side], work: Work) -> None:
    for side in sides:
        views(side.uncached, work.ids, 20, None)
        views(side.cached, work.ids, 20, LIVE)
        refresh(side, work)
        warm_pos(side, work)
        side.misses.clear()


def measure(env: Env, sides: list[Side], args: argparse.Namespace) -> list[float]:
    """Every measure for every side, alternating who goes first; returns the floor's CPU ms per round."""
    ids = env.everywhere(10)
    payloads = [{"query": POINT_OF_SALE, "variables": {"phone": r["phone_home"]}} for r in env.truth.est.crm[:300]]
    work = Work(ids, payloads, args)
    warm_up(sides, work)
    floor: list[float] = []
    for r in range(args.rounds):
        started = time.monotonic()
        for name, m in MEASURES.items():
            one_round(name, m, sides if r % 2 == 0 else sides[::-1], work)
        floor.append(asyncio.run(_floor_views(env, ids, args.views))[1])
        line = "  ".join(f"{s.name} " + " / ".join(f"{v[-1]:.2f}" for v in s.ms.values()) for s in sides)
        print(f"round {r + 1}/{args.rounds} ({time.monotonic() - started:.0f} s): {line}  floor {floor[-1]:.2f}",
              flush=True)
    return floor


def spread(values: list[float]) -> str:
    return f"{p50(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def verdict(ratios: list[float]) -> str:
    said = "yes" if p50(ratios) <= LIMIT else "no"
    return said + (" (rounds straddle 1.10)" if min(ratios) <= LIMIT < max(ratios) else "")


def report(base: Side, head: Side, floor: list[float], rounds: int) -> str:
    rows = []
    for name in MEASURES:
        ratios = [h / b for b, h in zip(base.ms[name], head.ms[name])]  # paired: same round, back to back
        rows.append((name, spread(base.ms[name]), spread(head.ms[name]), f"{p50(ratios):.3f}",
                     f"{min(ratios):.3f}-{max(ratios):.3f}", spread(floor) if name.startswith("cold") else "",
                     verdict(ratios)))
    title = (f"A/B: gateway CPU ms per request, base {base.name} vs head {head.name}, one estate, {rounds} "
             "alternating rounds; median (min-max across rounds), head/base paired per round")
    header = ("measure", "base ms", "head ms", "head/base", "head/base range", "floor ms", "within 10%")
    cold = "cold full view, no-cache header"
    note = (f"gateway/floor, {cold}: base {p50(base.ms[cold]) / p50(floor):.2f}, head "
            f"{p50(head.ms[cold]) / p50(floor):.2f} (README: 4.25 / 1.61 = 2.63)")
    calls = f"source calls in the warm point-of-sale windows: base {sum(base.misses)}, head {sum(head.misses)}"
    return table(title, header, rows) + note + "\n" + calls


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=BASE, help=f"git ref of the base gateway (default {BASE})")
    parser.add_argument("--head", default=None, help="git ref of the head gateway (default: this working tree)")
    parser.add_argument("--rounds", type=int, default=8, help="alternating rounds (default 8)")
    parser.add_argument("--views", type=int, default=100, help="cold views per gateway per round (default 100)")
    parser.add_argument("--seconds", type=float, default=3.0, help="point-of-sale load per round (default 3; < 10)")
    parser.add_argument("--chunks", type=int, default=4,
                        help="each round's requests in this many chunks, alternating between the sides (default 4)")
    parser.add_argument("--customers", type=int, default=2000)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp, \
            checkout(args.base, Path(tmp) / "base") as (base_root, base_name), \
            checkout(args.head, Path(tmp) / "head") as (head_root, head_name):
        work = Path(tmp)
        env = environment(work, args.customers)
        sides: list[Side] = []
        try:
            sides.append(start_side(base_name, base_root, env, work))
            sides.append(start_side(head_name, head_root, env, work))
            floor = measure(env, sides, args)
        finally:
            for side in sides:
                side.stop()
            env.est.stop()
        print()
        print(report(sides[0], sides[1], floor, args.rounds))
    print(f"{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
