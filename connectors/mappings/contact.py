"""Contact center: the recordInteraction write (writes are not declared yet; the reads are declared
in sources/contact.yaml, whose compiled `interactions` mapping reads the write's answer)."""

from __future__ import annotations

from typing import Any

from connectors.base import Rejection
from connectors.rest import RestConnector
from schema.graph import record

Interaction = record("Interaction")

ENTITIES: dict[str, Any] = {}  # every read is declared

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
    # The answer's interaction has the shape of a search result's; its group item carries the phone.
    interaction: Interaction = c.mappers["interactions"](answer["interaction"], {"phoneNumber": payload["phone"]})
    return interaction


ACTIONS = {"create_interaction": create_interaction}
