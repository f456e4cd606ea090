"""`python -m bench.telemetry`: what metrics and tracing cost, in gateway CPU per request.

Gateways of this working tree over one estate, one per setup of SETUPS (a name, gateway.yaml overrides,
environment, request headers), measured as bench/ab.py measures: interleaved rounds, each round's requests in
chunks alternating the setups' order (ABBA...), the first setup rotating per round; each figure is the
gateway process's CPU per request (/proc/<pid>/stat utime + stime, bench/common.py), and each setup's ratio
to "off" is paired per round, so drift on a shared machine cancels. The requests:

  cold full view      CUSTOMER_FULL with `Cache-Control: no-cache`: every record read live, ~20 source calls
  warm point of sale  POINT_OF_SALE from 8 clients, every record fresh in the cache (refreshed before each round)

Each gateway's CPU is read over its whole round (the others idle meanwhile), up to 1.5 s after the last
request, so the exporter's thread, which sends batches after the requests, is counted. Each exporting
setup sends its spans to a loopback OTLP/HTTP receiver of its own in this process (tests/otlp_receiver.py,
counting only); the table says how many spans per request arrived, so dropped spans would show.
The metrics switch (`metrics: {enabled: false}`) is applied only where this build's config knows a `metrics`
section; without it "off" and "on" differ by tracing alone, as the output says.

  python -m bench.telemetry [--rounds 8] [--views 120] [--seconds 2] [--chunks 4] [--customers 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import config as gateway_settings
from bench.ab import CLIENTS, _refresh, views
from bench.common import cpu_s, p50, table
from bench.suite import Env, _load, environment
from tests.harness import LIVE, Gateway, gateway_config, serve_file, tokens_for
from tests.otlp_receiver import Receiver, running_receiver
from tests.queries import POINT_OF_SALE

RECEIVER = "{receiver}"  # in a setup's environment: the loopback receiver's endpoint
LIMIT = 1.05  # issue 12: metrics and tracing on (exporter unset) within 5% of off
CLIENT_TRACE = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}


@dataclass(frozen=True)
class Setup:
    name: str
    overrides: dict[str, dict[str, Any]]  # gateway.yaml sections
    env: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request


SETUPS = (
    Setup("off", {"metrics": {"enabled": False}}, {}),
    Setup("metrics + tracing, exporter unset", {}, {}),
    Setup("same, clients send traceparent", {}, {}, CLIENT_TRACE),  # the off path passing the client's trace on
    # A batch at least every second (the SDK's default is 5 s), so each round's spans are sent within it.
    Setup("tracing exporting to local OTLP", {}, {"OTEL_EXPORTER_OTLP_ENDPOINT": RECEIVER,
                                                  "OTEL_BSP_SCHEDULE_DELAY": "1000"}, CLIENT_TRACE),
    # What sampling buys: one trace in ten recorded (no client traceparent, whose flag the parent-based
    # default would follow).
    Setup("exporting, 10% sampled", {}, {"OTEL_EXPORTER_OTLP_ENDPOINT": RECEIVER, "OTEL_BSP_SCHEDULE_DELAY": "1000",
                                        "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}),
)
FLUSH_S = 1.5  # after each round's requests: past the exporter's schedule delay
MEASURES = ("cold full view", "warm point of sale, 8 clients")


@dataclass
class Running:
    setup: Setup
    gw: Gateway
    receiver: Receiver | None  # where it exports to, if it does
    ms: dict[str, list[float]] = field(default_factory=dict)  # measure -> CPU ms per request, per round
    sent: dict[str, int] = field(default_factory=dict)  # measure -> requests sent while measured
    spans: dict[str, int] = field(default_factory=dict)  # measure -> spans received while measured

    @property
    def received(self) -> int:
        return self.receiver.count if self.receiver is not None else 0


def applicable(overrides: dict[str, dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The overrides this build's config knows, and the sections it does not (left out)."""
    known = {k: v for k, v in overrides.items() if k in gateway_settings.TOP_LEVEL}
    return known, sorted(set(overrides) - set(known))


def start(setup: Setup, env: Env, receivers: ExitStack) -> tuple[Running, list[str]]:
    config = gateway_config(env.est)
    overrides, missing = applicable(setup.overrides)
    for section, values in overrides.items():
        config.setdefault(section, {}).update(values)
    slug = "".join(c if c.isalnum() else "-" for c in setup.name)
    path = env.work / f"telemetry-{slug}.yaml"
    path.write_text(yaml.safe_dump(config))
    receiver = receivers.enter_context(running_receiver(keeping=False)) \
        if any(RECEIVER in v for v in setup.env.values()) else None
    environ = {k: v.replace(RECEIVER, receiver.endpoint) if receiver else v for k, v in setup.env.items()}
    gw = serve_file(path, env.work, f"telemetry-{slug}", env=environ, tokens=tokens_for(config))
    return Running(setup, gw, receiver), missing


