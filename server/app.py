"""The ASGI app: /graphql, /healthz, /readyz, /metrics (Prometheus), the sources' change events (/events),
the live status page (/status) and GraphiQL's own static assets (no CDN)."""

from __future__ import annotations

import contextlib
import functools
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from pathlib import Path
from typing import Any

import orjson
import strawberry
from graphql import GraphQLError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket
from strawberry.types import ExecutionContext

import connectors
from config import GatewayConfig
from connectors.base import SourceError
from connectors.http import new_session
from connectors.window import RecentCalls
from resolvers import mutations
from resolvers.changes import Changes
from resolvers.context import Sources
from resolvers.invalidate import invalidate
from schema.mutation import PLANS, Mutation
from schema.query import Query
from schema.subscription import Channel, Subscription
from server import contacts
from server.apq import ApqStore
from server.auth import Authenticator
from server.errors import log_errors
from server.events import Refused, SharedSeen, Webhooks
from server.execution import Execution, executor_class
from server.federation import SubgraphSchema
from server.graphql_http import GraphQLEndpoint
from server.limits import PayloadTooLarge, read_body
from server.metrics import Refresh, count_requests, scrape
from server.observe import Observed
from server.operations import allow_list
from server.policy import Policies
from server.query_cache import QueryCache
from server.readiness import Readiness
from server.runtime import tune_gc
from server.settings import CorsSettings
from server.status import WINDOW_S, snapshot
from server.subscriptions import Live
from telemetry import tracing
from telemetry.logs import enable_access_log

STATIC = Path(__file__).resolve().parent.parent / "static"


class Logged:
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        log_errors(errors)  # one line per source failure instead of strawberry's full traceback


class GatewaySchema(Logged, strawberry.Schema):
    pass


class GatewaySubgraph(Logged, SubgraphSchema):
    pass


def build_schema(extensions: Sequence[Any] = (), federation: bool = False,
                 execution: Execution = "plan") -> strawberry.Schema:
    """The gateway's schema; with `federation`, as an Apollo Federation v2 subgraph (server/federation.py)."""
    # Parsing and validating cached by query text (see server/query_cache.py); clients repeat a few queries.
    # Queries run their compiled plan unless `gateway.execution` says graphql-core (server/execution.py).
    kind = GatewaySubgraph if federation else GatewaySchema
    return kind(query=Query, mutation=Mutation, subscription=Subscription, extensions=[QueryCache, *extensions],
                execution_context_class=executor_class(execution))


def cors_middleware(cors: CorsSettings) -> list[Middleware]:
    """Starlette's CORSMiddleware from the `cors` section, outermost so that preflights never need a token;
    none at all (no CORS header on any answer) while allow_origins is empty."""
    if not cors.allow_origins:
        return []
    return [Middleware(CORSMiddleware, allow_origins=cors.allow_origins, allow_methods=cors.allow_methods,
                       allow_headers=cors.allow_headers, allow_credentials=cors.allow_credentials,
                       max_age=cors.max_age_s)]


