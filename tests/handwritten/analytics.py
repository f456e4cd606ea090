"""The hand-written mapping of Web analytics (REST/JSON batch): sessions keyed by visitor id (sha256 of the email)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.handwritten.records import WebSession


def session(raw: dict[str, Any]) -> WebSession:
    return WebSession(id=raw["sessionId"], started_at=datetime.fromisoformat(raw["startedAt"]),
                      duration_s=int(raw["durationSec"]), device=raw["device"], pages=list(raw["pages"]),
                      products_viewed=list(raw["productsViewed"]))
