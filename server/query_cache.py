"""Parsed and validated documents, cached by query text.

strawberry's ParserCache and ValidationCache do this job, but ValidationCache keys its LRU on the
parsed document, and hashing a DocumentNode walks the whole AST: 70 us per request for the full
Customer view, every time (measured). Keying both caches on the query text costs one string hash.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError, parse
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

MAXSIZE = 256  # bounded: a public endpoint must not let unique query texts grow memory
_documents: OrderedDict[str, Any] = OrderedDict()
_errors: OrderedDict[tuple[int, str], list[Any]] = OrderedDict()


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    if len(cache) > MAXSIZE:
        cache.popitem(last=False)


class QueryCache(SchemaExtension):
    def on_parse(self) -> Iterator[None]:
        ctx = self.execution_context
        query = ctx.query or ""
        document = _documents.get(query)
        if document is None:
            try:
                document = parse(query, **ctx.parse_options)
            except GraphQLError:
                yield  # leave it to strawberry, which parses again and reports the error its own way
                return
            _remember(_documents, query, document)
        else:
            _documents.move_to_end(query)
        ctx.graphql_document = document
        yield

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        key = (id(ctx.schema), ctx.query or "")
        errors = _errors.get(key)
        if errors is None:
            errors = validate_document(ctx.schema._schema, ctx.graphql_document, ctx.validation_rules)
            _remember(_errors, key, errors)
        ctx.pre_execution_errors = errors
        yield
