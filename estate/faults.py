"""What every demo HTTP source shares: request counting and fault injection.

`GET /__stats` reports requests served, keys asked for and the W3C trace ids received (from each
request's `traceparent`, the last 1000) since start or the last `POST /__stats/reset`; `POST /__faults`
sets latency, jitter, failures, `down` or `hang` (`{}` clears). Control paths are never affected by
the faults they set.
"""

from __future__ import annotations

import asyncio
import functools
import random
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FAULT_KEYS = ("latency_ms", "jitter_ms", "fail_rate", "status", "down", "hang", "body")
TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


@dataclass
class SourceState:
    name: str
    requests: int = 0
    keys: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    # (start, end) wall-clock times of recent requests, so tests can see which calls overlapped.
    windows: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=2000))
    faults: dict[str, Any] = field(default_factory=dict)
    trace_ids: deque[str] = field(default_factory=lambda: deque(maxlen=1000))  # from requests' traceparent
    rng: random.Random = field(default_factory=lambda: random.Random(7))


STATE: web.AppKey[SourceState] = web.AppKey("state", SourceState)


def count_keys(request: web.Request, n: int) -> None:
    """Handlers report how many customer keys a request asked for."""
    request.app[STATE].keys += n


async def _delay(state: SourceState) -> None:
    f = state.faults
    latency = float(f.get("latency_ms", 0)) + state.rng.uniform(0, float(f.get("jitter_ms", 0)))
    if latency > 0:
        await asyncio.sleep(latency / 1000)


async def _hang(request: web.Request, state: SourceState) -> None:
    # Hold the request until the client gives up or the fault is cleared.
    for _ in range(6000):
        if not state.faults.get("hang") or request.transport is None or request.transport.is_closing():
            return
        await asyncio.sleep(0.05)


def _failure(state: SourceState) -> web.Response | None:
    f = state.faults
    rate = float(f.get("fail_rate", 1.0 if "status" in f else 0.0))
    if rate <= 0 or state.rng.random() >= rate:
        return None
    status = int(f.get("status", 500))
    return web.json_response({"error": "injected failure", "status": status}, status=status)


@functools.cache
def _huge() -> bytes:
    """64 MB of valid JSON, built once: building it per request (a 64 MB allocation and copy) stalled the
    estate's one event loop long enough under load for the other sources' answers to miss a 1 s timeout."""
    return b'{"pad":"' + b"x" * (64 * 1024 * 1024) + b'"}'


def _bad_body(kind: str) -> web.Response:
    if kind == "html":
        return web.Response(text="<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html")
    if kind == "huge":
        return web.Response(body=_huge(), content_type="application/json")
    if kind == "shape":  # valid JSON, but not the shape this API promises
        return web.json_response({"result": "ok", "items": "not a list", "data": None})
    return web.Response(text='{"truncated": [1, 2', content_type="application/json")


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/__"):
        return await handler(request)
    state = request.app[STATE]
    state.requests += 1
    traced = TRACEPARENT.match(request.headers.get("traceparent", ""))
    if traced:
        state.trace_ids.append(traced.group(1))
    state.in_flight += 1
    state.max_in_flight = max(state.max_in_flight, state.in_flight)
    started = time.time()
    try:
        return await _serve(request, handler, state)
    finally:
        state.in_flight -= 1
        state.windows.append((started, time.time()))


async def _serve(request: web.Request, handler: Handler, state: SourceState) -> web.StreamResponse:
    f = state.faults
    if f.get("down"):
        if request.transport is not None:
            request.transport.abort()  # the client sees the connection drop, as with a dead host
        raise asyncio.CancelledError
    if f.get("hang"):
        await _hang(request, state)
    await _delay(state)
    failure = _failure(state)
    if failure is not None:
        return failure
    if f.get("body"):
        return _bad_body(str(f["body"]))
    return await handler(request)


async def stats(request: web.Request) -> web.Response:
    s = request.app[STATE]
    return web.json_response({"source": s.name, "requests": s.requests, "keys": s.keys, "faults": s.faults,
                              "max_in_flight": s.max_in_flight, "windows": list(s.windows),
                              "trace_ids": list(s.trace_ids)})


async def reset_stats(request: web.Request) -> web.Response:
    s = request.app[STATE]
    s.requests = s.keys = s.max_in_flight = 0
    s.windows.clear()
    s.trace_ids.clear()
    return web.json_response({"ok": True})


async def set_faults(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "body must be JSON"}, status=400)
    if not isinstance(body, dict) or set(body) - set(FAULT_KEYS):
        return web.json_response({"error": f"keys must be among {list(FAULT_KEYS)}"}, status=400)
    request.app[STATE].faults = body
    return web.json_response({"ok": True, "faults": body})


def source_app(name: str, routes: list[web.RouteDef]) -> web.Application:
    """An aiohttp app for one source system, with the shared control endpoints."""
    app = web.Application(middlewares=[fault_middleware], client_max_size=8 * 1024 * 1024)
    app[STATE] = SourceState(name)
    app.add_routes(routes)
    app.add_routes([web.get("/__stats", stats), web.post("/__stats/reset", reset_stats),
                    web.post("/__faults", set_faults)])
    return app
