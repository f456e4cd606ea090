"""Readiness (`GET /readyz`): can this gateway resolve customers? Asked of the identity source, in the
background.

Every customer a request names is first matched in the identity source, so the gateway is ready only
when that source answers: it has answered a probe since start, its latest probe answered (and recently:
a probe loop that stopped proves nothing), and its circuit is closed (open or half-open, client calls
are refused or on trial). The probe runs every `interval_s` whether or not clients call, so readiness
is never inferred from traffic, and an unready gateway that gets no traffic still sees its source come
back. A probe asks for a key nobody has (connectors.base.PING_KEY): "not found" proves the source
answers. It is not client traffic (Connector.probe): /readyz's and the status page's counters leave it out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from connectors.base import Connector, Probe
from connectors.resilience import CLOSED, OPEN

log = logging.getLogger("customer_graph")
STALE_PROBES = 3  # ready only while the latest answer is younger than this many intervals (plus a timeout)


class Readiness:
    """The identity source's probe results, and the verdict on them at any moment (`clock`: monotonic s)."""

    def __init__(self, connector: Connector, interval_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.connector = connector
        self.interval_s = interval_s
        self.timeout_s = interval_s  # a probe ends before the next is due
        self.clock = clock
        self.probes = 0
        self.last_ok_at: float | None = None  # when it last answered (clock time)
        self.last_failure: str | None = None  # what its last failed probe said
        self.last_failed_at: float | None = None
        self.latest_ok = False
        self._task: asyncio.Task[None] | None = None

    def note(self, result: Probe) -> None:
        """One probe's outcome."""
        self.probes += 1
        self.latest_ok = result.up
        if result.up:
            self.last_ok_at = self.clock()
        else:
            self.last_failure, self.last_failed_at = result.detail, self.clock()

    def reason(self) -> str | None:
        """Why the gateway is not ready now, or None when it is."""
        name = f"identity source {self.connector.name!r}"
        if self.last_ok_at is None:
            tail = f" (last probe: {self.last_failure})" if self.last_failure else ""
            return f"{name} has not answered since start{tail}"
        circuit = self.connector.circuit
        if circuit.state != CLOSED:  # clients' calls are refused (or one is on trial), whatever the probe saw
            return f"{name} circuit is {circuit.state}" + (
                f", next trial in {circuit.retry_in():.1f} s" if circuit.state == OPEN else "")
        if not self.latest_ok:
            return f"{name} did not answer its last probe: {self.last_failure}"
        age = self.clock() - self.last_ok_at
        if age > STALE_PROBES * self.interval_s + self.timeout_s:
            return f"{name} last answered {age:.0f} s ago (no probe since)"
        return None

    def status(self) -> dict[str, Any]:
        """The probe's view, for /readyz."""
        now = self.clock()
        return {"source": self.connector.name, "interval_s": self.interval_s, "probes": self.probes,
                "last_ok_s_ago": None if self.last_ok_at is None else round(now - self.last_ok_at, 1),
                "last_failure": self.last_failure,
                "last_failure_s_ago": None if self.last_failed_at is None else round(now - self.last_failed_at, 1)}

    async def probe(self) -> None:
        try:
            result = await self.connector.probe(self.timeout_s)
        except Exception as exc:  # noqa: BLE001 - a probe's own bug must not end the loop; it reads as unready
            log.exception("readiness probe of %s failed", self.connector.name)
            result = Probe(False, 0.0, f"probe failed ({type(exc).__name__})")
        if result.up != self.latest_ok or self.probes == 0:
            log.log(logging.INFO if result.up else logging.WARNING, "readiness: identity source %s %s",
                    self.connector.name, "answers" if result.up else f"does not answer: {result.detail}")
        self.note(result)

    async def run(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        while True:
            await self.probe()
            await sleep(self.interval_s)

    def start(self) -> None:
        """Probe from now on, the first probe at once (called in the app's lifespan)."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name="readiness-probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
