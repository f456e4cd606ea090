"""Per-source protection: circuit breaker, bulkhead and retry with jittered backoff.

None of it knows a protocol: the connectors wrap their calls in these.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    """Opens after `failures` failed calls in a row; after `reset_s` lets one probe through,
    whose success closes it again and whose failure re-opens it."""

    def __init__(self, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold, self.reset_s, self.clock = failures, reset_s, clock
        self.state = CLOSED
        self.consecutive = 0
        self.opened_at = 0.0
        self.probing = False
        self.opens = 0  # times it has opened, for /readyz

    def allow(self) -> bool:
        """Whether a call may go to the source now (a half-open circuit admits one probe)."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN and self.clock() - self.opened_at >= self.reset_s:
            self.state = HALF_OPEN
        if self.state == HALF_OPEN and not self.probing:
            self.probing = True
            return True
        return False

    def success(self) -> None:
        self.state, self.consecutive, self.probing = CLOSED, 0, False

    def failure(self) -> None:
        self.consecutive += 1
        self.probing = False
        if self.state == HALF_OPEN or self.consecutive >= self.threshold:
            if self.state != OPEN:
                self.opens += 1
            self.state, self.opened_at = OPEN, self.clock()

    def release(self) -> None:
        """A probe that ended with neither success nor a source failure (e.g. cancelled)."""
        self.probing = False

    def retry_in(self) -> float:
        return max(0.0, self.reset_s - (self.clock() - self.opened_at)) if self.state == OPEN else 0.0


class BulkheadFull(Exception):
    pass


class Bulkhead:
    """At most `limit` calls in flight and `queue` waiting; beyond that, fail at once."""

    def __init__(self, limit: int, queue: int) -> None:
        self.sem = asyncio.Semaphore(limit)
        self.queue = queue
        self.waiting = 0
        self.rejected = 0

    async def __aenter__(self) -> None:
        if self.sem.locked():
            if self.waiting >= self.queue:
                self.rejected += 1
                raise BulkheadFull
            self.waiting += 1
            try:
                await self.sem.acquire()
            finally:
                self.waiting -= 1
        else:
            await self.sem.acquire()

    async def __aexit__(self, *exc: Any) -> None:
        self.sem.release()


async def with_retries(call: Callable[[], Awaitable[T]], retryable: Callable[[BaseException], bool],
                       retries: int, backoff_s: float) -> T:
    """`call()`, again after a jittered exponential pause while it fails retryably, `retries` times at most.

    The caller's timeout bounds the whole, so a retry never outlives the source's budget.
    """
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as exc:
            if attempt >= retries or not retryable(exc):
                raise
            attempt += 1
            await asyncio.sleep(random.uniform(0, backoff_s * 2 ** (attempt - 1)))  # full jitter
