"""GraphQL over HTTP (the GraphQL-over-HTTP spec): POST and GET /graphql, status codes, media types."""

from __future__ import annotations

import asyncio
import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import strawberry
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from resolvers.context import Context, Sources
from server.apq import ApqError, ApqStore
from server.auth import Authenticator, AuthError, Principal
from server.errors import format_error, is_request_error
from server.limits import Disconnected, Limits, PayloadTooLarge, guarded, read_body, refused_by
from server.operations import Registry, check_allowed
from server.policy import Policies
from server.response_cache import Lookup
from telemetry.request import current

log = logging.getLogger(__name__)
GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
GRAPHIQL_HTML = Path(__file__).resolve().parent.parent / "static" / "graphiql" / "index.html"
# GraphiQL's editor when no example document is configured (`graphiql.example`).
BLANK_EXAMPLE = "# Ask for customers by golden id, e.g.\n{ customer(id: \"C-000001\") { id } }\n"


@lru_cache(maxsize=128)  # per distinct header string: clients send a handful; bounded against the rest
def _accepted(accept: str) -> str | None:
    """RFC 9110 content negotiation between our two types: the highest q wins, q=0 is "not acceptable",
    the most specific range sets a type's q, and a tie between the two named outright goes to
    graphql-response+json."""
    best: dict[str, tuple[int, float]] = {}  # type -> (specificity of the range that set it, q)
    for part in accept.split(","):
        fields = part.split(";")
        rng = fields[0].strip().lower()
        q = 1.0
        for param in fields[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        for media in (GRAPHQL_RESPONSE, JSON):
            specificity = 3 if rng == media else 2 if rng == "application/*" else 1 if rng == "*/*" else 0
            if specificity and specificity >= best.get(media, (0, 0.0))[0]:
                best[media] = (specificity, q)
    # At equal q a type named outright beats one a wildcard covers; a wildcard alone (curl's */*) keeps
    # the legacy application/json, as before.
    ranked = sorted(((q, spec, (media == GRAPHQL_RESPONSE) == (spec == 3), media)
                     for media, (spec, q) in best.items() if q > 0), reverse=True)
    return ranked[0][3] if ranked else None


def _media_type(request: Request) -> str | None:
    """The response type the client accepts; None when it accepts neither JSON type."""
    accept = request.headers.get("accept", "")
    if not accept:
        return JSON  # legacy clients send no Accept: the spec's advice is application/json
    return _accepted(accept)


def _reply(payload: dict[str, Any], status: int, media: str) -> Response:
    facts = current()
    if facts is not None:
        errors = payload.get("errors")
        if errors:
            facts.error_codes = [(e.get("extensions") or {}).get("code") or "INTERNAL_SERVER_ERROR" for e in errors]
            facts.partial = payload.get("data") is not None
    return Response(orjson.dumps(payload), status_code=status, media_type=media)


def _refused(auth_failure: str | None = None, limit: str | None = None) -> None:
    """Why the request was refused, for the metrics: an authentication reason or the limit."""
    facts = current()
    if facts is not None:
        facts.auth_failure = auth_failure or facts.auth_failure
        facts.limit = limit or facts.limit


def _bad_request(message: str, media: str, status: int = 400) -> Response:
    return _reply({"errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]}, status, media)


def _too_large(cap: int, media: str, status: int = 413) -> Response:
    _refused(limit="max_body_bytes")
    return _reply({"errors": [{"message": f"the request is larger than {cap} bytes",
                               "extensions": {"code": "PAYLOAD_TOO_LARGE",
                                              "limit": {"name": "max_body_bytes", "value": cap}}}]}, status, media)


def _too_slow(deadline_s: float, media: str) -> Response:
    """The deadline passed and the work was cancelled: 504 with graphql-response+json, 200 with the
    legacy type (which answers 200 to every well-formed request); no partial data either way."""
    _refused(limit="request_deadline_s")
    return _reply({"errors": [{"message": f"the request did not finish within {deadline_s:g} s; its work was cancelled",
                               "extensions": {"code": "DEADLINE_EXCEEDED",
                                              "limit": {"name": "request_deadline_s", "value": deadline_s}}}]},
                  504 if media == GRAPHQL_RESPONSE else 200, media)


def _params(raw: Any) -> tuple[str, dict[str, Any] | None, str | None] | str:
    """(query, variables, operationName) from a request's parameters, or what is wrong with them."""
    if not isinstance(raw, dict):
        return "the request body must be a JSON object"
    query, variables, op = raw.get("query"), raw.get("variables"), raw.get("operationName")
    if not isinstance(query, str) or not query.strip():
        return "'query' must be a non-empty string"
    if variables is not None and not isinstance(variables, dict):
        return "'variables' must be an object"
    if op is not None and not isinstance(op, str):
        return "'operationName' must be a string"
    return query, variables, op


def _html_json(value: Any) -> str:
    return json.dumps(value).replace("</", "<\\/")


def _example(path: str) -> str:
    """GraphiQL's first document: the configured file, or a blank one (with a warning when it is missing:
    a cosmetic setting does not stop the gateway)."""
    if not path:
        return BLANK_EXAMPLE
    try:
        return Path(path).read_text()
    except OSError as exc:
        log.warning("graphiql.example %s cannot be read (%s); GraphiQL opens blank", path, exc.strerror or exc)
        return BLANK_EXAMPLE


def result_payload(result: Any, context: Context) -> tuple[dict[str, Any], bool]:
    """A result as the client sees it (data, errors, extensions stale and masked), and whether it is a
    request error (nothing ran: no data key at all)."""
    payload: dict[str, Any] = {}
    errors = result.errors or []
    request_error = bool(result.data is None and errors and all(is_request_error(e) for e in errors))
    if not request_error:
        payload["data"] = result.data
    if errors or context.soft_errors:
        payload["errors"] = [format_error(e) for e in errors] + context.soft_errors
    if context.stale:
        payload["extensions"] = {"stale": context.stale}
    if context.masked:  # which fields carry masked values, and how they were masked
        payload.setdefault("extensions", {})["masked"] = context.masked
    return payload, request_error


class GraphQLEndpoint:
    def __init__(self, schema: strawberry.Schema, sources: Sources, auth: Authenticator | None = None,
                 policies: Policies | None = None, graphiql_headers: dict[str, str] | None = None,
                 apq: ApqStore | None = None, registry: Registry | None = None) -> None:
        self.apq = apq  # Automatic Persisted Queries (server/apq.py); None: PersistedQueryNotSupported
        self.registry = registry  # the allow-list of roles with `operations: registered` (server/operations.py)
        self.schema = schema
        self.sources = sources
        self.auth = auth  # None: `auth: {mode: none}`, every caller trusted
        self.policies = policies
        self.live: Any = None  # the subscription transports (server/subscriptions.py), set once they exist
        self.limits = Limits(sources.config.limits, sources.config.max_ids)  # and the shapes of documents seen
        cache = sources.cache
        self.responses = cache.tiers.responses if cache is not None and not sources.config.naive else None
        document = _example(sources.config.graphiql.example)
        self.graphiql = GRAPHIQL_HTML.read_text().replace("__DEFAULT_QUERY_JSON__", _html_json(document)) \
            .replace("__DEFAULT_HEADERS_JSON__", _html_json(json.dumps(graphiql_headers or {}, indent=2)))

    async def authenticate(self, request: Request, media: str) -> Response | None:
        """The caller's principal on request.state, or the 401/403 answer (before any body is read)."""
        if self.auth is None:
            request.state.principal = None
            return None
        try:
            principal = request.state.principal = await self.auth.authenticate(request.headers.get("authorization"))
        except AuthError as exc:
            _refused(auth_failure=exc.reason)
            payload = {"errors": [{"message": str(exc), "extensions": {"code": exc.code}}]}
            headers = {"www-authenticate": 'Bearer realm="customer-graph"'} if exc.status == 401 else None
            response = _reply(payload, exc.status, media)
            response.headers.update(headers or {})
            return response
        facts = current()
        if facts is not None:
            facts.subject, facts.role = principal.subject, principal.role
        return None

    async def persisted(self, request: Request, raw: Any, media: str) -> Response | None:
        """APQ (server/apq.py): a persistedQuery extension resolved into raw["query"], or the error answer."""
        if self.apq is None or not isinstance(raw, dict) or raw.get("extensions") is None:
            return None
        principal = getattr(request.state, "principal", None)
        restricted = principal is not None and principal.policy.operations == "registered"
        # A role limited to the allow-list resolves hashes but registers nothing.
        found = await self.apq.resolve(raw.get("query"), raw["extensions"], register=not restricted)
        if isinstance(found, ApqError):
            payload = {"errors": [{"message": found.message, "extensions": {"code": found.code}}]}
            response = _reply(payload, found.status, media)
            response.headers.update(found.headers or {})
            return response
        if found is not None:
            raw["query"] = found
        return None

    async def run(self, request: Request, params: tuple[str, dict[str, Any] | None, str | None], media: str,
                  allowed: set[OperationType]) -> Response:
        query, variables, op = params
        no_cache = "no-cache" in request.headers.get("cache-control", "").lower()
        principal: Principal | None = request.state.principal
        if principal is not None and principal.policy.operations == "registered":
            denied = check_allowed(principal.policy, self.registry, query)
            if denied is not None:  # an authorization decision, like 401/403 from auth: 403 for either media type
                _refused(auth_failure="not_registered")
                return _reply({"errors": [{"message": denied, "extensions": {"code": "FORBIDDEN"}}]}, 403, media)
        schema = self.schema if principal is None or self.policies is None else self.policies.schema(principal.role)
        limits = self.limits
        lookup = None
        if self.responses is not None:  # one scope per role (one when auth is off): never another role's answer
            lookup = Lookup(self.responses, principal.role if principal is not None else "", query, op, variables,
                            no_cache)
            hit = lookup.hit(schema, limits, variables, media)
            if hit is not None:
                return hit
        context = Context(self.sources, no_cache=no_cache, principal=principal, limits=limits)
        work = schema.execute(query, variable_values=variables, operation_name=op,
                              context_value=context, allowed_operation_types=allowed)
        try:
            if limits.enabled:  # cancelled when the client goes away or the deadline passes (server/limits.py)
                deadline = request.scope.get("cg.deadline") or asyncio.get_running_loop().time() + limits.deadline_s
                result = await guarded(request.receive, work, deadline)
            else:
                result = await work
        except InvalidOperationTypeError as exc:
            if exc.operation_type is OperationType.SUBSCRIPTION:
                return _bad_request("subscriptions are not supported as plain GET or POST: send them over WebSocket "
                                    "(graphql-transport-ws) or POST them with Accept: text/event-stream", media)
            return _bad_request("GET serves queries only; send mutations with POST", media, 405)
        except CannotGetOperationTypeError as exc:
            return _bad_request(exc.as_http_error_reason(), media)
        except TimeoutError:
            return _too_slow(limits.deadline_s, media)
        except Disconnected:
            return Response(status_code=499)  # nobody reads it: the client has gone, its work is cancelled
        errors = result.errors or []
        if errors:
            _refused(limit=refused_by(errors))
        payload, request_error = result_payload(result, context)
        if lookup is not None:
            settled = lookup.settle(payload, context.reads, media)
            if settled is not None:
                return settled
        # application/json answers 200 to any well-formed request; the newer type says 4xx when nothing ran.
        status = 400 if request_error and media == GRAPHQL_RESPONSE else 200
        return _reply(payload, status, media)

    async def post(self, request: Request) -> Response:
        # GraphQL over SSE (server/subscriptions.py): refusals before the stream are JSON, as here.
        sse = self.live is not None and "text/event-stream" in request.headers.get("accept", "").lower()
        media = JSON if sse else _media_type(request)
        if media is None:
            return _bad_request(f"Accept must allow {GRAPHQL_RESPONSE} or {JSON}", JSON, 406)
        refused = await self.authenticate(request, media)
        if refused is not None:
            return refused
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != JSON:
            return _bad_request("Content-Type must be application/json", media, 415)
        limits = self.limits
        try:
            if limits.enabled:  # refused while reading, never buffered whole (server/limits.py)
                deadline = request.scope["cg.deadline"] = asyncio.get_running_loop().time() + limits.deadline_s
                async with asyncio.timeout_at(deadline):
                    body = await read_body(request, limits.max_body_bytes)
            else:
                body = await request.body()
            raw = orjson.loads(body)
        except PayloadTooLarge:
            return _too_large(limits.max_body_bytes, media)
        except ClientDisconnect:
            return Response(status_code=499)  # gone before its body was read
        except TimeoutError:
            return _too_slow(limits.deadline_s, media)
        except orjson.JSONDecodeError:
            return _bad_request("the request body is not valid JSON", media)
        refused = await self.persisted(request, raw, media)
        if refused is not None:
            return refused
        if sse:
            assert self.live is not None
            return await self.live.sse(request, raw)
        params = _params(raw)
        if isinstance(params, str):
            return _bad_request(params, media)
        return await self.run(request, params, media, {OperationType.QUERY, OperationType.MUTATION})

    async def get(self, request: Request) -> Response:
        if "query" not in request.query_params and "text/html" in request.headers.get("accept", ""):
            return HTMLResponse(self.graphiql)
        media = _media_type(request)
        if media is None:
            return _bad_request(f"Accept must allow {GRAPHQL_RESPONSE} or {JSON}", JSON, 406)
        refused = await self.authenticate(request, media)
        if refused is not None:
            return refused
        limits = self.limits
        if limits.enabled and len(request.scope.get("query_string", b"")) > limits.max_body_bytes:
            return _too_large(limits.max_body_bytes, media, 414)  # the same cap as a body, on the URI
        raw: dict[str, Any] = dict(request.query_params)
        if "variables" in raw:
            try:
                raw["variables"] = orjson.loads(raw["variables"])
            except orjson.JSONDecodeError:
                return _bad_request("'variables' is not valid JSON", media)
        refused = await self.persisted(request, raw, media)
        if refused is not None:
            return refused
        params = _params(raw)
        if isinstance(params, str):
            return _bad_request(params, media)
        return await self.run(request, params, media, {OperationType.QUERY})  # GET must not change anything
