"""Applying the sources' change events: drop exactly the cached records they affect, then tell listeners.

One invalidation path: `Tiers.invalidate`, which reaches Redis and, through its pub/sub, every other
gateway, carrying the events along so that each gateway publishes them on its own `ChangeBus` once its
entries are gone. An event of entity E, key K of source S drops
- S:E:K itself;
- the records of entities keyed by a field of E (`keys: {from: E.field}`), at the values that field has
  in the records of S:E:K as cached (a shipment keyed by its order's number, when the order changes);
- for the identity source's links entity, the `system:id` lookups of the golden id's links, as cached
  and as the identity source has them now (a new link, or one removed, changes who that id is).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from cache.tiers import cache_key
from connectors.base import SourceError
from connectors.changes import ChangeEvent
from connectors.events import is_postgres
from connectors.feeds import NotifyFeed, PollFeed
from connectors.sql import SqlConnector
from resolvers.context import Sources, flatten
from resolvers.customer import keys_of

log = logging.getLogger("customer_graph.events")


class Changes:
    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.bus = sources.bus
        self.feeds: dict[str, NotifyFeed | PollFeed] = {}  # "source" or "source:table" -> its feed
        self._tasks: list[asyncio.Task[None]] = []
        if sources.cache is not None:
            sources.cache.tiers.on_events = self._arrived

    async def apply(self, events: list[ChangeEvent]) -> int:
        """Drop what these events make stale, here and on every gateway, then publish them; the number of
        cache keys dropped. Never raises: an event is a hint, and the TTLs stay as the safety net."""
        cache = self.sources.cache
        dropped = 0
        if cache is not None:
            keys: dict[str, None] = {}
            whole: set[str] = set()
            for e in events:
                found, complete = await self.keys_for(e)
                keys.update(dict.fromkeys(found))
                if not complete:
                    whole.add(e.source)
            await cache.tiers.invalidate(keys=keys, sources=whole, events=[e.to_json() for e in events])
            dropped = len(keys)
        for e in events:
            self.bus.publish(e)
        return dropped

    def _arrived(self, raw: list[Any]) -> None:
        """Another gateway's events, whose entries Tiers has just dropped here."""
        for item in raw:
            try:
                self.bus.publish(ChangeEvent.from_json(item))
            except (KeyError, TypeError, ValueError):
                log.warning("ignored a malformed change event from another gateway: %.200r", item)

    async def keys_for(self, e: ChangeEvent) -> tuple[list[str], bool]:
        """The cache keys `e` makes stale, and whether they are all of them (False: drop the whole source)."""
        assert self.sources.cache is not None
        keys = [cache_key(e.source, e.entity, e.key)]
        derived = [(name, entity, spec) for (name, entity), spec in self.sources.key_specs.items()
                   if spec.entity == e.entity]
        identity = self.sources.identity
        links = e.source == self.sources.config.identity and e.entity == identity.identities and identity.system_ids
        if not derived and not links:
            return keys, True
        cached = await self.sources.cache.tiers.lookup(e.source, e.entity, [e.key])
        records = flatten([[entry.value for entry in cached.values()]])
        for name, entity, spec in derived:
            keys += [cache_key(name, entity, k) for k in keys_of(records, spec)]
        if links:
            connector = self.sources.connectors[e.source]
            try:
                now = (await connector.fetch(e.entity, [e.key])).get(e.key) or []
            except SourceError:
                return keys, False  # who this golden id's ids are is unknown: drop all the source's lookups
            keys += [cache_key(e.source, identity.system_ids, f"{i.system}:{i.id}") for i in [*records, *now]]
        return keys, True

    async def gap(self, source: str) -> None:
        """Changes of `source` may have been missed (its feed was away): drop all of its entries."""
        if self.sources.cache is not None:
            await self.sources.cache.tiers.invalidate(sources=[source])
            log.info("%s: change feed back; its cached records dropped, as changes may have been missed", source)

    def start(self) -> None:
        """A feed per SQL source declaring them: NOTIFY on PostgreSQL, else polling."""
        for name, c in self.sources.connectors.items():
            events = c.config.events
            if events is None or not isinstance(c, SqlConnector):
                continue
            entities = set(c.config.entities)
            if events.notify is not None and is_postgres(c.config.dsn):
                self.feeds[name] = NotifyFeed(name, c.config.dsn, events.notify, entities, self.apply, self.gap)
            else:
                for poll in events.poll:
                    self.feeds[f"{name}:{poll.table}"] = PollFeed(name, c.engine, poll, self.apply, c.driver)
        self._tasks = [asyncio.create_task(f.run(), name=f"change feed {n}") for n, f in self.feeds.items()]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
