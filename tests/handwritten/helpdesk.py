"""The hand-written mapping of Helpdesk (REST/JSON, one requester per call, cursor pages): tickets keyed by requester email."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.handwritten.records import Channel, Ticket, TicketPriority, TicketStatus

STATUSES = {"hold": TicketStatus.ON_HOLD}
CHANNELS = {"web": Channel.WEB, "email": Channel.EMAIL, "voice": Channel.VOICE, "chat": Channel.CHAT}


def ticket(raw: dict[str, Any]) -> Ticket:
    return Ticket(id=str(raw["id"]), subject=raw["subject"],
                  status=STATUSES.get(raw["status"]) or TicketStatus(raw["status"]),
                  priority=TicketPriority(raw["priority"]), channel=CHANNELS[raw["via"]],
                  created_at=datetime.fromisoformat(raw["created_at"]),
                  updated_at=datetime.fromisoformat(raw["updated_at"]))
