"""Two tiers of cached source records behind aiocache's API: bounded in-process, optional Redis.

Keys are "source:entity:key". Values are `Entry`s, so a record knows its age (for TTL and
stale-if-error) and an absent record can be cached too. Invalidations go to both tiers and,
through Redis pub/sub, to every other gateway's in-process tier.

Redis is an optimisation, never a failure: while it is down the in-process tier works alone, an
invalidation drops the in-process entries at once and waits in a bounded queue until Redis answers
again, and the keys it covers are not read from Redis meanwhile (their entries there are stale).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import orjson
import redis.asyncio
from aiocache import RedisCache
from aiocache.serializers import PickleSerializer

from cache.logthrottle import LogThrottle
from cache.memory import BoundedMemoryCache
from cache.responses import ResponseCache
from cache.settings import CacheSettings

log = logging.getLogger("customer_graph.cache")
PENDING_LIMIT = 10_000  # queued key invalidations; beyond, they collapse into one of the whole namespace
REDIS_RETRY_S = 1.0  # after a Redis error, the in-process tier works alone this long before Redis is tried again


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


@dataclass
class Pending:
    """Invalidations Redis has not had yet: full keys and whole sources, each with the generation it was
    queued in, so that delivering an older batch does not clear a newer invalidation of the same key.
    Past `limit` keys the queue collapses into one invalidation of everything: bounded, and never lost.
    The change events that came with them (resolvers/changes.py) wait too, the oldest dropped past `limit`."""

    limit: int = PENDING_LIMIT
    keys: dict[str, int] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)
    everything: int = 0  # the generation of a pending "drop the whole namespace", or 0
    generation: int = 0
    events: list[tuple[int, Any]] = field(default_factory=list)  # (generation, JSON-able change event)

    def __bool__(self) -> bool:
        return bool(self.keys or self.sources or self.everything)

    def add(self, keys: Iterable[str], sources: Iterable[str], events: Iterable[Any] = ()) -> None:
        self.generation += 1
        self.events += [(self.generation, e) for e in events]
        del self.events[:-self.limit]
        for key in keys:
            self.keys[key] = self.generation
        for source in sources:
            self.sources[source] = self.generation
        if len(self.keys) > self.limit:
            self.keys.clear()
            self.sources.clear()
            self.everything = self.generation

    def covers(self, key: str) -> bool:
        """Whether Redis may still hold a stale entry for this full key."""
        return bool(self.everything) or key in self.keys or key[: key.find(":")] in self.sources

    def batch(self) -> Pending:
        return Pending(self.limit, dict(self.keys), dict(self.sources), self.everything, self.generation,
                       list(self.events))

    def delivered(self, batch: Pending) -> None:
        """Forget what `batch` delivered, unless it was invalidated again since."""
        for key, gen in batch.keys.items():
            if self.keys.get(key) == gen:
                del self.keys[key]
        for source, gen in batch.sources.items():
            if self.sources.get(source) == gen:
                del self.sources[source]
        if batch.everything and self.everything == batch.everything:
            self.everything = 0
        self.events = [(gen, e) for gen, e in self.events if gen > batch.generation]


class Tiers:
    def __init__(self, settings: CacheSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.l1 = BoundedMemoryCache(settings.max_entries, settings.max_bytes, Sizer())
        self.l2: RedisCache | None = _redis(settings.redis_url, settings.namespace) if settings.redis_url else None
        # Per source, in records: hits and misses (fresh in either tier or not), stale (served stale-if-error),
        # l2_lookups (asked of Redis) and l2_hits (fresh there); the in-process tier's follow from them.
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)
        self.me = uuid.uuid4().hex  # to ignore our own invalidation messages
        self.channel = f"{settings.namespace}:invalidate"
        self._listener: asyncio.Task[None] | None = None
        self.pending = Pending()
        self._delivering = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self._redis_down_until = 0.0  # a clock time; before it, Redis is not asked
        self.warnings = LogThrottle(log, clock=clock)
        self.on_events: Callable[[list[Any]], None] | None = None  # other gateways' change events, once applied
        # Full keys being read from their source -> whether they were invalidated meanwhile: such a read
        # may hold the record as it was before the change, so it is not stored (see `read_done`).
        self.reading: dict[str, bool] = {}
        r = settings.responses
        # Whole responses tagged by these records: every invalidation below drops theirs too.
        self.responses = ResponseCache(r.max_entries, r.max_bytes, settings.stale_grace_s,
                                       settings.default_ttl_s) if r.enabled else None

    def _redis_usable(self) -> bool:
        return self.l2 is not None and self.clock() >= self._redis_down_until

    def _redis_failed(self, doing: str, exc: Exception) -> None:
        """Work without Redis for a while; one warning per interval, never a traceback (a known outage)."""
        self._redis_down_until = self.clock() + REDIS_RETRY_S
        self.warnings.warning("redis", "redis tier unavailable while %s (%r); using the in-process tier alone",
                              doing, exc)

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
        if missing and self.pending:  # Redis still holds what these invalidations dropped: not from there
            missing = [k for k in missing if not self.pending.covers(cache_key(source, entity, k))]
        if missing and self.l2 is not None and self._redis_usable():
            try:
                remote = await self.l2.multi_get([cache_key(source, entity, k) for k in missing])
            except Exception as exc:  # noqa: BLE001 - the shared tier is an optimisation, never a failure
                self._redis_failed("reading", exc)
                remote = [None] * len(missing)
            now = time.time()
            counts = self.counts[source]
            counts["l2_lookups"] += len(missing)
            for k, e in zip(missing, remote):
                if e is not None:
                    found[k] = e
                    if e.fresh(now):
                        counts["l2_hits"] += 1  # a stale one is a miss (the source is asked) kept for stale-if-error
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
            if self.l2 is not None and self._redis_usable():
                try:
                    await self.l2.multi_set(pairs, ttl=ttl)
                except Exception as exc:  # noqa: BLE001
                    self._redis_failed("storing", exc)

    async def invalidate(self, keys: Iterable[str] = (), sources: Iterable[str] = (),
                         events: Iterable[Any] = ()) -> None:
        """Drop these full keys and every key of these sources, here, in Redis and in every other gateway;
        the other gateways hand `events` (JSON-able) to their `on_events` once they have dropped them.

        Never raises: the write that asks for it has succeeded at its source. The in-process tier is
        dropped at once; Redis and the other gateways get it now if Redis answers, else once it does."""
        keys, sources = list(keys), list(sources)
        self._drop_local(keys, sources)
        if self.l2 is None:
            return
        self.pending.add(keys, sources, events)
        if self._redis_usable():
            await self._deliver()
        if self.pending:
            self._start_flusher()

    async def _deliver(self) -> bool:
        """Send what is pending to Redis (deletes, then one pub/sub message); whether all of it went."""
        assert self.l2 is not None
        async with self._delivering:
            batch = self.pending.batch()
            if not batch:
                return True
            if not self._redis_usable():  # failed while we waited for the one before us
                return False
            try:
                if batch.everything:
                    await self.l2.clear(namespace=self.settings.namespace)
                for key in batch.keys:
                    await self.l2.delete(key)
                for source in batch.sources:
                    await self.l2.clear(namespace=f"{self.settings.namespace}:{source}")
                message = {"from": self.me, "keys": list(batch.keys), "sources": list(batch.sources),
                           "everything": bool(batch.everything), "events": [e for _, e in batch.events]}
                await self.l2.client.publish(self.channel, orjson.dumps(message))
            except Exception as exc:  # noqa: BLE001 - kept pending, retried by the flusher
                self._redis_failed("invalidating", exc)
                return False
            self.pending.delivered(batch)
            return not self.pending

    def _start_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        """Retry the pending invalidations until Redis takes them, backing off up to a few seconds."""
        pause = 0.25
        while self.pending:
            await asyncio.sleep(max(pause, self._redis_down_until - self.clock()))
            if self._redis_usable() and await self._deliver():
                log.info("redis tier back: queued invalidations delivered")
                return
            pause = min(pause * 2, 5.0)

    def read_started(self, keys: list[str]) -> None:
        for key in keys:
            self.reading[key] = False

    def read_done(self, keys: list[str]) -> set[str]:
        """The keys of a finished read that were invalidated while it ran (not to be stored)."""
        reading = self.reading
        return {key for key in keys if reading.pop(key, False)}

    def _superseded(self, keys: Iterable[str], sources: Iterable[str], everything: bool) -> None:
        reading = self.reading
        if not reading:
            return
        if everything:
            reading.update(dict.fromkeys(reading, True))
            return
        for key in keys:
            if key in reading:
                reading[key] = True
        for source in sources:
            reading.update((k, True) for k in list(reading) if k.startswith(source + ":"))

    def _drop_local(self, keys: Iterable[str], sources: Iterable[str], everything: bool = False) -> None:
        """The in-process tier's copies and the responses that read them (ours, or another gateway's
        invalidation arriving over pub/sub)."""
        keys, sources = list(keys), list(sources)
        self._superseded(keys, sources, everything)
        if self.responses is not None:
            self.responses.drop(keys, sources, everything)
        if everything:
            for key in list(self.l1._data):
                self.l1._drop(key)
            return
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
        lost = False
        while True:
            # A client of its own: the cache's has a short socket timeout, a subscriber mostly waits.
            client = redis.asyncio.Redis.from_url(self.settings.redis_url)
            try:
                pubsub = client.pubsub()
                await pubsub.subscribe(self.channel)
                if lost:  # other gateways' invalidations may have been missed meanwhile
                    self._drop_local((), (), everything=True)
                    log.info("redis pub/sub back; in-process tier dropped, as invalidations may have been missed")
                    lost = False
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    body = orjson.loads(message["data"])
                    if body.get("from") != self.me:
                        self._drop_local(body.get("keys", ()), body.get("sources", ()), body.get("everything", False))
                        if body.get("events") and self.on_events is not None:
                            self.on_events(body["events"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                lost = True
                self.warnings.warning("pubsub", "redis pub/sub lost (%r); resubscribing", exc)
                await asyncio.sleep(1)
            finally:
                await client.aclose()

    async def close(self) -> None:
        for task in (self._listener, self._flusher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.l2 is not None:
            await self.l2.close()

    def status(self) -> dict[str, Any]:
        sources = {s: dict(c) for s, c in self.counts.items()}
        for s, n in self.l1.evictions.items():
            sources.setdefault(s, {})["evictions"] = n
        return {"entries": len(self.l1), "bytes": self.l1.bytes, "max_entries": self.l1.max_entries,
                "max_bytes": self.l1.max_bytes, "redis": self.l2 is not None, "sources": sources,
                "pending_invalidations": len(self.pending.keys) + len(self.pending.sources)
                + bool(self.pending.everything),
                "responses": self.responses.status() if self.responses is not None else None}
