"""The response cache's part in answering /graphql (the store and its tags are cache/responses.py).

Before executing, a request looks for its answer under (role, operationName, query, variables); a fresh
one is served as stored, marked `extensions.cache: {"response": "hit", "age_s": ...}`, once the allow-list
(before this) and the operation limits have passed: only execution is skipped. After executing, an
error-free answer to a query is kept; an answer whose errors are a source's fault is replaced by the
expired one within its grace, marked `{"response": "stale", ...}`. `Cache-Control: no-cache` never
reads it, and its fresh answer replaces the stored one.
"""

from __future__ import annotations

from typing import Any

from graphql import OperationType
from starlette.responses import Response

from cache.responses import Reads, ResponseCache, Stored, response_key
from server.limits import Limits
from server.query_cache import cached_document, note_operation, operation_of
from telemetry.request import current

# Errors that say a source let the answer down: a stored answer within its grace is better than these.
SOURCE_FAILURES = frozenset({"SOURCE_UNAVAILABLE", "SOURCE_TIMEOUT", "SOURCE_BAD_RESPONSE", "CIRCUIT_OPEN"})


def _note(result: str) -> None:
    facts = current()
    if facts is not None:
        facts.response_cache = result


class Lookup:
    """One request's use of the response cache."""

    __slots__ = ("cache", "key", "since", "stored", "no_cache", "query", "operation")

    def __init__(self, cache: ResponseCache, scope: str, query: str, operation: str | None,
                 variables: dict[str, Any] | None, no_cache: bool) -> None:
        self.cache, self.no_cache, self.query, self.operation = cache, no_cache, query, operation
        self.key = response_key(scope, operation, query, variables)
        self.since = cache.epoch()
        self.stored: Stored | None = None if no_cache else cache.get(self.key)

    def hit(self, schema: Any, limits: Limits, variables: dict[str, Any] | None, media: str) -> Response | None:
        """The stored answer when it is fresh and the request is within the limits; None: execute."""
        stored = self.stored
        if stored is None:
            return None
        now = self.cache.clock()
        if not stored.fresh(now):
            return None
        document = cached_document(self.query)
        if document is None:  # parsed documents are bounded too: this one is parsed again by executing
            return None
        if limits.enabled and limits.check(schema._schema, document, self.query, self.operation, variables):
            return None  # executing reports the limit's error
        note_operation(document, self.operation)
        _note("hit")
        return Response(stored.body({"response": "hit", "age_s": round(now - stored.stored_at, 3)}),
                        media_type=media)

    def settle(self, payload: dict[str, Any], reads: Reads | None, media: str) -> Response | None:
        """After executing: keep an error-free query's answer, or the stale one for a source's failure
        (its Response; None: answer the payload)."""
        document = cached_document(self.query)
        op = operation_of(document, self.operation) if document is not None else None
        if op is None or op.operation is not OperationType.QUERY:
            return None
        _note("bypass" if self.no_cache else "miss")
        errors = payload.get("errors")
        if not errors:
            if reads is not None:
                self.cache.put(self.key, payload, reads, self.since)
            return None
        stored = self.stored
        if stored is None or not self.cache.holds(self.key, stored):  # none, or invalidated meanwhile
            return None
        if not any((e.get("extensions") or {}).get("code") in SOURCE_FAILURES for e in errors):
            return None
        _note("stale")
        age = round(self.cache.clock() - stored.stored_at, 3)
        return Response(stored.body({"response": "stale", "age_s": age}), media_type=media)
