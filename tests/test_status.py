"""The status page's figures (connectors/window.py, server/status.py), with an injected clock."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from connectors.window import RecentCalls
from server.status import source_state


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_forgets_what_is_older_than_it() -> None:
    clock = Clock()
    recent = RecentCalls(seconds=60, clock=clock)
    for ms in range(1, 101):  # 100 calls over 10 s, 1..100 ms, one failing in ten
        recent.record(ms / 1000, "SOURCE_TIMEOUT" if ms % 10 == 0 else None)
        clock.now += 0.1
    s = recent.summary()
    assert (s.calls, s.errors, s.p50_ms, s.p99_ms) == (100, 10, 51.0, 100.0)
    burst = RecentCalls(seconds=60, clock=clock)
    for _ in range(1000):  # a burst: every call counted, a bounded sample of durations kept
        burst.record(0.001)
    assert burst.summary().calls == 1000 and len(burst.ring[int(clock.now) % 60].durations) == 64
    clock.now += 20
    recent.record(0.005)
    assert recent.summary(10).calls == 1 and recent.summary().calls == 101
    clock.now += 55  # the first 100 calls are now over 65 s old
    assert recent.summary().calls == 1 and recent.summary().p50_ms == 5.0
    clock.now += 100
    assert recent.summary().calls == 0 and recent.summary().p50_ms is None and recent.summary().error_rate is None


def connector(circuit: str, recent: RecentCalls) -> Any:
    return SimpleNamespace(circuit=SimpleNamespace(state=circuit), recent=recent)


def test_a_source_is_down_when_its_circuit_is_open_or_its_calls_fail() -> None:
    clock = Clock()
    quiet = RecentCalls(clock=clock)
    assert source_state(connector("closed", quiet), quiet.summary(60)) == "up"  # no calls yet: nothing wrong
    assert source_state(connector("open", quiet), quiet.summary(60)) == "down"
    failing = RecentCalls(clock=clock)
    for _ in range(3):
        failing.record(0.002, "SOURCE_UNAVAILABLE")
    assert source_state(connector("closed", failing), failing.summary(60)) == "down"
    failing.record(0.002)  # it answers again: degraded while the failures are recent
    assert source_state(connector("closed", failing), failing.summary(60)) == "degraded"
    assert source_state(connector("half_open", quiet), quiet.summary(60)) == "degraded"
