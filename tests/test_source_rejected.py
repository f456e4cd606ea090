"""A source refusing the client's input (a declared 4xx) is the client's error: never retried, never a
verdict on the source's health; undeclared 4xx answers still count as the source misbehaving."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import pytest
from aiohttp import web

from connectors.base import Rejection, SourceConfig, SourceError, SourceRejected
from connectors.http import new_session
from connectors.resilience import CLOSED, HALF_OPEN, OPEN
from connectors.rest import RestConnector
from tests.local_server import serving

T = TypeVar("T")
REUSED = Rejection(422, "IDEMPOTENCY_KEY_REUSED", "use a new key", body_contains="key reused")


@asynccontextmanager
async def source(status: int, body: str) -> AsyncIterator[tuple[RestConnector, list[int]]]:
    """A one-route source answering `status` with `body`, a connector to it, and its call log."""
    calls: list[int] = []

    async def handle(_: web.Request) -> web.Response:
        calls.append(status)
        return web.json_response({"error": body}, status=status)

    app = web.Application()
    app.router.add_post("/write", handle)
    async with serving(app) as url:
        session = new_session()
        config = SourceConfig(name="contact", kind="rest", system="contact",
                              url=url, circuit_failures=3, retries=2, retry_backoff_ms=1)
        try:
            yield RestConnector(config, session), calls
        finally:
            await session.close()


async def write(c: RestConnector) -> object:
    """One write the way `Connector.write` runs it: through the circuit, the timeout and the retries."""
    return await c.protected(lambda: c.json("POST", "/write", json={}, rejects=(REUSED,)), None)


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(scenario())  # type: ignore[arg-type]


def test_rejection_matches_only_its_4xx_and_text() -> None:
    assert REUSED.matches(422, b'{"error": "key reused with a different request"}')
    assert not REUSED.matches(422, b'{"error": "invalid mediaType"}')
    assert not REUSED.matches(409, b"key reused")
    assert Rejection(422, "BAD_USER_INPUT", "refused").matches(422, b"anything")
    assert not Rejection(500, "X", "a 5xx is never the client's mistake").matches(500, b"")


def test_declared_rejections_never_open_the_circuit() -> None:
    async def scenario() -> None:
        async with source(422, "key reused with a different request") as (c, calls):
            for _ in range(10):  # over three times the circuit's threshold
                with pytest.raises(SourceRejected) as caught:
                    await write(c)
                assert caught.value.extensions == {"code": "IDEMPOTENCY_KEY_REUSED", "source": "contact"}
                assert str(caught.value) == "contact: use a new key"
            assert len(calls) == 10  # each asked once: a refusal is not retried
            assert c.circuit.state == CLOSED and c.circuit.consecutive == 0 and c.failures == 0

    run(scenario)


def test_undeclared_4xx_still_counts_against_the_source() -> None:
    async def scenario() -> None:
        async with source(422, "invalid mediaType") as (c, _):
            for _ in range(3):
                with pytest.raises(SourceError) as caught:
                    await write(c)
                assert caught.value.code == "SOURCE_BAD_RESPONSE"
            assert c.circuit.state == OPEN and c.failures == 3

    run(scenario)


def test_a_rejected_probe_frees_the_half_open_circuit_without_a_verdict() -> None:
    async def scenario() -> None:
        async with source(422, "key reused") as (c, _):
            c.circuit.state, c.circuit.consecutive = HALF_OPEN, 3
            with pytest.raises(SourceRejected):
                await write(c)
            assert c.circuit.state == HALF_OPEN and not c.circuit.probing  # the next call may probe
            assert c.circuit.allow()

    run(scenario)
