"""The last few minutes of calls, for the live status page: counts, errors and latency percentiles.

One bucket per second in a ring (the window's length in seconds), each holding its calls, its errors
and a bounded sample of durations; reading sums the buckets still inside the window. Recording is a
few list operations, no lock (one event loop per process). The clock is injected for tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

SAMPLES_PER_SECOND = 64  # durations kept per bucket: enough for p99 over minutes, bounded memory


@dataclass(slots=True)
class _Bucket:
    second: int = -1
    calls: int = 0
    errors: int = 0
    durations: list[float] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Summary:
    calls: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None
    per_second: float

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None


class RecentCalls:
    """Calls of the last `seconds` seconds."""

    def __init__(self, seconds: int = 300, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self.ring = [_Bucket() for _ in range(seconds)]
        self.last_error: str | None = None  # the most recent failure's code, shown beside the state
        self.last_ok = True  # whether the most recent call succeeded

    def record(self, duration_s: float | None, error: str | None = None) -> None:
        """One call; `duration_s` None for one refused before it went out (an open circuit): no latency."""
        now = int(self.clock())
        b = self.ring[now % self.seconds]
        if b.second != now:
            b.second, b.calls, b.errors = now, 0, 0
            b.durations.clear()
        b.calls += 1
        if error is not None:
            b.errors += 1
            self.last_error = error
        self.last_ok = error is None
        if duration_s is not None and len(b.durations) < SAMPLES_PER_SECOND:
            b.durations.append(duration_s)

    def summary(self, seconds: int | None = None) -> Summary:
        """Totals and latency percentiles over the last `seconds` (default: the whole window)."""
        span = min(seconds or self.seconds, self.seconds)
        now = int(self.clock())
        live = [b for b in self.ring if now - span < b.second <= now]
        durations = sorted(d for b in live for d in b.durations)
        calls = sum(b.calls for b in live)
        return Summary(calls, sum(b.errors for b in live), _pct(durations, 0.5), _pct(durations, 0.99),
                       round(calls / span, 3))


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 2)
