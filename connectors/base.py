"""What every connector shares: its configuration, its errors, and fetch-by-entity."""

from __future__ import annotations

import asyncio
import base64
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connectors.actions import Action, Args
from connectors.declaration import KIND_MARKERS, Entity, OffsetPages, record_class
from connectors.events import Events
from connectors.identity import IdentityDecl, compile_identity
from connectors.resilience import CLOSED, OPEN, Bulkhead, BulkheadFull, CircuitBreaker
from connectors.window import RecentCalls
from telemetry import tracing
from telemetry.metrics import SourceCalls, retried
from telemetry.request import called

T = TypeVar("T")
OVERLOADED = "bulkhead full"

# The codes a client sees in `extensions.code` when a source lets it down.
SOURCE_UNAVAILABLE = "SOURCE_UNAVAILABLE"
SOURCE_TIMEOUT = "SOURCE_TIMEOUT"
SOURCE_BAD_RESPONSE = "SOURCE_BAD_RESPONSE"
CIRCUIT_OPEN = "CIRCUIT_OPEN"
PING_KEY = "customer-graph-ping-0"  # a key no system knows: "not found" still proves the source answers


class SourceError(Exception):
    """A source failed; the message is safe for clients, the detail goes to the log only."""

    def __init__(self, source: str, code: str, message: str, detail: str = "", retryable: bool = False) -> None:
        super().__init__(message)
        self.source, self.code, self.detail, self.retryable = source, code, detail, retryable
        self.extensions = {"code": code, "source": source}


class SourceRejected(Exception):
    """A source refused a call because of the client's input (e.g. an idempotency key reused with a
    different request): the client's mistake, so never retried and never counted against the circuit."""

    def __init__(self, source: str, code: str, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.source, self.code, self.detail = source, code, detail
        self.extensions = {"code": code, "source": source}


@dataclass(frozen=True)
class Rejection:
    """A declaration (an action's `rejects:`) that a 4xx answer of its source means the client's input
    was refused."""

    status: int
    code: str  # the client's `extensions.code`
    message: str  # what the client should do about it
    body_contains: str = ""  # when one status has several meanings, text of the source's error picks this one

    def matches(self, status: int, body: bytes) -> bool:
        return (400 <= status < 500 and status == self.status
                and self.body_contains.encode() in body)


KINDS = ("sql", "rest", "graphql", "xml")
ACTION_MARKERS = {"rest": "request", "sql": "update or insert"}  # the kinds that take writes
PositiveSeconds = Annotated[float, Field(gt=0)]
ActionName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]


class BasicAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str
    password: str


class ApiKey(BaseModel):
    """An API key sent as a header or as a query parameter."""

    model_config = ConfigDict(extra="forbid")

    value: str = Field(min_length=1)
    header: str | None = None
    param: str | None = None

    @model_validator(mode="after")
    def _where(self) -> ApiKey:
        if (self.header is None) == (self.param is None):
            raise ValueError("give header or param (where the key goes)")
        return self


class SourceAuth(BaseModel):
    """How an HTTP source is authenticated: exactly one of bearer, basic, api_key (secrets from the
    environment: `bearer: ${CRM_TOKEN}`); plain headers go in `headers`."""

    model_config = ConfigDict(extra="forbid")

    bearer: str | None = Field(None, min_length=1)
    basic: BasicAuth | None = None
    api_key: ApiKey | None = None

    @model_validator(mode="after")
    def _one(self) -> SourceAuth:
        if sum(x is not None for x in (self.bearer, self.basic, self.api_key)) != 1:
            raise ValueError("give exactly one of bearer, basic, api_key")
        return self

    def headers(self) -> dict[str, str]:
        if self.bearer is not None:
            return {"Authorization": f"Bearer {self.bearer}"}
        if self.basic is not None:
            pair = f"{self.basic.username}:{self.basic.password}".encode()
            return {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}
        assert self.api_key is not None
        return {self.api_key.header: self.api_key.value} if self.api_key.header else {}

    def params(self) -> dict[str, str]:
        key = self.api_key
        return {key.param: key.value} if key is not None and key.param else {}


