"""The root subscription fields: what the gateway pushes, over WebSocket (graphql-transport-ws) or SSE."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry
from strawberry.types import Info

from resolvers import live
from schema.customer import Customer
from schema.graph import enums, golden_example
from schema.timeline import STREAMS, EventKind, TimelineEvent

Channel = enums["Channel"]


@strawberry.type(description="A contact starting at a contact center (a call ringing, a chat or email arriving) "
                             "and who it is: the screen pop.")
class IncomingContact:
    channel: Channel
    sender: str = strawberry.field(name="from", description="The number or address it comes from, as announced.")
    at: datetime = strawberry.field(description="When it started.")
    source: str = strawberry.field(description="The system that announced it.")
    candidates: list[Customer] = strawberry.field(  # type: ignore[valid-type]
        description="Every customer it matches when several do (a shared household phone): none is picked "
                    "for you. Empty when one or none matches.")
    customer: Customer | None = strawberry.field(  # type: ignore[valid-type]
        description="The caller, when exactly one customer matches; select crossSell, accounts, offers, tickets "
                    "and bestAgent on it for the point-of-sale questions and the staff match.")


def screen_pop(found: live.Incoming) -> IncomingContact:
    one = found.customers[0] if len(found.customers) == 1 else None
    return IncomingContact(channel=Channel[found.channel], sender=found.sender, at=found.at,  # type: ignore[call-arg]
                           source=found.source, candidates=found.customers if one is None else [], customer=one)


@strawberry.type
class Subscription:
    @strawberry.subscription(description=f"New timeline events of one customer{golden_example()} as they happen, "
                                         "oldest first, typed like the timeline's nodes: from the gateway's writes "
                                         "and from changes the sources report. An event whose record changes (a "
                                         "ticket's status) comes again as it now reads. `kinds`: only these.")
    async def customer_events(self, info: Info, id: strawberry.ID,
                              kinds: list[EventKind] | None = None) -> AsyncGenerator[TimelineEvent, None]:
        settings = info.context.config.subscriptions
        async for event in live.customer_events(info, id, kinds, STREAMS, settings.queue_size, settings.seen_max):
            yield event  # type: ignore[misc]

    @strawberry.subscription(description="Contacts as they start at any contact center, of the channels asked "
                                         "(all when none), with the caller identified as findCustomers would.")
    async def incoming_contacts(self, info: Info,
                                channels: list[Channel] | None = None) -> AsyncGenerator[IncomingContact, None]:
        settings = info.context.config.subscriptions
        async for found in live.incoming_contacts(info, channels, settings.queue_size):
            yield screen_pop(found)
