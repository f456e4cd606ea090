"""The record cache: hits, partial batches, TTL, bounds, stale-if-error, single flight, no-cache,
invalidation, negative results, and two gateways sharing Redis."""

from __future__ import annotations

import asyncio
import json
import pickle
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from cache.memory import BoundedMemoryCache
from tests.harness import LIVE, Estate, Gateway, gateway_config, http, start_gateway
from tests.truth import Truth

TOKEN = "test-admin-token"
VIEW = """query($ids: [ID!]!) { customers(ids: $ids) { id name accounts { number balance }
  loyalty { tier points } webActivity { id } orders { number shipments { id } } } }"""


def cached_config(estate: Estate, **cache: Any) -> dict[str, Any]:
    cfg = gateway_config(estate, {"loyalty": {"ttl_s": {"loyalty": 1}}, "analytics": {"ttl_s": {"web_sessions": 1}},
                                  "crosswalk": {"negative_ttl_s": 2}})
    # The records' tier alone: whole responses above it (tests/test_responses_http.py) would answer repeats.
    cfg["cache"] = {"enabled": True, "admin_token": TOKEN, "responses": {"enabled": False}, **cache}
    return cfg


@pytest.fixture(scope="module")
def gw(estate: Estate, workdir: Path) -> Iterator[Gateway]:
    g = start_gateway(cached_config(estate), workdir, "cached")
    yield g
    g.stop()


@pytest.fixture(scope="module")
def t(truth: Any) -> Truth:
    return Truth(truth)


def holders(t: Truth, system: str, start: int, n: int) -> list[str]:
    """n golden ids from `start` on, each known to `system`."""
    return [g for g in sorted(t.ids)[start:] if t.ids[g][system]][:n]


def requests(estate: Estate, *sources: str) -> dict[str, int]:
    return {s: estate.stats(s)["requests"] for s in sources}


def cache_status(gw: Gateway) -> dict[str, Any]:
    return json.loads(http("GET", gw.url + "/readyz")[2])["cache"]


def invalidate(gw: Gateway, body: dict[str, Any], token: str = TOKEN) -> tuple[int, dict[str, Any]]:
    status, _, raw = http("POST", gw.url + "/cache/invalidate", json.dumps(body).encode(),
                          {"content-type": "application/json", "authorization": f"Bearer {token}"})
    return status, json.loads(raw)


def test_hits_make_no_source_call(estate: Estate, gw: Gateway, t: Truth) -> None:
    ids = holders(t, "billing", 0, 10)
    first = gw.gql(VIEW, {"ids": ids})
    before = cache_status(gw)["sources"]["billing"]
    estate.reset_stats()
    assert gw.gql(VIEW, {"ids": ids}) == first
    assert requests(estate, "billing", "shipping") == {"billing": 0, "shipping": 0}
    after = cache_status(gw)["sources"]["billing"]
    assert after["hits"] - before["hits"] == sum(len(t.ids[g]["billing"]) for g in ids)


def test_mixed_batch_asks_only_for_misses(estate: Estate, gw: Gateway, t: Truth) -> None:
    ids = holders(t, "billing", 20, 20)
    gw.gql(VIEW, {"ids": ids[:10]})
    estate.reset_stats()
    answer = gw.gql(VIEW, {"ids": ids})
    assert "errors" not in answer
    billing = estate.stats("billing")
    assert billing["requests"] == 1 and billing["keys"] == sum(len(t.ids[g]["billing"]) for g in ids[10:])


def test_ttl_expiry_refetches(estate: Estate, gw: Gateway, t: Truth) -> None:
    ids = holders(t, "loyalty", 50, 3)  # loyalty's TTL is 1 s here
    gw.gql(VIEW, {"ids": ids})
    estate.reset_stats()
    gw.gql(VIEW, {"ids": ids})
    assert requests(estate, "loyalty") == {"loyalty": 0}
    time.sleep(1.2)
    gw.gql(VIEW, {"ids": ids})
    assert requests(estate, "loyalty") == {"loyalty": 1}


def test_stale_if_error_serves_and_marks(estate: Estate, gw: Gateway, t: Truth) -> None:
    ids = holders(t, "analytics", 80, 2)  # analytics' TTL is 1 s, the grace 300 s
    fresh = gw.gql(VIEW, {"ids": ids})
    time.sleep(1.2)
    estate.faults("analytics", {"down": True})
    answer = gw.gql(VIEW, {"ids": ids})
    assert "errors" not in answer and answer["data"] == fresh["data"]
    stale = answer["extensions"]["stale"]
    assert {(s["source"], tuple(s["path"])) for s in stale} == \
           {("analytics", ("customers", i, "webActivity")) for i in range(2)}
    assert all(1.0 <= s["age_s"] < 60 for s in stale)
    assert cache_status(gw)["sources"]["analytics"]["stale"] >= 2
    estate.clear_faults()
    assert "extensions" not in gw.gql(VIEW, {"ids": ids})  # source back: fresh again, unmarked


def test_single_flight_under_50_concurrent_requests(estate: Estate, gw: Gateway, t: Truth) -> None:
    ids = holders(t, "billing", 120, 3)
    estate.faults("billing", {"latency_ms": 400})
    estate.reset_stats()
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: gw.gql(VIEW, {"ids": ids}), range(50)))
    assert all(a == answers[0] and "errors" not in a for a in answers)
    assert estate.stats("billing")["requests"] == 1


def test_no_cache_reaches_the_source_and_refreshes(estate: Estate, gw: Gateway, t: Truth) -> None:
    ids = holders(t, "billing", 150, 3)
    gw.gql(VIEW, {"ids": ids})
    estate.reset_stats()
    gw.gql(VIEW, {"ids": ids}, LIVE)
    assert requests(estate, "billing") == {"billing": 1}
    gw.gql(VIEW, {"ids": ids})
    assert requests(estate, "billing") == {"billing": 1}  # the live read refreshed the cache


