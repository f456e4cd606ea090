"""Every HTTP request's id and facts (telemetry/request.py), around the whole app.

A pure ASGI middleware, outermost: it takes the client's `X-Request-Id` (or makes one), echoes it on
the answer, opens the request's facts for the layers below to fill, notes the status sent, and hands
the facts to the sinks (access log, metrics, trace) when the answer is done. Probes, scrapes and the
static assets get an id but are not logged or counted: they are not the traffic an operator asks about.
It also opens the request's span (telemetry/tracing.py) from the client's W3C `traceparent`, or, with
tracing off, makes the client's trace context current so that it is passed on to the sources.
"""

from __future__ import annotations

from typing import Any

from telemetry import tracing
from telemetry.request import RequestFacts, begin, end, request_id

OBSERVED = frozenset({"/graphql", "/cache/invalidate", "/events", "/events/contacts"})
WANTED = (b"x-request-id", b"traceparent", b"tracestate")  # the headers read here
Scope = dict[str, Any]


def _headers(scope: Scope) -> dict[bytes, str]:
    """The request's id and trace context headers, in one pass."""
    return {key: value.decode("latin-1") for key, value in scope["headers"] if key in WANTED}


class Observed:
    def __init__(self, app: Any, paths: frozenset[str] = OBSERVED) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _headers(scope)
        rid = request_id(given.get(b"x-request-id"))
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
        parent = tracing.incoming(given.get(b"traceparent"), given.get(b"tracestate"))
        traced = tracing.begin_request(facts, parent) if tracing.ENABLED or parent is not None else None
        try:
            await self.app(scope, receive, sending)
        except BaseException:
            facts.status = facts.status or 500  # what the server error middleware answers
            raise
        finally:
            end(facts, token)
            if traced is not None:
                tracing.end_request(facts, traced)
