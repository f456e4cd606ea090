"""Helpdesk (REST/JSON, one requester per call, cursor pages): tickets keyed by requester email."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from urllib.parse import quote

from connectors.records import Channel, Ticket, TicketPriority, TicketStatus
from connectors.rest import RestConnector

STATUSES = {"hold": TicketStatus.ON_HOLD}
CHANNELS = {"web": Channel.WEB, "email": Channel.EMAIL, "voice": Channel.VOICE, "chat": Channel.CHAT}


def ticket(raw: dict[str, Any]) -> Ticket:
    return Ticket(id=str(raw["id"]), subject=raw["subject"],
                  status=STATUSES.get(raw["status"]) or TicketStatus(raw["status"]),
                  priority=TicketPriority(raw["priority"]), channel=CHANNELS[raw["via"]],
                  created_at=datetime.fromisoformat(raw["created_at"]),
                  updated_at=datetime.fromisoformat(raw["updated_at"]))


async def _one(c: RestConnector, email: str) -> list[Ticket] | None:
    items = await c.cursor_pages(f"/api/v2/requesters/{quote(email, safe='@')}/tickets",
                                 {"per_page": int(c.config.options.get("page_size", 100))}, "tickets",
                                 lambda page: page["meta"]["after_cursor"] if page["meta"]["has_more"] else None)
    return None if items is None else [ticket(t) for t in items]


async def fetch_tickets(c: RestConnector, keys: list[str]) -> dict[str, list[Ticket]]:
    # No batch endpoint: one call per requester, all at once (the connector's limit bounds them).
    results = [await _one(c, keys[0])] if len(keys) == 1 else await asyncio.gather(*(_one(c, k) for k in keys))
    return {k: r for k, r in zip(keys, results) if r is not None}


ENTITIES = {"tickets": fetch_tickets}
