"""Parsed and validated documents, cached by query text.

strawberry's ParserCache and ValidationCache do this job, but ValidationCache keys its LRU on the
parsed document, and hashing a DocumentNode walks the whole AST: 70 us per request for the full
Customer view, every time (measured). Keying both caches on the query text costs one string hash.

The operation limits (server/limits.py) hang off the same two steps: parsing stops at `max_tokens`
(ours and strawberry's fallback parse, through `parse_options`), and a valid document's shape is
checked against the limits before anything executes, computed once per query text.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError, OperationDefinitionNode, parse
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from resolvers.errors import ClientError
from server.limits import Limits
from telemetry.request import current

MAXSIZE = 256  # bounded: a public endpoint must not let unique query texts grow memory
_documents: OrderedDict[str, Any] = OrderedDict()
_errors: OrderedDict[tuple[int, str], list[Any]] = OrderedDict()


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    if len(cache) > MAXSIZE:
        cache.popitem(last=False)


class OperationNameRequired(ClientError):
    code = "BAD_REQUEST"


def _limits(ctx: Any) -> Limits | None:
    """The request's limits (the endpoint puts them on its context), when they are on."""
    limits = getattr(ctx.context, "limits", None)
    return limits if limits is not None and limits.enabled else None


def cached_document(query: str) -> Any:
    """The parsed document of this query text when it is cached here (kept as recently used), else None."""
    document = _documents.get(query)
    if document is not None:
        _documents.move_to_end(query)
    return document


def operation_of(document: Any, name: str | None) -> OperationDefinitionNode | None:
    """The operation `name` selects (the first one when None), as graphql-core's GetOperation would."""
    for d in document.definitions:
        if isinstance(d, OperationDefinitionNode) and (name is None or (d.name and d.name.value == name)):
            return d
    return None


def note_operation(document: Any, name: str | None) -> None:
    """The request's operation name and type, for the access log, metrics and its span."""
    facts = current()
    op = operation_of(document, name) if facts is not None else None
    if facts is not None and op is not None:
        facts.operation_name = op.name.value if op.name else None
        facts.operation_type = op.operation.value


class QueryCache(SchemaExtension):
    def on_parse(self) -> Iterator[None]:
        ctx = self.execution_context
        query = ctx.query or ""
        document = _documents.get(query)
        if document is None:
            limits = _limits(ctx)
            if limits is not None:
                if limits.over_tokens(query):
                    raise limits.too_many_tokens()
                ctx.parse_options["max_tokens"] = limits.max_tokens  # strawberry's own parse below too
            try:
                document = parse(query, **ctx.parse_options)
            except GraphQLError as exc:
                if limits is not None and "tokens" in exc.message and "Parsing aborted" in exc.message:
                    raise limits.too_many_tokens() from None
                yield  # leave it to strawberry, which parses again and reports the error its own way
                return
            _remember(_documents, query, document)
        else:
            _documents.move_to_end(query)
        # GraphQL spec, GetOperation(): a document of several operations needs an operationName.
        # (strawberry would run the first one.) Its private name: the property falls back to the first.
        if getattr(ctx, "_provided_operation_name", None) is None and len(document.definitions) > 1 and \
                sum(isinstance(d, OperationDefinitionNode) for d in document.definitions) > 1:
            raise GraphQLError("the document holds several operations: operationName is required",
                               original_error=OperationNameRequired("operationName is required"))
        ctx.graphql_document = document
        note_operation(document, getattr(ctx, "_provided_operation_name", None))
        yield

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        query = ctx.query or ""
        key = (id(ctx.schema), query)
        # The limits first: an over-limit document is never validated (validation of 200 aliased full
        # views costs ~100 ms of CPU; the limits' walk, cached per query text, a fraction of that).
        limits = _limits(ctx)
        errors = None
        if limits is not None:
            errors = limits.check(ctx.schema._schema, ctx.graphql_document, query,
                                  getattr(ctx, "_provided_operation_name", None), ctx.variables) or None
        if errors is None:
            errors = _errors.get(key)
            if errors is None:
                errors = validate_document(ctx.schema._schema, ctx.graphql_document, ctx.validation_rules)
                _remember(_errors, key, errors)
        ctx.pre_execution_errors = errors
        yield
