"""GraphQL over HTTP (the GraphQL-over-HTTP spec): POST and GET /graphql, status codes, media types."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import strawberry
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from resolvers.context import Context, Sources
from server.errors import format_error, is_request_error

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
GRAPHIQL_HTML = Path(__file__).resolve().parent.parent / "static" / "graphiql" / "index.html"
EXAMPLE_QUERY = """# Before a cross-sell: other accounts? an offer in the last 30 days? an unresolved ticket?
query PointOfSale {
  customer(id: "C-000042") {
    id
    name
    segment
    identities { system id }
    offers(withinDays: 30) { campaignName offerCode sentAt }
    tickets(unresolved: true) { id subject status priority }
    accounts { number status balance overdue }
    loyalty { tier points }
  }
}
"""


def _media_type(request: Request) -> str | None:
    """The response type the client accepts; None when it accepts neither JSON type."""
    accept = request.headers.get("accept", "")
    if not accept or GRAPHQL_RESPONSE in accept:
        return GRAPHQL_RESPONSE if accept else JSON
    if JSON in accept or "*/*" in accept or "application/*" in accept:
        return JSON
    return None


def _reply(payload: dict[str, Any], status: int, media: str) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=media)


def _bad_request(message: str, media: str, status: int = 400) -> Response:
    return _reply({"errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]}, status, media)


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


class GraphQLEndpoint:
    def __init__(self, schema: strawberry.Schema, sources: Sources) -> None:
        self.schema = schema
        self.sources = sources
        self.graphiql = GRAPHIQL_HTML.read_text().replace(
            "__DEFAULT_QUERY_JSON__", json.dumps(EXAMPLE_QUERY).replace("</", "<\\/"))

    async def run(self, request: Request, params: tuple[str, dict[str, Any] | None, str | None], media: str,
                  allowed: set[OperationType]) -> Response:
        query, variables, op = params
        no_cache = "no-cache" in request.headers.get("cache-control", "").lower()
        context = Context(self.sources, no_cache=no_cache)
        try:
            result = await self.schema.execute(query, variable_values=variables, operation_name=op,
                                               context_value=context, allowed_operation_types=allowed)
        except InvalidOperationTypeError:
            return _bad_request("GET serves queries only; send mutations with POST", media, 405)
        except CannotGetOperationTypeError as exc:
            return _bad_request(exc.as_http_error_reason(), media)
        payload: dict[str, Any] = {}
        errors = result.errors or []
        request_error = result.data is None and errors and all(is_request_error(e) for e in errors)
        if not request_error:
            payload["data"] = result.data
        if errors or context.soft_errors:
            payload["errors"] = [format_error(e) for e in errors] + context.soft_errors
        if context.stale:
            payload["extensions"] = {"stale": context.stale}
        # application/json answers 200 to any well-formed request; the newer type says 4xx when nothing ran.
        status = 400 if request_error and media == GRAPHQL_RESPONSE else 200
        return _reply(payload, status, media)

    async def post(self, request: Request) -> Response:
        media = _media_type(request)
        if media is None:
            return _bad_request(f"Accept must allow {GRAPHQL_RESPONSE} or {JSON}", JSON, 406)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != JSON:
            return _bad_request("Content-Type must be application/json", media, 415)
        try:
            raw = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _bad_request("the request body is not valid JSON", media)
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
        raw: dict[str, Any] = dict(request.query_params)
        if "variables" in raw:
            try:
                raw["variables"] = orjson.loads(raw["variables"])
            except orjson.JSONDecodeError:
                return _bad_request("'variables' is not valid JSON", media)
        params = _params(raw)
        if isinstance(params, str):
            return _bad_request(params, media)
        return await self.run(request, params, media, {OperationType.QUERY})  # GET must not change anything
