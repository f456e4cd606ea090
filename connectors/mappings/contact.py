"""Contact center (REST/JSON, batch search, epoch times): interactions keyed by phone number (E.164)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from connectors.base import Rejection
from connectors.records import Channel, Interaction, Outcome
from connectors.rest import RestConnector

OUTCOMES = {"resolved": Outcome.RESOLVED, "callback": Outcome.CALLBACK, "escalated": Outcome.ESCALATED,
            "abandoned": Outcome.ABANDONED, "sale": Outcome.SALE}


def interaction(raw: dict[str, Any], phone: str) -> Interaction:
    start, end = int(raw["startEpoch"]), int(raw["endEpoch"])
    return Interaction(id=raw["interactionId"], phone=phone, channel=Channel(raw["mediaType"]),
                       started_at=datetime.fromtimestamp(start, timezone.utc), duration_s=max(0, end - start),
                       agent_id=raw.get("agentId"), outcome=OUTCOMES[raw["disposition"]], summary=raw["summary"])


async def fetch_interactions(c: RestConnector, keys: list[str]) -> dict[str, list[Interaction]]:
    answer = await c.json("POST", "/v1/interactions/search", json={"phoneNumbers": keys})
    return {r["phoneNumber"]: [interaction(i, r["phoneNumber"]) for i in r["interactions"]]
            for r in answer["results"]}


ENTITIES = {"interactions": fetch_interactions}

# The contact center's 422s are the caller's input refused, not the contact center failing.
CREATE_REJECTIONS = (
    Rejection(422, "IDEMPOTENCY_KEY_REUSED",
              "this idempotencyKey was already used for a different interaction; to retry, send exactly the "
              "same input again, or use a new key for a new interaction",
              body_contains="Idempotency-Key reused"),
    Rejection(422, "BAD_USER_INPUT", "the contact center refused the channel or summary"),
)


async def create_interaction(c: RestConnector, payload: dict[str, Any]) -> Interaction:
    """Record a contact; the Idempotency-Key makes a retried call return the first one's interaction."""
    body = {"phoneNumber": payload["phone"], "mediaType": payload["channel"].value, "summary": payload["summary"],
            "agentId": payload.get("agent_id")}
    answer = await c.json("POST", "/v1/interactions", json=body,
                          headers={"Idempotency-Key": payload["idempotency_key"]}, rejects=CREATE_REJECTIONS)
    return interaction(answer["interaction"], payload["phone"])


ACTIONS = {"create_interaction": create_interaction}
