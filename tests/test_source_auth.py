"""A source's declared auth (connectors/base.py SourceAuth): bearer, basic or an API key (header or query
parameter), sent on every call of the source; refused when malformed or on a database."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from connectors.base import SourceConfig
from connectors.http import new_session
from tests.local_server import serving

ENTITY = {"request": {"path": "/items", "params": {"ids": "$keys"}, "join": ","}, "records": "items", "key": "id",
          "record": "Identity", "mapping": {"fields": {"system": "owner", "id": "id"}}}


def seen_by_the_source(auth: dict[str, Any]) -> dict[str, Any]:
    """What the source received with one batch call: its Authorization header, X-Key and query."""
    got: dict[str, Any] = {}

    async def items(request: web.Request) -> web.Response:
        got.update(authorization=request.headers.get("Authorization"), key=request.headers.get("X-Key"),
                   query=dict(request.query))
        return web.json_response({"items": [{"id": k, "owner": "o"} for k in request.query["ids"].split(",")]})

    async def scenario() -> None:
        from connectors.rest import RestConnector
        app = web.Application()
        app.router.add_get("/items", items)
        async with serving(app) as url:
            session = new_session()
            try:
                c = RestConnector(SourceConfig.model_validate({
                    "name": "s", "system": "s", "kind": "rest", "url": url, "auth": auth,
                    "entities": {"items": ENTITY}}), session)
                found = await c.fetch("items", ["a", "b"])
                assert sorted(found) == ["a", "b"]
            finally:
                await session.close()

    asyncio.run(scenario())
    return got


def test_bearer_basic_and_api_keys_arrive_on_every_call() -> None:
    assert seen_by_the_source({"bearer": "t0k"})["authorization"] == "Bearer t0k"
    basic = seen_by_the_source({"basic": {"username": "ann", "password": "p:w"}})["authorization"]
    assert base64.b64decode(basic.removeprefix("Basic ")) == b"ann:p:w"
    assert seen_by_the_source({"api_key": {"header": "X-Key", "value": "k1"}})["key"] == "k1"
    query = seen_by_the_source({"api_key": {"param": "api_key", "value": "k2"}})["query"]
    assert query == {"ids": "a,b", "api_key": "k2"}  # beside the declared parameters


@pytest.mark.parametrize(("auth", "kind", "message"), [
    ({"bearer": "t", "basic": {"username": "a", "password": "b"}}, "rest", "exactly one of bearer, basic, api_key"),
    ({"api_key": {"value": "k"}}, "rest", "give header or param"),
    ({"bearer": ""}, "rest", "at least 1 character"),
    ({"bearer": "t"}, "sql", "a database's credentials go in its dsn"),
])
def test_a_bad_auth_is_refused(auth: dict[str, Any], kind: str, message: str) -> None:
    where = {"url": "http://x"} if kind == "rest" else {"dsn": "sqlite+aiosqlite:///x"}
    with pytest.raises(ValidationError, match=message):
        SourceConfig.model_validate({"name": "s", "system": "s", "kind": kind, "auth": auth, **where})
