"""GraphQL subscriptions over WebSocket (graphql-transport-ws) and over SSE (GraphQL over Server-Sent
Events, "distinct connections" mode), on /graphql, run by strawberry's `Schema.stream`.

Each operation gets a Context of its own, on the schema of the caller's role (server/policy.py), with the
same limits and allow-list as POST; its results are formatted as POST formats them (server/graphql_http.py).

- WebSocket: the subprotocol graphql-transport-ws (The Guild's graphql-ws PROTOCOL.md). The token is in
  connection_init's payload, `{"authorization": "Bearer <JWT>"}` (any case: GraphiQL sends its header
  editor's headers there). Closed with 4401 without one or with a bad one, 4403 for a token granting no
  role, 4408 without connection_init in time, 4400 for a malformed message, 4409 for a duplicate id, 4429
  for a second connection_init (the protocol's codes).
- SSE: POST /graphql with `Accept: text/event-stream`, authenticated like any POST; answered with
  `event: next` per result and `event: complete` at the end, and a comment every `keepalive_s`. Refused
  before any stream (JSON, as POST answers): 401/403 for auth, 400 for a bad request or document, 403 for
  a field the role may not read, 404 for an unknown customer, 503 past the limit or for a failing source.
  Over WebSocket the same refusals are an `error` message.

A subscription does not outlive its token: at its exp (plus the leeway) the WebSocket is closed with
4401, and an SSE stream ends with an UNAUTHENTICATED error.

Limits (`subscriptions:` in gateway.yaml): operations at once per WebSocket and per gateway process;
past them an operation is refused with TOO_MANY_SUBSCRIPTIONS naming the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from resolvers.context import Context
from server.auth import AuthError, Principal
from server.errors import format_error
from server.graphql_http import JSON, GraphQLEndpoint, _params, result_payload
from server.operations import check_allowed
from server.settings import SubscriptionSettings

log = logging.getLogger("customer_graph.subscriptions")
PROTOCOL = "graphql-transport-ws"
EXPIRED = [{"message": "the token has expired; subscribe again with a new one",
            "extensions": {"code": "UNAUTHENTICATED"}}]
EVERY = frozenset({OperationType.QUERY, OperationType.MUTATION, OperationType.SUBSCRIPTION})


class Refusal(Exception):
    """An operation refused before it runs: its GraphQL errors, and the HTTP status SSE answers with."""

    def __init__(self, status: int, message: str, code: str, limit: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        extensions: dict[str, Any] = {"code": code} | ({"limit": limit} if limit else {})
        self.status, self.errors = status, [{"message": message, "extensions": extensions}]


def too_many(name: str, value: int) -> Refusal:
    where = "on this connection" if name == "max_per_connection" else "on this gateway"
    return Refusal(503 if name == "max_per_instance" else 429, f"at most {value} subscriptions at once {where}",
                   "TOO_MANY_SUBSCRIPTIONS", {"name": name, "value": value})


class Live:
    """The two transports over one GraphQL endpoint (its schemas, auth, policies and limits)."""

    def __init__(self, endpoint: GraphQLEndpoint, settings: SubscriptionSettings) -> None:
        self.endpoint, self.settings = endpoint, settings
        self.running = 0  # operations under way over both transports, on this process
        self.listening = 0  # of them, subscriptions listening for events (the status page's figure)

    def _take(self) -> None:
        if self.running >= self.settings.max_per_instance:
            raise too_many("max_per_instance", self.settings.max_per_instance)
        self.running += 1

    def _context(self, principal: Principal | None) -> Context:
        ep = self.endpoint
        ctx = Context(ep.sources, principal=principal, limits=ep.limits)
        ctx.listening = asyncio.Event()
        return ctx

    async def _stream(self, principal: Principal | None, params: tuple[str, dict[str, Any] | None, str | None],
                      ctx: Context) -> AsyncIterator[Any]:
        """The operation's results (strawberry's ExecutionResult or PreExecutionError), or a Refusal."""
        query, variables, op = params
        ep = self.endpoint
        if principal is not None and principal.policy.operations == "registered":
            denied = check_allowed(principal.policy, ep.registry, query)
            if denied is not None:
                raise Refusal(403, denied, "FORBIDDEN")
        schema = ep.schema if principal is None or ep.policies is None else ep.policies.schema(principal.role)
        return await schema.stream(query, variable_values=variables, context_value=ctx, operation_name=op,
                                   allowed_operation_types=EVERY)

    # --- GraphQL over SSE ---------------------------------------------------------------------------

    async def sse(self, request: Request, body: Any) -> Response:
        """A POST that accepts text/event-stream, its body already read and parsed."""
        params = _params(body)
        if isinstance(params, str):
            return _json({"errors": [{"message": params, "extensions": {"code": "BAD_REQUEST"}}]}, 400)
        principal = request.state.principal
        ctx = self._context(principal)
        try:
            self._take()
        except Refusal as exc:
            return _json({"errors": exc.errors}, exc.status)
        try:
            results = await self._stream(principal, params, ctx)
            first, pending = await _first(results, ctx)
        except Refusal as exc:
            self.running -= 1
            return _json({"errors": exc.errors}, exc.status)
        except BaseException:
            self.running -= 1
            raise
        if first is not None and refused(first):
            self.running -= 1
            with contextlib.suppress(Exception):
                await results.aclose()
            payload, _ = result_payload(first, ctx)
            return _json({"errors": payload["errors"]}, status_of(payload["errors"]))
        release = self._releaser(results, pending)
        return EventStream(self._events(request, results, first, pending, ctx, release), release)

    def _releaser(self, results: Any, pending: asyncio.Future[Any] | None) -> Callable[[], Awaitable[None]]:
        """What ends an SSE subscription, once: its slot, its first event's wait and its generator (which
        closes its bus queue)."""
        released = False

        async def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self.running -= 1
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending
            with contextlib.suppress(Exception):
                await results.aclose()

        return release

    async def _events(self, request: Request, results: Any, first: Any, pending: asyncio.Future[Any] | None,
                      ctx: Context, release: Callable[[], Awaitable[None]]) -> AsyncIterator[bytes]:
        gone = asyncio.ensure_future(_disconnected(request))
        listens = pending is not None
        self.listening += listens
        try:
            if first is not None:
                yield _sse("next", result_payload(first, ctx)[0])
            elif pending is None:  # it ended with no result at all
                yield b"event: complete\ndata: \n\n"
                return
            expires = getattr(ctx.principal, "expires_at", None)
            while not gone.done():
                if expires is not None and time.time() >= expires:
                    yield _sse("next", {"errors": EXPIRED})
                    yield b"event: complete\ndata: \n\n"
                    return
                pending = pending or asyncio.ensure_future(anext(results))
                wait = self.settings.keepalive_s if expires is None else min(self.settings.keepalive_s,
                                                                            max(expires - time.time(), 0))
                done, _ = await asyncio.wait({pending, gone}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                if pending in done:
                    try:
                        result = pending.result()
                    except StopAsyncIteration:
                        yield b"event: complete\ndata: \n\n"
                        return
                    pending = None
                    yield _sse("next", result_payload(result, ctx)[0])
                elif not done and (expires is None or time.time() < expires):
                    yield b": keep-alive\n\n"
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending
            self.listening -= listens
            gone.cancel()
            await release()

    # --- graphql-transport-ws -----------------------------------------------------------------------

    async def websocket(self, ws: WebSocket) -> None:
        if PROTOCOL not in ws.scope.get("subprotocols", ()):
            await ws.close(code=4406, reason=f"Subprotocol not acceptable: use {PROTOCOL}")
            return
        await ws.accept(subprotocol=PROTOCOL)
        await Connection(self, ws).serve()


class Connection:
    """One graphql-transport-ws connection: connection_init first, then operations by id."""

    def __init__(self, live: Live, ws: WebSocket) -> None:
        self.live, self.ws = live, ws
        self.principal: Principal | None = None
        self.operations: dict[str, asyncio.Task[None]] = {}
        self._sending = asyncio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        async with self._sending:
            if self.ws.application_state == WebSocketState.CONNECTED:
                await self.ws.send_text(orjson.dumps(message).decode())

    async def close(self, code: int, reason: str) -> None:
        async with self._sending:
            if self.ws.application_state == WebSocketState.CONNECTED:
                await self.ws.close(code=code, reason=reason)

    async def serve(self) -> None:
        expiry: asyncio.Task[None] | None = None
        try:
            if await self._init():
                if self.principal is not None and self.principal.expires_at is not None:
                    expiry = asyncio.create_task(self._expire(self.principal.expires_at))
                while True:
                    message = await self._receive()
                    if message is None or not await self._handle(message):
                        return
        except WebSocketDisconnect:
            pass
        finally:
            if expiry is not None:
                expiry.cancel()
            for task in self.operations.values():
                task.cancel()
            for task in list(self.operations.values()):
                with contextlib.suppress(BaseException):
                    await task

    async def _expire(self, at: float) -> None:
        """The token's validity ends the connection: its subscriptions must not outlive it."""
        await asyncio.sleep(max(at - time.time(), 0))
        await self.close(4401, "Unauthorized: the token has expired; reconnect with a new one")

    async def _receive(self) -> dict[str, Any] | None:
        """The next message, or None once the connection is closed for a malformed one."""
        text = await self.ws.receive_text()
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            await self.close(4400, "Invalid message: a JSON object with a type")
            return None
        return message

    async def _init(self) -> bool:
        """connection_init within the timeout, with a token the gateway accepts; whether the connection lives."""
        try:
            async with asyncio.timeout(self.live.settings.connection_init_timeout_s):
                message = await self._receive()
        except TimeoutError:
            await self.close(4408, "Connection initialisation timeout")
            return False
        if message is None:
            return False
        if message["type"] != "connection_init":
            await self.close(4401, "Unauthorized: send connection_init first")
            return False
        payload = message.get("payload") or {}
        if not isinstance(payload, dict):
            await self.close(4400, "Invalid connection_init payload")
            return False
        auth = self.live.endpoint.auth
        if auth is not None:
            try:
                self.principal = await auth.authenticate(_authorization(payload))
            except AuthError as exc:
                await self.close(4403 if exc.status == 403 else 4401, f"{'Forbidden' if exc.status == 403 else 'Unauthorized'}: {exc}"[:120])
                return False
        await self.send({"type": "connection_ack"})
        return True

    async def _handle(self, message: dict[str, Any]) -> bool:
        kind = message["type"]
        if kind == "ping":
            await self.send({"type": "pong"})
        elif kind == "pong":
            pass
        elif kind == "connection_init":
            await self.close(4429, "Too many initialisation requests")
            return False
        elif kind == "subscribe":
            return await self._subscribe(message)
        elif kind == "complete":
            task = self.operations.pop(str(message.get("id")), None)
            if task is not None:
                task.cancel()
        else:
            await self.close(4400, f"Unknown message type {kind[:40]!r}")
            return False
        return True

    async def _subscribe(self, message: dict[str, Any]) -> bool:
        op_id, payload = message.get("id"), message.get("payload")
        if not isinstance(op_id, str) or not op_id or not isinstance(payload, dict):
            await self.close(4400, "Invalid subscribe message: an id and a payload")
            return False
        if op_id in self.operations:
            await self.close(4409, f"Subscriber for {op_id[:40]} already exists")
            return False
        params = _params(payload)
        if isinstance(params, str):
            await self.send({"id": op_id, "type": "error",
                             "payload": [{"message": params, "extensions": {"code": "BAD_REQUEST"}}]})
            return True
        limit = self.live.settings.max_per_connection
        try:
            if len(self.operations) >= limit:
                raise too_many("max_per_connection", limit)
            self.live._take()
        except Refusal as exc:
            await self.send({"id": op_id, "type": "error", "payload": exc.errors})
            return True
        self.operations[op_id] = asyncio.create_task(self._run(op_id, params), name=f"ws operation {op_id[:40]}")
        return True

    async def _run(self, op_id: str, params: tuple[str, dict[str, Any] | None, str | None]) -> None:
        live = self.live
        ctx = live._context(self.principal)
        watcher = asyncio.ensure_future(_count_listening(live, ctx))
        try:
            results = await live._stream(self.principal, params, ctx)
            async with contextlib.aclosing(results):
                first = True
                async for result in results:
                    payload, _ = result_payload(result, ctx)
                    if first and not ctx.listening.is_set() and refused(result):  # type: ignore[union-attr]
                        await self.send({"id": op_id, "type": "error", "payload": payload["errors"]})
                        return
                    first = False
                    await self.send({"id": op_id, "type": "next", "payload": payload})
            await self.send({"id": op_id, "type": "complete"})
        except Refusal as exc:
            await self.send({"id": op_id, "type": "error", "payload": exc.errors})
        except (WebSocketDisconnect, asyncio.CancelledError):
            pass
        except Exception as exc:  # noqa: BLE001 - logged whole here, never sent
            log.error("subscription %s failed", op_id[:40], exc_info=exc)
            with contextlib.suppress(Exception):
                await self.send({"id": op_id, "type": "error",
                                 "payload": [format_error(GraphQLError("internal error", original_error=exc))]})
        finally:
            watcher.cancel()
            live.running -= 1
            self.operations.pop(op_id, None)


