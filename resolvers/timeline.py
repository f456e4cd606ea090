"""One cross-channel history, newest first: a k-way merge of per-source streams, paged by an
opaque cursor that is the last event's position in one total order (time, source, kind, id),
so paging never repeats or skips an event, even when timestamps tie."""

from __future__ import annotations

import asyncio
import base64
import enum
import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any

import orjson
from strawberry.types import Info

from connectors.base import SourceError
from resolvers.customer import CustomerData, records_by_source
from resolvers.errors import BadUserInput
from schema.graph import enums
from schema.graph import records as declared

Channel = enums["Channel"]
Account, Interaction, MarketingContact, Order, Shipment, Ticket, Warranty, WebSession = (declared[n] for n in (
    "BillingAccount", "Interaction", "MarketingStatus", "Order", "Shipment", "Ticket", "Warranty", "WebSession"))


class EventKind(enum.Enum):
    ORDER_PLACED = "order_placed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    TICKET_OPENED = "ticket_opened"
    CONTACT = "contact"
    OFFER_SENT = "offer_sent"
    OFFER_RESPONSE = "offer_response"
    CLAIM_OPENED = "claim_opened"
    INVOICE_ISSUED = "invoice_issued"
    WEB_SESSION = "web_session"


@dataclass(slots=True)
class Event:
    at: datetime
    channel: Channel | None
    source: str
    kind: EventKind
    summary: str
    record: Any
    id: str

    @property
    def key(self) -> tuple[float, str, str, str]:
        """Position in the timeline's total order: newest first, ties broken by source, kind, id."""
        return (-self.at.timestamp(), self.source, self.kind.value, self.id)


@dataclass(slots=True)
class Page:
    events: list[Event]
    has_next: bool


def encode_cursor(event: Event) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([event.at.isoformat(), event.source, event.kind.value,
                                                  event.id])).decode()


def decode_cursor(cursor: str) -> tuple[float, str, str, str]:
    try:
        at, source, kind, ident = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        return (-datetime.fromisoformat(at).timestamp(), str(source), str(kind), str(ident))
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise BadUserInput("after: not a cursor this timeline gave out") from None


def _day(d: date) -> datetime:
    return datetime.combine(d, time(0, 0), tzinfo=timezone.utc)


def _money(amount: float, currency: str) -> str:
    return f"{currency} {amount:,.2f}"


def order_events(source: str, o: Order) -> Iterator[Event]:
    items = sum(line.quantity for line in o.lines)
    yield Event(o.placed_at, o.channel, source, EventKind.ORDER_PLACED,
                f"Order {o.number} placed ({o.channel.value}): {items} item{'s' * (items != 1)}, "
                f"{_money(o.total, o.currency)}, {o.status.value}", o, o.number)


def shipment_events(source: str, s: Shipment) -> Iterator[Event]:
    if s.shipped_at:
        yield Event(s.shipped_at, None, source, EventKind.SHIPPED,
                    f"Parcel {s.id} of {s.order_number} shipped with {s.carrier} ({s.tracking_number})", s, s.id)
    if s.delivered_at:
        yield Event(s.delivered_at, None, source, EventKind.DELIVERED,
                    f"Parcel {s.id} of {s.order_number} delivered by {s.carrier}", s, s.id)


def ticket_events(source: str, t: Ticket) -> Iterator[Event]:
    yield Event(t.created_at, t.channel, source, EventKind.TICKET_OPENED,
                f"Ticket #{t.id} opened: {t.subject} ({t.status.value}, {t.priority.value} priority)", t, t.id)


def interaction_events(source: str, i: Interaction) -> Iterator[Event]:
    length = f", {round(i.duration_s / 60)} min" if i.duration_s >= 60 else ""
    yield Event(i.started_at, i.channel, source, EventKind.CONTACT,
                f"{i.channel.value.capitalize()}{length}: {i.summary} ({i.outcome.value})", i, i.id)


def offer_events(source: str, c: MarketingContact) -> Iterator[Event]:
    for o in c.offers:
        yield Event(o.sent_at, o.channel, source, EventKind.OFFER_SENT,
                    f"Offer {o.offer_code} sent by {o.channel.value}: {o.campaign_name}", o, o.id)
        if o.responded_at:
            answer = o.response.value if o.response else "responded"
            yield Event(o.responded_at, o.channel, source, EventKind.OFFER_RESPONSE,
                        f"Offer {o.offer_code} {answer}: {o.campaign_name}", o, o.id)