def create_app(config: GatewayConfig, graphiql_headers: dict[str, str] | None = None) -> Starlette:
    """The gateway; `graphiql_headers` are preloaded into GraphiQL's header editor (the demo's agent token)."""
    auth = None if config.auth is None or config.auth.mode == "none" else Authenticator(config.auth, config.roles)
    if auth is None:
        logging.getLogger("customer_graph").warning(
            "auth mode none: every caller is trusted with everything; do not expose this gateway")
    mutations.check(PLANS, config)  # each declared mutation's action suits it (gateway.py check says it in one line)
    federation = config.federation.enabled
    schema = build_schema(federation=federation, execution=config.execution)
    policies = Policies(schema, config.roles,
                        functools.partial(build_schema, federation=federation, execution=config.execution))
    registry = allow_list(config.operations, config.roles, schema._schema)  # a broken document stops the start
    apq = ApqStore(config.apq, config.cache.redis_url, config.cache.namespace, fixed=registry.by_hash)
    holder: dict[str, Any] = {}
    webhooks = Webhooks(config.sources, config.events)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        session = new_session()
        try:
            sources = Sources.build(config, connectors.build(config.sources, session))
            await sources.start()
        except BaseException:
            await session.close()
            raise
        if tracing.start():  # in the serving process: after uvicorn forks its workers
            logging.getLogger("customer_graph").info("tracing on: spans exported over OTLP/HTTP")
        endpoint = holder["endpoint"] = GraphQLEndpoint(schema, sources, auth, policies, graphiql_headers, apq=apq,
                                                        registry=registry)
        endpoint.live = holder["live"] = Live(endpoint, config.subscriptions)
        readiness = holder["readiness"] = Readiness(sources.connectors[config.identity], config.ready_probe_s)
        readiness.start()
        refresh = holder["metrics"] = Refresh.start(sources) if config.metrics.enabled else None
        changes = holder["changes"] = Changes(sources)
        changes.start()
        shared = holder["seen"] = SharedSeen(config.cache.redis_url, config.cache.namespace,
                                             config.events.replay_window_s) if config.cache.redis_url else None
        tune_gc()  # once everything long-lived exists
        try:
            yield
        finally:
            await readiness.stop()
            if refresh is not None:
                await refresh.stop()
            await changes.close()
            if shared is not None:
                await shared.close()
            await apq.close()
            await sources.close()
            await session.close()
            tracing.stop()  # flushes the spans still batched

    recent = RecentCalls(WINDOW_S)  # the gateway's own requests, for the status page

    async def recorded(answer: Awaitable[Response]) -> Response:
        started = time.perf_counter()
        response = await answer
        recent.record(time.perf_counter() - started, None if response.status_code < 500 else str(response.status_code))
        return response

    async def graphql_post(request: Request) -> Response:
        return await recorded(holder["endpoint"].post(request))

    async def graphql_get(request: Request) -> Response:
        if "text/html" in request.headers.get("accept", ""):
            return await holder["endpoint"].get(request)  # GraphiQL's page: not a request to count
        return await recorded(holder["endpoint"].get(request))

    async def status_json(_request: Request) -> Response:
        endpoint = holder.get("endpoint")
        if endpoint is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        body = snapshot(endpoint.sources.connectors, endpoint.sources.cache, recent)
        live = holder["live"]
        body["subscriptions"] = {"running": live.running, "listening": live.listening,
                                 "max": config.subscriptions.max_per_instance}
        return JSONResponse(body)

    async def status_page(_request: Request) -> Response:
        return FileResponse(STATIC / "status" / "index.html")

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        """Ready while the identity source answers its background probe (server/readiness.py); each
        source's circuit and counters besides."""
        endpoint, readiness = holder.get("endpoint"), holder.get("readiness")
        if endpoint is None or readiness is None:
            return JSONResponse({"status": "starting", "reason": "the gateway is starting"}, status_code=503)
        sources = endpoint.sources.connectors
        reason = readiness.reason()
        ready = reason is None
        cache = endpoint.sources.cache
        body = {"status": "ready" if ready else "unavailable", "reason": reason, "identity": readiness.status(),
                "sources": {n: c.status() for n, c in sources.items()},
                "cache": cache.tiers.status() if cache is not None else None}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics_page(request: Request) -> Response:
        """Prometheus' scrape: no token (like /readyz), so for an operator network only."""
        return await scrape(request, holder.get("metrics"))

    async def cache_invalidate(request: Request) -> Response:
        token = config.cache.admin_token
        if not token:
            return JSONResponse({"error": "invalidation is off: set cache.admin_token"}, status_code=403)
        if not hmac.compare_digest(request.headers.get("authorization", ""), f"Bearer {token}"):
            return JSONResponse({"error": "a valid admin bearer token is required"}, status_code=401)
        try:
            body = orjson.loads(await request.body())
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            return JSONResponse(await invalidate(holder["endpoint"].sources, body))
        except (ValueError, orjson.JSONDecodeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except SourceError as exc:
            return JSONResponse({"error": str(exc), "code": exc.code}, status_code=503)

    async def events(request: Request) -> Response:
        """A source's signed change events (server/events.py): checked, then applied; 202 once applied."""
        try:
            body = await read_body(request, config.events.max_body_bytes)
            accepted = await webhooks.admit(request.headers, body, holder["seen"])
        except PayloadTooLarge:
            return JSONResponse({"error": f"the body is larger than {config.events.max_body_bytes} bytes",
                                 "code": "PAYLOAD_TOO_LARGE"}, status_code=413)
        except Refused as exc:
            return JSONResponse({"error": str(exc), "code": exc.code}, status_code=exc.status)
        dropped = await holder["changes"].apply(accepted)
        return JSONResponse({"accepted": len(accepted), "dropped": dropped}, status_code=202)

    channels = [c.name for c in Channel]

    async def incoming(request: Request) -> Response:
        """A contact starting (server/contacts.py): announced to every gateway's incomingContacts subscribers."""
        try:
            body = await read_body(request, config.events.max_body_bytes)
            announced = contacts.announcement(webhooks, config.sources, channels, request.headers, body)
        except PayloadTooLarge:
            return JSONResponse({"error": f"the body is larger than {config.events.max_body_bytes} bytes",
                                 "code": "PAYLOAD_TOO_LARGE"}, status_code=413)
        except Refused as exc:
            return JSONResponse({"error": str(exc), "code": exc.code}, status_code=exc.status)
        await holder["endpoint"].sources.contacts.publish(announced)
        return JSONResponse({"announced": True}, status_code=202)

    async def graphql_ws(websocket: WebSocket) -> None:
        await holder["live"].websocket(websocket)

    routes = [
        Route("/graphql", graphql_post, methods=["POST"]),
        WebSocketRoute("/graphql", graphql_ws),
        Route("/graphql", graphql_get, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/cache/invalidate", cache_invalidate, methods=["POST"]),
        Route("/events", events, methods=["POST"]),
        Route("/events/contacts", incoming, methods=["POST"]),
        Route("/status", status_page, methods=["GET"]),
        Route("/status.json", status_json, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    if config.metrics.enabled:
        routes.append(Route("/metrics", metrics_page, methods=["GET"]))
    enable_access_log()
    count_requests(config.metrics, registry)
    return Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(Observed), *cors_middleware(config.cors)])