class SourceConfig(BaseModel):
    """One source: a file `sources/<name>.yaml` (its name is the file's stem) or an entry under
    `sources:` in gateway.yaml. Checked at start: unknown keys and out-of-range values are refused."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["sql", "rest", "graphql", "xml"]
    system: str  # this system's name in the identity source
    url: str = ""
    dsn: str = ""
    headers: dict[str, str] = {}
    auth: SourceAuth | None = None  # bearer, basic or an API key (http kinds)
    timeout_s: float = Field(2.0, gt=0)  # the most one call may take, retries included
    concurrency: int = Field(16, ge=1)  # calls in flight at once (the bulkhead)
    queue: int = Field(512, ge=0)  # calls waiting for a slot; beyond that they fail at once
    retries: int = Field(2, ge=0, le=10)  # on connection errors and 502/503/504 only
    retry_backoff_ms: float = Field(50.0, ge=0)
    circuit_failures: int = Field(5, ge=1)  # failed calls in a row that open the circuit
    circuit_reset_s: float = Field(5.0, gt=0)  # how long it stays open before one probe call
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1)
    ttl_s: dict[str, PositiveSeconds] = {}  # cache freshness per entity
    negative_ttl_s: PositiveSeconds | None = None  # cache freshness of "not known here"
    options: dict[str, Any] = {}
    entities: dict[str, Entity] = {}  # declared reads (connectors/declaration.py)
    identity: IdentityDecl | None = None  # the identity source's links and lookups (connectors/identity.py)
    actions: dict[ActionName, Action] = {}  # declared writes (connectors/actions.py)
    events: Events | None = None  # how it tells of changes: webhook, notify, poll (connectors/events.py)

    @field_validator("headers", mode="before")
    @classmethod
    def _header_values(cls, value: Any) -> Any:
        """A number written as a header value (`X-Version: 3`) is sent as its text."""
        if isinstance(value, dict):
            return {k: str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
                    for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _address(self) -> SourceConfig:
        if self.kind == "sql" and not self.dsn:
            raise ValueError("dsn: required for kind sql")
        if self.kind != "sql" and not self.url:
            raise ValueError(f"url: required for kind {self.kind}")
        if self.kind == "sql" and self.auth is not None:
            raise ValueError("auth: for HTTP sources; a database's credentials go in its dsn")
        for name, e in self.entities.items():
            if e.kind != self.kind:
                marks = " or ".join(KIND_MARKERS[self.kind])
                raise ValueError(f"entities: declared entities are for kind {e.kind} when they give "
                                 f"{KIND_MARKERS[e.kind][0]}; an entity of a {self.kind} source gives {marks} "
                                 f"(entities.{name})")
        for name, e in self.entities.items():
            p = e.pagination
            if p is not None and not (p.page_size or "page_size" in self.options) \
                    and (isinstance(p, OffsetPages) or p.size_param):
                raise ValueError(f"entities.{name}.pagination.page_size: required (or options.page_size)")
        return self

    @model_validator(mode="after")
    def _actions(self) -> SourceConfig:
        for name, a in self.actions.items():
            if a.kind != self.kind:
                gives = ACTION_MARKERS.get(self.kind)
                raise ValueError(f"actions.{name}: " + (f"an action of a {self.kind} source gives {gives}" if gives
                                                        else f"a {self.kind} source takes no actions"))
            answer = a.answer
            if answer is not None:
                e = self.entities.get(answer.entity)
                if e is None or e.mapping is None:
                    mapped = [n for n, x in self.entities.items() if x.mapping is not None]
                    raise ValueError(f"actions.{name}.answer.entity: no entity {answer.entity!r} with a mapping here "
                                     f"({', '.join(mapped) or 'none'})")
        return self

    @model_validator(mode="after")
    def _identity(self) -> SourceConfig:
        if self.identity is not None:  # its entities are this source's, its lookups compile
            self.identity.check_entities(self.entities)
            compile_identity(self.identity, self.options)
        return self

    @model_validator(mode="after")
    def _events(self) -> SourceConfig:
        problem = self.events.problem(self.kind, self.dsn, set(self.entities)) if self.events else None
        if problem:
            raise ValueError(problem)
        return self


class Probe(NamedTuple):
    """One probe's verdict: did the source answer, how fast, and what it said (safe to print)."""

    up: bool
    ms: float
    detail: str


# An entity's fetcher: given the connector and many keys, the records found, by key.
Fetcher = Callable[[Any, list[str]], Awaitable[dict[str, Any]]]
# An action's run: given its arguments (connectors/actions.py), what the source answered.
Write = Callable[[Args], Awaitable[Any]]


