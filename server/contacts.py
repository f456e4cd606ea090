"""`POST /events/contacts`: a contact starting at a source (a call ringing, a chat or an email arriving),
announced to every gateway's `incomingContacts` subscribers: the screen pop.

    {"source": "contact", "channel": "VOICE", "from": "+31 6 1234 5678", "at": 1767225600}

signed as the source's change events are (server/events.py: X-CG-Timestamp, X-CG-Signature with its
`events.webhook` secret, the same replay window), by a source declaring `events.contacts` (the identity
lookups that identify `from`). `at` (unix seconds or RFC 3339) defaults to when it arrived. Refused with
the change events' codes (400 BAD_EVENT, 401 BAD_SIGNATURE / STALE_TIMESTAMP, 409 REPLAYED, 413);
accepted: 202 `{"announced": true}`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

import orjson

from server.events import Refused, Webhooks, _at

MAX_FROM = 320  # an email address's longest


def announcement(webhooks: Webhooks, sources: Mapping[str, Any], channels: Collection[str],
                 headers: Mapping[str, str], body: bytes, clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """The announced contact, once it is proven authentic and new; else Refused."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Refused(400, "BAD_EVENT", "the body is not JSON") from None
    if not isinstance(raw, dict):
        raise Refused(400, "BAD_EVENT", 'the body must be {"source", "channel", "from", "at"}')
    source = raw.get("source")
    declared = sources.get(source) if isinstance(source, str) else None
    if declared is None or declared.events is None or declared.events.contacts is None:
        raise Refused(400, "BAD_EVENT", f"source {source!r:.80} announces no contacts (events.contacts)")
    webhooks.authentic(source, headers, body)  # type: ignore[arg-type]
    unknown = sorted(set(raw) - {"source", "channel", "from", "at"})
    if unknown:
        raise Refused(400, "BAD_EVENT", f"unknown field {unknown[0]!r:.40}")
    channel, sender = raw.get("channel"), raw.get("from")
    if channel not in channels:
        raise Refused(400, "BAD_EVENT", f"channel must be one of {', '.join(channels)}")
    if not isinstance(sender, str) or not sender.strip() or len(sender) > MAX_FROM:
        raise Refused(400, "BAD_EVENT", f"from must be a phone number or address of 1 to {MAX_FROM} characters")
    try:
        at = _at(raw.get("at"))
    except ValueError as exc:
        raise Refused(400, "BAD_EVENT", str(exc)) from None
    return {"source": source, "channel": channel, "from": sender.strip(), "at": clock() if at is None else at}
