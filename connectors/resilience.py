"""Per-source protection: circuit breaker and bulkhead (retries with jittered backoff are in connectors.base).

None of it knows a protocol: the connectors wrap their calls in these.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable

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
    """At most `limit` calls in flight and `queue` waiting; beyond that, fail at once.

    Entering is a synchronous `try_enter` while a slot is free: an asyncio.Semaphore took two
    coroutines and a scan of its waiters per call (~2% of a cold view, py-spy). A leaving call
    hands its slot straight to the longest waiter.
    """

    def __init__(self, limit: int, queue: int) -> None:
        self.free = limit
        self.queue = queue
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.rejected = 0

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_enter(self) -> bool:
        if self.free and not self._waiters:
            self.free -= 1
            return True
        return False

    async def enter(self) -> None:
        """Take a slot, waiting in line for one; BulkheadFull when the line is full."""
        if self.try_enter():
            return
        if len(self._waiters) >= self.queue:
            self.rejected += 1
            raise BulkheadFull
        turn = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled():
                self.leave()  # a slot was handed over just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(turn)
            raise

    def leave(self) -> None:
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.free += 1