@dataclass
class Work:
    ids: list[str]
    payloads: list[dict[str, Any]]
    args: argparse.Namespace


def send(measure: str, run: Running, work: Work) -> int:
    """One chunk of a measure's requests to one gateway; returns how many were sent."""
    a = work.args
    if measure == "cold full view":
        return views(run.gw, work.ids, max(1, a.views // a.chunks), {**LIVE, **run.setup.headers})
    headers = {**run.gw.auth(), **run.setup.headers}
    return len(asyncio.run(_load(run.gw.url + "/graphql", work.payloads, CLIENTS, a.seconds / a.chunks, headers)))


def refresh(run: Running, work: Work) -> None:
    asyncio.run(_refresh(run.gw.url + "/graphql", work.payloads, {**run.gw.auth(), **run.setup.headers}))


def one_round(measure: str, order: list[Running], work: Work) -> None:
    """Each gateway's CPU over the whole round, its chunks alternating with the others', up to the exporter's
    last batch: an exporter works in a thread after the requests, maybe while another setup is measured.
    An idle gateway's CPU is nil, so that counts only what each one did for its own requests."""
    if measure.startswith("warm"):
        for run in order:
            refresh(run, work)  # the round's chunks end well within the shortest TTL (15 s)
        time.sleep(FLUSH_S)  # the refresh's spans sent before the round is measured
    spans = [run.received for run in order]
    before = [cpu_s(run.gw.proc.pid) for run in order]
    sent = [0] * len(order)
    for c in range(work.args.chunks):
        for i in range(len(order)) if c % 2 == 0 else reversed(range(len(order))):
            sent[i] += send(measure, order[i], work)
    time.sleep(FLUSH_S)
    for i, run in enumerate(order):
        run.ms.setdefault(measure, []).append((cpu_s(run.gw.proc.pid) - before[i]) * 1000 / sent[i])
        run.sent[measure] = run.sent.get(measure, 0) + sent[i]
        run.spans[measure] = run.spans.get(measure, 0) + run.received - spans[i]


def measure(runs: list[Running], work: Work) -> None:
    """Every measure in every round."""
    for run in runs:  # warm up: connections, caches, the exporter's first batches
        views(run.gw, work.ids, 10, {**LIVE, **run.setup.headers})
        refresh(run, work)
    for r in range(work.args.rounds):
        started = time.monotonic()
        order = runs[r % len(runs):] + runs[:r % len(runs)]
        for m in MEASURES:
            one_round(m, order, work)
        print(f"round {r + 1}/{work.args.rounds} ({time.monotonic() - started:.0f} s): "
              + "  ".join(f"{run.setup.name}: " + " / ".join(f"{v[-1]:.3f}" for v in run.ms.values()) for run in runs),
              flush=True)


def spread(values: list[float]) -> str:
    return f"{p50(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def report(runs: list[Running], rounds: int) -> str:
    off = runs[0]
    rows = []
    for m in MEASURES:
        for run in runs:
            ratios = [x / o for o, x in zip(off.ms[m], run.ms[m])]
            exported = f"{run.spans[m] / run.sent[m]:.1f}" if run.receiver else ""
            within = "" if run is off or run.receiver else ("yes" if p50(ratios) <= LIMIT else "no")
            rows.append((m, run.setup.name, spread(run.ms[m]), f"{p50(ratios):.3f}",
                         f"{min(ratios):.3f}-{max(ratios):.3f}", exported, within))
    title = (f"Telemetry overhead: gateway CPU ms per request, {rounds} interleaved rounds; median (min-max), "
             "ratio to off paired per round")
    header = ("request", "setup", "CPU ms", "vs off", "vs off range", "spans exported/req", "within 5%")
    received = [f"{run.setup.name}: {run.receiver.requests} OTLP requests, {run.receiver.bytes / 1e6:.1f} MB, "
                f"{run.receiver.count} spans" for run in runs if run.receiver]
    return table(title, header, rows) + "received: " + "; ".join(received)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.telemetry", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--views", type=int, default=120, help="cold views per setup per round (default 120)")
    parser.add_argument("--seconds", type=float, default=2.0, help="warm load per setup per round (default 2)")
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--customers", type=int, default=2000)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-telemetry-") as tmp, ExitStack() as receivers:
        env = environment(Path(tmp), args.customers)
        runs: list[Running] = []
        try:
            for setup in SETUPS:
                run, missing = start(setup, env, receivers)
                runs.append(run)
                if missing:
                    print(f"{setup.name}: this build's config has no {', '.join(missing)} section; left out")
            ids = env.everywhere(10)
            payloads = [{"query": POINT_OF_SALE, "variables": {"phone": r["phone_home"]}}
                        for r in env.truth.est.crm[:300]]
            measure(runs, Work(ids, payloads, args))
        finally:
            for run in runs:
                run.gw.stop()
            env.est.stop()
        print()
        print(report(runs, args.rounds))
    print(f"{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