def test_invalidation_by_customer_refetches_only_that_customer(estate: Estate, gw: Gateway, t: Truth) -> None:
    a, b = holders(t, "billing", 180, 2)
    gw.gql(VIEW, {"ids": [a, b]})
    status, body = invalidate(gw, {"customer": a})
    assert status == 200 and body["keys"] > 3
    estate.reset_stats()
    gw.gql(VIEW, {"ids": [a, b]})
    assert estate.stats("billing")["keys"] == len(t.ids[a]["billing"])
    orders = [o for o in t.orders(a)]
    assert estate.stats("shipping")["keys"] == (len(orders) if orders else 0)


def test_invalidation_by_source_and_key(estate: Estate, gw: Gateway, t: Truth) -> None:
    ids = holders(t, "billing", 200, 3)
    gw.gql(VIEW, {"ids": ids})
    account = t.ids[ids[0]]["billing"][0]
    assert invalidate(gw, {"source": "billing", "key": account})[0] == 200
    estate.reset_stats()
    gw.gql(VIEW, {"ids": ids})
    assert estate.stats("billing")["keys"] == 1
    assert invalidate(gw, {"source": "billing"})[0] == 200
    estate.reset_stats()
    gw.gql(VIEW, {"ids": ids})
    assert estate.stats("billing")["keys"] == sum(len(t.ids[g]["billing"]) for g in ids)


def test_invalidation_is_protected(gw: Gateway, gateway: Gateway) -> None:
    assert invalidate(gw, {"source": "billing"}, token="wrong")[0] == 401
    assert invalidate(gw, {"source": "nope"})[0] == 400
    assert invalidate(gateway, {"source": "billing"})[0] == 403  # no admin token configured there


@pytest.mark.parametrize("body", [
    b'{"source": ["crm"]}', b'{"source": {"crm": 1}}', b'{"source": 7}', b'{"source": ""}',
    b'{"source": "billing", "key": ["A-1"]}', b'{"source": "billing", "key": 5}', b'{"key": "A-1"}',
    b'{"customer": ["C-000001"]}', b'{"customer": 42}', b'{"customer": "C-000001", "source": "billing"}',
    b'{"sources": ["billing"]}', b'{}', b'["billing"]', b'null', b'{"source": "billing"', b'\xff\xfe',
])
def test_invalidation_answers_a_bad_body_with_400_and_a_reason(gw: Gateway, body: bytes) -> None:
    status, headers, raw = http("POST", gw.url + "/cache/invalidate", body,
                                {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"})
    assert status == 400, (status, raw[:300])
    assert headers["content-type"].startswith("application/json")
    reason = json.loads(raw)["error"]
    assert isinstance(reason, str) and reason and "Traceback" not in reason


def test_negative_results_are_cached_briefly(gw: Gateway) -> None:
    query = '{ findCustomers(email: "nobody-%s@nowhere.example") { id } }' % uuid.uuid4().hex

    def crosswalk_calls() -> int:
        return json.loads(http("GET", gw.url + "/readyz")[2])["sources"]["crosswalk"]["calls"]

    start = crosswalk_calls()
    assert gw.gql(query) == {"data": {"findCustomers": []}}
    assert gw.gql(query) == {"data": {"findCustomers": []}}
    assert crosswalk_calls() == start + 1
    time.sleep(2.2)  # the crosswalk's negative TTL here
    gw.gql(query)
    assert crosswalk_calls() == start + 2


def test_memory_tier_stays_within_its_bound() -> None:
    async def fill() -> BoundedMemoryCache:
        tier = BoundedMemoryCache(max_entries=50_000, max_bytes=8 * 1024 * 1024,
                                  sizer=lambda _k, v: len(pickle.dumps(v)))
        for start in range(0, 200_000, 10_000):
            await tier.multi_set([(f"billing:accounts:BA-{i}", {"n": i, "pad": "x" * (i % 200)})
                                  for i in range(start, start + 10_000)], ttl=60)
            assert len(tier) <= 50_000 and tier.bytes <= 8 * 1024 * 1024
        assert await tier.get("billing:accounts:BA-199999") == {"n": 199999, "pad": "x" * 199}
        assert await tier.get("billing:accounts:BA-0") is None  # least recently used: evicted
        return tier

    tier = asyncio.run(fill())
    assert tier.evictions["billing"] == 200_000 - len(tier)


def test_two_gateways_share_redis_entries_and_invalidations(estate: Estate, workdir: Path, t: Truth,
                                                            redis_url: str) -> None:
    namespace = f"cgtest-{uuid.uuid4().hex[:8]}"
    cfg = cached_config(estate, redis_url=redis_url, namespace=namespace)
    a = start_gateway(cfg, workdir, "shared-a")
    b = start_gateway(cfg, workdir, "shared-b")
    try:
        ids = holders(t, "billing", 250, 2)
        estate.reset_stats()
        first = a.gql(VIEW, {"ids": ids})
        assert requests(estate, "billing") == {"billing": 1}
        assert b.gql(VIEW, {"ids": ids}) == first  # from Redis: the source is not asked again
        assert requests(estate, "billing") == {"billing": 1}
        assert cache_status(b)["sources"]["billing"]["l2_hits"] > 0
        assert invalidate(a, {"customer": ids[0]})[0] == 200
        time.sleep(1.0)  # pub/sub reaches the other gateway's in-process tier within a second
        estate.reset_stats()
        b.gql(VIEW, {"ids": ids})
        assert estate.stats("billing")["keys"] == len(t.ids[ids[0]]["billing"])
    finally:
        a.stop()
        b.stop()
