"""Per-request state: one DataLoader per (source, entity), over the gateway's connectors."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cache.broadcast import Broadcast
from cache.records import RecordCache
from cache.responses import Reads
from connectors.base import Connector
from connectors.changes import ChangeBus
from connectors.identity import CompiledIdentity, compile_identity
from resolvers.futures import all_of, chain
from resolvers.loader import SettledLoader
from telemetry import tracing
from telemetry.request import count_hits

if TYPE_CHECKING:  # the configuration's model lives at the gateway's level: a type only
    from config import GatewayConfig


def flatten(results: list[list[Any]]) -> list[Any]:
    """Per-source lists of per-key results (a record, a list of records, or None) as one list of records."""
    out: list[Any] = []
    for found in results:
        for item in found:
            if isinstance(item, list):
                out.extend(item)
            elif item is not None:
                out.append(item)
    return out


@dataclass(frozen=True)
class KeySpec:
    """An entity keyed by a field of another entity's records (its declaration's `keys: {from:}`)."""

    entity: str
    field: str
    normalize: Callable[[Any], Any] | None


def key_specs(connectors: dict[str, Connector]) -> dict[tuple[str, str], KeySpec]:
    """(source, entity) -> where its keys come from, for the entities not keyed by the identity source."""
    from connectors.mapping import normalizer
    out = {}
    for c in connectors.values():
        for name, e in c.config.entities.items():
            if e.keys is not None:
                norm = normalizer(e.keys.normalize, c.config.options, f"{c.name}.entities.{name}.keys") \
                    if e.keys.normalize else None
                out[(c.name, name)] = KeySpec(e.keys.entity, e.keys.field, norm)
    return out


@dataclass
class Sources:
    """The gateway-wide set of connectors, indexed by the entities their mappings provide."""

    config: GatewayConfig
    connectors: dict[str, Connector]
    cache: RecordCache | None = None
    providers: dict[str, list[Connector]] = field(default_factory=dict)
    key_specs: dict[tuple[str, str], KeySpec] = field(default_factory=dict)
    identity: CompiledIdentity = field(init=False)  # the identity source's entities and lookups
    bus: ChangeBus = field(default_factory=ChangeBus)  # every change event accepted, after its invalidation
    contacts: Broadcast = field(default_factory=Broadcast)  # contacts starting, announced on every gateway

    def __post_init__(self) -> None:
        self.key_specs = key_specs(self.connectors)
        decl = self.config.sources[self.config.identity]
        assert decl.identity is not None, "config.py checks that the identity source declares identity:"
        self.identity = compile_identity(decl.identity, decl.options)
        by_entity: dict[str, list[Connector]] = defaultdict(list)
        for c in self.connectors.values():
            for entity in c.entities:
                by_entity[entity].append(c)
        self.providers = dict(by_entity)

    @classmethod
    def build(cls, config: GatewayConfig, connectors: dict[str, Connector]) -> Sources:
        cache = None
        if config.cache.enabled:
            cache = RecordCache(config.cache, {n: c.ttl_s for n, c in config.sources.items()},
                                {n: c.negative_ttl_s for n, c in config.sources.items() if c.negative_ttl_s is not None})
        contacts = Broadcast(config.cache.redis_url, f"{config.cache.namespace}:contacts")
        return cls(config, connectors, cache, contacts=contacts)

    async def start(self) -> None:
        if self.cache is not None:
            await self.cache.tiers.start()
        await self.contacts.start()

    async def close(self) -> None:
        await self.contacts.close()
        if self.cache is not None:
            await self.cache.tiers.close()
        for c in self.connectors.values():
            await c.close()


class Context:
    """Created for each GraphQL request; loaders collect keys across the whole query."""

    def __init__(self, sources: Sources, no_cache: bool = False, principal: Any = None, limits: Any = None) -> None:
        self.sources = sources
        self.principal = principal  # who is asking (subject, role), or None when auth is off
        self.limits = limits  # the operation limits the parse and validate steps check (server/limits.py)
        self.masked: dict[str, str] = {}  # field coordinate -> mask, for the response's extensions.masked
        self.config = sources.config
        self.no_cache = no_cache  # Cache-Control: no-cache: read live, refresh the cache
        self.deadline = asyncio.get_running_loop().time() + self.config.request_timeout_s
        self._loaders: dict[tuple[str, str], SettledLoader] = {}
        self.stale_keys: dict[tuple[str, str, str], float] = {}  # (source, entity, key) -> age served
        self.stale: list[dict[str, Any]] = []  # for the response's extensions.stale
        # Errors for fields that still returned what they could (a timeline missing one source).
        self.soft_errors: list[dict[str, Any]] = []
        cache = sources.cache
        # The records read, for the response cache's tags and expiry (None: no response cache).
        self.reads = Reads() if cache is not None and cache.tiers.responses is not None \
            and not self.config.naive else None
        self.listening: asyncio.Event | None = None  # a subscription sets it once it listens (server/subscriptions.py)

    def renew(self) -> None:
        """As new, for the next result of a subscription: each event is read live (the event has just
        invalidated what it changed), not from the loaders of the one before."""
        self.masked, self.stale_keys, self.stale, self.soft_errors = {}, {}, [], []
        self._loaders = {}
        self.reads = None  # a subscription's results are never response-cached: collect no tags for them
        self.deadline = asyncio.get_running_loop().time() + self.config.request_timeout_s

    def loader(self, connector: Connector, entity: str) -> SettledLoader:
        key = (connector.name, entity)
        loader = self._loaders.get(key)
        if loader is None:
            cache = self.sources.cache
            reads = self.reads
            peek = None if cache is None or self.no_cache else \
                (lambda k: cache.fresh_hit(connector.name, entity, k, reads=reads))  # noqa: E731
            loader = self._loaders[key] = SettledLoader(self._batch_fn(connector, entity), peek)
        return loader

    def _batch_fn(self, connector: Connector, entity: str) -> Any:
        cache = self.sources.cache

        async def load(keys: list[str]) -> list[Any]:
            if cache is None:
                found = await connector.fetch(entity, keys, self.deadline)
                return [found.get(k) for k in keys]
            values, stale = await cache.fetch(connector, entity, keys, self.deadline, self.no_cache, self.reads)
            for k, age in stale.items():
                self.stale_keys[(connector.name, entity, k)] = age
            return values

        async def traced(keys: list[str]) -> list[Any]:
            # The dispatch task copied the context of the first load: this span is the request's child.
            attributes = {"customer_graph.source": connector.name, "customer_graph.entity": entity,
                          "customer_graph.keys": len(keys), "customer_graph.cache_hits": 0}
            with tracing.span(f"load {connector.name}.{entity}", attributes):
                values = await load(keys)
                tracing.batch_failures(values)
                return values

        return traced if tracing.ENABLED else load

    def note_stale(self, connector: Connector, entity: str, keys: list[str], path: Callable[[], list[Any]]) -> None:
        """Mark the response when any of these records was served stale (its source had failed)."""
        ages = [self.stale_keys[(connector.name, entity, k)] for k in keys
                if (connector.name, entity, k) in self.stale_keys]
        if ages:
            self.stale.append({"source": connector.name, "path": path(), "age_s": round(max(ages), 1)})

    def cached_now(self, pairs: list[tuple[Connector, list[str]]], entity: str) -> list[list[Any]] | None:
        """Every key's record, synchronously, when all are fresh in the in-process tier; else None.

        The warm path then needs no coroutine, batch or loop tick per field (cProfile: ~40% of a
        warm view's CPU went to that machinery)."""
        cache = self.sources.cache
        if cache is None or self.no_cache or self.config.naive:
            return None
        out = []
        for connector, keys in pairs:
            found = []
            for k in keys:
                hit, value = cache.fresh_hit(connector.name, entity, k, count=False, reads=self.reads)
                if not hit:
                    return None
                found.append(value)
            out.append(found)
        counts = cache.tiers.counts
        for connector, keys in pairs:
            counts[connector.name]["hits"] += len(keys)
            count_hits(len(keys))
        return out

    def load_pairs(self, pairs: list[tuple[Connector, list[str]]], entity: str,
                   path: Callable[[], list[Any]] | list[Callable[[], list[Any]]]) -> list[Any] | Awaitable[list[Any]]:
        """The records of every key (each source's keys in turn), lists flattened, through the loaders:
        a future of them, or the list itself when there are no keys. Records served stale are marked at
        `path`, or at each path the list holds when they arrive (the fields that asked meanwhile)."""
        pairs = [(c, keys) for c, keys in pairs if keys]
        if not pairs:
            return []
        if self.config.naive:
            return self._naive(pairs, entity)
        futures = [self.loader(c, entity).load(k) for c, keys in pairs for k in keys]

        def noted(values: list[Any]) -> list[Any]:
            if self.stale_keys:
                for p in path if isinstance(path, list) else (path,):
                    for c, keys in pairs:
                        self.note_stale(c, entity, keys, p)
            return flatten([values])

        return chain(all_of(futures), noted)

    async def _naive(self, pairs: list[tuple[Connector, list[str]]], entity: str) -> list[Any]:
        return flatten([await asyncio.gather(*(self._one(c, entity, k) for c, keys in pairs for k in keys))])

    async def _one(self, connector: Connector, entity: str, key: str) -> Any:
        return (await connector.fetch(entity, [key], self.deadline)).get(key)

    def source(self, name: str) -> Connector:
        return self.sources.connectors[name]

    def providers(self, entity: str) -> list[Connector]:
        return self.sources.providers.get(entity, [])

    async def load_many(self, connector: Connector, entity: str, keys: Iterable[str],
                        path: Callable[[], list[Any]] | None = None) -> list[Any]:
        keys = list(keys)
        if not keys:
            return []
        if self.config.naive:  # the benchmark's baseline: every field fetches its own keys, one call each
            return await asyncio.gather(*(self._one(connector, entity, k) for k in keys))
        loader = self.loader(connector, entity)
        if len(keys) == 1:  # the common case: skip gather's bookkeeping
            found = [await loader.load(keys[0])]
        else:
            found = await loader.load_many(keys)
        if self.stale_keys and path is not None:
            self.note_stale(connector, entity, keys, path)
        return found
