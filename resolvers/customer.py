"""Finding golden customers and gathering their records from every source that holds them."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode
from strawberry.types import Info

from connectors.base import Connector
from connectors.identity import CompiledIdentity
from resolvers.context import Context, KeySpec, flatten
from resolvers.errors import BadUserInput, NotFound
from resolvers.futures import chain


@dataclass(slots=True)
class CustomerData:
    """A golden customer as resolved at object level: its identities (each system's ids for it)."""

    id: str
    identities: list[Any]  # the identity source's records: each with .system and .id
    # entity -> its records of this customer, or a future of them: every field fed by one entity
    # (a profile's name, emails, phones...) shares one load.
    memo: dict[str, Loaded] = field(default_factory=dict)

    def ids_in(self, system: str) -> list[str]:
        return [i.id for i in self.identities if i.system == system]


# GraphQL name of each declared Customer field -> the entity feeding it (registered by schema/types.py).
FIELD_ENTITIES: dict[str, str] = {}


def graphql_info(info: Info) -> Any:
    """graphql-core's resolve info behind strawberry's (its field nodes and fragments): strawberry keeps it
    in `_raw_info`, a constructor field, not public API (tests/test_attached.py fails loudly if it goes).
    Converting to `info.selected_fields` instead costs ~90 us a request (cProfile)."""
    return info._raw_info


def selected_entities(info: Info) -> dict[str, int]:
    """Entity -> how many of the selected fields of the Customer(s) this root field returns it feeds,
    through fragments too (the raw AST: cheap)."""
    raw = graphql_info(info)
    counts: dict[str, int] = {}

    def walk(selection_set: Any) -> None:
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                entity = FIELD_ENTITIES.get(node.name.value)
                if entity is not None:
                    counts[entity] = counts.get(entity, 0) + 1
            elif isinstance(node, InlineFragmentNode):
                walk(node.selection_set)
            elif isinstance(node, FragmentSpreadNode) and node.name.value in raw.fragments:
                walk(raw.fragments[node.name.value].selection_set)

    for node in raw.field_nodes:
        if node.selection_set is not None:
            walk(node.selection_set)
    return counts


async def prefetch(info: Info, customers: list[CustomerData]) -> None:
    """Start, at the root, every selected entity's load for these customers (one batch per source, at
    once); wait for those feeding several selected fields (a profile's name, emails, phones...), so that
    their fields read them at once instead of each awaiting a future (a task per field in graphql-core:
    cProfile put the difference at ~9 tasks a view). Failures stay in the futures: each field raises its own."""
    if not customers:
        return
    waits = []
    for entity, fields in selected_entities(info).items():
        for c in customers:
            found = records_now(info, entity, c, field_path=False)
            if fields > 1 and isinstance(found, asyncio.Future) and not found.done():
                waits.append(found)
    if waits:
        await asyncio.wait(waits)


async def load_customers(info: Info, ids: list[str], with_fields: bool = True) -> list[CustomerData | Exception]:
    """Customers in the order asked; a BadUserInput or NotFound in place of each bad or unknown id;
    with `with_fields` (a root field), the entities their selected fields need already on their way
    (`prefetch`)."""
    ctx: Context = info.context
    identity = ctx.sources.identity
    bad = {i: why for i in ids if (why := identity.malformed(i)) is not None}
    valid = [i for i in ids if i not in bad]
    entity = ctx.sources.identity.identities  # a golden id's records in every system
    found = dict(zip(valid, await ctx.load_many(ctx.source(ctx.config.identity), entity, valid, info.path.as_list)))
    # The identity source's records of each customer are its identities: loaded already.
    customers = {gid: CustomerData(gid, idents, {entity: Loaded(idents)}) for gid, idents in found.items() if idents}
    if with_fields:
        await prefetch(info, list(customers.values()))
    return [customers.get(i) or (BadUserInput(bad[i]) if i in bad else NotFound(f"no customer with id {i}"))
            for i in ids]


def match_keys(identity: CompiledIdentity, given: Mapping[str, str | None]) -> list[str]:
    """Standardised "kind:value" keys for the values given, by declared lookup (connectors/identity.py),
    in the declared order; a clear error for an unusable one."""
    keys = []
    for name, lookup in identity.lookups.items():
        value = given.get(name)
        if value is None:
            continue
        if lookup.valid is not None and not lookup.valid({"value": value}):
            raise BadUserInput(f"{lookup.argument} {value!r} {lookup.invalid}")
        key = lookup.normalize(value)
        if not key:
            raise BadUserInput(f"{lookup.argument} {value!r} {lookup.empty}")
        keys.append(f"{lookup.kind}:{key}")
    return keys


async def find_golden_ids(info: Info, keys: list[str], system_key: str | None) -> list[str]:
    """Golden ids matching the identifiers: those matching all of them first, then by how many they match."""
    ctx: Context = info.context
    identity = ctx.sources.identity
    source = ctx.source(ctx.config.identity)
    lookups = []
    if identity.match is not None:
        lookups.append(ctx.load_many(source, identity.match, keys, info.path.as_list))
    if system_key is not None and identity.system_ids is not None:
        lookups.append(ctx.load_many(source, identity.system_ids, [system_key], info.path.as_list))
    hits: dict[str, int] = {}
    for result in await asyncio.gather(*lookups):
        for gids in result:
            for gid in gids or ():
                hits[gid] = hits.get(gid, 0) + 1
    wanted = len(keys) + (system_key is not None)
    full = sorted(g for g, n in hits.items() if n == wanted)
    return full or sorted(hits, key=lambda g: (-hits[g], g))


async def find_customers(info: Info, given: Mapping[str, str | None],
                         system_id: tuple[str, str] | None) -> list[CustomerData]:
    """findCustomers: the customers matching the lookups' values given (declared name -> value) and a
    system's own id (system, id), best first, at most `max_ids`."""
    ctx: Context = info.context
    if system_id is None and all(v is None for v in given.values()):
        raise BadUserInput(ctx.sources.identity.none_given())
    keys = match_keys(ctx.sources.identity, given)
    system_key = f"{system_id[0]}:{system_id[1].strip()}" if system_id is not None else None
    gids = await find_golden_ids(info, keys, system_key)
    found = await load_customers(info, gids[: ctx.config.max_ids])
    return [c for c in found if isinstance(c, CustomerData)]


def then(result: Any, fn: Callable[[Any], Any]) -> Any:
    """`fn(result)`, or an awaitable of it when `result` is still to come."""
    if isinstance(result, asyncio.Future):
        return chain(result, fn)
    if inspect.isawaitable(result):
        async def later() -> Any:
            return fn(await result)
        return later()
    return fn(result)


async def settled(result: Any) -> Any:
    """A value that may still be to come (a future, a coroutine, or a value), awaited."""
    return await result if inspect.isawaitable(result) else result


Pairs = list[tuple[Connector, list[str]]]


def keys_of(records: list[Any], spec: KeySpec) -> list[str]:
    """The distinct, normalised keys one field of these records holds (a value or a list of values)."""
    out: dict[str, None] = {}
    for r in records:
        value = getattr(r, spec.field, None)
        for v in value if isinstance(value, list) else (value,):
            if v is not None:
                k = spec.normalize(v) if spec.normalize else v
                if k is not None:
                    out[str(k)] = None
    return list(out)


def customer_pairs(info: Info, entity: str, customer: CustomerData) -> Pairs | Awaitable[Pairs]:
    """Each source providing `entity`, with the customer's keys there: their ids in its system (from the
    identity source), or for an entity keyed by another's field, that field of the customer's records of it
    (then still to come)."""
    ctx: Context = info.context
    pairs: Pairs = []
    derived: list[tuple[Connector, KeySpec]] = []
    for c in ctx.providers(entity):
        spec = ctx.sources.key_specs.get((c.name, entity))
        if c.name == ctx.config.identity:  # the identity source knows the customer by the golden id itself
            pairs.append((c, [customer.id]))
        elif spec is None:
            pairs.append((c, customer.ids_in(c.config.system)))
        else:
            derived.append((c, spec))
    if not derived:
        return pairs

    async def later() -> Pairs:
        out = list(pairs)
        for c, spec in derived:
            out.append((c, keys_of(await settled(records_now(info, spec.entity, customer)), spec)))
        return out
    return later()


@dataclass(slots=True)
class Loaded:
    """One entity's records of one customer: the list, or a future of it; where it was asked from (its
    pairs, once known) and the paths of the fields that asked before it came (marked if served stale)."""

    found: Any
    pairs: Pairs | None = None
    paths: list[Callable[[], list[Any]]] = field(default_factory=list)


def records_now(info: Info, entity: str, customer: CustomerData, field_path: bool = True) -> Any:
    """The customer's records of `entity`, lists flattened: at once when every record is a fresh
    in-process cache hit or already loaded, else a future of them; one load per customer and entity,
    whichever fields ask. `field_path`: the asker is a field (records served stale are marked at its path)."""
    ctx: Context = info.context
    loaded = customer.memo.get(entity)
    if loaded is None:
        loaded = customer.memo[entity] = Loaded(None)
        pairs = customer_pairs(info, entity, customer)
        if isinstance(pairs, list):
            loaded.pairs = pairs
            loaded.found = _records_now(info, entity, pairs, loaded.paths)
            if not isinstance(loaded.found, (list, asyncio.Future)):  # a coroutine (naive mode): awaitable once
                loaded.found = asyncio.ensure_future(loaded.found)
        else:
            loaded.found = asyncio.ensure_future(_derived(info, entity, pairs, loaded))
    found = loaded.found
    if isinstance(found, asyncio.Future):
        if not found.done():
            if field_path:
                loaded.paths.append(info.path.as_list)  # marked when the records arrive
            return found
        found = found.result()  # loaded already (prefetch): no future per field
    if field_path and ctx.stale_keys and loaded.pairs:
        for c, keys in loaded.pairs:
            ctx.note_stale(c, entity, keys, info.path.as_list)
    return found


async def _derived(info: Info, entity: str, pairs: Awaitable[Pairs], loaded: Loaded) -> list[Any]:
    loaded.pairs = await pairs
    return await settled(_records_now(info, entity, loaded.pairs, loaded.paths))  # type: ignore[no-any-return]


def attached_now(info: Info, entity: str, root: Any) -> list[Any] | Awaitable[list[Any]]:
    """Records of `entity` attached to another record (an order's shipments, an interaction's agent),
    keyed by that record's field its declaration names; the same way as `records_now`."""
    ctx: Context = info.context
    pairs = [(c, keys_of([root], spec)) for c in ctx.providers(entity)
             if (spec := ctx.sources.key_specs.get((c.name, entity))) is not None]
    return _records_now(info, entity, pairs)


def _records_now(info: Info, entity: str, pairs: Pairs,
                 paths: list[Callable[[], list[Any]]] | None = None) -> list[Any] | Awaitable[list[Any]]:
    ctx: Context = info.context
    found = ctx.cached_now(pairs, entity)
    if found is not None:
        return flatten(found)
    return ctx.load_pairs(pairs, entity, info.path.as_list if paths is None else paths)


async def records(info: Info, entity: str, customer: CustomerData) -> list[Any]:
    """Every record of `entity` about this customer, from every source providing it, lists flattened."""
    return await settled(records_now(info, entity, customer))  # type: ignore[no-any-return]


async def records_by_source(info: Info, entity: str, customer: CustomerData) -> list[tuple[str, Any]]:
    """(source name, record) for every record of `entity` about this customer."""
    ctx: Context = info.context
    path = info.path.as_list
    pairs = await settled(customer_pairs(info, entity, customer))
    if len(pairs) == 1:  # the usual case, without a gather
        c, keys = pairs[0]
        return [(c.name, r) for r in flatten([await ctx.load_many(c, entity, keys, path)])]
    found = await asyncio.gather(*(ctx.load_many(c, entity, keys, path) for c, keys in pairs))
    return [(c.name, r) for (c, _), items in zip(pairs, found) for r in flatten([items])]
