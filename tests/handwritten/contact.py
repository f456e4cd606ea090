"""The hand-written mapping of Contact center (REST/JSON, batch search, epoch times): interactions keyed by phone number (E.164)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from tests.handwritten.records import Channel, Interaction, Outcome

OUTCOMES = {"resolved": Outcome.RESOLVED, "callback": Outcome.CALLBACK, "escalated": Outcome.ESCALATED,
            "abandoned": Outcome.ABANDONED, "sale": Outcome.SALE}


def interaction(raw: dict[str, Any], phone: str) -> Interaction:
    start, end = int(raw["startEpoch"]), int(raw["endEpoch"])
    return Interaction(id=raw["interactionId"], phone=phone, channel=Channel(raw["mediaType"]),
                       started_at=datetime.fromtimestamp(start, timezone.utc), duration_s=max(0, end - start),
                       agent_id=raw.get("agentId"), outcome=OUTCOMES[raw["disposition"]], summary=raw["summary"])