class EventStream(StreamingResponse):
    """The SSE answer. Its subscription is released when the response ends, also when the client leaves
    before the first byte: a generator that never started runs no `finally`."""

    def __init__(self, events: AsyncIterator[bytes], release: Callable[[], Awaitable[None]]) -> None:
        super().__init__(events, media_type="text/event-stream",
                         headers={"cache-control": "no-cache", "x-accel-buffering": "no"})
        self.release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.release()


def refused(result: Any) -> bool:
    """Whether a result that comes before the operation listens refuses it: nothing to answer but errors (a
    document that does not validate, a field the role may not read, an unknown customer)."""
    return isinstance(result, PreExecutionError) or (result.data is None and bool(result.errors))


STATUS = {"UNAUTHENTICATED": 401, "FORBIDDEN": 403, "NOT_FOUND": 404, "SOURCE_UNAVAILABLE": 503,
          "SOURCE_TIMEOUT": 503, "SOURCE_BAD_RESPONSE": 502}


def status_of(errors: list[dict[str, Any]]) -> int:
    """The HTTP status of an SSE request refused before its stream: its first error's code says it."""
    return STATUS.get((errors[0].get("extensions") or {}).get("code", ""), 400)


async def _count_listening(live: Live, ctx: Context) -> None:
    assert ctx.listening is not None
    await ctx.listening.wait()
    live.listening += 1
    try:
        await asyncio.Future()  # until the operation ends and cancels it
    finally:
        live.listening -= 1


def _authorization(payload: dict[str, Any]) -> str | None:
    """The bearer token of connection_init: `authorization` at the top or under `headers`, any case."""
    for where in (payload, payload.get("headers")):
        if isinstance(where, dict):
            for key, value in where.items():
                if isinstance(key, str) and key.lower() == "authorization" and isinstance(value, str):
                    return value
    return None


async def _first(results: Any, ctx: Context) -> tuple[Any, asyncio.Future[Any] | None]:
    """The first result when it comes before the subscription listens (an error, or a query's answer), or
    the future of it once the subscription listens (its first event, still to come)."""
    assert ctx.listening is not None
    first = asyncio.ensure_future(anext(results))
    ready = asyncio.ensure_future(ctx.listening.wait())
    try:
        await asyncio.wait({first, ready}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ready.cancel()
    if not first.done():
        return None, first  # never cancelled: that would end the subscription's generator
    try:
        return first.result(), None
    except StopAsyncIteration:
        return None, None


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _sse(event: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _json(payload: dict[str, Any], status: int) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON)
