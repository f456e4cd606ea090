"""Two tiers of cached source records behind aiocache's API: bounded in-process, optional Redis.

Keys are "source:entity:key". Values are `Entry`s, so a record knows its age (for TTL and
stale-if-error) and an absent record can be cached too. Invalidations go to both tiers and,
through Redis pub/sub, to every other gateway's in-process tier.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import orjson
import redis.asyncio
from aiocache import RedisCache
from aiocache.serializers import PickleSerializer

from cache.memory import BoundedMemoryCache
from cache.settings import CacheSettings

log = logging.getLogger("customer_graph.cache")


@dataclass(slots=True)
class Entry:
    value: Any  # the record, or None when the source does not know the key
    found: bool
    stored_at: float  # wall clock, comparable across gateway instances
    fresh_s: float

    def age(self, now: float) -> float:
        return now - self.stored_at

    def fresh(self, now: float) -> bool:
        return now - self.stored_at < self.fresh_s


def cache_key(source: str, entity: str, key: str) -> str:
    return f"{source}:{entity}:{key}"


class Sizer:
    """Approximate bytes of a cached record, cheaply.

    Pickling every record cost ~5% of a cold view's CPU (py-spy), and one in 16 still ~2.6%, so each
    (source, entity) is pickled for its first 4 records and then one in 64, and the rest take the
    running mean.
    Records in memory weigh 2 to 4 times their pickle (tracemalloc over the demo's entities), so
    the estimate is 2.5 times it.
    """

    FACTOR = 2.5
    SAMPLE_EVERY = 64

    def __init__(self) -> None:
        self.stats: dict[str, list[float]] = {}  # prefix -> [records seen, mean pickled size]

    def __call__(self, key: str, entry: Entry) -> int:
        prefix = key[: key.rfind(":")]
        seen, mean = self.stats.get(prefix) or (0, 0.0)
        if seen < 4 or seen % self.SAMPLE_EVERY == 0:
            size = len(pickle.dumps(entry.value, protocol=pickle.HIGHEST_PROTOCOL))
            mean = size if seen == 0 else mean * 0.9 + size * 0.1
        self.stats[prefix] = [seen + 1, mean]
        return int(mean * self.FACTOR)


def _redis(url: str, namespace: str) -> RedisCache:
    u = urlparse(url)
    return RedisCache(endpoint=u.hostname or "127.0.0.1", port=u.port or 6379, db=int((u.path or "/0")[1:] or 0),
                      password=u.password, serializer=PickleSerializer(), namespace=namespace, timeout=1,
                      create_connection_timeout=0.5, connection_pool_kwargs={"socket_timeout": 0.5})


class Tiers:
    def __init__(self, settings: CacheSettings) -> None:
        self.settings = settings
        self.l1 = BoundedMemoryCache(settings.max_entries, settings.max_bytes, Sizer())
        self.l2: RedisCache | None = _redis(settings.redis_url, settings.namespace) if settings.redis_url else None
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)  # per source: hits, misses, stale, ...
        self.me = uuid.uuid4().hex  # to ignore our own invalidation messages
        self.channel = f"{settings.namespace}:invalidate"
        self._listener: asyncio.Task[None] | None = None

    def lookup_local(self, source: str, entity: str, keys: list[str]) -> dict[str, Entry]:
        """The entries the in-process tier holds (fresh or not), synchronously."""
        peek = self.l1.peek
        prefix = cache_key(source, entity, "")
        found = {}
        for k in keys:
            e = peek(prefix + k)
            if e is not None:
                found[k] = e
        return found

    async def lookup(self, source: str, entity: str, keys: list[str]) -> dict[str, Entry]:
        """The entries present in either tier (fresh or not); Redis hits refill the in-process tier."""
        found = self.lookup_local(source, entity, keys)
        missing = [k for k in keys if k not in found]
        if missing and self.l2 is not None:
            try:
                remote = await self.l2.multi_get([cache_key(source, entity, k) for k in missing])
            except Exception as exc:  # noqa: BLE001 - the shared tier is an optimisation, never a failure
                log.warning("redis tier unavailable: %r", exc)
                remote = [None] * len(missing)
            now = time.time()
            for k, e in zip(missing, remote):
                if e is not None:
                    found[k] = e
                    self.counts[source]["l2_hits"] += 1
                    ttl = max(0.001, e.fresh_s + self.settings.stale_grace_s - e.age(now))
                    self.l1.put_many([(cache_key(source, entity, k), e)], ttl)
        return found

    def _by_ttl(self, source: str, entity: str, entries: dict[str, Entry]) -> dict[float, list[tuple[str, Entry]]]:
        by_ttl: dict[float, list[tuple[str, Entry]]] = defaultdict(list)
        for k, e in entries.items():
            by_ttl[e.fresh_s + self.settings.stale_grace_s].append((cache_key(source, entity, k), e))
        return by_ttl

    def store_local(self, source: str, entity: str, entries: dict[str, Entry]) -> None:
        """Into the in-process tier, synchronously (aiocache's decorated multi_set took four coroutines)."""
        for ttl, pairs in self._by_ttl(source, entity, entries).items():
            self.l1.put_many(pairs, ttl)

    async def store(self, source: str, entity: str, entries: dict[str, Entry]) -> None:
        """Into both tiers."""
        for ttl, pairs in self._by_ttl(source, entity, entries).items():
            self.l1.put_many(pairs, ttl)
            if self.l2 is not None:
                try:
                    await self.l2.multi_set(pairs, ttl=ttl)
                except Exception as exc:  # noqa: BLE001
                    log.warning("redis tier unavailable: %r", exc)

    async def invalidate(self, keys: list[str] = (), sources: list[str] = ()) -> None:  # type: ignore[assignment]
        """Drop these full keys and every key of these sources, here, in Redis and in every other gateway."""
        self._drop_local(keys, sources)
        if self.l2 is None:
            return
        for key in keys:
            await self.l2.delete(key)
        for source in sources:
            await self.l2.clear(namespace=f"{self.settings.namespace}:{source}")
        message = orjson.dumps({"from": self.me, "keys": list(keys), "sources": list(sources)})
        await self.l2.client.publish(self.channel, message)

    def _drop_local(self, keys: Any, sources: Any) -> None:
        for key in keys:
            self.l1._drop(key)
        for source in sources:
            for key in [k for k in self.l1._data if k.startswith(source + ":")]:
                self.l1._drop(key)

    async def start(self) -> None:
        if self.l2 is not None:
            self._listener = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        """Apply other gateways' invalidations to our in-process tier; reconnect if Redis drops."""
        while True:
            # A client of its own: the cache's has a short socket timeout, a subscriber mostly waits.
            client = redis.asyncio.Redis.from_url(self.settings.redis_url)
            try:
                pubsub = client.pubsub()
                await pubsub.subscribe(self.channel)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    body = orjson.loads(message["data"])
                    if body.get("from") != self.me:
                        self._drop_local(body.get("keys", ()), body.get("sources", ()))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("redis pub/sub lost (%r); resubscribing", exc)
                await asyncio.sleep(1)
            finally:
                await client.aclose()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self.l2 is not None:
            await self.l2.close()

    def status(self) -> dict[str, Any]:
        sources = {s: dict(c) for s, c in self.counts.items()}
        for s, n in self.l1.evictions.items():
            sources.setdefault(s, {})["evictions"] = n
        return {"entries": len(self.l1), "bytes": self.l1.bytes, "max_entries": self.l1.max_entries,
                "max_bytes": self.l1.max_bytes, "redis": self.l2 is not None, "sources": sources}
