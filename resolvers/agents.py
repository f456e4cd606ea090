"""bestAgent: available agents ranked by fit to this customer's need, language, products and history."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from strawberry.types import Info

from resolvers.context import Context
from resolvers.customer import CustomerData, records
from resolvers.errors import BadUserInput
from resolvers.rules import Insights
from resolvers.vocabulary import UNRESOLVED
from schema.graph import enum, record

Agent, Outcome = record("Agent"), enum("Outcome")

GOOD = {Outcome.RESOLVED, Outcome.SALE}
BAD = {Outcome.ESCALATED, Outcome.ABANDONED}


@dataclass(slots=True)
class AgentMatch:
    agent: Agent
    score: float
    reasons: list[str] = field(default_factory=list)


def skills_for(rules: Insights, text: str) -> set[str]:
    """The skills a topic or ticket subject calls for: a skill's own name, or one of its words."""
    text = text.lower()
    return {skill for skill, words in rules.agents.topics.items()
            if skill in text or any(w.lower() in text for w in words)}


async def _language(info: Info, customer: CustomerData, asked: str | None) -> str | None:
    """The language asked for, else the CRM's, loading the CRM record if the query did not already."""
    if asked is not None:
        return asked
    crm_records = await records(info, "crm", customer)
    return crm_records[0].language if crm_records else None


def _score(rules: Insights, agent: Agent, needed: set[str], language: str | None, owned: set[str],
           history: Counter[tuple[str, bool]]) -> AgentMatch:
    w = rules.agents.weights
    match = AgentMatch(agent, 0.0)
    for skill in sorted(needed & set(agent.skills)):
        match.score += w.get("skill", 3)
        match.reasons.append(f"skill: {skill}")
    if language and language in agent.languages:
        match.score += w.get("language", 2)
        match.reasons.append(f"speaks {language}")
    for category in sorted(owned & set(agent.product_expertise)):
        match.score += w.get("product", 1)
        match.reasons.append(f"knows {category}, which the customer owns")
    good, bad = history[(agent.id, True)], history[(agent.id, False)]
    if good:
        match.score += w.get("good_history", 1.5) * good
        match.reasons.append(f"{good} past contact{'s' * (good != 1)} with this customer ended well")
    if bad:
        match.score += w.get("bad_history", -1) * bad
        match.reasons.append(f"{bad} past contact{'s' * (bad != 1)} with this customer escalated or dropped")
    return match


async def best_agents(info: Info, customer: CustomerData, topic: str | None, language: str | None,
                      first: int) -> list[AgentMatch]:
    if not 1 <= first <= 20:
        raise BadUserInput("first must be between 1 and 20")
    ctx: Context = info.context
    rules = ctx.config.insights
    staff = ctx.providers("roster")
    if not staff:
        return []
    roster, tickets, orders, warranties, interactions, language = await asyncio.gather(
        ctx.load_many(staff[0], "roster", ["available"], info.path.as_list), records(info, "tickets", customer),
        records(info, "orders", customer), records(info, "warranties", customer),
        records(info, "interactions", customer), _language(info, customer, language))
    need_text = topic if topic else " ".join(t.subject for t in tickets if t.status in UNRESOLVED)
    needed = skills_for(rules, need_text)
    skus = {line.sku for o in orders for line in o.lines} | {w.product_code for w in warranties}
    owned = {rules.catalog[s].category for s in skus if s in rules.catalog}
    history = Counter((i.agent_id, i.outcome in GOOD) for i in interactions
                      if i.agent_id and (i.outcome in GOOD or i.outcome in BAD))
    matches = [_score(rules, a, needed, language, owned, history) for a in roster[0] or []]
    return sorted(matches, key=lambda m: (-m.score, m.agent.id))[:first]

