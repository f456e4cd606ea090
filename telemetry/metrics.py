"""Prometheus metrics (prometheus-client): their definitions, the request sink, and the exposition.

Names start `customer_graph_` and follow Prometheus conventions (base units, `_total` counters, `_seconds`
durations). Every label set is bounded: sources, entities and actions come from the declarations, codes and
reasons from fixed lists, operation names from `OperationNames` (registered ones, the first N others seen,
then "(other)"); never a customer id, a key or query text.

Hot paths pay a few increments on label children bound once (`SourceCalls`, one per source and entity;
the request sink's children kept by label tuple). Cache counts and the state gauges (circuits, bulkheads,
cache size) are read from the objects that keep them anyway: `Mirror`s copy those totals in at each scrape
and, with several workers, every second (server/metrics.py), so no cache hit costs a metric write.

With `--workers N` prometheus-client runs in multiprocess mode: PROMETHEUS_MULTIPROC_DIR is set before any
worker imports it (gateway.py, `multiprocess_dir`), every worker writes its values to files there, and the
worker answering a scrape merges them all (MultiProcessCollector). Gauges say how the workers' values
combine: circuit state the worst (`livemax`), sizes and queues the sum of live workers (`livesum`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextvars import ContextVar, Token
from pathlib import Path

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    multiprocess,
)
from prometheus_client.exposition import choose_encoder

from telemetry.request import RequestFacts, add_sink, remove_sink

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROCESS = MULTIPROC_ENV in os.environ  # how prometheus-client chose its value class when imported
disable_created_metrics()  # the `_created` series double every counter's output and nobody graphs them

SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
KEYS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
REQUEST = ("operation_name", "operation_type", "outcome")
CALL = ("source", "entity", "operation")  # operation: read (entity) or write (the action's name as entity)

REQUESTS = Counter("customer_graph_requests", "GraphQL requests, by operation and outcome "
                   "(success, partial, error, rejected)", REQUEST)
REQUEST_SECONDS = Histogram("customer_graph_request_duration_seconds", "GraphQL requests' duration, from the "
                            "first byte in to the answer sent", REQUEST, buckets=SECONDS)
AUTH_REJECTIONS = Counter("customer_graph_auth_rejections", "Requests refused by authentication or "
                          "authorization, by reason", ("reason",))
LIMIT_REJECTIONS = Counter("customer_graph_limit_rejections", "Requests refused by an operation limit, "
                           "by the limit's setting (int_range: an Int argument out of its bounds)", ("reason",))

SOURCE_CALLS = Counter("customer_graph_source_calls", "Calls to a source (one per batch of keys), refused ones "
                       "included", CALL)
SOURCE_SECONDS = Histogram("customer_graph_source_call_duration_seconds", "Duration of source calls that went "
                           "out, retries included", CALL, buckets=SECONDS)
SOURCE_KEYS = Histogram("customer_graph_source_call_keys", "Keys asked for in one read call",
                        ("source", "entity"), buckets=KEYS)
SOURCE_ERRORS = Counter("customer_graph_source_errors", "Failed source calls, by the code clients see",
                        (*CALL, "code"))
SOURCE_RETRIES = Counter("customer_graph_source_retries", "Retries of a source request after a retryable "
                         "failure", CALL)
CIRCUIT_STATE = Gauge("customer_graph_source_circuit_state", "The source's circuit breaker: 0 closed, "
                      "1 half open, 2 open (the worst of the workers)", ("source",), multiprocess_mode="livemax")
CIRCUIT_OPENS = Counter("customer_graph_source_circuit_opens", "Times the source's circuit opened", ("source",))
BULKHEAD_WAITING = Gauge("customer_graph_source_bulkhead_waiting", "Calls waiting for a free slot of the "
                         "source's bulkhead", ("source",), multiprocess_mode="livesum")
BULKHEAD_IN_FLIGHT = Gauge("customer_graph_source_bulkhead_in_flight", "Calls holding a slot of the source's "
                           "bulkhead", ("source",), multiprocess_mode="livesum")
BULKHEAD_REJECTED = Counter("customer_graph_source_bulkhead_rejected", "Calls refused because the source's "
                            "bulkhead queue was full", ("source",))

CACHE_HITS = Counter("customer_graph_cache_hits", "Records answered fresh by a cache tier (l1 in-process, "
                     "l2 Redis)", ("tier", "source"))
CACHE_MISSES = Counter("customer_graph_cache_misses", "Records a cache tier did not hold fresh",
                       ("tier", "source"))
CACHE_STALE = Counter("customer_graph_cache_stale_served", "Records served past their TTL because their "
                      "source failed (stale-if-error)", ("source",))
CACHE_EVICTIONS = Counter("customer_graph_cache_evictions", "Records evicted to stay within the tier's bounds",
                          ("tier", "source"))
CACHE_ENTRIES = Gauge("customer_graph_cache_entries", "Records (tier responses: whole responses) held by the tier "
                      "(the sum over workers)",
                      ("tier",), multiprocess_mode="livesum")
CACHE_BYTES = Gauge("customer_graph_cache_bytes", "Approximate bytes held by the tier (the sum over workers)",
                    ("tier",), multiprocess_mode="livesum")

# Labelled (bound at first use): an unlabelled counter would open its multiprocess file at import, before
# `serve --workers` has made the folder.
RESPONSE_CACHE = Counter("customer_graph_response_cache_requests", "Queries while the response cache is on, by "
                         "result: hit (answered whole from it), stale (an expired answer, as executing again met a "
                         "failing source), miss (executed), bypass (executed for Cache-Control: no-cache)",
                         ("result",))

CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2}
ANONYMOUS, NONE, OTHER = "(anonymous)", "(none)", "(other)"  # parentheses: never a GraphQL name
MAX_NAME = 100  # longer client-chosen names are "(other)"


class OperationNames:
    """Client-chosen operation names as a bounded label: the registered operations' names, then the first
    `limit` others seen (per process), then "(other)". An unnamed operation is "(anonymous)"; a request
    that never got as far as a parsed operation "(none)"."""

    def __init__(self, registered: Iterable[str] = (), limit: int = 50) -> None:
        self.known = {n for n in registered if n}
        self.limit = limit
        self.seen: set[str] = set()

    def label(self, name: str | None, parsed: bool) -> str:
        if not parsed:
            return NONE
        if not name:
            return ANONYMOUS
        if name in self.known or name in self.seen:
            return name
        if len(self.seen) < self.limit and len(name) <= MAX_NAME:
            self.seen.add(name)
            return name
        return OTHER


class RequestMetrics:
    """The sink counting each finished /graphql request: requests, duration, auth and limit rejections."""

    def __init__(self, names: OperationNames) -> None:
        self.names = names
        self._children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}

    def __call__(self, facts: RequestFacts) -> None:
        if facts.path != "/graphql":
            return
        op_type = facts.operation_type
        key = (self.names.label(facts.operation_name, op_type is not None), op_type or "none", facts.outcome)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (REQUESTS.labels(*key), REQUEST_SECONDS.labels(*key))
        children[0].inc()
        children[1].observe(facts.duration_s)
        if facts.auth_failure is not None:
            AUTH_REJECTIONS.labels(facts.auth_failure).inc()
        if facts.limit is not None:
            LIMIT_REJECTIONS.labels(facts.limit).inc()
        if facts.response_cache is not None:
            RESPONSE_CACHE.labels(facts.response_cache).inc()


_sink: RequestMetrics | None = None


def count_requests(names: OperationNames | None) -> None:
    """Count requests from now on with these operation names (None: stop counting them)."""
    global _sink
    if _sink is not None:
        remove_sink(_sink)
    _sink = RequestMetrics(names) if names is not None else None
    if _sink is not None:
        add_sink(_sink)


# The source call under way in this task, so that a retry deep in it is counted on its entity.
_calling: ContextVar[SourceCalls | None] = ContextVar("customer_graph_source_call", default=None)


class SourceCalls:
    """The metrics of one source's calls for one entity (or action), their label children bound once."""

    def __init__(self, source: str, entity: str, operation: str) -> None:
        self.labels = (source, entity, operation)
        self.calls = SOURCE_CALLS.labels(*self.labels)
        self.seconds = SOURCE_SECONDS.labels(*self.labels)
        self.retries = SOURCE_RETRIES.labels(*self.labels)
        self.keys = SOURCE_KEYS.labels(source, entity) if operation == "read" else None
        self.errors: dict[str, Counter] = {}

    def start(self, keys: int = 0) -> Token[SourceCalls | None]:
        """A call begins (with `keys` keys for a read); until `end`, retries in this task count here."""
        self._count(keys)
        return _calling.set(self)

    def refused(self, keys: int, code: str) -> None:
        """A call refused before it went out (an open circuit): an error, and no duration."""
        self._count(keys)
        self._error(code)

    def _count(self, keys: int) -> None:
        self.calls.inc()
        if self.keys is not None:
            self.keys.observe(keys)

    def end(self, token: Token[SourceCalls | None] | None, seconds: float | None, code: str | None = None) -> None:
        """The call ended after `seconds` (None: cancelled, no verdict), failing with `code` or not."""
        if token is not None:
            _calling.reset(token)
        if seconds is not None:
            self.seconds.observe(seconds)
        if code is not None:
            self._error(code)

    def _error(self, code: str) -> None:
        errors = self.errors.get(code)
        if errors is None:
            errors = self.errors[code] = SOURCE_ERRORS.labels(*self.labels, code)
        errors.inc()


