"""The hand-written mapping of Staff directory (REST/JSON): agents keyed by agent id."""

from __future__ import annotations

from typing import Any

from tests.handwritten.records import Agent, Availability


def agent(raw: dict[str, Any]) -> Agent:
    return Agent(id=raw["agentId"], name=raw["displayName"], skills=list(raw["skills"]),
                 languages=list(raw["languages"]), product_expertise=list(raw["productExpertise"]),
                 availability=Availability(raw["status"]))
