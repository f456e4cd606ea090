"""GraphQL errors as clients see them: a code always, a source for source failures, no internals."""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError

from connectors.base import SourceError, SourceRejected
from resolvers.errors import ClientError

log = logging.getLogger("customer_graph")


def is_request_error(error: GraphQLError) -> bool:
    """Parse, validation and variable errors: the request never executed (they carry no path)."""
    return error.path is None


def format_error(error: GraphQLError) -> dict[str, Any]:
    original = error.original_error
    out = error.formatted
    if isinstance(error, GraphQLSyntaxError):
        code = "GRAPHQL_PARSE_FAILED"
    elif isinstance(original, (SourceError, SourceRejected, ClientError)):
        return out  # message and extensions are made for clients
    elif original is None and (out.get("extensions") or {}).get("code"):
        return out  # a rule of ours that set its own code (e.g. FORBIDDEN introspection)
    elif original is None or isinstance(original, GraphQLError):  # validation, or variables that do not coerce
        code = "BAD_USER_INPUT" if error.message.startswith("Variable") else "GRAPHQL_VALIDATION_FAILED"
    else:
        out["message"] = "internal error"  # the detail is in the server log, never with the client
        code = "INTERNAL_SERVER_ERROR"
    out["extensions"] = {**(out.get("extensions") or {}), "code": code}
    return out


def log_errors(errors: list[GraphQLError]) -> None:
    for error in errors:
        original = error.original_error
        if isinstance(original, SourceError):
            log.warning("source %s failed (%s) at %s: %s", original.source, original.code, error.path, original.detail)
        elif isinstance(original, SourceRejected):
            log.info("source %s rejected the input (%s) at %s: %s", original.source, original.code, error.path,
                     original.detail)
        elif original is None or isinstance(original, (ClientError, GraphQLError)):
            log.info("client error: %s", error.message)
        else:
            log.error("unexpected error at %s", error.path, exc_info=original)
