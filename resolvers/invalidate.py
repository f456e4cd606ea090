"""Dropping cached records: of a source, of one key, or of everything about one golden customer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cache.tiers import cache_key
from resolvers.context import Sources
from resolvers.customer import keys_of

USAGE = 'give {"source": name}, {"source": name, "key": id} or {"customer": golden id}'


@dataclass(frozen=True)
class Target:
    """What one invalidation request drops: a customer, one key of a source, or a whole source."""

    customer: str = ""
    source: str = ""
    key: str = ""


def parse_target(request: dict[str, Any]) -> Target:
    """The request's target; ValueError saying what is wrong with it (an admin reads it, as a 400)."""
    unknown = sorted(set(request) - {"customer", "source", "key"})
    if unknown:
        raise ValueError(f"unknown field {', '.join(map(repr, unknown))}: {USAGE}")
    for name, value in request.items():
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, not {type(value).__name__} {value!r:.60}")
    if "customer" in request:
        if len(request) > 1:
            raise ValueError(f"customer goes alone: {USAGE}")
        return Target(customer=request["customer"])
    if "source" not in request:
        raise ValueError(USAGE)
    return Target(source=request["source"], key=request.get("key", ""))


async def invalidate(sources: Sources, request: dict[str, Any]) -> dict[str, Any]:
    """`{"source"}`, `{"source", "key"}` or `{"customer"}`; returns what was dropped. ValueError on bad input."""
    cache = sources.cache
    if cache is None:
        raise ValueError("the cache is disabled")
    target = parse_target(request)
    if target.customer:
        keys = await customer_keys(sources, target.customer)
        await cache.tiers.invalidate(keys=keys)
        return {"customer": target.customer, "keys": len(keys)}
    if target.source not in sources.connectors:
        raise ValueError(f"unknown source {target.source!r}; known: {', '.join(sorted(sources.connectors))}")
    connector = sources.connectors[target.source]
    if target.key:
        keys = [cache_key(target.source, entity, target.key) for entity in connector.entities]
        await cache.tiers.invalidate(keys=keys)
        return {"source": target.source, "key": target.key, "keys": len(keys)}
    await cache.tiers.invalidate(sources=[target.source])
    return {"source": target.source, "keys": "all"}


async def customer_keys(sources: Sources, golden_id: str) -> list[str]:
    """Every cache key holding this person's records: the identity source's, each system's records by
    the person's ids there, and the records of entities keyed by another entity's field (found in the
    cached records of that entity)."""
    assert sources.cache is not None
    identity = sources.connectors[sources.config.identity]
    # Ask the identity source live: the person's records may have changed since the cached entry.
    entity = sources.identity.identities
    idents = (await identity.fetch(entity, [golden_id])).get(golden_id, [])
    keys = [cache_key(identity.name, entity, golden_id)]
    for ident in idents:
        for c in sources.connectors.values():
            if c.config.system == ident.system and c is not identity:
                keys += [cache_key(c.name, entity, ident.id) for entity in c.entities
                         if (c.name, entity) not in sources.key_specs]
    for (name, entity), spec in sources.key_specs.items():
        for c in sources.providers.get(spec.entity, []):
            if (c.name, spec.entity) in sources.key_specs:
                continue  # one level: keys of keys are not followed
            cached = await sources.cache.tiers.lookup(c.name, spec.entity,
                                                     [i.id for i in idents if i.system == c.config.system])
            records = [r for e in cached.values() for r in (e.value if isinstance(e.value, list) else [e.value])
                       if r is not None]
            keys += [cache_key(name, entity, k) for k in keys_of(records, spec)]
    return keys
