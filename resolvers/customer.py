"""Finding golden customers and gathering their records from every source that holds them."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from strawberry.types import Info

from connectors import normalize
from connectors.base import SourceError
from resolvers.context import Context, flatten
from resolvers.errors import BadUserInput, NotFound
from resolvers.futures import chain
from schema.graph import record

CrmRecord, Identity = record("CrmRecord"), record("Identity")

GOLDEN_ID = re.compile(r"^C-\d{6}$")


@dataclass(slots=True)
class CustomerData:
    """A golden customer as resolved at object level: its identities and CRM records."""

    id: str
    identities: list[Identity]
    crm: list[CrmRecord] = field(default_factory=list)
    crm_error: SourceError | None = None  # the CRM failed: its fields error, the rest still resolves

    def crm_records(self) -> list[CrmRecord]:
        if self.crm_error is not None:
            raise self.crm_error
        return self.crm

    def ids_in(self, system: str) -> list[str]:
        return [i.id for i in self.identities if i.system == system]


async def load_customers(info: Info, ids: list[str], with_crm: bool) -> list[CustomerData | Exception]:
    """Customers in the order asked; a BadUserInput or NotFound in place of each bad or unknown id."""
    ctx: Context = info.context
    valid = [i for i in ids if GOLDEN_ID.match(i)]
    identity = ctx.source(ctx.config.identity)
    found = dict(zip(valid, await ctx.load_many(identity, "identities", valid, info.path.as_list)))
    customers = {gid: CustomerData(gid, idents) for gid, idents in found.items() if idents}
    if with_crm and customers:
        await _attach_crm(ctx, list(customers.values()), info)
    return [customers.get(i) or (NotFound(f"no customer with id {i}") if GOLDEN_ID.match(i) else
                                 BadUserInput(f"malformed customer id {i!r}: expected the form C-000042"))
            for i in ids]


async def _attach_crm(ctx: Context, customers: list[CustomerData], info: Info) -> None:
    crm = ctx.source(ctx.config.crm)
    system = crm.config.system
    keys = [k for c in customers for k in c.ids_in(system)]
    try:
        records = dict(zip(keys, await ctx.load_many(crm, "crm", keys, info.path.as_list)))
    except SourceError as exc:
        for c in customers:
            c.crm_error = exc
        return
    for c in customers:
        c.crm = [records[k] for k in c.ids_in(system) if records.get(k) is not None]


def match_keys(ctx: Context, email: str | None, phone: str | None, loyalty_card: str | None) -> list[str]:
    """Standardised "kind:value" keys for the identifiers given; a clear error for an unusable one."""
    keys = []
    if email is not None:
        if "@" not in email:
            raise BadUserInput(f"email {email!r} is not an email address")
        keys.append(f"email:{normalize.email(email)}")
    if phone is not None:
        e164 = normalize.phone(phone, ctx.config.phone_country)
        if e164 is None:
            raise BadUserInput(f"phone {phone!r} is not a phone number")
        keys.append(f"phone:{e164}")
    if loyalty_card is not None:
        if not normalize.card(loyalty_card):
            raise BadUserInput(f"loyaltyCard {loyalty_card!r} has no digits")
        keys.append(f"loyalty_card:{normalize.card(loyalty_card)}")
    return keys


async def find_golden_ids(info: Info, keys: list[str], system_key: str | None) -> list[str]:
    """Golden ids matching the identifiers: those matching all of them first, then by how many they match."""
    ctx: Context = info.context
    identity = ctx.source(ctx.config.identity)
    lookups = [ctx.load_many(identity, "match", keys, info.path.as_list)]
    if system_key is not None:
        lookups.append(ctx.load_many(identity, "lookup", [system_key], info.path.as_list))
    hits: dict[str, int] = {}
    for result in await asyncio.gather(*lookups):
        for gids in result:
            for gid in gids or ():
                hits[gid] = hits.get(gid, 0) + 1
    wanted = len(keys) + (system_key is not None)
    full = sorted(g for g, n in hits.items() if n == wanted)
    return full or sorted(hits, key=lambda g: (-hits[g], g))


def then(result: Any, fn: Callable[[Any], Any]) -> Any:
    """`fn(result)`, or an awaitable of it when `result` is still to come."""
    if isinstance(result, asyncio.Future):
        return chain(result, fn)
    if inspect.isawaitable(result):
        async def later() -> Any:
            return fn(await result)
        return later()
    return fn(result)


def records_now(info: Info, entity: str, customer: CustomerData) -> list[Any] | Awaitable[list[Any]]:
    """`records`: at once when every record is a fresh in-process cache hit, else a future of them."""
    return _records_now(info, entity, [(c, customer.ids_in(c.config.system)) for c in info.context.providers(entity)])


def related_now(info: Info, entity: str, keys: list[str]) -> list[Any] | Awaitable[list[Any]]:
    """`related` records (shipments of orders, agents of interactions) by their own keys, the same way."""
    return _records_now(info, entity, [(c, keys) for c in info.context.providers(entity)])


def _records_now(info: Info, entity: str, pairs: list[tuple[Any, list[str]]]) -> list[Any] | Awaitable[list[Any]]:
    ctx: Context = info.context
    found = ctx.cached_now(pairs, entity)
    if found is not None:
        return flatten(found)
    return ctx.load_pairs(pairs, entity, info.path.as_list)


async def records(info: Info, entity: str, customer: CustomerData) -> list[Any]:
    """Every record of `entity` about this customer, from every source providing it, lists flattened."""
    return [r for _, r in await records_by_source(info, entity, customer)]


async def records_by_source(info: Info, entity: str, customer: CustomerData) -> list[tuple[str, Any]]:
    """(source name, record) for every record of `entity` about this customer."""
    ctx: Context = info.context
    path = info.path.as_list
    providers = ctx.providers(entity)
    if len(providers) == 1:  # the usual case, without a gather
        c = providers[0]
        return [(c.name, r) for r in flatten([await ctx.load_many(c, entity, customer.ids_in(c.config.system), path)])]
    found = await asyncio.gather(*(ctx.load_many(c, entity, customer.ids_in(c.config.system), path)
                                   for c in providers))
    return [(c.name, r) for c, items in zip(providers, found) for r in flatten([items])]

