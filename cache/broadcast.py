"""Messages every gateway hears: a fan-out to this process's listeners and, when `cache.redis_url` is
set, Redis pub/sub to every other gateway's (the screen pop's contact announcements).

Redis is a reach, never a failure: while it is down a message still reaches this gateway's listeners,
and the subscriber reconnects on its own. A listener is a bounded queue (connectors/changes.py `Bus`):
one too slow to keep up loses its oldest messages (counted in `missed`), the publisher never waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import orjson
import redis.asyncio

from cache.logthrottle import LogThrottle
from connectors.changes import Bus, Subscription

log = logging.getLogger("customer_graph.broadcast")
Message = dict[str, Any]


class Broadcast:
    def __init__(self, redis_url: str = "", channel: str = "customer-graph:broadcast") -> None:
        self.redis_url, self.channel = redis_url, channel
        self.local: Bus[Message] = Bus()  # this gateway's listeners
        self.me = uuid.uuid4().hex  # our own messages come back from Redis: ignored, delivered locally already
        self._client: redis.asyncio.Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self.warnings = LogThrottle(log)

    def listen(self, size: int = 256) -> Subscription[Message]:
        return self.local.subscribe(size)

    def deliver(self, message: Message) -> None:
        self.local.publish(message)

    async def publish(self, message: Message) -> None:
        """To this gateway's listeners at once, then to the others' through Redis (never raises)."""
        self.deliver(message)
        if self._client is None:
            return
        try:
            await self._client.publish(self.channel, orjson.dumps({"from": self.me, "message": message}))
        except Exception as exc:  # noqa: BLE001 - the other gateways miss it; ours had it
            self.warnings.warning("publish", "broadcast on redis failed (%r); other gateways miss it", exc)

    async def start(self) -> None:
        if self.redis_url:
            self._client = redis.asyncio.Redis.from_url(self.redis_url, socket_timeout=2)
            self._task = asyncio.create_task(self._subscribe(), name=f"broadcast {self.channel}")

    async def _subscribe(self) -> None:
        while True:
            client = redis.asyncio.Redis.from_url(self.redis_url)  # its own: a subscriber mostly waits
            try:
                pubsub = client.pubsub()
                await pubsub.subscribe(self.channel)
                async for item in pubsub.listen():
                    if item.get("type") != "message":
                        continue
                    body = orjson.loads(item["data"])
                    if isinstance(body, dict) and body.get("from") != self.me and isinstance(body.get("message"), dict):
                        self.deliver(body["message"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                self.warnings.warning("subscribe", "broadcast subscription lost (%r); resubscribing", exc)
                await asyncio.sleep(1)
            finally:
                await client.aclose()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()
