"""Writes through to the owning system, as the declaration files' `mutations:` say (schema/mutation.py
compiles each into a Plan; schema/mutations_decl.py documents the format).

Validation first (nothing is written for bad input); then the customer, the values that must be known
records, and the customer's keys in the writing source (one linked in the identity source first when
the declaration says so); then the source's declared action, which carries the idempotency key so that
a retry creates nothing twice; then the cached records it changed are dropped, so the write shows at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from strawberry.types import Info

from cache.tiers import cache_key
from connectors.base import Connector
from connectors.changes import ChangeEvent
from connectors.declaration import record_class
from resolvers.audit import audited
from resolvers.context import Context, KeySpec
from resolvers.customer import CustomerData, keys_of, load_customers, records
from resolvers.errors import BadUserInput

if TYPE_CHECKING:  # the configuration's model lives at the gateway's level: a type only
    from config import GatewayConfig

Template = Callable[[Any], str]  # a message, from the input


@dataclass(frozen=True)
class Check:
    holds: Callable[[Any], bool]  # over the input
    message: str


@dataclass(frozen=True)
class Exists:
    field: str  # of the input
    entity: str
    message: Template


@dataclass(frozen=True)
class Link:
    entity: str  # the customer's records of this entity...
    field: str  # ...hold the id to link in this field,
    normalize: Callable[[Any], Any] | None  # ...normalised so
    action: str  # the identity source's action


@dataclass(frozen=True)
class Plan:
    """One declared mutation, compiled."""

    name: str  # the Mutation field, as the audit line names it
    key: str  # its key under `mutations:` in the declaration file
    file: str  # the declaration file, for error messages
    source: str
    action: str
    customer: str  # the input field holding the golden id
    idempotency_key: str | None  # the input field audited as the idempotency key
    normalize: Callable[[Any], None]  # the input's declared normalisations, in place
    checks: tuple[Check, ...]
    exists: tuple[Exists, ...]
    link: Link | None
    missing: Template
    invalidates: tuple[str, ...]
    returns: str  # a declared type, or CUSTOMER
    input_paths: frozenset[str]  # every `$input.a.b` an action may read of this input


CUSTOMER = "Customer"


async def run(info: Info, plan: Plan, given: Any) -> Any:
    """One mutation, audited: the created record, or the customer re-read."""
    key = getattr(given, plan.idempotency_key) if plan.idempotency_key else None
    async with audited(info, plan.name, str(getattr(given, plan.customer)), key):
        return await _write(info, plan, given)


async def _write(info: Info, plan: Plan, given: Any) -> Any:
    ctx: Context = info.context
    plan.normalize(given)
    for check in plan.checks:
        if not check.holds(given):
            raise BadUserInput(check.message)
    customer = await _customer(info, str(getattr(given, plan.customer)))
    for e in plan.exists:
        await _known(ctx, e, given)
    writer = _writer(ctx, plan)
    keys = await _keys(info, plan, writer, customer, given)
    args = {"input": given, "key": keys[0], "keys": keys, "customer": customer.id, "system": writer.config.system}
    result = await writer.write(plan.action, args, ctx.deadline)
    written = keys if writer.config.actions[plan.action].all_keys else keys[:1]
    await _drop(ctx, [ChangeEvent(writer.name, e, k) for e in plan.invalidates for k in written])
    if plan.returns == CUSTOMER:
        customer.memo.clear()  # its fields read back what the source now holds
        return customer
    return result


async def _customer(info: Info, customer_id: str) -> CustomerData:
    malformed = info.context.sources.identity.malformed(customer_id)
    if malformed is not None:
        raise BadUserInput(malformed)
    [found] = await load_customers(info, [customer_id], with_fields=False)  # its fields come after the write
    if isinstance(found, Exception):  # NotFound, or the identity source failing
        raise found
    return found


async def _known(ctx: Context, e: Exists, given: Any) -> None:
    value = getattr(given, e.field)
    if value is None:
        return
    found = [r for c in ctx.providers(e.entity) for r in await ctx.load_many(c, e.entity, [value])]
    if not any(found):
        raise BadUserInput(e.message(given))


def _writer(ctx: Context, plan: Plan) -> Connector:
    c = ctx.sources.connectors.get(plan.source)
    if c is None or plan.action not in c.actions:
        raise BadUserInput(f"no configured source accepts {plan.action}")
    return c


async def _keys(info: Info, plan: Plan, writer: Connector, customer: CustomerData, given: Any) -> list[str]:
    """The customer's ids in the writer's system; for a first write there, one linked first."""
    system = writer.config.system
    known = customer.ids_in(system)
    if known:
        return known
    link = plan.link
    if link is None:
        raise BadUserInput(plan.missing(given))
    found = keys_of(await records(info, link.entity, customer), KeySpec(link.entity, link.field, link.normalize))
    if not found:
        raise BadUserInput(plan.missing(given))
    ctx: Context = info.context
    identity = ctx.source(ctx.config.identity)
    # Linking first is harmless if the write then fails: the person does own that id.
    await identity.write(link.action, {"input": given, "customer": customer.id, "system": system, "key": found[0],
                                       "keys": found[:1]}, ctx.deadline)
    await _drop(ctx, [ChangeEvent(identity.name, ctx.sources.identity.identities, customer.id)])
    return found[:1]


async def _drop(ctx: Context, changed: list[ChangeEvent]) -> None:
    """What a write changed: dropped from the cache here and on every gateway, then told to the
    subscribers (on every gateway too, the events travelling with the invalidation)."""
    if ctx.sources.cache is not None and changed:
        await ctx.sources.cache.tiers.invalidate(keys=[cache_key(e.source, e.entity, e.key) for e in changed],
                                                 events=[e.to_json() for e in changed])
    for e in changed:
        ctx.sources.bus.publish(e)


# --- at start: the plans against the configured sources --------------------------------------------

def check(plans: list[Plan], config: GatewayConfig) -> None:
    """Each mutation whose source is configured runs an action the source declares, suited to it;
    ValueError naming the declaration file and key otherwise (a mutation whose source is not
    configured answers BAD_USER_INPUT when called)."""
    for plan in plans:
        src = config.sources.get(plan.source)
        if src is None:
            continue
        where = f"{plan.file}: mutations.{plan.key}"
        action = src.actions.get(plan.action)
        if action is None:
            raise ValueError(f"{where}.action: source {plan.source!r} declares no action {plan.action!r} "
                             f"(its actions: {', '.join(src.actions) or 'none'})")
        for ref in action.reads:
            if ref.startswith("$input.") and ref[len("$input."):] not in plan.input_paths:
                raise ValueError(f"{where}.action: {plan.source}'s action {plan.action} reads {ref}, "
                                 f"which the mutation's input has not")
        if plan.idempotency_key and f"$input.{plan.idempotency_key}" not in action.reads:
            raise ValueError(f"{where}.idempotency_key: {plan.source}'s action {plan.action} does not send "
                             f"$input.{plan.idempotency_key} (in a header, the body or a unique column)")
        unknown = [e for e in plan.invalidates if e not in src.entities]
        if unknown:
            raise ValueError(f"{where}.invalidates: {unknown[0]!r} is not an entity of source {plan.source!r}")
        if plan.returns != CUSTOMER:
            answer = action.answer
            made = src.entities[answer.entity].record if answer is not None else None
            if made != plan.returns:
                raise ValueError(f"{where}.returns: {plan.source}'s action {plan.action} answers "
                                 f"{made or 'no record (no answer: entity)'}, not {plan.returns}")
        _check_link(plan, config, where)


def _check_link(plan: Plan, config: GatewayConfig, where: str) -> None:
    link = plan.link
    if link is None:
        return
    identity = config.sources[config.identity]
    if link.action not in identity.actions:
        raise ValueError(f"{where}.keys.link.action: the identity source {identity.name!r} declares no action "
                         f"{link.action!r}")
    for src in config.sources.values():
        e = src.entities.get(link.entity)
        if e is not None and e.record is not None and \
                link.field not in {f.name for f in dataclasses.fields(record_class(e.record))}:
            raise ValueError(f"{where}.keys.link.from: {e.record} (entity {link.entity} of {src.name}) has no "
                             f"field {link.field!r}")
