"""Web analytics (REST/JSON batch): sessions keyed by visitor id (sha256 of the email)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connectors.records import WebSession
from connectors.rest import RestConnector


def session(raw: dict[str, Any]) -> WebSession:
    return WebSession(id=raw["sessionId"], started_at=datetime.fromisoformat(raw["startedAt"]),
                      duration_s=int(raw["durationSec"]), device=raw["device"], pages=list(raw["pages"]),
                      products_viewed=list(raw["productsViewed"]))


async def fetch_sessions(c: RestConnector, keys: list[str]) -> dict[str, list[WebSession]]:
    answer = await c.json("POST", "/v1/visitors:batchGet", json={"visitorIds": keys})
    return {v["visitorId"]: [session(s) for s in v["sessions"]] for v in answer["visitors"]}


ENTITIES = {"web_sessions": fetch_sessions}
