"""The cache below the DataLoaders: fresh hits skip the source, misses go in one call, concurrent
misses of the same key share that call (single flight), and a failing source is covered by a
stale copy within the grace period (stale-if-error)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from cache.responses import Reads
from cache.settings import CacheSettings
from cache.tiers import Entry, Tiers, cache_key
from connectors.base import SOURCE_TIMEOUT, Connector, SourceError
from telemetry import tracing
from telemetry.request import count_hits


def _settle(fut: asyncio.Future[Any], result: dict[str, Entry | BaseException] | None) -> None:
    """Hand the leader's results to requests that joined its call."""
    if fut.done():
        return
    if result is None:
        fut.cancel()  # the leader was cancelled (or broke) before it had a result
    else:
        fut.set_result(result)


class RecordCache:
    def __init__(self, settings: CacheSettings, ttls: dict[str, dict[str, float]],
                 negative_ttls: dict[str, float]) -> None:
        self.settings = settings
        self.tiers = Tiers(settings)
        self.ttls, self.negative_ttls = ttls, negative_ttls
        self.inflight: dict[str, asyncio.Future[dict[str, Entry | BaseException]]] = {}  # one per source call

    def ttl(self, source: str, entity: str, found: bool) -> float:
        if not found:
            return self.negative_ttls.get(source, self.settings.negative_ttl_s)
        return self.ttls.get(source, {}).get(entity, self.settings.default_ttl_s)

    def fresh_hit(self, source: str, entity: str, key: str, count: bool = True,
                  reads: Reads | None = None) -> tuple[bool, Any]:
        """(True, record) when the in-process tier holds a fresh copy; answered without awaiting.
        `reads` collects what the request read, for its response's tags."""
        full = cache_key(source, entity, key)
        entry = self.tiers.l1.peek(full)
        if entry is not None and entry.fresh(time.time()):
            if reads is not None:
                reads.add(full, entry.stored_at + entry.fresh_s)
            if count:
                self.tiers.counts[source]["hits"] += 1
                count_hits(1)
            return True, entry.value
        return False, None

    async def fetch(self, connector: Connector, entity: str, keys: list[str], deadline: float | None,
                    no_cache: bool = False, reads: Reads | None = None) -> tuple[list[Any], dict[str, float]]:
        """Per key (in order) its record, None, or the SourceError; and the ages of stale records served.
        `reads` collects the records read (a stale or failed one spoils the request's response)."""
        source = connector.name
        tiers = self.tiers
        counts = tiers.counts[source]
        now = time.time()
        if no_cache:
            cached: dict[str, Entry] = {}
        elif tiers.l2 is None:  # in-process only: no coroutine for the lookup
            cached = tiers.lookup_local(source, entity, keys)
        else:
            cached = await tiers.lookup(source, entity, keys)
        result: dict[str, Entry | BaseException] = {k: e for k, e in cached.items() if e.fresh(now)}
        counts["hits"] += len(result)
        if result:
            count_hits(len(result))
            if tracing.ENABLED:  # on the loader batch's span
                tracing.note("cache_hits", len(result))
        misses = [k for k in keys if k not in result]
        counts["misses"] += len(misses)
        if misses:
            result.update(await self._fetch_misses(connector, entity, misses, deadline))
        values: list[Any] = []
        stale: dict[str, float] = {}
        for k in keys:
            got = result[k]
            if reads is not None:
                if isinstance(got, BaseException):
                    reads.spoiled = True
                else:
                    reads.add(cache_key(source, entity, k), got.stored_at + got.fresh_s)
            if isinstance(got, BaseException):
                old = cached.get(k)
                if old is not None and old.age(now) < old.fresh_s + self.settings.stale_grace_s:
                    stale[k] = old.age(now)
                    counts["stale"] += 1
                    got = old
                else:
                    values.append(got)
                    continue
            values.append(got.value)
        return values, stale

    async def _fetch_misses(self, connector: Connector, entity: str, keys: list[str],
                            deadline: float | None) -> dict[str, Entry | BaseException]:
        """One source call for the keys nobody is fetching yet; join the calls already under way.

        One future per call, not per key: those joining pick their keys from the leader's results."""
        prefix = cache_key(connector.name, entity, "")
        inflight = self.inflight
        joined: dict[asyncio.Future[dict[str, Entry | BaseException]], list[str]] = {}
        mine = []
        for k in keys:
            leader = inflight.get(prefix + k)
            if leader is None:
                mine.append(k)
            else:
                joined.setdefault(leader, []).append(k)
        out: dict[str, Entry | BaseException] = {}
        if mine:
            fut: asyncio.Future[dict[str, Entry | BaseException]] = asyncio.get_running_loop().create_future()
            for k in mine:
                inflight[prefix + k] = fut
            result = None
            try:
                result = await self._call(connector, entity, mine, deadline)
                out.update(result)
            finally:
                for k in mine:
                    if inflight.get(prefix + k) is fut:
                        del inflight[prefix + k]
                _settle(fut, result)
        for call, ks in joined.items():
            try:
                got = await asyncio.shield(call)
            except asyncio.CancelledError:
                if not call.cancelled():
                    raise  # we were cancelled ourselves
                abandoned: BaseException = connector.error(SOURCE_TIMEOUT, "the shared call was abandoned")
                got = dict.fromkeys(ks, abandoned)
            for k in ks:
                out[k] = got[k]
        return out

    async def _call(self, connector: Connector, entity: str, keys: list[str],
                    deadline: float | None) -> dict[str, Entry | BaseException]:
        tiers = self.tiers
        full = [cache_key(connector.name, entity, k) for k in keys]
        tiers.read_started(full)
        try:
            found = await connector.fetch(entity, keys, deadline)
        except SourceError as exc:
            return dict.fromkeys(keys, exc)
        finally:
            superseded = tiers.read_done(full)
        now = time.time()
        ttl = self.ttl(connector.name, entity, True)
        negative = self.ttl(connector.name, entity, False)
        entries = {k: Entry(found[k], True, now, ttl) if k in found else Entry(None, False, now, negative)
                   for k in keys}
        kept = entries
        if superseded:  # changed while it was read: answer with it, but do not keep it
            prefix = cache_key(connector.name, entity, "")
            kept = {k: e for k, e in entries.items() if prefix + k not in superseded}
        if tiers.l2 is None:
            tiers.store_local(connector.name, entity, kept)
        else:
            await tiers.store(connector.name, entity, kept)
        return entries  # type: ignore[return-value]
