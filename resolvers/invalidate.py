"""Dropping cached records: of a source, of one key, or of everything about one golden customer."""

from __future__ import annotations

from typing import Any

from cache.tiers import cache_key
from connectors.records import Order
from resolvers.context import Sources


async def invalidate(sources: Sources, request: dict[str, Any]) -> dict[str, Any]:
    """`{"source"}`, `{"source", "key"}` or `{"customer"}`; returns what was dropped. ValueError on bad input."""
    cache = sources.cache
    if cache is None:
        raise ValueError("the cache is disabled")
    if "customer" in request:
        keys = await customer_keys(sources, str(request["customer"]))
        await cache.tiers.invalidate(keys=keys)
        return {"customer": request["customer"], "keys": len(keys)}
    source = request.get("source")
    if source not in sources.connectors:
        raise ValueError(f"unknown source {source!r}; give source, source and key, or customer")
    connector = sources.connectors[source]
    if "key" in request:
        keys = [cache_key(source, entity, str(request["key"])) for entity in connector.entities]
        await cache.tiers.invalidate(keys=keys)
        return {"source": source, "key": request["key"], "keys": len(keys)}
    await cache.tiers.invalidate(sources=[source])
    return {"source": source, "keys": "all"}


async def customer_keys(sources: Sources, golden_id: str) -> list[str]:
    """Every cache key holding this person's records: crosswalk, each system's records, shipments."""
    assert sources.cache is not None
    identity = sources.connectors[sources.config.identity]
    # Ask the crosswalk live: the person's records may have changed since the cached entry.
    idents = (await identity.fetch("identities", [golden_id])).get(golden_id, [])
    keys = [cache_key(identity.name, "identities", golden_id)]
    for ident in idents:
        for c in sources.connectors.values():
            if c.config.system == ident.system and c is not identity:
                keys += [cache_key(c.name, entity, ident.id) for entity in c.entities]
    for c in sources.providers.get("orders", []):
        cached = await sources.cache.tiers.lookup(c.name, "orders", [i.id for i in idents if i.system == c.config.system])
        numbers = [o.number for e in cached.values() for o in (e.value or []) if isinstance(o, Order)]
        keys += [cache_key(s.name, "shipments", n) for s in sources.providers.get("shipments", []) for n in numbers]
    return keys
