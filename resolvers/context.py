"""Per-request state: one DataLoader per (source, entity), over the gateway's connectors."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from strawberry.dataloader import DataLoader

from config import GatewayConfig
from connectors.base import Connector
from resolvers.loader import SettledLoader


@dataclass
class Sources:
    """The gateway-wide set of connectors, indexed by the entities their mappings provide."""

    config: GatewayConfig
    connectors: dict[str, Connector]
    providers: dict[str, list[Connector]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        by_entity: dict[str, list[Connector]] = defaultdict(list)
        for c in self.connectors.values():
            for entity in c.entities:
                by_entity[entity].append(c)
        self.providers = dict(by_entity)

    async def close(self) -> None:
        for c in self.connectors.values():
            await c.close()


def _batch_fn(connector: Connector, entity: str, deadline: float) -> Any:
    async def load(keys: list[str]) -> list[Any]:
        found = await connector.fetch(entity, keys, deadline)
        return [found.get(k) for k in keys]

    return load


class Context:
    """Created for each GraphQL request; loaders collect keys across the whole query."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.config = sources.config
        self.deadline = asyncio.get_running_loop().time() + self.config.request_timeout_s
        self._loaders: dict[tuple[str, str], DataLoader[str, Any]] = {}

    def loader(self, connector: Connector, entity: str) -> DataLoader[str, Any]:
        key = (connector.name, entity)
        loader = self._loaders.get(key)
        if loader is None:
            loader = self._loaders[key] = SettledLoader(_batch_fn(connector, entity, self.deadline))
        return loader

    def source(self, name: str) -> Connector:
        return self.sources.connectors[name]

    def providers(self, entity: str) -> list[Connector]:
        return self.sources.providers.get(entity, [])

    async def load_many(self, connector: Connector, entity: str, keys: Iterable[str]) -> list[Any]:
        keys = list(keys)
        if not keys:
            return []
        loader = self.loader(connector, entity)
        if len(keys) == 1:  # the common case: skip gather's bookkeeping
            return [await loader.load(keys[0])]
        return await loader.load_many(keys)
