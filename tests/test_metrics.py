"""The metrics' recording, in-process: what a scrape would show after known source calls, cache lookups,
refused requests and many operation names. Each test uses source names of its own, so the process-wide
metrics it reads are its own."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import jwt
import pytest
from graphql import parse
from prometheus_client import REGISTRY

from cache.records import RecordCache
from cache.settings import CacheSettings
from cache.tiers import Entry
from connectors.base import SOURCE_UNAVAILABLE, Connector, SourceConfig
from connectors.resilience import CircuitBreaker
from resolvers.context import Sources
from server.app import build_schema
from server.auth import REASONS, Authenticator, AuthError
from server.limits import Limits, refused_by
from server.metrics import Refresh
from server.settings import AuthSettings, LimitSettings, RoleSettings
from telemetry import metrics
from telemetry.metrics import ANONYMOUS, NONE, OTHER, OperationNames, RequestMetrics
from telemetry.request import RequestFacts, _sinks
from tests.queries import CUSTOMERS_FULL

SECRET = "s" * 32


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def connector(name: str, answers: list[Any], failures: int = 5, retries: int = 2) -> Connector:
    """A source whose entity `things` answers from `answers` in turn: a dict of records, or an exception
    to raise from inside one request (through the bulkhead and retries, as the HTTP kinds do)."""
    c = Connector(SourceConfig(name=name, kind="rest", system=name, url="http://unused", retries=retries,
                               retry_backoff_ms=0, circuit_failures=failures))

    async def once() -> Any:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def things(conn: Connector, keys: list[str]) -> dict[str, Any]:
        return await conn.guarded(once)  # type: ignore[no-any-return]

    c.entities = {"things": things}
    c.instrument()
    return c


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- sources --------------------------------------------------------------------------------------------
def test_source_calls_keys_duration_errors_and_retries() -> None:
    name = unique("src")
    down = lambda: connector(name, []).error(SOURCE_UNAVAILABLE, "down", retryable=True)  # noqa: E731
    c = connector(name, [{"a": 1, "b": 2}, down(), {"c": 3}, down(), down(), down()])
    call = {"source": name, "entity": "things", "operation": "read"}

    async def calls() -> None:
        assert await c.fetch("things", ["a", "b"]) == {"a": 1, "b": 2}
        assert await c.fetch("things", ["c"]) == {"c": 3}  # after one retry
        with pytest.raises(Exception, match="down"):
            await c.fetch("things", ["d", "e", "f"])  # three attempts, all failing

    asyncio.run(calls())
    assert value("customer_graph_source_calls_total", **call) == 3
    assert value("customer_graph_source_retries_total", **call) == 3  # one, then two
    assert value("customer_graph_source_errors_total", **call, code=SOURCE_UNAVAILABLE) == 1
    assert value("customer_graph_source_call_duration_seconds_count", **call) == 3
    assert value("customer_graph_source_call_keys_sum", source=name, entity="things") == 6
    assert value("customer_graph_source_call_keys_bucket", source=name, entity="things", le="2.0") == 2


def test_circuit_open_is_an_error_without_a_duration_and_shows_in_the_state_gauge() -> None:
    name = unique("circ")
    fail = connector(name, []).error(SOURCE_UNAVAILABLE, "down")  # not retryable: one attempt
    c = connector(name, [fail, {"a": 1}], failures=1)
    clock = Clock()
    c.circuit = CircuitBreaker(1, 5.0, clock)
    refresh = Refresh(cast(Sources, SimpleNamespace(connectors={name: c}, cache=None)))
    call = {"source": name, "entity": "things", "operation": "read"}

    async def calls() -> None:
        with pytest.raises(Exception, match="down"):
            await c.fetch("things", ["a"])
        refresh()
        assert value("customer_graph_source_circuit_state", source=name) == 2
        assert value("customer_graph_source_circuit_opens_total", source=name) == 1
        with pytest.raises(Exception, match="circuit open"):
            await c.fetch("things", ["a"])
        clock.now += 5  # the probe goes through and closes it
        assert await c.fetch("things", ["a"]) == {"a": 1}
        refresh()

    asyncio.run(calls())
    assert value("customer_graph_source_errors_total", **call, code="CIRCUIT_OPEN") == 1
    assert value("customer_graph_source_calls_total", **call) == 3
    assert value("customer_graph_source_call_duration_seconds_count", **call) == 2  # the refused one had none
    assert value("customer_graph_source_circuit_state", source=name) == 0
    assert value("customer_graph_source_circuit_opens_total", source=name) == 1  # not counted twice


def test_bulkhead_waiting_and_in_flight_gauges() -> None:
    name = unique("bulk")
    c = Connector(SourceConfig(name=name, kind="rest", system=name, url="http://unused", concurrency=1, queue=1))
    refresh = Refresh(cast(Sources, SimpleNamespace(connectors={name: c}, cache=None)))

    async def crowd() -> None:
        gate = asyncio.Event()
        first = asyncio.create_task(c.guarded(gate.wait))
        second = asyncio.create_task(c.guarded(gate.wait))
        await asyncio.sleep(0)
        with pytest.raises(Exception, match="too many calls waiting"):
            await c.guarded(gate.wait)  # the queue of one is full
        refresh()
        assert value("customer_graph_source_bulkhead_in_flight", source=name) == 1
        assert value("customer_graph_source_bulkhead_waiting", source=name) == 1
        assert value("customer_graph_source_bulkhead_rejected_total", source=name) == 1
        gate.set()
        await asyncio.gather(first, second)
        refresh()

    asyncio.run(crowd())
    assert value("customer_graph_source_bulkhead_in_flight", source=name) == 0
    assert value("customer_graph_source_bulkhead_waiting", source=name) == 0


def test_an_uninstrumented_connector_records_nothing() -> None:
    name = unique("quiet")
    c = Connector(SourceConfig(name=name, kind="rest", system=name, url="http://unused"))

    async def things(conn: Connector, keys: list[str]) -> dict[str, Any]:
        return {k: k for k in keys}

    c.entities = {"things": things}
    assert asyncio.run(c.fetch("things", ["a"])) == {"a": "a"}
    assert REGISTRY.get_sample_value("customer_graph_source_calls_total",
                                     {"source": name, "entity": "things", "operation": "read"}) is None


# --- cache ----------------------------------------------------------------------------------------------
def cache_of(name: str, settings: CacheSettings, answers: list[Any]) -> tuple[RecordCache, Connector, Refresh]:
    c = connector(name, answers, retries=0)
    cache = RecordCache(settings, {}, {})
    refresh = Refresh(cast(Sources, SimpleNamespace(connectors={name: c}, cache=cache)))
    return cache, c, refresh


def test_cache_hits_misses_evictions_and_size() -> None:
    name = unique("cache")
    cache, c, refresh = cache_of(name, CacheSettings(max_entries=2), [{"a": 1, "b": 2}, {"c": 3}])

    async def lookups() -> None:
        await cache.fetch(c, "things", ["a", "b"], None)  # two misses
        await cache.fetch(c, "things", ["a", "b", "c"], None)  # two hits, one miss; c evicts a
        assert cache.fresh_hit(name, "things", "c") == (True, 3)  # the loaders' synchronous hit

    asyncio.run(lookups())
    refresh()
    assert value("customer_graph_cache_hits_total", tier="l1", source=name) == 3
    assert value("customer_graph_cache_misses_total", tier="l1", source=name) == 3
    assert value("customer_graph_cache_evictions_total", tier="l1", source=name) == 1
    assert REGISTRY.get_sample_value("customer_graph_cache_hits_total", {"tier": "l2", "source": name}) is None
    refresh()  # a second scrape adds nothing
    assert value("customer_graph_cache_hits_total", tier="l1", source=name) == 3
    assert value("customer_graph_cache_entries", tier="l1") == 2
    assert value("customer_graph_cache_bytes", tier="l1") == cache.tiers.l1.bytes > 0


def test_stale_served_when_the_source_fails() -> None:
    name = unique("stale")
    down = connector(name, []).error(SOURCE_UNAVAILABLE, "down")
    cache, c, refresh = cache_of(name, CacheSettings(stale_grace_s=300), [down])
    old = Entry({"n": 1}, True, time.time() - 120, 60.0)  # two minutes old, fresh for one: stale, within grace
    cache.tiers.store_local(name, "things", {"a": old})

    values, stale = asyncio.run(cache.fetch(c, "things", ["a"], None))
    assert values == [{"n": 1}] and "a" in stale
    refresh()
    assert value("customer_graph_cache_stale_served_total", source=name) == 1
    assert value("customer_graph_cache_misses_total", tier="l1", source=name) == 1
    assert value("customer_graph_source_errors_total", source=name, entity="things", operation="read",
                 code=SOURCE_UNAVAILABLE) == 1


def test_redis_tier_hits_and_misses(redis_url: str) -> None:  # noqa: F811
    name = unique("l2")
    settings = CacheSettings(redis_url=redis_url, namespace=unique("cg-test"))
    first, c1, refresh1 = cache_of(name, settings, [{"a": 1}])
    second, c2, refresh2 = cache_of(name, settings, [{"b": 2}])

    async def lookups() -> None:
        try:
            await first.fetch(c1, "things", ["a"], None)  # a miss in both tiers, stored in both
            await second.fetch(c2, "things", ["a", "b"], None)  # a: l1 miss, l2 hit; b: a miss in both
        finally:
            await first.tiers.close()
            await second.tiers.close()

    asyncio.run(lookups())
    refresh1()
    refresh2()
    assert value("customer_graph_cache_hits_total", tier="l2", source=name) == 1
    assert value("customer_graph_cache_misses_total", tier="l2", source=name) == 2
    assert value("customer_graph_cache_hits_total", tier="l1", source=name) == 0
    assert value("customer_graph_cache_misses_total", tier="l1", source=name) == 3


# --- requests, auth and limits --------------------------------------------------------------------------
def finished(name: str | None = "Q", op_type: str | None = "query", status: int = 200, codes: tuple[str, ...] = (),
             path: str = "/graphql", **more: Any) -> RequestFacts:
    facts = RequestFacts("id", "POST", path, operation_name=name, operation_type=op_type, status=status,
                         duration_s=0.02, error_codes=list(codes), **more)
    return facts


def test_requests_by_operation_and_outcome_with_duration() -> None:
    op = unique("Op").replace("-", "_")
    sink = RequestMetrics(OperationNames([op]))
    sink(finished(op))
    sink(finished(op))
    sink(finished(op, codes=("SOURCE_TIMEOUT",), partial=True))
    sink(finished(op, path="/cache/invalidate"))  # not a GraphQL request: not counted
    labels = {"operation_name": op, "operation_type": "query"}
    assert value("customer_graph_requests_total", **labels, outcome="success") == 2
    assert value("customer_graph_requests_total", **labels, outcome="partial") == 1
    assert value("customer_graph_request_duration_seconds_count", **labels, outcome="success") == 2
    assert value("customer_graph_request_duration_seconds_bucket", **labels, outcome="success", le="0.025") == 2
    assert value("customer_graph_request_duration_seconds_bucket", **labels, outcome="success", le="0.01") == 0


def test_operation_names_are_bounded() -> None:
    names = OperationNames(["Registered"], limit=3)
    assert [names.label(f"Op{i}", True) for i in range(5)] == ["Op0", "Op1", "Op2", OTHER, OTHER]
    assert names.label("Op1", True) == "Op1"  # admitted once, kept
    assert names.label("Registered", True) == "Registered"  # registered names never count against the limit
    assert names.label(None, True) == ANONYMOUS
    assert names.label(None, False) == NONE  # refused before a document was parsed
    assert OperationNames(limit=10).label("X" * 101, True) == OTHER  # an absurdly long name is never a label


def test_auth_and_limit_rejections_by_reason() -> None:
    sink = RequestMetrics(OperationNames())
    before = {r: value("customer_graph_auth_rejections_total", reason=r) for r in ("expired", "missing")}
    sink(finished(None, None, 401, ("UNAUTHENTICATED",), auth_failure="expired"))
    sink(finished(None, None, 401, ("UNAUTHENTICATED",), auth_failure="expired"))
    sink(finished(None, None, 401, ("UNAUTHENTICATED",), auth_failure="missing"))
    limit_before = value("customer_graph_limit_rejections_total", reason="max_depth")
    sink(finished("Deep", "query", 200, ("QUERY_TOO_COMPLEX",), limit="max_depth"))
    assert value("customer_graph_auth_rejections_total", reason="expired") - before["expired"] == 2
    assert value("customer_graph_auth_rejections_total", reason="missing") - before["missing"] == 1
    assert value("customer_graph_limit_rejections_total", reason="max_depth") - limit_before == 1
    assert value("customer_graph_requests_total", operation_name=NONE, operation_type="none",
                 outcome="rejected") >= 3


def test_authenticator_names_a_bounded_reason_for_each_refusal() -> None:
    clock = Clock()
    clock.now = time.time()
    auth = Authenticator(AuthSettings(hs256_secret=SECRET, audience="cg", issuer="idp"), {"agent": RoleSettings()},
                         clock=clock)
    now = int(clock.now)

    def token(**claims: Any) -> str:
        base = {"sub": "x", "roles": ["agent"], "aud": "cg", "iss": "idp", "exp": now + 60}
        return jwt.encode({**base, **claims}, claims.pop("key", SECRET), algorithm="HS256")

    cases = {
        None: "missing", "Basic abc": "malformed", "Bearer not-a-jwt": "malformed",
        "Bearer " + jwt.encode({"exp": now + 60}, "k" * 48, algorithm="HS384"): "bad_algorithm",
        "Bearer " + jwt.encode({"sub": "x", "roles": ["agent"], "aud": "cg", "iss": "idp", "exp": now + 60},
                               "other" * 8, algorithm="HS256"): "bad_signature",
        "Bearer " + token(exp=now - 3600): "expired", "Bearer " + token(nbf=now + 3600): "not_yet_valid",
        "Bearer " + token(aud="elsewhere"): "wrong_audience", "Bearer " + token(iss="someone"): "wrong_issuer",
        "Bearer " + token(roles=["nobody"]): "unknown_role",
    }
    for header, reason in cases.items():
        with pytest.raises(AuthError) as caught:
            asyncio.run(auth.authenticate(header))
        assert caught.value.reason == reason, header
    assert set(cases.values()) <= set(REASONS)


def test_limit_errors_name_their_limit() -> None:
    schema = build_schema()._schema
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"max_depth": 2}, CUSTOMERS_FULL, "max_depth"),
        ({}, '{ customer(id: "C-1") { orders(first: -1) { number } } }', "int_range"),
        ({"max_aliases": 1}, '{ a: customer(id: "C-1") { id } b: customer(id: "C-2") { id } }', "max_aliases")]
    for settings, query, reason in cases:
        errors = Limits(LimitSettings(**settings), max_ids=100).check(schema, parse(query), query, None, {"ids": []})
        assert refused_by(errors) == reason
    assert refused_by([]) is None


def test_metrics_off_registers_no_request_sink() -> None:
    metrics.count_requests(OperationNames())
    assert any(isinstance(s, RequestMetrics) for s in _sinks)
    metrics.count_requests(None)
    assert not any(isinstance(s, RequestMetrics) for s in _sinks)


def test_the_workers_directory_is_fresh_and_removed_or_an_operators_emptied(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    with metrics.multiprocess_dir() as made:
        assert os.environ[metrics.MULTIPROC_ENV] == str(made) and made.is_dir() and not list(made.iterdir())
        (made / "counter_1.db").write_bytes(b"x")
    assert not made.exists() and metrics.MULTIPROC_ENV not in os.environ
    given = tmp_path / "prom"
    given.mkdir()
    (given / "counter_99.db").write_bytes(b"left by an earlier run")
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(given))
    with metrics.multiprocess_dir() as used:
        assert used == given and not list(given.glob("*.db"))
        (given / "counter_2.db").write_bytes(b"x")
    assert given.is_dir() and not list(given.glob("*.db")) and os.environ[metrics.MULTIPROC_ENV] == str(given)


def test_a_dead_workers_live_gauges_leave_the_sums(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    for pid in (gone.pid, os.getpid()):
        (tmp_path / f"gauge_livesum_{pid}.db").write_bytes(b"")
        (tmp_path / f"counter_{pid}.db").write_bytes(b"")
    metrics._forget_dead(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"counter_{gone.pid}.db", f"counter_{os.getpid()}.db", f"gauge_livesum_{os.getpid()}.db"])
