"""`POST /events`: the sources' signed change events (webhooks), checked before anything is invalidated.

A delivery is one event `{"source", "entity", "key", "change", "at"}` or a list of them, all of one
source, with two headers (as Stripe signs its webhooks, GitHub's header form):

    X-CG-Timestamp: 1767225600                        # unix seconds when it was sent
    X-CG-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

The secret is the source's `events.webhook.secret` (or `previous_secret` while it rotates; several
`sha256=` values, comma-separated, are tried in turn). Refused, invalidating nothing:
- 413 PAYLOAD_TOO_LARGE: a body over `events.max_body_bytes`;
- 400 BAD_EVENT: not JSON, not of that shape, an unknown entity or change, or a source taking no webhooks;
- 401 BAD_SIGNATURE: no timestamp or signature, or no signature matching; 401 STALE_TIMESTAMP: a
  timestamp further than `events.replay_window_s` from now (either way);
- 409 REPLAYED: a delivery (its signature) already accepted within the window, by this gateway or,
  when `cache.redis_url` is set, by any gateway sharing that Redis (the first to claim it there wins;
  while Redis is down each gateway remembers its own).
Accepted: 202 `{"accepted": n, "dropped": cache keys}`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import orjson
import redis.asyncio

from connectors.base import SourceConfig
from connectors.changes import CHANGES, ChangeEvent
from server.settings import EventSettings

log = logging.getLogger("customer_graph.events")
TIMESTAMP, SIGNATURE = "x-cg-timestamp", "x-cg-signature"
MAX_KEY = 512
MAX_SIGNATURES = 4  # in one X-CG-Signature: enough for a rotation, too few to make us hash for a flood


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The X-CG-Signature value of a body sent at `timestamp` (unix seconds, as text)."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class Seen:
    """Signatures accepted within the replay window, bounded: past `limit` the oldest is forgotten (it
    could be replayed, but only by someone holding a delivery signed within the window)."""

    def __init__(self, window_s: float, limit: int, clock: Callable[[], float]) -> None:
        self.window_s, self.limit, self.clock = window_s, limit, clock
        self._at: OrderedDict[str, float] = OrderedDict()  # signature -> when accepted, oldest first

    def __contains__(self, signature: str) -> bool:
        self._forget()
        return signature in self._at

    def add(self, signature: str) -> None:
        self._at[signature] = self.clock()
        while len(self._at) > self.limit:
            self._at.popitem(last=False)

    def _forget(self) -> None:
        # A delivery older than twice the window is refused by its timestamp already.
        horizon = self.clock() - 2 * self.window_s
        while self._at and next(iter(self._at.values())) < horizon:
            self._at.popitem(last=False)


class SharedSeen:
    """Signatures accepted by any gateway sharing Redis: a delivery is claimed with SET NX, expiring when
    its timestamp would be refused anyway. Redis failing never refuses a delivery (one warning per outage)."""

    def __init__(self, redis_url: str, namespace: str, window_s: float) -> None:
        self.redis = redis.asyncio.Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.prefix, self.ttl_s = f"{namespace}:events:seen:", int(2 * window_s) + 1
        self.failing = False

    async def claim(self, signature: str) -> bool:
        """Whether no gateway had this delivery yet (True too when Redis cannot tell)."""
        try:
            claimed = bool(await self.redis.set(self.prefix + signature, 1, nx=True, ex=self.ttl_s))
        except redis.RedisError as exc:
            if not self.failing:
                log.warning("redis unavailable for the webhooks' replay memory (%r); each gateway remembers "
                            "its own", exc)
            self.failing = True
            return True
        self.failing = False
        return claimed

    async def close(self) -> None:
        await self.redis.aclose()


def _at(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise ValueError(f"at must be unix seconds or an RFC 3339 time, not {value!r:.40}")


class Webhooks:
    """Checks deliveries against the sources' declarations; `clock` is wall time (injected in tests)."""

    def __init__(self, sources: Mapping[str, SourceConfig], settings: EventSettings,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings, self.clock = settings, clock
        self.hooks = {n: s for n, s in sources.items() if s.events is not None and s.events.webhook is not None}
        self.seen = Seen(settings.replay_window_s, settings.remember, clock)

    def accept(self, headers: Mapping[str, str], body: bytes) -> list[ChangeEvent]:
        """The delivery's events, once it is proven authentic and new (then remembered); else Refused."""
        signature, events = self.check(headers, body)
        self.seen.add(signature)
        return events

    def check(self, headers: Mapping[str, str], body: bytes) -> tuple[str, list[ChangeEvent]]:
        """The delivery's signature and events when it is authentic and new here (not remembered yet)."""
        items = self._items(body)
        source = self._source(items)
        signature = self._verify(source, headers, body)
        if signature in self.seen:
            raise Refused(409, "REPLAYED", "this delivery was already accepted")
        return signature, [self._event(source, item, i) for i, item in enumerate(items)]

    async def admit(self, headers: Mapping[str, str], body: bytes, shared: SharedSeen | None) -> list[ChangeEvent]:
        """`accept`, with the replay memory shared through Redis when there is one."""
        signature, events = self.check(headers, body)
        if shared is not None and not await shared.claim(signature):
            raise Refused(409, "REPLAYED", "this delivery was already accepted")
        self.seen.add(signature)
        return events

    def authentic(self, source: str, headers: Mapping[str, str], body: bytes) -> None:
        """Refused unless `body` is signed with `source`'s webhook secret and new (then remembered): for a
        source's other signed deliveries (its contacts starting, server/contacts.py)."""
        if source not in self.hooks:
            raise Refused(400, "BAD_EVENT", f"source {source!r:.80} takes no webhook events")
        signature = self._verify(source, headers, body)
        if signature in self.seen:
            raise Refused(409, "REPLAYED", "this delivery was already accepted")
        self.seen.add(signature)

    def _items(self, body: bytes) -> list[dict[str, Any]]:
        try:
            raw = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise Refused(400, "BAD_EVENT", "the body is not JSON") from None
        items = raw if isinstance(raw, list) else [raw]
        if not items or not all(isinstance(i, dict) for i in items):
            raise Refused(400, "BAD_EVENT", "the body must be an event object or a non-empty list of them")
        if len(items) > self.settings.max_events:
            raise Refused(400, "BAD_EVENT", f"at most {self.settings.max_events} events in one delivery")
        return items

    def _source(self, items: list[dict[str, Any]]) -> str:
        names = {i.get("source") for i in items}
        if len(names) != 1:
            raise Refused(400, "BAD_EVENT", "every event of a delivery names the same source")
        source = names.pop()
        if not isinstance(source, str) or source not in self.hooks:
            raise Refused(400, "BAD_EVENT", f"source {source!r:.80} takes no webhook events")
        return source

    def _verify(self, source: str, headers: Mapping[str, str], body: bytes) -> str:
        stamp, given = headers.get(TIMESTAMP, ""), headers.get(SIGNATURE, "")
        if not stamp.isdigit() or not given:
            raise Refused(401, "BAD_SIGNATURE", "X-CG-Timestamp (unix seconds) and X-CG-Signature are required")
        webhook = self.hooks[source].events.webhook  # type: ignore[union-attr]
        candidates = [s.strip() for s in given.split(",")]
        if len(candidates) > MAX_SIGNATURES:
            raise Refused(401, "BAD_SIGNATURE", f"at most {MAX_SIGNATURES} signatures in X-CG-Signature")
        expected = [sign(secret, stamp, body) for secret in webhook.secrets()]
        # Every pair compared, in constant time each: how far a guess matched never shows in the timing.
        matched = [c for c in candidates for e in expected if hmac.compare_digest(c.encode(), e.encode())]
        if not matched:
            raise Refused(401, "BAD_SIGNATURE", "no signature matches the body and timestamp")
        if abs(self.clock() - int(stamp)) > self.settings.replay_window_s:
            raise Refused(401, "STALE_TIMESTAMP",
                          f"the timestamp is more than {self.settings.replay_window_s:g} s from now")
        return matched[0]

    def _event(self, source: str, item: dict[str, Any], i: int) -> ChangeEvent:
        entities = set(self.hooks[source].events.webhook.entities  # type: ignore[union-attr]
                       or self.hooks[source].entities)
        where = f"event {i}: "
        unknown = sorted(set(item) - {"source", "entity", "key", "change", "at"})
        if unknown:
            raise Refused(400, "BAD_EVENT", f"{where}unknown field {unknown[0]!r:.40}")
        entity, key, change = item.get("entity"), item.get("key"), item.get("change", "changed")
        if entity not in entities:
            raise Refused(400, "BAD_EVENT", f"{where}entity {entity!r:.80} is not one of {', '.join(sorted(entities))}")
        if isinstance(key, int) and not isinstance(key, bool):
            key = str(key)
        if not isinstance(key, str) or not key or len(key) > MAX_KEY:
            raise Refused(400, "BAD_EVENT", f"{where}key must be a string of 1 to {MAX_KEY} characters")
        if change not in CHANGES:
            raise Refused(400, "BAD_EVENT", f"{where}change must be one of {', '.join(CHANGES)}")
        try:
            at = _at(item.get("at"))
        except ValueError as exc:
            raise Refused(400, "BAD_EVENT", f"{where}{exc}") from None
        return ChangeEvent(source, entity, key, change, at)
