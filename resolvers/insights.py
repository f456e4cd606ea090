"""What no single system can answer: may we cross-sell now, and what is this customer worth.

The rules read the declared roles (resolvers/roles.py): blockers are declared whole (which records,
when, the reason), the suggestions and the value are the framework's rules over purchases, payments
and the products a customer owns, viewed or was offered. The pure functions take the records already
fetched and the time, so they run the same in tests."""

from __future__ import annotations

import asyncio
import enum
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from strawberry.types import Info

from resolvers.customer import CustomerData, records, records_by_source
from resolvers.roles import Role, Roles, products
from resolvers.rules import CrossSellRules, Insights

Found = Mapping[str, list[Any]]  # entity -> the customer's records of it
BySource = Mapping[str, list[tuple[str, Any]]]  # entity -> (source name, record)


@dataclass(slots=True)
class Blocker:
    kind: Any  # a member of the declared blocker kinds
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
    channel: Any  # the purchases' channel (a declared enum member)
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


def blockers(roles: Roles, found: BySource, rules: CrossSellRules, now: datetime) -> list[Blocker]:
    """Every declared blocker met, citing its source record; those reading the same entity listed
    together (the entities in the order of their first blocker), then in the kinds' declared order."""
    first = {e: i for i, e in enumerate(dict.fromkeys(b.entity for b in roles.blockers))}
    out = []
    for b in sorted(roles.blockers, key=lambda b: first[b.entity]):  # stable: kinds keep their order
        for source, record in found.get(b.entity, ()):
            for item, parent in b.items((record,)):
                if all(w(item, parent, rules, now) for w in b.when):
                    out.append(Blocker(b.kind, b.reason(item, parent, rules, now), source,
                                       str(b.record_id(item, parent, rules, now))))
    return out


def products_of(roles: tuple[Role, ...], found: Found, rules: CrossSellRules, now: datetime,
                test: str | None = None) -> list[Any]:
    """The products of these roles' items (those meeting the condition slot `test`), in order."""
    return [p for r in roles for i, parent in r.items(found.get(r.entity, ()))
            if test is None or r.slots[test](i, parent, rules, now)
            for p in products(r.slots["products"](i, parent, rules, now))]


def suggestions(roles: Roles, found: Found, rules: Insights, now: datetime) -> list[Suggestion]:
    """Products viewed, or that go with what they own; never one bought, nor one offered recently."""
    cs = rules.cross_sell
    bought = set(products_of(roles.purchases, found, cs, now, "counted"))
    owned = bought | set(products_of(roles.owned, found, cs, now))
    offered = set(products_of(roles.offered, found, cs, now, "recent"))
    views = Counter(products_of(roles.viewed, found, cs, now))
    scores: dict[Any, tuple[float, str]] = {}
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
    for sku in ranked[: cs.suggestions]:
        product = rules.catalog.get(sku)
        out.append(Suggestion(sku, product.name if product else sku, product.category if product else None,
                              scores[sku][1], scores[sku][0]))
    return out


async def fetch(info: Info, customer: CustomerData, by_source: list[str],
                plain: list[str]) -> tuple[dict[str, list[tuple[str, Any]]], dict[str, list[Any]]]:
    """The customer's records of each entity: (source, record) pairs for `by_source`, the records for
    `plain` (those also by source are taken from there); any source failing raises."""
    plain = [e for e in plain if e not in by_source]
    found = await asyncio.gather(*(records_by_source(info, e, customer) for e in by_source),
                                 *(records(info, e, customer) for e in plain))
    pairs = dict(zip(by_source, found[:len(by_source)]))
    flat = {e: [r for _, r in p] for e, p in pairs.items()} | dict(zip(plain, found[len(by_source):]))
    return pairs, flat


async def cross_sell(info: Info, customer: CustomerData, roles: Roles) -> CrossSell:
    """Every blocker cites the source record behind it; any source failing leaves the answer unknown
    (null with an error), never a guess."""
    rules = _rules(info)
    now = datetime.now(timezone.utc)
    by_source = list(dict.fromkeys(b.entity for b in roles.blockers))
    pairs, found = await fetch(info, customer, by_source,
                               roles.entities("purchases", "owned", "viewed", "offered"))
    found_blockers = blockers(roles, pairs, rules.cross_sell, now)
    return CrossSell(not found_blockers, found_blockers, suggestions(roles, found, rules, now))


def _in_currency(rules: Insights, amount: float, currency: str) -> float:
    if currency not in rules.value.rates:
        raise ValueError(f"no rate for {currency} in insights.value.rates")
    return amount * rules.value.rates[currency]


def _order(v: Any) -> Any:
    return v.value if isinstance(v, enum.Enum) else v


def value_of(roles: Roles, found: Found, rules: Insights, now: datetime) -> Value:
    """Counted purchases plus payments, in the reporting currency; a tier from value or frequency."""
    cs = rules.cross_sell
    kept = [(r, i, p) for r in roles.purchases for i, p in r.items(found.get(r.entity, ()))
            if r.slots["counted"](i, p, cs, now)]
    order_total = sum(_in_currency(rules, r.slots["amount"](i, p, cs, now), r.slots["currency"](i, p, cs, now))
                      for r, i, p in kept)
    payments = sum(_in_currency(rules, r.slots["amount"](i, p, cs, now), r.slots["currency"](i, p, cs, now))
                   for r in roles.payments for i, p in r.items(found.get(r.entity, ())))
    lifetime = round(order_total + payments, 2)
    dates = [r.slots["at"](i, p, cs, now) for r, i, p in kept]
    year_ago = now - timedelta(days=365)
    recent = sum(1 for d in dates if d >= year_ago)
    by_channel = Counter(r.slots["channel"](i, p, cs, now) for r, i, p in kept)
    tier = next((t.tier for t in rules.value.tiers if lifetime >= t.min_value or recent >= t.min_orders_12m), "LOW")
    return Value(lifetime, rules.value.currency, round(order_total, 2), round(payments, 2), len(kept), recent,
                 [ChannelCount(ch, n) for ch, n in sorted(by_channel.items(), key=lambda kv: (-kv[1], _order(kv[0])))],
                 min(dates, default=None), max(dates, default=None), tier)


async def value(info: Info, customer: CustomerData, roles: Roles) -> Value:
    _, found = await fetch(info, customer, [], roles.entities("purchases", "payments"))
    return value_of(roles, found, _rules(info), datetime.now(timezone.utc))