class Connector:
    """Fetches many keys of one entity per call, and runs writes, as the source's declaration says."""

    def __init__(self, config: SourceConfig) -> None:
        self.config = config
        self.name = config.name
        self.bulkhead = Bulkhead(config.concurrency, config.queue)
        self.circuit = CircuitBreaker(config.circuit_failures, config.circuit_reset_s)
        self.calls = self.keys = self.failures = 0  # since start, shown at /readyz
        self.recent = RecentCalls()  # the last minutes, for the status page
        self.mappers: dict[str, Any] = {}  # each declared entity's compiled mapping (writes map answers too)
        self.entities: dict[str, Fetcher] = {name: self.declared(name, e) for name, e in config.entities.items()}
        self.actions: dict[str, Write] = {name: self.action(name, a) for name, a in config.actions.items()}
        # Per-call metrics by entity and by action; empty (and no work per call) until `instrument`.
        self.read_metrics: dict[str, SourceCalls] = {}
        self.write_metrics: dict[str, SourceCalls] = {}

    def instrument(self) -> None:
        """Count this source's calls in the Prometheus metrics (telemetry/metrics.py)."""
        self.read_metrics = {name: SourceCalls(self.name, name, "read") for name in self.entities}
        self.write_metrics = {name: SourceCalls(self.name, name, "write") for name in self.actions}

    def declared(self, name: str, e: Entity) -> Fetcher:
        """The fetch of one declared entity, compiled once (each kind's connector knows how)."""
        raise ValueError(f"entities.{name}: a {self.config.kind} source cannot declare entities")

    def action(self, name: str, a: Action) -> Write:
        """The run of one declared write, compiled once (each kind's connector knows how)."""
        raise ValueError(f"actions.{name}: a {self.config.kind} source cannot declare actions")

    def mapper(self, name: str, e: Entity) -> Any:
        """The entity's compiled mapping (None for an entity of plain values)."""
        if e.mapping is None or e.record is None:
            return None
        from connectors.mapping import compile_mapping
        found = self.mappers[name] = compile_mapping(e.mapping, record_class(e.record), name=f"{self.name}.{name}",
                                                     options=self.config.options)
        return found

    def error(self, code: str, message: str, detail: str = "", retryable: bool = False) -> SourceError:
        return SourceError(self.name, code, f"{self.name}: {message}", detail, retryable)

    def rejected(self, rejection: Rejection, detail: str = "") -> SourceRejected:
        return SourceRejected(self.name, rejection.code, f"{self.name}: {rejection.message}", detail)

    async def fetch(self, entity: str, keys: list[str], deadline: float | None = None) -> dict[str, Any]:
        """Records for `keys` (missing keys absent), within the source's timeout and the request's
        deadline (a loop time), through the circuit breaker."""
        self.keys += len(keys)
        op = lambda: self.entities[entity](self, keys)  # noqa: E731
        metrics = self.read_metrics.get(entity)
        if tracing.ENABLED:
            attributes = {"customer_graph.entity": entity, "customer_graph.keys": len(keys)}
            return await self.traced(f"fetch {self.name}.{entity}", attributes, op, deadline, metrics, len(keys))
        return await self.protected(op, deadline, metrics, len(keys))

    async def write(self, action: str, args: Args, deadline: float | None = None) -> Any:
        """A declared write (its `actions:`), under the same protections as a read."""
        actions = self.actions
        if action not in actions:
            raise self.error(SOURCE_BAD_RESPONSE, f"does not support {action}")
        op = lambda: actions[action](args)  # noqa: E731
        metrics = self.write_metrics.get(action)
        if tracing.ENABLED:
            return await self.traced(f"write {self.name}.{action}", {"customer_graph.action": action}, op, deadline,
                                     metrics)
        return await self.protected(op, deadline, metrics)

    async def traced(self, name: str, attributes: dict[str, Any], op: Callable[[], Awaitable[T]],
                     deadline: float | None, metrics: SourceCalls | None, keys: int = 0) -> T:
        """`protected`, in a span of its own (its retries counted by `guarded`): failed with the error's
        code when the call fails."""
        attributes = {"customer_graph.source": self.name, **attributes, "customer_graph.retries": 0}
        with tracing.span(name, attributes, tracing.SpanKind.CLIENT):
            return await self.protected(op, deadline, metrics, keys)

    async def protected(self, op: Callable[[], Awaitable[T]], deadline: float | None,
                        metrics: SourceCalls | None = None, keys: int = 0) -> T:
        """`op` through the circuit breaker, within the timeout, its failures mapped to SourceErrors;
        counted in `metrics` (its entity's or action's, when instrumented).

        One coroutine for all of it: every layer of coroutines is resumed on each wake-up of the call."""
        self.calls += 1
        called(self.name)
        started = time.perf_counter()
        circuit = self.circuit
        if not circuit.allow():
            self.failures += 1
            self.recent.record(None, CIRCUIT_OPEN)  # refused here: no latency to count
            if metrics is not None:
                metrics.refused(keys, CIRCUIT_OPEN)
            raise self.error(CIRCUIT_OPEN, f"circuit open after repeated failures; retry in "
                                           f"{circuit.retry_in():.1f} s")
        token = metrics.start(keys) if metrics is not None else None
        budget = self.config.timeout_s
        if deadline is not None:
            budget = min(budget, deadline - asyncio.get_running_loop().time())
        try:
            if budget <= 0:
                raise self.error(SOURCE_TIMEOUT, "the request's deadline had passed")
            try:
                async with asyncio.timeout(budget):  # unlike wait_for, no extra task per call
                    result = await op()
            except TimeoutError:
                raise self.error(SOURCE_TIMEOUT, f"no answer within {budget:.2g} s") from None
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                # The source answered, but not in the shape its mapping expects.
                raise self.error(SOURCE_BAD_RESPONSE, "unexpected response", repr(exc)) from exc
        except SourceRejected:
            circuit.release()  # the source answered; the client's input was wrong: no verdict on the source
            elapsed = time.perf_counter() - started
            self.recent.record(elapsed)
            if metrics is not None:
                metrics.end(token, elapsed)
            raise
        except SourceError as exc:
            self.failures += 1
            if exc.code == SOURCE_UNAVAILABLE and exc.detail == OVERLOADED:
                circuit.release()  # our own queue was full: no verdict on the source
            else:
                circuit.failure()
            elapsed = time.perf_counter() - started
            self.recent.record(elapsed, exc.code)
            if metrics is not None:
                metrics.end(token, elapsed, exc.code)
            raise
        except BaseException:
            circuit.release()
            if metrics is not None:
                metrics.end(token, None)  # cancelled: no verdict, no duration
            raise
        circuit.success()
        elapsed = time.perf_counter() - started
        self.recent.record(elapsed)
        if metrics is not None:
            metrics.end(token, elapsed)
        return result

    async def guarded(self, call: Callable[[], Awaitable[T]]) -> T:
        """One request to the source: through the bulkhead, retried while it fails retryably
        (connection errors, 502/503/504), after a full-jitter exponential pause. The caller's timeout
        bounds the whole, so a retry never outlives the source's budget."""
        bulkhead = self.bulkhead
        attempt = 0
        while True:
            if not bulkhead.try_enter():
                try:
                    await bulkhead.enter()
                except BulkheadFull:
                    raise self.error(SOURCE_UNAVAILABLE, "too many calls waiting for this source", OVERLOADED) from None
            try:
                return await call()
            except SourceError as exc:
                if not exc.retryable or attempt >= self.config.retries:
                    raise
                retried()  # counted on the call's entity (telemetry/metrics.py), when instrumented
                if tracing.ENABLED:
                    tracing.retried(exc.code)
            finally:
                bulkhead.leave()
            attempt += 1
            await asyncio.sleep(random.uniform(0, self.config.retry_backoff_ms / 1000 * 2 ** (attempt - 1)))

    async def probe(self, timeout_s: float) -> Probe:
        """Ask the source's first entity for PING_KEY once, within `timeout_s` (and the source's own timeout).

        For `check --ping`, the start-up table and readiness, so not client traffic: it is not in the calls,
        keys and latency window the status page and /readyz show, nor in any request's facts. A probe never
        opens a closed circuit (the clients' calls judge a source); while the circuit is open it is the trial
        call once `circuit_reset_s` has passed, so its answer closes or re-opens the circuit even when no
        client calls (a gateway kept out of a load balancer for being unready still recovers)."""
        if not self.entities:
            return Probe(True, 0.0, "declares no entity to ask")
        entity = next(iter(self.entities))
        circuit = self.circuit
        trial = circuit.state != CLOSED
        if trial and not circuit.allow():
            why = f"next trial in {circuit.retry_in():.1f} s" if circuit.state == OPEN else "a trial call in flight"
            return Probe(False, 0.0, f"{CIRCUIT_OPEN}: circuit {circuit.state}, {why}")
        started = time.perf_counter()
        budget = min(timeout_s, self.config.timeout_s)
        up, judged = False, True  # judged: the outcome is a verdict on the source, for its circuit
        try:
            async with asyncio.timeout(budget):
                found = await self.entities[entity](self, [PING_KEY])
            up, detail = True, f"{entity}: {'found' if found else 'not found'}"
        except SourceRejected as exc:
            up, judged, detail = True, False, f"{entity}: answered, refused the key ({exc.code})"
        except SourceError as exc:
            judged = exc.detail != OVERLOADED  # our own queue was full: no verdict on the source
            detail = f"{exc.code}: {str(exc).removeprefix(f'{self.name}: ')}"
        except TimeoutError:
            detail = f"{SOURCE_TIMEOUT}: no answer within {budget:.2g} s"
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            detail = f"{SOURCE_BAD_RESPONSE}: unexpected response"
        except BaseException:
            judged = False
            raise
        finally:
            if trial and not judged:
                circuit.release()
            elif trial and up:
                circuit.success()
            elif trial:
                circuit.failure()
        return Probe(up, (time.perf_counter() - started) * 1000, detail)

    def status(self) -> dict[str, Any]:
        return {"kind": self.config.kind, "circuit": self.circuit.state, "circuit_opened": self.circuit.opens,
                "calls": self.calls, "keys": self.keys, "failures": self.failures,
                "in_flight_waiting": self.bulkhead.waiting, "rejected": self.bulkhead.rejected}

    async def close(self) -> None:
        """Release what the connector holds (pools); the default holds nothing."""
