"""bestAgent: the available team ranked by fit to this customer's need, language, products and history.

The team, the customer's open issues, what they own, their past contacts and their language are
declared roles (resolvers/roles.py); the scoring is the framework's, weighted by `insights.agents`."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from strawberry.types import Info

from resolvers.context import Context
from resolvers.customer import CustomerData, records
from resolvers.errors import BadUserInput
from resolvers.insights import fetch, products_of
from resolvers.roles import Role, Roles
from resolvers.rules import CrossSellRules, Insights


@dataclass(slots=True)
class AgentMatch:
    agent: Any  # the team role's record
    score: float
    reasons: list[str] = field(default_factory=list)


def skills_for(rules: Insights, text: str) -> set[str]:
    """The skills a topic or issue subject calls for: a skill's own name, or one of its words."""
    text = text.lower()
    return {skill for skill, words in rules.agents.topics.items()
            if skill in text or any(w.lower() in text for w in words)}


async def _language(info: Info, customer: CustomerData, role: Role | None, asked: str | None,
                    cs: CrossSellRules, now: datetime) -> str | None:
    """The language asked for, else the one the language role gives (its first record's), loading its
    records if the query did not already."""
    if asked is not None or role is None:
        return asked
    found = await records(info, role.entity, customer)
    first = next(role.items(found), None)
    return None if first is None else role.slots["select"](first[0], first[1], cs, now)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Need:
    """What the customer needs now, scored against each agent."""

    skills: set[str]
    language: str | None
    owned: set[str]  # product categories
    history: Counter[tuple[Any, bool]]  # (agent id, ended well) -> contacts


def score(rules: Insights, team: Role, agent: Any, need: Need, cs: CrossSellRules, now: datetime) -> AgentMatch:
    w = rules.agents.weights
    slot = team.slots
    match = AgentMatch(agent, 0.0)
    for skill in sorted(need.skills & set(slot["skills"](agent, None, cs, now))):
        match.score += w.get("skill", 3)
        match.reasons.append(f"skill: {skill}")
    if need.language and need.language in slot["languages"](agent, None, cs, now):
        match.score += w.get("language", 2)
        match.reasons.append(f"speaks {need.language}")
    for category in sorted(need.owned & set(slot["knows"](agent, None, cs, now))):
        match.score += w.get("product", 1)
        match.reasons.append(f"knows {category}, which the customer owns")
    agent_id = slot["id"](agent, None, cs, now)
    good, bad = need.history[(agent_id, True)], need.history[(agent_id, False)]
    if good:
        match.score += w.get("good_history", 1.5) * good
        match.reasons.append(f"{good} past contact{'s' * (good != 1)} with this customer ended well")
    if bad:
        match.score += w.get("bad_history", -1) * bad
        match.reasons.append(f"{bad} past contact{'s' * (bad != 1)} with this customer escalated or dropped")
    return match


def need_of(roles: Roles, found: dict[str, list[Any]], rules: Insights, topic: str | None, language: str | None,
            now: datetime) -> Need:
    """The skills the topic (else the subjects of open issues) calls for, the categories of every
    product they bought or own, and how their past contacts with each agent ended."""
    cs = rules.cross_sell
    need_text = topic if topic else " ".join(
        r.slots["subject"](i, p, cs, now) for r in roles.issues for i, p in r.items(found.get(r.entity, ()))
        if r.slots["open"](i, p, cs, now))
    skus = set(products_of(roles.purchases, found, cs, now)) | set(products_of(roles.owned, found, cs, now))
    history: Counter[tuple[Any, bool]] = Counter()
    for r in roles.contacts:
        for i, p in r.items(found.get(r.entity, ())):
            agent, good = r.slots["agent"](i, p, cs, now), r.slots["good"](i, p, cs, now)
            if agent and (good or r.slots["bad"](i, p, cs, now)):
                history[(agent, bool(good))] += 1
    owned = {rules.catalog[s].category for s in skus if s in rules.catalog}
    return Need(skills_for(rules, need_text), language, owned, history)


async def best_agents(info: Info, customer: CustomerData, topic: str | None, language: str | None,
                      first: int, roles: Roles) -> list[AgentMatch]:
    if not 1 <= first <= 20:
        raise BadUserInput("first must be between 1 and 20")
    ctx: Context = info.context
    rules = ctx.config.insights
    team = roles.team
    providers = ctx.providers(team.entity) if team is not None else []
    if team is None or not providers:
        return []
    now = datetime.now(timezone.utc)
    found_team, (_, found), language = await asyncio.gather(
        ctx.load_many(providers[0], team.entity, [team.key or ""], info.path.as_list),
        fetch(info, customer, [], roles.entities("issues", "purchases", "owned", "contacts")),
        _language(info, customer, roles.language, language, rules.cross_sell, now))
    need = need_of(roles, found, rules, topic, language, now)
    cs = rules.cross_sell
    agents = [a for a, _ in team.items(found_team[0] or [])]
    matches = [score(rules, team, a, need, cs, now) for a in agents]
    return sorted(matches, key=lambda m: (-m.score, team.slots["id"](m.agent, None, cs, now)))[:first]