def retried() -> None:
    """The source call under way retries its request."""
    calls = _calling.get()
    if calls is not None:
        calls.retries.inc()


class Mirror:
    """A counter kept as a running total elsewhere (the cache's counts, a breaker's opens): each `update`
    adds what the total grew by since the last one."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.seen = 0

    def update(self, total: int) -> None:
        if total > self.seen:
            self.counter.inc(total - self.seen)
        self.seen = total  # a total that went down (an object rebuilt) starts over


def circuit(source: str, state: str) -> None:
    CIRCUIT_STATE.labels(source).set(CIRCUIT_VALUES.get(state, 2))


def bulkhead(source: str, waiting: int, in_flight: int) -> None:
    BULKHEAD_WAITING.labels(source).set(waiting)
    BULKHEAD_IN_FLIGHT.labels(source).set(in_flight)


def cache_size(tier: str, entries: int, size: int) -> None:
    CACHE_ENTRIES.labels(tier).set(entries)
    CACHE_BYTES.labels(tier).set(size)


# --- exposition and multiprocess mode ------------------------------------------------------------------
def render(accept: str = "") -> tuple[bytes, str]:
    """The scrape's body and content type (the text format, or OpenMetrics when the scraper asks for it);
    with several workers, every worker's values merged."""
    encoder, content_type = choose_encoder(accept)
    if not MULTIPROCESS:
        return encoder(REGISTRY), content_type
    path = os.environ[MULTIPROC_ENV]
    _forget_dead(path)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path)
    return encoder(registry), content_type


def _forget_dead(path: str) -> None:
    """A worker that died without saying so (killed, crashed) leaves its live gauges behind: drop them."""
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        pid = int(Path(name).stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, path)
        except PermissionError:
            pass  # alive, someone else's


def worker_exits() -> None:
    """This worker stops: its live gauges leave the sums (its counters stay, as counters should)."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(os.getpid())


@contextlib.contextmanager
def multiprocess_dir() -> Iterator[Path]:
    """For `serve --workers N`: the directory the workers share their values through, in the environment
    before they start (and so before they import prometheus-client). An operator's PROMETHEUS_MULTIPROC_DIR
    is used and emptied at start and at exit; otherwise a fresh one is made and removed at exit."""
    given = os.environ.get(MULTIPROC_ENV)
    path = Path(given) if given else Path(tempfile.mkdtemp(prefix="customer-graph-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    _empty(path)
    os.environ[MULTIPROC_ENV] = str(path)
    try:
        yield path
    finally:
        if given:
            _empty(path)
        else:
            shutil.rmtree(path, ignore_errors=True)
            os.environ.pop(MULTIPROC_ENV, None)


def _empty(path: Path) -> None:
    for db in path.glob("*.db"):
        db.unlink(missing_ok=True)
