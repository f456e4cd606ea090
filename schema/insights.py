"""Composed answers: cross-sell guard, customer value, best agent."""

from __future__ import annotations

from datetime import datetime

import strawberry

from resolvers import insights
from schema.graph import enum
from schema.types import types

Channel, Agent = enum("Channel"), types["Agent"]

BlockerKind = strawberry.enum(insights.BlockerKind, description="Why a cross-sell should wait.")


@strawberry.type(description="A reason not to cross-sell now, citing the source record behind it.")
class Blocker:
    kind: BlockerKind
    reason: str
    source: str
    record_id: str


@strawberry.type(description="A product to offer: viewed on the web or a fit with what they own; not bought, "
                             "not offered recently.")
class Suggestion:
    sku: str
    product_name: str
    category: str | None
    reason: str
    score: float


@strawberry.type
class CrossSell:
    eligible: bool
    blockers: list[Blocker]
    suggestions: list[Suggestion]


@strawberry.type
class ChannelCount:
    channel: Channel
    orders: int


@strawberry.type(description="What the customer is worth across every channel, in one currency.")
class CustomerValue:
    lifetime_value: float = strawberry.field(description="Orders (not cancelled) plus billing payments.")
    currency: str
    order_total: float
    payments_total: float
    order_count: int
    orders_last_12_months: int
    orders_by_channel: list[ChannelCount]
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None
    tier: str = strawberry.field(description="TOP, HIGH, MEDIUM or LOW, from insights.value.tiers.")


@strawberry.type(description="An available agent, scored for this customer, with the reasons.")
class AgentMatch:
    agent: Agent
    score: float
    reasons: list[str]
