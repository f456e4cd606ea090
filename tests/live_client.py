"""Real subscription clients over aiohttp: graphql-transport-ws and GraphQL over SSE (distinct connections).

Used by the tests and bench/subscriptions.py; nothing here knows the gateway's code.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

WAIT_S = 30.0  # a safety net against a hung test, never a measured speed


class WsClient:
    """One graphql-transport-ws connection."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, url: str, init: dict[str, Any] | None = None,
                   ack: bool = True) -> WsClient:
        ws = await session.ws_connect(url.replace("http", "ws", 1) + "/graphql", protocols=("graphql-transport-ws",))
        client = cls(ws)
        await ws.send_json({"type": "connection_init", "payload": init or {}})
        if ack:
            message = await client.receive()
            assert message == {"type": "connection_ack"}, message
        return client

    async def subscribe(self, op_id: str, query: str, variables: dict[str, Any] | None = None) -> None:
        await self.ws.send_json({"id": op_id, "type": "subscribe",
                                 "payload": {"query": query, "variables": variables or {}}})

    async def ping_pong(self) -> None:
        await self.ws.send_json({"type": "ping"})
        message = await self.receive()
        assert message == {"type": "pong"}, message

    async def complete(self, op_id: str) -> None:
        await self.ws.send_json({"id": op_id, "type": "complete"})

    async def receive(self) -> dict[str, Any]:
        """The next message (a JSON object); raises if the server closed instead."""
        message = await self.ws.receive(timeout=WAIT_S)
        if message.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"closed: {self.ws.close_code} {message.extra!r}")
        return json.loads(message.data)  # type: ignore[no-any-return]

    async def closed(self) -> tuple[int | None, str]:
        """The close code and reason once the server closes."""
        message = await self.ws.receive(timeout=WAIT_S)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING), message
        return self.ws.close_code, str(message.extra or "")

    async def close(self) -> None:
        await self.ws.close()


class SseStream:
    """One GraphQL-over-SSE request: its response, and its events as (event, data) pairs."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self._events = self._parse()

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, url: str, query: str, variables: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> SseStream:
        response = await session.post(url + "/graphql", json={"query": query, "variables": variables or {}},
                                      headers={"accept": "text/event-stream", **(headers or {})})
        return cls(response)

    async def _parse(self) -> AsyncIterator[tuple[str, Any]]:
        event, data = "message", []
        async for raw in self.response.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith(":"):
                continue  # a keep-alive comment
            if not line:
                if data:
                    text = "\n".join(data)
                    yield event, json.loads(text) if text.strip() else None
                event, data = "message", []
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())

    async def next(self) -> tuple[str, Any]:
        return await asyncio.wait_for(anext(self._events), WAIT_S)

    def close(self) -> None:
        self.response.close()


async def listening(session: aiohttp.ClientSession, url: str, at_least: int) -> None:
    """Until the gateway has at least this many subscriptions listening (its /status.json)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            async with session.get(url + "/status.json") as resp:
                if (await resp.json())["subscriptions"]["listening"] >= at_least:
                    return
            await asyncio.sleep(0.05)


async def running(session: aiohttp.ClientSession, url: str, at_most: int) -> None:
    """Until the gateway runs at most this many subscriptions (ended ones released)."""
    async with asyncio.timeout(WAIT_S):
        while True:
            async with session.get(url + "/status.json") as resp:
                if (await resp.json())["subscriptions"]["running"] <= at_most:
                    return
            await asyncio.sleep(0.05)
