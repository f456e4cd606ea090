"""Staff directory (REST/JSON): agents keyed by agent id."""

from __future__ import annotations

from typing import Any

from connectors.records import Agent, Availability
from connectors.rest import RestConnector


def agent(raw: dict[str, Any]) -> Agent:
    return Agent(id=raw["agentId"], name=raw["displayName"], skills=list(raw["skills"]),
                 languages=list(raw["languages"]), product_expertise=list(raw["productExpertise"]),
                 availability=Availability(raw["status"]))


async def fetch_agents(c: RestConnector, keys: list[str]) -> dict[str, Agent]:
    answer = await c.json("GET", "/directory/agents", params={"ids": ",".join(keys)})
    return {a["agentId"]: agent(a) for a in answer["agents"]}


async def fetch_roster(c: RestConnector, keys: list[str]) -> dict[str, list[Agent]]:
    """Agents by status ("available", ...): one directory call per status asked."""
    out = {}
    for status in keys:
        answer = await c.json("GET", "/directory/agents", params={"status": status})
        out[status] = [agent(a) for a in answer["agents"]]
    return out


ENTITIES = {"agents": fetch_agents, "roster": fetch_roster}
