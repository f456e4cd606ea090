"""In-process: the APQ store (protocol, LRU bound, hash check, Redis sharing and outage) and the allow-list."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.app import build_schema
from server.apq import NOT_FOUND, NOT_SUPPORTED, ApqError, ApqStore, sha256
from server.operations import DENIED, OperationsError, Registry, allow_list, check_allowed
from server.settings import ApqSettings, OperationsSettings, RoleSettings
from tests.harness import ROOT

POS = ROOT / "operations" / "pos"
REDIS = ("127.0.0.1", 6379)


def pq(digest: str, version: Any = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": digest}}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def redis_or_skip() -> None:
    try:
        socket.create_connection(REDIS, timeout=1).close()
    except OSError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Redis at {REDIS[0]}:{REDIS[1]} is required under CI: {exc!r}")
        pytest.skip(f"no Redis at {REDIS[0]}:{REDIS[1]} ({exc!r}); the shared-APQ test needs one")


# -- the protocol ----------------------------------------------------------------------------------------

def test_unknown_hash_then_register_then_hash_only() -> None:
    store = ApqStore(ApqSettings())
    query = "{ customer(id: \"C-000042\") { id } }"
    digest = sha256(query)

    async def flow() -> list[Any]:
        return [await store.resolve(None, pq(digest)), await store.resolve(query, pq(digest)),
                await store.resolve(None, pq(digest)), await store.resolve("", pq(digest.upper()))]

    assert run(flow()) == [NOT_FOUND, query, query, query]
    assert NOT_FOUND.status == 200 and NOT_FOUND.code == "PERSISTED_QUERY_NOT_FOUND"
    assert NOT_FOUND.message == "PersistedQueryNotFound" and "no-cache" in NOT_FOUND.headers["cache-control"]


def test_a_wrong_hash_is_refused_and_registers_nothing() -> None:
    store = ApqStore(ApqSettings())
    digest = sha256("{ a }")
    found = run(store.resolve("{ b }", pq(digest)))
    assert isinstance(found, ApqError) and found.status == 400 and found.code == "PERSISTED_QUERY_HASH_MISMATCH"
    assert run(store.resolve(None, pq(digest))) == NOT_FOUND and not store.memory


@pytest.mark.parametrize("extensions,message", [
    (pq("0" * 64, version=2), "Unsupported persisted query version"),
    (pq("0" * 64, version=None), "Unsupported persisted query version"),
    (pq("xyz"), "64 hexadecimal"),
    ({"persistedQuery": "abc"}, "must be an object"),
    ([1, 2], "'extensions' must be an object"),
    ("{not json", "not valid JSON"),
])
def test_malformed_extensions_are_bad_requests(extensions: Any, message: str) -> None:
    found = run(ApqStore(ApqSettings()).resolve(None, extensions))
    assert isinstance(found, ApqError) and found.status == 400 and message in found.message, found


def test_get_sends_extensions_as_json_text() -> None:
    store = ApqStore(ApqSettings())
    query = "{ __typename }"
    text = '{"persistedQuery":{"version":1,"sha256Hash":"%s"}}' % sha256(query)
    assert run(store.resolve(query, text)) == query and run(store.resolve(None, text)) == query


def test_requests_without_persisted_query_pass_through() -> None:
    store = ApqStore(ApqSettings())
    assert run(store.resolve("{ a }", None)) is None and run(store.resolve("{ a }", {"other": 1})) is None


def test_disabled_answers_not_supported() -> None:
    store = ApqStore(ApqSettings(enabled=False))
    assert run(store.resolve("{ a }", pq(sha256("{ a }")))) == NOT_SUPPORTED and not store.memory


def test_register_false_resolves_but_stores_nothing() -> None:
    store = ApqStore(ApqSettings())
    assert run(store.resolve("{ a }", pq(sha256("{ a }")), register=False)) == "{ a }" and not store.memory


# -- the bound ---------------------------------------------------------------------------------------------

def test_memory_is_a_bounded_lru() -> None:
    store = ApqStore(ApqSettings(max_documents=2))
    a, b, c = "{ a }", "{ b }", "{ c }"

    async def flow() -> None:
        for q in (a, b):
            await store.put(sha256(q), q)
        assert await store.get(sha256(a)) == a  # a is now the most recently used
        await store.put(sha256(c), c)  # evicts b, the least recently used

    run(flow())
    assert list(store.memory) == [sha256(a), sha256(c)]
    assert run(store.get(sha256(b))) is None


def test_fixed_documents_are_known_and_never_evicted() -> None:
    text = (POS / "PointOfSale.graphql").read_text()
    store = ApqStore(ApqSettings(max_documents=1), fixed={sha256(text): text})
    for q in ("{ a }", "{ b }"):
        run(store.put(sha256(q), q))
    assert run(store.resolve(None, pq(sha256(text)))) == text and len(store.memory) == 1


# -- Redis -------------------------------------------------------------------------------------------------

def test_documents_are_shared_through_redis() -> None:
    redis_or_skip()
    namespace = f"test-apq-{uuid.uuid4().hex[:12]}"
    query = f"{{ customer(id: \"C-000042\") {{ id }} }} # {namespace}"
    digest = sha256(query)

    async def flow() -> tuple[Any, Any, Any]:
        one = ApqStore(ApqSettings(ttl_s=60), "redis://127.0.0.1:6379/0", namespace)
        two = ApqStore(ApqSettings(ttl_s=60), "redis://127.0.0.1:6379/0", namespace)
        try:
            before = await two.resolve(None, pq(digest))
            await one.resolve(query, pq(digest))
            after = await two.resolve(None, pq(digest))
            ttl = await one.redis.ttl(f"{namespace}:apq:{digest}")  # type: ignore[union-attr]
            await one.redis.delete(f"{namespace}:apq:{digest}")  # type: ignore[union-attr]
            return before, after, ttl
        finally:
            await one.close()
            await two.close()

    before, after, ttl = run(flow())
    assert before == NOT_FOUND and after == query and 0 < ttl <= 60


def test_a_tampered_redis_entry_is_not_run() -> None:
    redis_or_skip()
    namespace = f"test-apq-{uuid.uuid4().hex[:12]}"
    digest = sha256("{ a }")

    async def flow() -> Any:
        store = ApqStore(ApqSettings(), "redis://127.0.0.1:6379/0", namespace)
        try:
            await store.redis.set(f"{namespace}:apq:{digest}", b"mutation { evil }", ex=60)  # type: ignore[union-attr]
            found = await store.resolve(None, pq(digest))
            await store.redis.delete(f"{namespace}:apq:{digest}")  # type: ignore[union-attr]
            return found
        finally:
            await store.close()

    assert run(flow()) == NOT_FOUND


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: nothing listens there


def test_redis_outage_degrades_to_memory_with_rate_limited_warnings(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    store = ApqStore(ApqSettings(), f"redis://127.0.0.1:{closed_port()}/0", "cg", clock=lambda: now[0])
    queries = [f"{{ q{i} }}" for i in range(4)]

    async def flow() -> list[Any]:
        out = []
        for q in queries:  # each registers (memory) and is found again by hash alone
            out += [await store.resolve(q, pq(sha256(q))), await store.resolve(None, pq(sha256(q)))]
            now[0] += store.RETRY_AFTER_S + 1  # Redis is tried again, and fails again
        await store.close()
        return out

    with caplog.at_level(logging.WARNING, logger="customer_graph.apq"):
        found = run(flow())
    assert found == [q for q in queries for _ in (0, 1)]
    warnings = [r for r in caplog.records if r.name == "customer_graph.apq"]
    assert store.counts["redis_errors"] == 4 and len(warnings) == 1  # 4 failures within WARN_EVERY_S
    assert "memory only" in warnings[0].getMessage()

    now[0] += store.WARN_EVERY_S
    with caplog.at_level(logging.WARNING, logger="customer_graph.apq"):
        caplog.clear()
        store._redis_failed(ConnectionError("still down"))
    assert len(caplog.records) == 1 and "3 more like it" in caplog.records[0].getMessage()


def test_after_a_failure_redis_is_left_alone_for_a_while() -> None:
    now = [0.0]
    store = ApqStore(ApqSettings(), f"redis://127.0.0.1:{closed_port()}/0", "cg", clock=lambda: now[0])

    async def flow() -> None:
        await store.get("a" * 64)  # fails, marks Redis down
        await store.get("b" * 64)  # not tried
        await store.put("c" * 64, "{ c }")  # not tried
        await store.close()

    run(flow())
    assert store.counts["redis_errors"] == 1


# -- the allow-list ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load(POS)


def test_registry_loads_and_validates_the_pos_operations(registry: Registry) -> None:
    registry.validate(build_schema()._schema)
    assert sorted(n for op in registry.operations for n in op.names) == ["FindAtTill", "PointOfSale"]


def test_registered_text_and_reformatted_text_are_allowed(registry: Registry) -> None:
    text = (POS / "PointOfSale.graphql").read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    squashed = " ".join(body.split())
    assert registry.allows(text) and registry.allows(squashed) and registry.allows(text)  # the last from cache
    assert sha256(text) in registry.by_hash


@pytest.mark.parametrize("query", ['{ customer(id: "C-000042") { id } }',
                                   "query PointOfSale($id: ID!) { customer(id: $id) { id name } }",
                                   "not graphql at all {"])
def test_other_documents_are_not_allowed(registry: Registry, query: str) -> None:
    assert not registry.allows(query)


def test_check_allowed_per_role(registry: Registry) -> None:
    text = (POS / "FindAtTill.graphql").read_text()
    assert check_allowed(RoleSettings(), registry, "{ anything }") is None
    strict = RoleSettings(operations="registered")
    assert check_allowed(strict, registry, text) is None
    assert check_allowed(strict, registry, "{ __typename }") == DENIED
    assert check_allowed(strict, None, text) == DENIED
    assert "only registered operations are allowed for this role" in DENIED


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    shutil.copytree(POS, tmp_path / "ops")
    yield tmp_path / "ops"


def test_a_broken_document_stops_the_start(folder: Path) -> None:
    (folder / "Broken.graphql").write_text("query Broken { customer(id: \"C-1\") { id }")
    with pytest.raises(OperationsError, match="Broken.graphql"):
        allow_list(OperationsSettings(folder=str(folder)), {})
    (folder / "Broken.graphql").write_text("query Broken { customer(id: \"C-1\") { noSuchField } }")
    with pytest.raises(OperationsError, match="noSuchField"):
        allow_list(OperationsSettings(folder=str(folder)), {}, build_schema()._schema)


def test_a_missing_folder_is_an_error_only_when_a_role_needs_it(tmp_path: Path) -> None:
    missing = OperationsSettings(folder=str(tmp_path / "nowhere"))
    assert len(allow_list(missing, {"agent": RoleSettings()})) == 0
    with pytest.raises(OperationsError, match="not a folder"):
        allow_list(missing, {"till": RoleSettings(operations="registered")})
    with pytest.raises(OperationsError, match="operations.folder is not set"):
        allow_list(OperationsSettings(), {"till": RoleSettings(operations="registered")})


def test_a_relative_folder_is_relative_to_the_config_file(tmp_path: Path) -> None:
    import yaml

    import config

    raw = config.inline(ROOT / "gateway.yaml")  # its sources written inline: the copy stands alone
    raw["operations"] = {"folder": "ops"}
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "gw.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert config.load(path).operations.folder == str(tmp_path / "sub" / "ops")
    assert config.load(ROOT / "gateway.yaml").operations.folder == str(ROOT / "operations")


def test_registry_stops_parsing_a_long_unregistered_query_early(tmp_path: Path) -> None:
    (tmp_path / "a.graphql").write_text("query A { customer(id: \"C-1\") { id } }")
    registry = Registry.load(tmp_path)
    flood = "{" + " ".join(f"a{i}: id" for i in range(50_000)) + "}"
    assert registry.max_tokens < 100 and not registry.allows(flood)
    assert registry.allows('query A {\n  customer(id: "C-1") {\n    id\n  }\n}\n')  # reformatted: still allowed
