"""GET /metrics, the Prometheus scrape (telemetry/metrics.py), and the state it copies in from the sources
and the cache.

Calls and requests are counted as they happen (connectors/base.py, the request sink). The rest is state the
connectors and the cache keep anyway (circuits, bulkheads, the cache's counts and size): `Refresh` copies it
into the metrics at each scrape and, with several workers, every second in each of them, since the worker
answering a scrape reads the others' files, not their memory. Other workers' gauges and cache counts are
so at most a second old; requests and source calls are exact.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import Response

from resolvers.context import Sources
from server.operations import Registry
from server.settings import MetricsSettings
from telemetry import metrics
from telemetry.metrics import (
    BULKHEAD_REJECTED,
    CACHE_EVICTIONS,
    CACHE_HITS,
    CACHE_MISSES,
    CACHE_STALE,
    CIRCUIT_OPENS,
    Mirror,
    OperationNames,
)

REFRESH_S = 1.0  # with several workers: how old another worker's gauges may be at a scrape


def registered_names(registry: Registry | None) -> Iterable[str]:
    return [n for op in registry.operations for n in op.names] if registry is not None else []


def count_requests(settings: MetricsSettings, registry: Registry | None) -> None:
    """The request sink on (with the allow-list's operation names as known labels) or off."""
    metrics.count_requests(OperationNames(registered_names(registry), settings.max_operation_names)
                           if settings.enabled else None)


class Refresh:
    """Copies the sources' and the cache's own state into the metrics."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.mirrors: dict[tuple[Counter, tuple[str, ...]], Mirror] = {}
        self._task: asyncio.Task[None] | None = None

    def _mirror(self, counter: Counter, *labels: str) -> Mirror:
        key = (counter, labels)
        found = self.mirrors.get(key)
        if found is None:
            found = self.mirrors[key] = Mirror(counter.labels(*labels))
        return found

    def __call__(self) -> None:
        for name, c in self.sources.connectors.items():
            metrics.circuit(name, c.circuit.state)
            metrics.bulkhead(name, c.bulkhead.waiting, c.config.concurrency - c.bulkhead.free)
            self._mirror(CIRCUIT_OPENS, name).update(c.circuit.opens)
            self._mirror(BULKHEAD_REJECTED, name).update(c.bulkhead.rejected)
        cache = self.sources.cache
        if cache is None:
            return
        tiers = cache.tiers
        for source, counts in tiers.counts.items():
            l2_hits = counts["l2_hits"]  # fresh in Redis: the records the in-process tier missed and it had
            self._mirror(CACHE_HITS, "l1", source).update(counts["hits"] - l2_hits)
            self._mirror(CACHE_MISSES, "l1", source).update(counts["misses"] + l2_hits)
            if tiers.l2 is not None:
                self._mirror(CACHE_HITS, "l2", source).update(l2_hits)
                self._mirror(CACHE_MISSES, "l2", source).update(counts["l2_lookups"] - l2_hits)
            self._mirror(CACHE_STALE, source).update(counts["stale"])
        for source, n in tiers.l1.evictions.items():
            self._mirror(CACHE_EVICTIONS, "l1", source).update(n)
        metrics.cache_size("l1", len(tiers.l1), tiers.l1.bytes)
        if tiers.responses is not None:
            metrics.cache_size("responses", len(tiers.responses), tiers.responses.bytes)

    @classmethod
    def start(cls, sources: Sources) -> Refresh:
        """The sources' calls counted from now on, their state copied in (with several workers, every
        REFRESH_S too, to keep this worker's share current between scrapes)."""
        for connector in sources.connectors.values():
            connector.instrument()
        refresh = cls(sources)
        refresh()
        if metrics.MULTIPROCESS:
            refresh._task = asyncio.get_running_loop().create_task(refresh._every(REFRESH_S))
        return refresh

    async def _every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        metrics.worker_exits()


async def scrape(request: Request, refresh: Refresh | None) -> Response:
    """The metrics in the text format (OpenMetrics when the scraper's Accept asks for it)."""
    if refresh is not None:
        refresh()
    body, content_type = metrics.render(request.headers.get("accept", ""))
    return Response(body, headers={"content-type": content_type})
