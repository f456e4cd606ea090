"""Composed answers: cross-sell guard, customer value, best agent.

Their inputs are declared (schema/roles.py), compiled here once against the graph's records: `ROLES`
is what the resolvers read. The kinds of blocker are the declared kinds; an agent is the team role's
record type; a channel is the purchases' channel type."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from schema.declared import DeclarationError
from schema.graph import GRAPH, INSIGHTS, RULES
from schema.roles import blocker_kinds, compile_insights, shown_type
from schema.types import types

_CROSS_SELL: type = RULES.model_fields["cross_sell"].annotation  # type: ignore[assignment]
_KINDS = blocker_kinds(INSIGHTS, __name__)
# The kinds as a GraphQL enum (String when no file declares a blocker: an enum needs a value).
BlockerKind: Any = strawberry.enum(_KINDS, description="Why a cross-sell should wait.") if _KINDS else str
ROLES = compile_insights(INSIGHTS, GRAPH, _CROSS_SELL, _KINDS)
Channel: Any = shown_type(INSIGHTS, "purchases", "channel", GRAPH, _CROSS_SELL) or str


def _agent_type() -> Any:
    """The team role's record type (the agent a match shows), or None when no file declares a team."""
    team = INSIGHTS.roles.get("team")
    if not team:
        return None
    file, decl = team[0]
    if decl.record not in types:
        raise DeclarationError(f"{file}: insights.team.record: {decl.record} has no GraphQL type (private)")
    return types[decl.record]


Agent = _agent_type()


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
    lifetime_value: float = strawberry.field(description="Purchases (those counted) plus payments.")
    currency: str
    order_total: float
    payments_total: float
    order_count: int
    orders_last_12_months: int
    orders_by_channel: list[ChannelCount]
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None
    tier: str = strawberry.field(description="TOP, HIGH, MEDIUM or LOW, from insights.value.tiers.")


def _agent_match() -> Any:
    """An agent scored for this customer; None (no bestAgent) when no file declares a team."""
    if Agent is None:
        return None

    @strawberry.type(description="An available agent, scored for this customer, with the reasons.")
    class AgentMatch:
        agent: Agent
        score: float
        reasons: list[str]
    return AgentMatch


AgentMatch = _agent_match()
