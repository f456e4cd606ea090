"""The business rules behind the composed fields (cross-sell, value tiers, agent matching, catalog),
read from the `insights:` section of gateway.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from connectors.records import TicketPriority


@dataclass
class CrossSellRules:
    ticket_priority_at_least: TicketPriority = TicketPriority.NORMAL  # unresolved tickets this urgent block
    offer_within_days: int = 14  # an offer sent this recently blocks another, and its product is not suggested
    block_on_overdue: bool = True
    block_on_opt_out: bool = True
    suggestions: int = 3


@dataclass
class ValueTier:
    tier: str
    min_value: float  # lifetime value in the reporting currency...
    min_orders_12m: int  # ...or orders in the last 365 days, on any channel


@dataclass
class ValueRules:
    currency: str = "EUR"
    rates: dict[str, float] = field(default_factory=lambda: {"EUR": 1.0})  # to the reporting currency
    tiers: list[ValueTier] = field(default_factory=lambda: [
        ValueTier("TOP", 8000, 8), ValueTier("HIGH", 3000, 4), ValueTier("MEDIUM", 500, 1)])


@dataclass
class AgentRules:
    topics: dict[str, list[str]] = field(default_factory=dict)  # skill -> words that call for it
    weights: dict[str, float] = field(default_factory=lambda: {"skill": 3, "language": 2, "product": 1,
                                                               "good_history": 1.5, "bad_history": -1})


@dataclass
class Product:
    name: str
    category: str


@dataclass
class Insights:
    cross_sell: CrossSellRules = field(default_factory=CrossSellRules)
    value: ValueRules = field(default_factory=ValueRules)
    agents: AgentRules = field(default_factory=AgentRules)
    catalog: dict[str, Product] = field(default_factory=dict)  # sku -> product
    complements: dict[str, list[str]] = field(default_factory=dict)  # owned category -> skus that go with it


def _only(cls: type, section: str, raw: dict[str, Any]) -> dict[str, Any]:
    unknown = set(raw) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"insights.{section}: unknown keys {sorted(unknown)}")
    return raw


def parse_insights(raw: dict[str, Any]) -> Insights:
    raw = _only(Insights, "", raw or {})
    cs = dict(_only(CrossSellRules, "cross_sell", raw.get("cross_sell") or {}))
    if "ticket_priority_at_least" in cs:
        cs["ticket_priority_at_least"] = TicketPriority(str(cs["ticket_priority_at_least"]).lower())
    value = dict(_only(ValueRules, "value", raw.get("value") or {}))
    if "tiers" in value:
        value["tiers"] = [ValueTier(**t) for t in value["tiers"]]
    return Insights(
        cross_sell=CrossSellRules(**cs), value=ValueRules(**value),
        agents=AgentRules(**_only(AgentRules, "agents", raw.get("agents") or {})),
        catalog={sku: Product(**p) for sku, p in (raw.get("catalog") or {}).items()},
        complements={k: list(v) for k, v in (raw.get("complements") or {}).items()},
    )
