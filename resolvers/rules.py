"""The business rules behind the composed fields (cross-sell, value tiers, agent matching, catalog),
read from the `insights:` section of gateway.yaml (pydantic v2: unknown keys and out-of-range values
refused, with the key path)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schema.graph import enum

TicketPriority = enum("TicketPriority")


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CrossSellRules(Rules):
    ticket_priority_at_least: TicketPriority = TicketPriority.NORMAL  # unresolved tickets this urgent block
    offer_within_days: int = Field(14, ge=0)  # an offer sent this recently blocks another, and its product is not suggested
    block_on_overdue: bool = True
    block_on_opt_out: bool = True
    suggestions: int = Field(3, ge=0)

    @field_validator("ticket_priority_at_least", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class ValueTier(Rules):
    tier: str
    min_value: float = Field(ge=0)  # lifetime value in the reporting currency...
    min_orders_12m: int = Field(ge=0)  # ...or orders in the last 365 days, on any channel


class ValueRules(Rules):
    currency: str = "EUR"
    rates: dict[str, float] = {"EUR": 1.0}  # to the reporting currency
    tiers: list[ValueTier] = [ValueTier(tier="TOP", min_value=8000, min_orders_12m=8),
                              ValueTier(tier="HIGH", min_value=3000, min_orders_12m=4),
                              ValueTier(tier="MEDIUM", min_value=500, min_orders_12m=1)]


class AgentRules(Rules):
    topics: dict[str, list[str]] = {}  # skill -> words that call for it
    weights: dict[str, float] = {"skill": 3, "language": 2, "product": 1, "good_history": 1.5, "bad_history": -1}


class Product(Rules):
    name: str
    category: str


class Insights(Rules):
    cross_sell: CrossSellRules = CrossSellRules()
    value: ValueRules = ValueRules()
    agents: AgentRules = AgentRules()
    catalog: dict[str, Product] = {}  # sku -> product
    complements: dict[str, list[str]] = {}  # owned category -> skus that go with it

    @field_validator("cross_sell", "value", "agents", "catalog", "complements", mode="before")
    @classmethod
    def _empty(cls, value: Any) -> Any:
        return {} if value is None else value  # a section written with no entries


def parse_insights(raw: dict[str, Any]) -> Insights:
    """The `insights:` section; a pydantic ValidationError names the key path of each problem."""
    return Insights.model_validate(raw or {})
