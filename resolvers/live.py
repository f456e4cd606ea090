"""What the subscriptions push (schema/subscription.py): a customer's new timeline events as their
sources change, and the screen pop, a contact starting with its caller identified.

Both listen before they read, so nothing that happens while they start is missed, and each result is
read afresh (`Context.renew`): the change event that wakes them has already dropped what it changed
from the cache (resolvers/changes.py).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from strawberry.types import Info

from connectors.base import SourceError
from connectors.changes import ChangeEvent
from resolvers.context import Context
from resolvers.customer import CustomerData, customer_pairs, find_golden_ids, load_customers, match_keys, settled
from resolvers.errors import BadUserInput
from resolvers.timeline import Event, Streams, events_of

log = logging.getLogger("customer_graph.subscriptions")
Change = tuple[str, str, str]  # (source, entity, key) of a ChangeEvent


class Seen:
    """The events a subscription has already sent (or found at its start), the oldest forgotten past
    `limit`: a forgotten one that changes again is sent again, never lost."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._ids: OrderedDict[tuple[str, ...], None] = OrderedDict()

    def add(self, key: tuple[str, ...]) -> bool:
        """Whether `key` is new (then remembered)."""
        if key in self._ids:
            self._ids.move_to_end(key)
            return False
        self._ids[key] = None
        while len(self._ids) > self.limit:
            self._ids.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._ids)


def identity_of(e: Event) -> tuple[str, ...]:
    """An event as the subscriber knows it: where it comes from, what it is, and what it says, so that an
    event whose record changed (a ticket's status in its summary) is sent again, as it now reads."""
    return (e.source, e.kind.value, e.id, e.summary)


def feeding(ctx: Context, entities: Collection[str]) -> set[str]:
    """These entities and those their keys come from (an order's number keys its shipments), transitively."""
    out = set(entities)
    while True:
        more = {spec.entity for (_, entity), spec in ctx.sources.key_specs.items() if entity in out} - out
        if not more:
            return out
        out |= more


def affected(ctx: Context, change: ChangeEvent, streams: Streams) -> set[str]:
    """The timeline entities whose events `change` may alter: its own, and those keyed by it."""
    return {entity for entity in streams if change.entity in feeding(ctx, [entity])}


async def concerns(info: Info, customer: CustomerData, streams: Streams) -> set[Change]:
    """Every (source, entity, key) whose change may alter this customer's timeline: its golden id's links,
    and its keys in each timeline entity and in the entities those are keyed by."""
    ctx: Context = info.context
    out = {(ctx.config.identity, ctx.sources.identity.identities, customer.id)}
    for entity in feeding(ctx, streams):
        for c, keys in await settled(customer_pairs(info, entity, customer)):
            out.update((c.name, entity, k) for k in keys)
    return out


async def _read(info: Info, customer: CustomerData, entities: Collection[str], streams: Streams) -> dict[str, list[Event]]:
    """The entities' events now; an entity whose source fails is left out (read again on its next change)."""
    out = {}
    for entity in entities:
        try:
            out[entity] = await events_of(info, customer, entity, streams[entity])
        except SourceError as exc:
            log.info("customerEvents: %s events of %s unread (%s); read again on its next change", entity,
                     customer.id, exc)
    return out


def listening(ctx: Context) -> None:
    if ctx.listening is not None:
        ctx.listening.set()


async def _customer(info: Info, customer_id: str) -> CustomerData:
    [found] = await load_customers(info, [customer_id], with_fields=False)
    if isinstance(found, Exception):  # malformed, unknown, or the identity source failing
        raise found
    return found


async def customer_events(info: Info, customer_id: str, kinds: list[Any] | None, streams: Streams,
                          queue_size: int, seen_max: int) -> AsyncIterator[Event]:
    """The customer's timeline events not seen before, oldest first, of the kinds asked, as their sources
    change: each change event concerning the customer re-reads just the entities it may alter."""
    ctx: Context = info.context
    wanted = set(kinds) if kinds else None
    seen = Seen(seen_max)
    with ctx.sources.bus.subscribe(queue_size) as changes:  # before reading: no change slips in between
        customer = await _customer(info, customer_id)
        watched = await concerns(info, customer, streams)
        found = await _read(info, customer, streams, streams)
        unseeded = set(streams) - set(found)  # their events so far are not news when first read
        for events in found.values():
            for e in events:
                seen.add(identity_of(e))
        listening(ctx)
        missed = 0
        async for change in changes:
            links = (change.source, change.entity) == (ctx.config.identity, ctx.sources.identity.identities)
            if (change.source, change.entity, change.key) not in watched and changes.missed == missed:
                continue
            ctx.renew()
            everything = links or changes.missed != missed  # who the customer is changed, or changes were lost
            missed = changes.missed
            customer = await _customer(info, customer_id)
            watched = await concerns(info, customer, streams)
            fresh = await _read(info, customer, streams if everything else affected(ctx, change, streams), streams)
            new: list[Event] = []
            for entity, events in fresh.items():
                news = [e for e in events if seen.add(identity_of(e))]
                if entity in unseeded:
                    unseeded.discard(entity)
                    continue
                new += news
            for e in sorted(new, key=lambda e: (e.at, e.source, e.id)):
                if wanted is None or e.kind in wanted:
                    yield e


@dataclass(slots=True)
class Incoming:
    """A contact starting, its caller identified: `customers` are every match, best first."""

    channel: str
    sender: str
    at: datetime
    source: str
    customers: list[CustomerData]


async def identify(info: Info, source: str, sender: str) -> list[str]:
    """The golden ids matching a contact's `from`, by the first of the source's declared contact lookups
    that accepts it; none when none does (an unknown or withheld number)."""
    ctx: Context = info.context
    events = ctx.config.sources[source].events
    lookups = events.contacts.lookups if events is not None and events.contacts is not None else []
    for name in lookups:
        try:
            keys = match_keys(ctx.sources.identity, {name: sender})
        except BadUserInput:
            continue  # not this kind of identifier (a phone number is not an email)
        return await find_golden_ids(info, keys, None)
    return []


async def incoming_contacts(info: Info, channels: list[Any] | None, queue_size: int) -> AsyncIterator[Incoming]:
    """Each contact announced on any gateway (resolvers/context.py `Sources.contacts`), of the channels
    asked, with the customers it identifies."""
    ctx: Context = info.context
    wanted = {c.name for c in channels} if channels else None
    with ctx.sources.contacts.listen(queue_size) as heard:
        listening(ctx)
        async for message in heard:
            if wanted is not None and message["channel"] not in wanted:
                continue
            ctx.renew()
            try:
                gids = await identify(info, message["source"], message["from"])
            except SourceError as exc:  # announced all the same: unidentified, with an error naming the source
                ctx.soft_errors.append({"message": f"the caller could not be identified: {exc}",
                                        "path": info.path.as_list(), "extensions": dict(exc.extensions)})
                gids = []
            found = await load_customers(info, gids[: ctx.config.max_ids], with_fields=False)
            at = datetime.fromtimestamp(message["at"], timezone.utc)
            yield Incoming(message["channel"], message["from"], at, message["source"],
                           [c for c in found if isinstance(c, CustomerData)])
