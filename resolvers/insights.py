"""What no single system can answer: may we cross-sell now, and what is this customer worth."""

from __future__ import annotations

import asyncio
import enum
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from strawberry.types import Info

from resolvers.customer import CustomerData, records, records_by_source
from resolvers.rules import Insights
from resolvers.vocabulary import UNRESOLVED
from schema.graph import enums
from schema.graph import records as declared

Channel, OrderStatus, TicketPriority = enums["Channel"], enums["OrderStatus"], enums["TicketPriority"]
Account, MarketingContact, Order, Ticket, Warranty, WebSession = (declared[n] for n in (
    "BillingAccount", "MarketingStatus", "Order", "Ticket", "Warranty", "WebSession"))

PRIORITY_RANK = {p: i for i, p in enumerate(TicketPriority)}


class BlockerKind(enum.Enum):
    OPEN_TICKET = "open_ticket"
    RECENT_OFFER = "recent_offer"
    OVERDUE_BALANCE = "overdue_balance"
    MARKETING_OPT_OUT = "marketing_opt_out"


@dataclass(slots=True)
class Blocker:
    kind: BlockerKind
    reason: str
    source: str
    record_id: str


@dataclass(slots=True)
class Suggestion:
    sku: str
    product_name: str
    category: str | None
    reason: str
    score: float


@dataclass(slots=True)
class CrossSell:
    eligible: bool
    blockers: list[Blocker]
    suggestions: list[Suggestion]


@dataclass(slots=True)
class ChannelCount:
    channel: Channel
    orders: int


@dataclass(slots=True)
class Value:
    lifetime_value: float
    currency: str
    order_total: float
    payments_total: float
    order_count: int
    orders_last_12_months: int
    orders_by_channel: list[ChannelCount]
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None
    tier: str


def _rules(info: Info) -> Insights:
    return info.context.config.insights


def _ticket_blockers(rules: Insights, tickets: list[tuple[str, Ticket]]) -> list[Blocker]:
    floor = PRIORITY_RANK[rules.cross_sell.ticket_priority_at_least]
    return [Blocker(BlockerKind.OPEN_TICKET, f"Unresolved {t.priority.value}-priority ticket #{t.id}: {t.subject} "
                                   f"({t.status.value})", s, t.id)
            for s, t in tickets if t.status in UNRESOLVED and PRIORITY_RANK[t.priority] >= floor]


def _marketing_blockers(rules: Insights, contacts: list[tuple[str, MarketingContact]],
                        now: datetime) -> list[Blocker]:
    cutoff = now - timedelta(days=rules.cross_sell.offer_within_days)
    out = [Blocker(BlockerKind.RECENT_OFFER, f"Offer {o.offer_code} ({o.campaign_name}) sent {o.sent_at:%Y-%m-%d}, within "
                                   f"{rules.cross_sell.offer_within_days} days", s, o.id)
           for s, c in contacts for o in c.offers if o.sent_at >= cutoff]
    if rules.cross_sell.block_on_opt_out:
        out += [Blocker(BlockerKind.MARKETING_OPT_OUT, f"Opted out of marketing{f' on {c.opted_out_at:%Y-%m-%d}' if c.opted_out_at else ''}",
                        s, c.contact_id) for s, c in contacts if c.opted_out]
    return out


def _overdue_blockers(rules: Insights, accounts: list[tuple[str, Account]]) -> list[Blocker]:
    if not rules.cross_sell.block_on_overdue:
        return []
    return [Blocker(BlockerKind.OVERDUE_BALANCE, f"Account {a.number} overdue by {a.days_past_due} days, balance "
                                       f"{a.currency} {a.balance:,.2f}", s, a.number)
            for s, a in accounts if a.overdue]


def _suggestions(rules: Insights, orders: list[Order], warranties: list[Warranty], sessions: list[WebSession],
                 contacts: list[MarketingContact], now: datetime) -> list[Suggestion]:
    bought = {line.sku for o in orders if o.status != OrderStatus.CANCELLED for line in o.lines}
    owned = bought | {w.product_code for w in warranties}
    cutoff = now - timedelta(days=rules.cross_sell.offer_within_days)
    offered = {o.product_sku for c in contacts for o in c.offers if o.sent_at >= cutoff and o.product_sku}
    views = Counter(sku for s in sessions for sku in s.products_viewed)
    scores: dict[str, tuple[float, str]] = {}
    for sku, n in views.items():
        scores[sku] = (2.0 + n, f"viewed on the web {n} time{'s' * (n != 1)}")
    for sku in sorted(owned):  # a stable order: the same customer always gets the same reasons
        product = rules.catalog.get(sku)
        for fit in rules.complements.get(product.category if product else "", ()):
            if fit not in scores:
                scores[fit] = (1.0, f"goes with their {product.name if product else sku}")
    ranked = sorted((sku for sku in scores if sku not in bought and sku not in offered),
                    key=lambda sku: (-scores[sku][0], sku))
    out = []
    for sku in ranked[: rules.cross_sell.suggestions]:
        product = rules.catalog.get(sku)
        out.append(Suggestion(sku, product.name if product else sku, product.category if product else None,
                              scores[sku][1], scores[sku][0]))
    return out


async def cross_sell(info: Info, customer: CustomerData) -> CrossSell:
    """Every blocker cites the source record behind it; any source failing leaves the answer unknown
    (null with an error), never a guess."""
    rules = _rules(info)
    now = datetime.now(timezone.utc)
    tickets, contacts, accounts, orders, warranties, sessions = await asyncio.gather(
        records_by_source(info, "tickets", customer), records_by_source(info, "marketing", customer),
        records_by_source(info, "accounts", customer), records(info, "orders", customer),
        records(info, "warranties", customer), records(info, "web_sessions", customer))
    blockers = (_ticket_blockers(rules, tickets) + _marketing_blockers(rules, contacts, now)
                + _overdue_blockers(rules, accounts))
    suggestions = _suggestions(rules, orders, warranties, sessions, [c for _, c in contacts], now)
    return CrossSell(not blockers, blockers, suggestions)


def _in_currency(rules: Insights, amount: float, currency: str) -> float:
    if currency not in rules.value.rates:
        raise ValueError(f"no rate for {currency} in insights.value.rates")
    return amount * rules.value.rates[currency]


async def value(info: Info, customer: CustomerData) -> Value:
    rules = _rules(info)
    orders, accounts = await asyncio.gather(records(info, "orders", customer), records(info, "accounts", customer))
    kept = [o for o in orders if o.status != OrderStatus.CANCELLED]
    order_total = sum(_in_currency(rules, o.total, o.currency) for o in kept)
    payments = sum(_in_currency(rules, i.amount_paid, a.currency) for a in accounts for i in a.invoices)
    lifetime = round(order_total + payments, 2)
    year_ago = datetime.now(timezone.utc) - timedelta(days=365)
    recent = sum(1 for o in kept if o.placed_at >= year_ago)
    by_channel = Counter(o.channel for o in kept)
    tier = next((t.tier for t in rules.value.tiers if lifetime >= t.min_value or recent >= t.min_orders_12m), "LOW")
    dates = [o.placed_at for o in kept]
    return Value(lifetime, rules.value.currency, round(order_total, 2), round(payments, 2), len(kept), recent,
                 [ChannelCount(ch, n) for ch, n in sorted(by_channel.items(), key=lambda kv: (-kv[1], kv[0].value))],
                 min(dates, default=None), max(dates, default=None), tier)
