"""The Customer: one person, composed live from every system that knows them.

CRM-backed fields are plain (the CRM record is fetched at object level); each other
field asks its source through the request's loaders, so 100 customers cost one call
per source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import strawberry
from strawberry import Parent
from strawberry.types import Info

from resolvers import agents, insights, timeline
from resolvers.customer import CustomerData, records_now, then
from resolvers.errors import BadUserInput
from resolvers.vocabulary import UNRESOLVED
from schema.graph import enums, records
from schema.insights import AgentMatch, CrossSell, CustomerValue
from schema.timeline import TimelineConnection, connection
from schema.types import types

# The declared types and enums Customer's fields return (schema/graph.py; finished in schema/types.py).
Address, BillingAccount, Identity, Interaction, Invoice, LoyaltyMembership, MarketingStatus, Offer, Order, \
    Preferences, Ticket, Warranty, WebSession = (types[n] for n in (
        "Address", "BillingAccount", "Identity", "Interaction", "Invoice", "LoyaltyMembership", "MarketingStatus",
        "Offer", "Order", "Preferences", "Ticket", "Warranty", "WebSession"))
Channel, InvoiceStatus, Segment, TicketStatus = (enums[n] for n in ("Channel", "InvoiceStatus", "Segment",
                                                                    "TicketStatus"))
_Preferences = records["Preferences"]

T = TypeVar("T")
MAX_FIRST = 100
# GraphQL names of the fields that need the CRM record: the root resolvers fetch it only for these.
CRM_FIELDS = frozenset({"name", "firstName", "lastName", "emails", "phones", "addresses", "segment",
                        "preferences"})


def check_first(first: int | None) -> None:
    if first is not None and not 0 <= first <= MAX_FIRST:
        raise BadUserInput(f"first must be between 0 and {MAX_FIRST}")


def newest(items: Iterable[T], when: Callable[[T], Any], first: int | None,
           keep: Callable[[T], bool] = lambda _: True) -> list[T]:
    """Items that pass `keep`, newest first, at most `first`."""
    return sorted((i for i in items if keep(i)), key=when, reverse=True)[:first]


@strawberry.type(description="One customer across every system: a golden id (C-000042) and everything "
                             "each source holds about them, fetched live.")
class Customer:
    id: strawberry.ID

    @strawberry.field(description="Full name from the CRM (the first of duplicate CRM records).")
    def name(self, root: Parent[CustomerData]) -> str | None:
        crm = root.crm_records()
        return f"{crm[0].first_name} {crm[0].last_name}" if crm else None

    @strawberry.field
    def first_name(self, root: Parent[CustomerData]) -> str | None:
        crm = root.crm_records()
        return crm[0].first_name if crm else None

    @strawberry.field
    def last_name(self, root: Parent[CustomerData]) -> str | None:
        crm = root.crm_records()
        return crm[0].last_name if crm else None

    @strawberry.field(description="Distinct emails across the customer's CRM records, trimmed and lower-cased.")
    def emails(self, root: Parent[CustomerData]) -> list[str] | None:
        return list(dict.fromkeys(c.email for c in root.crm_records() if c.email))

    @strawberry.field(description="Distinct phone numbers across the CRM records, in E.164 form.")
    def phones(self, root: Parent[CustomerData]) -> list[str] | None:
        return list(dict.fromkeys(p for c in root.crm_records() for p in c.phones))

    @strawberry.field
    def addresses(self, root: Parent[CustomerData]) -> list[Address] | None:
        return list({(a.line1, a.city, a.postcode, a.country): a
                     for a in (c.address for c in root.crm_records())}.values())

    @strawberry.field
    def segment(self, root: Parent[CustomerData]) -> Segment | None:
        crm = root.crm_records()
        return crm[0].segment if crm else None

    @strawberry.field
    def preferences(self, root: Parent[CustomerData]) -> Preferences | None:
        crm = root.crm_records()
        if not crm:
            return None
        return _Preferences(preferred_channel=crm[0].preferred_channel, language=crm[0].language,
                            consent=crm[0].consent)

    @strawberry.field(description="Every record of this person in every system (from the identity crosswalk).")
    def identities(self, root: Parent[CustomerData], system: str | None = None) -> list[Identity]:
        return [i for i in root.identities if system is None or i.system == system]

    # Source-fed fields are plain functions that return the records at once when all are fresh in the
    # in-process cache, and an awaitable otherwise (`records_now` + `then`): a warm view costs no
    # coroutine or loop tick per field.

    @strawberry.field(description="Billing accounts.")
    def accounts(self, root: Parent[CustomerData], info: Info) -> list[BillingAccount] | None:
        return records_now(info, "accounts", root)  # type: ignore[return-value]

    @strawberry.field(description="Invoices across all billing accounts, newest first.")
    def invoices(self, root: Parent[CustomerData], info: Info, status: InvoiceStatus | None = None,
                 first: int | None = 20) -> list[Invoice] | None:
        check_first(first)
        return then(records_now(info, "accounts", root), lambda accounts: newest(  # type: ignore[no-any-return]
            (i for a in accounts for i in a.invoices), lambda i: (i.issued_on, i.number), first,
            lambda i: status is None or i.status == status))

    @strawberry.field(description="Web shop orders (web, store and phone), newest first.")
    def orders(self, root: Parent[CustomerData], info: Info, first: int | None = 20,
               since: datetime | None = None) -> list[Order] | None:
        check_first(first)
        since_utc = since.replace(tzinfo=since.tzinfo or timezone.utc) if since else None
        return then(records_now(info, "orders", root), lambda orders: newest(  # type: ignore[no-any-return]
            orders, lambda o: (o.placed_at, o.number), first, lambda o: since_utc is None or o.placed_at >= since_utc))

    @strawberry.field(description="Helpdesk tickets, newest first. `unresolved: true` keeps NEW, OPEN, PENDING "
                                  "and ON_HOLD.")
    def tickets(self, root: Parent[CustomerData], info: Info, status: TicketStatus | None = None,
                unresolved: bool | None = None, first: int | None = 20) -> list[Ticket] | None:
        check_first(first)
        return then(records_now(info, "tickets", root), lambda tickets: newest(  # type: ignore[no-any-return]
            tickets, lambda t: (t.created_at, t.id), first,
            lambda t: (status is None or t.status == status)
            and (unresolved is None or (t.status in UNRESOLVED) == unresolved)))

    @strawberry.field(description="Contact-center interactions on every number of the customer, newest first.")
    def interactions(self, root: Parent[CustomerData], info: Info, channel: Channel | None = None,
                     first: int | None = 20) -> list[Interaction] | None:
        check_first(first)
        return then(records_now(info, "interactions", root), lambda items: newest(  # type: ignore[no-any-return]
            items, lambda i: (i.started_at, i.id), first, lambda i: channel is None or i.channel == channel))

    @strawberry.field(description="Standing in marketing automation (opt-out).")
    def marketing(self, root: Parent[CustomerData], info: Info) -> MarketingStatus | None:
        return then(records_now(info, "marketing", root),  # type: ignore[no-any-return]
                    lambda contacts: contacts[0] if contacts else None)

    @strawberry.field(description="Marketing offers sent, newest first; `withinDays` keeps the recent ones.")
    def offers(self, root: Parent[CustomerData], info: Info, within_days: int | None = None,
               first: int | None = 20) -> list[Offer] | None:
        check_first(first)
        if within_days is not None and within_days < 0:
            raise BadUserInput("withinDays must not be negative")
        cutoff = datetime.now(timezone.utc) - timedelta(days=within_days) if within_days is not None else None
        return then(records_now(info, "marketing", root), lambda contacts: newest(  # type: ignore[no-any-return]
            (o for c in contacts for o in c.offers), lambda o: (o.sent_at, o.id), first,
            lambda o: cutoff is None or o.sent_at >= cutoff))

    @strawberry.field(description="Loyalty membership, if any.")
    def loyalty(self, root: Parent[CustomerData], info: Info) -> LoyaltyMembership | None:
        return then(records_now(info, "loyalty", root),  # type: ignore[no-any-return]
                    lambda members: max(members, key=lambda m: m.points) if members else None)

    @strawberry.field(description="Products registered for warranty, with claims and RMAs.")
    def warranties(self, root: Parent[CustomerData], info: Info) -> list[Warranty] | None:
        return then(records_now(info, "warranties", root),  # type: ignore[no-any-return]
                    lambda items: sorted(items, key=lambda w: w.purchased_on, reverse=True))

    @strawberry.field(description="One cross-channel history, newest first: orders, parcels, tickets, contacts "
                                  "(voice, chat, email, fax, SMS), offers and responses, warranty claims, invoices "
                                  "and web sessions. A Relay-style connection; a source that fails leaves its "
                                  "events out, with an error naming it.")
    async def timeline(self, root: Parent[CustomerData], info: Info, first: int = 20, after: str | None = None,
                       channels: list[Channel] | None = None, since: datetime | None = None) -> TimelineConnection | None:
        return connection(await timeline.timeline(info, root, first, after, channels, since), after)

    @strawberry.field(description="May we cross-sell now? Blockers (each citing its source record) and suggestions. "
                                  "Null with an error when a source it needs is failing: unknown is not eligible.")
    async def cross_sell(self, root: Parent[CustomerData], info: Info) -> CrossSell | None:
        return await insights.cross_sell(info, root)  # type: ignore[return-value]

    @strawberry.field(description="Lifetime value, orders by channel, first and last purchase, and a tier "
                                  "computed across every channel.")
    async def value(self, root: Parent[CustomerData], info: Info) -> CustomerValue | None:
        return await insights.value(info, root)  # type: ignore[return-value]

    @strawberry.field(description="Available agents ranked by fit: the topic (or the subjects of open tickets), "
                                  "the customer's language, the products they own, and past contacts that "
                                  "ended well.")
    async def best_agent(self, root: Parent[CustomerData], info: Info, topic: str | None = None,
                         language: str | None = None, first: int = 3) -> list[AgentMatch] | None:
        return await agents.best_agents(info, root, topic, language, first)  # type: ignore[return-value]

    @strawberry.field(description="Recent web sessions from web analytics, newest first.")
    def web_activity(self, root: Parent[CustomerData], info: Info, first: int | None = 20) -> list[WebSession] | None:
        check_first(first)
        return then(records_now(info, "web_sessions", root),  # type: ignore[no-any-return]
                    lambda items: newest(items, lambda s: (s.started_at, s.id), first))