def claim_events(source: str, w: Warranty) -> Iterator[Event]:
    for c in w.claims:
        rma = f", RMA {c.rma_number}" if c.rma_number else ""
        yield Event(_day(c.opened_on), None, source, EventKind.CLAIM_OPENED,
                    f"Warranty claim {c.number} on {w.product_name}: {c.reason} ({c.status.value}{rma})", c, c.number)


def invoice_events(source: str, a: Account) -> Iterator[Event]:
    for inv in a.invoices:
        yield Event(_day(inv.issued_on), None, source, EventKind.INVOICE_ISSUED,
                    f"Invoice {inv.number} issued: {_money(inv.amount, a.currency)} ({inv.status.value})", inv,
                    inv.number)


def session_events(source: str, s: WebSession) -> Iterator[Event]:
    viewed = f", viewed {', '.join(s.products_viewed)}" if s.products_viewed else ""
    yield Event(s.started_at, Channel.WEB, source, EventKind.WEB_SESSION,
                f"Web visit on {s.device}, {len(s.pages)} page{'s' * (len(s.pages) != 1)}{viewed}", s, s.id)


# Which records of the customer feed the timeline, and how each becomes events.
CUSTOMER_STREAMS: dict[str, Callable[[str, Any], Iterator[Event]]] = {
    "orders": order_events, "tickets": ticket_events, "interactions": interaction_events,
    "marketing": offer_events, "warranties": claim_events, "accounts": invoice_events,
    "web_sessions": session_events,
}


async def _stream(info: Info, customer: CustomerData, entity: str) -> list[list[Event]]:
    """One stream per source providing `entity` (each sorted), plus shipments after orders."""
    found = await records_by_source(info, entity, customer)
    to_events = CUSTOMER_STREAMS[entity]
    by_source: dict[str, list[Event]] = {}
    for source, record in found:
        by_source.setdefault(source, []).extend(to_events(source, record))
    streams = list(by_source.values())
    if entity == "orders" and found:
        try:
            streams.extend(await _shipments(info, [o.number for _, o in found]))
        except SourceError as exc:  # the orders stay; only the parcels are missing
            _missing(info, exc)
    return [sorted(s, key=lambda e: e.key) for s in streams]


async def _shipments(info: Info, numbers: list[str]) -> list[list[Event]]:
    ctx = info.context
    out = []
    for c in ctx.providers("shipments"):
        found = await ctx.load_many(c, "shipments", numbers, info.path.as_list)
        out.append([e for items in found for s in items or () for e in shipment_events(c.name, s)])
    return out


async def timeline(info: Info, customer: CustomerData, first: int, after: str | None,
                   channels: list[Channel] | None, since: datetime | None) -> Page:
    if not 0 <= first <= 100:
        raise BadUserInput("first must be between 0 and 100")
    after_key = decode_cursor(after) if after else None
    since_utc = since.replace(tzinfo=since.tzinfo or timezone.utc) if since else None
    wanted = set(channels) if channels else None
    results = await asyncio.gather(*(_stream(info, customer, e) for e in CUSTOMER_STREAMS), return_exceptions=True)
    streams: list[list[Event]] = []
    for result in results:
        if isinstance(result, SourceError):
            _missing(info, result)
        elif isinstance(result, BaseException):
            raise result
        else:
            streams.extend(result)

    def keep(e: Event) -> bool:
        return ((after_key is None or e.key > after_key) and (since_utc is None or e.at >= since_utc)
                and (wanted is None or e.channel in wanted))

    merged = heapq.merge(*(filter(keep, s) for s in streams), key=lambda e: e.key)
    events = [e for _, e in zip(range(first + 1), merged)]  # reads first+1 events, and no more
    return Page(events[:first], len(events) > first)


def _missing(info: Info, error: SourceError) -> None:
    """The timeline still comes back; a GraphQL error names the source whose events are missing."""
    info.context.soft_errors.append({"message": f"{error} (its events are missing from this timeline)",
                                     "path": info.path.as_list(), "extensions": dict(error.extensions)})
