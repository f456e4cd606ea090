"""Every HTTP request's id and facts (telemetry/request.py), around the whole app.

A pure ASGI middleware, outermost: it takes the client's `X-Request-Id` (or makes one), echoes it on
the answer, opens the request's facts for the layers below to fill, notes the status sent, and hands
the facts to the sinks (access log, metrics, trace) when the answer is done. Probes, scrapes and the
static assets get an id but are not logged or counted: they are not the traffic an operator asks about.
"""

from __future__ import annotations

from typing import Any

from telemetry.request import RequestFacts, begin, end, request_id

OBSERVED = frozenset({"/graphql", "/cache/invalidate", "/events"})
Scope = dict[str, Any]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


class Observed:
    def __init__(self, app: Any, paths: frozenset[str] = OBSERVED) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(_header(scope, b"x-request-id"))
        echoed = (b"x-request-id", rid.encode())
        facts = RequestFacts(rid, scope["method"], scope["path"])

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                facts.status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        if scope["path"] not in self.paths:
            await self.app(scope, receive, sending)
            return
        token = begin(facts)
        try:
            await self.app(scope, receive, sending)
        except BaseException:
            facts.status = facts.status or 500  # what the server error middleware answers
            raise
        finally:
            end(facts, token)
