"""The HTTP sources' webhooks: each write they take is POSTed, signed, to the gateway's /events.

Where to: `ESTATE_EVENTS_URL` (the demo sets it) or `POST /__events {"url": ..., "secret": ...}` on the
source (`{"url": ""}` stops them); the secret defaults to `<SOURCE>_EVENTS_SECRET` or the demo's, as the
gateway's declarations do. `GET /__events` says where they go and how many were delivered. The signature
is the gateway's scheme (X-CG-Timestamp, X-CG-Signature: sha256=HMAC(secret, "<timestamp>.<body>")),
written here again on purpose: the estate stands for foreign systems and imports nothing of the gateway.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

log = logging.getLogger("estate.events")
TRIES = 3


@dataclass
class Webhook:
    source: str
    url: str = ""
    secret: str = ""
    delivered: int = 0
    failed: int = 0
    session: aiohttp.ClientSession | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @classmethod
    def from_env(cls, source: str) -> Webhook:
        secret = os.environ.get(f"{source.upper()}_EVENTS_SECRET", f"demo-{source}-events-secret")
        return cls(source, os.environ.get("ESTATE_EVENTS_URL", ""), secret)

    def emit(self, entity: str, key: str, change: str) -> None:
        """Send the event in the background: the write's answer never waits for the gateway."""
        if not self.url:
            return
        body = json.dumps({"source": self.source, "entity": entity, "key": key, "change": change,
                           "at": time.time()}).encode()
        task = asyncio.get_running_loop().create_task(self._deliver(self.url, self.secret, body))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def send(self, url: str, secret: str, body: bytes) -> int | None:
        """One signed POST: the gateway's status, or None when it could not be reached."""
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        stamp = str(int(time.time()))
        digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        headers = {"content-type": "application/json", "x-cg-timestamp": stamp, "x-cg-signature": f"sha256={digest}"}
        try:
            async with self.session.post(url, data=body, headers=headers) as resp:
                return resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.debug("delivery to %s failed: %r", url, exc)
            return None

    async def _deliver(self, url: str, secret: str, body: bytes) -> None:
        for attempt in range(TRIES):
            status = await self.send(url, secret, body)
            if status is not None and status < 500:  # a refusal will not change on a retry
                self.delivered += status == 202
                self.failed += status != 202
                return
            await asyncio.sleep(0.2 * 2 ** attempt)
        self.failed += 1

    async def announce(self, channel: str, sender: str) -> int | None:
        """A contact starting, told to the gateway at once (its /events/contacts): the gateway's status."""
        if not self.url:
            return None
        body = json.dumps({"source": self.source, "channel": channel, "from": sender, "at": time.time()}).encode()
        return await self.send(self.url.rstrip("/") + "/contacts", self.secret, body)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.session is not None:
            await self.session.close()


WEBHOOK: web.AppKey[Webhook] = web.AppKey("webhook", Webhook)


def emit(request: web.Request, entity: str, key: str, change: str = "changed") -> None:
    request.app[WEBHOOK].emit(entity, key, change)


async def show(request: web.Request) -> web.Response:
    w = request.app[WEBHOOK]
    return web.json_response({"url": w.url, "delivered": w.delivered, "failed": w.failed, "pending": len(w.tasks)})


async def configure(request: web.Request) -> web.Response:
    try:
        body: Any = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or set(body) - {"url", "secret"} or not isinstance(body.get("url", ""), str):
        return web.json_response({"error": 'body must be {"url": ..., "secret": ...}'}, status=400)
    w = request.app[WEBHOOK]
    w.url = body.get("url", "")
    w.secret = str(body.get("secret", w.secret))
    w.delivered = w.failed = 0
    return await show(request)


def add_webhooks(app: web.Application, source: str) -> None:
    app[WEBHOOK] = Webhook.from_env(source)
    app.add_routes([web.get("/__events", show), web.post("/__events", configure)])

    async def closing(_app: web.Application) -> None:
        await app[WEBHOOK].close()

    app.on_cleanup.append(closing)
