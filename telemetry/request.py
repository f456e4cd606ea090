"""The facts of the request being served, gathered as it runs and handed to the sinks at its end.

The server opens one `RequestFacts` per HTTP request (server/observe.py) in a context variable; asyncio
copies the context into every task and callback the request starts, so a connector or the cache deep
below adds what it learns with `current()` and no argument threaded through the layers. Sinks (the access
log, metrics, the request's span) are registered once and called with the finished facts.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

log = logging.getLogger("customer_graph")
REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")  # what we accept from a client's X-Request-Id


@dataclass(slots=True)
class RequestFacts:
    request_id: str
    method: str
    path: str
    started: float = field(default_factory=time.perf_counter)
    operation_name: str | None = None
    operation_type: str | None = None  # query, mutation or subscription, once the document is parsed
    status: int = 0
    duration_s: float = 0.0
    error_codes: list[str] = field(default_factory=list)  # each error's extensions.code, in order
    subject: str | None = None
    role: str | None = None
    cache_hits: int = 0  # records answered from the cache
    sources: set[str] = field(default_factory=set)  # sources this request called (cache misses that went out)
    auth_failure: str | None = None  # why authentication or authorization refused it (a bounded reason)
    limit: str | None = None  # the operation limit that refused it (its setting's name, or int_range)
    response_cache: str | None = None  # a query with the response cache on: hit, stale, miss or bypass (no-cache)

    partial: bool = False  # the answer carried data beside its errors

    @property
    def outcome(self) -> str:
        """success; partial (data, and errors that are a source's or ours); error (no data, by a source's
        fault or ours: 5xx, or only such errors); rejected (the client's request refused: 4xx, or errors
        that are all the client's own, such as a customer not found or a limit)."""
        if self.status >= 500:
            return "error"
        if 400 <= self.status < 500:
            return "rejected"
        if not self.error_codes:
            return "success"
        if any(c in FAILURE_CODES for c in self.error_codes):
            return "partial" if self.partial else "error"
        return "rejected"


# Error codes that say a source or the gateway let the client down; every other code is the client's own.
FAILURE_CODES = frozenset({"SOURCE_UNAVAILABLE", "SOURCE_TIMEOUT", "SOURCE_BAD_RESPONSE", "CIRCUIT_OPEN",
                           "INTERNAL_SERVER_ERROR", "DEADLINE_EXCEEDED"})

_current: ContextVar[RequestFacts | None] = ContextVar("customer_graph_request", default=None)
Sink = Callable[[RequestFacts], None]
_sinks: list[Sink] = []


def current() -> RequestFacts | None:
    """The facts of the request this code runs for, or None outside a request (start-up, probes)."""
    return _current.get()


def new_id() -> str:
    return os.urandom(8).hex()


def request_id(given: str | None) -> str:
    """The client's X-Request-Id when it is a sane token, else a new one (never an unbounded or odd
    string into our logs)."""
    return given if given and REQUEST_ID.fullmatch(given) else new_id()  # match's `$` lets a final newline in


def begin(facts: RequestFacts) -> Token[RequestFacts | None]:
    return _current.set(facts)


def end(facts: RequestFacts, token: Token[RequestFacts | None]) -> None:
    """The request is over: its duration is set and every sink sees it (a failing sink is logged, never
    the client's problem)."""
    facts.duration_s = time.perf_counter() - facts.started
    _current.reset(token)
    for sink in _sinks:
        try:
            sink(facts)
        except Exception:  # noqa: BLE001 - observability must never break serving
            log.exception("request sink %s failed", getattr(sink, "__name__", sink))


def add_sink(sink: Sink) -> None:
    if sink not in _sinks:
        _sinks.append(sink)


def remove_sink(sink: Sink) -> None:
    if sink in _sinks:
        _sinks.remove(sink)


def count_hits(n: int) -> None:
    """`n` records of the current request answered from the cache."""
    facts = _current.get()
    if facts is not None:
        facts.cache_hits += n


def called(source: str) -> None:
    """The current request called `source` (the cache did not answer it all)."""
    facts = _current.get()
    if facts is not None:
        facts.sources.add(source)
