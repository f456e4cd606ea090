"""The response cache in process: its store's keys and scopes, tags and invalidation (also through the
record tiers' one invalidation path and another gateway's pub/sub message), TTL and grace with an injected
clock, the race with an invalidation during execution, its bounds; and which answers the endpoint keeps
and when it serves an expired one."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from graphql import parse

from cache.responses import RECENT, Reads, ResponseCache, response_key
from cache.settings import CacheSettings
from cache.tiers import Tiers
from server import response_cache
from server.response_cache import Lookup

PAYLOAD = {"data": {"customer": {"id": "C-000001", "name": "Ada"}}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def reads(*tags: str, expires: float = 1060.0) -> Reads:
    r = Reads()
    for tag in tags:
        r.add(tag, expires)
    return r


def store(clock: Clock | None = None, **kw: int) -> ResponseCache:
    return ResponseCache(kw.get("max_entries", 100), kw.get("max_bytes", 1 << 20), grace_s=300, default_ttl_s=60,
                         clock=clock or Clock())


def test_keys_differ_by_scope_operation_query_and_variables_not_by_key_order() -> None:
    base = response_key("agent", "Q", "query Q { a }", {"id": "1", "n": 2})
    assert response_key("agent", "Q", "query Q { a }", {"n": 2, "id": "1"}) == base
    assert len({base, response_key("pos", "Q", "query Q { a }", {"id": "1", "n": 2}),
                response_key("agent", None, "query Q { a }", {"id": "1", "n": 2}),
                response_key("agent", "Q", "query Q { a b }", {"id": "1", "n": 2}),
                response_key("agent", "Q", "query Q { a }", {"id": "2", "n": 2})}) == 5
    # the scope, operation and query are separated: moving text between them is another key
    assert response_key("a", "b", "c", None) != response_key("ab", "", "c", None)
    assert response_key("", None, "{ a }", None) == response_key("", None, "{ a }", {})


def test_a_stored_answer_comes_back_as_its_own_bytes_with_the_mark() -> None:
    cache = store()
    masked = {**PAYLOAD, "extensions": {"masked": {"Customer.emails": "email"}}}
    assert cache.put(b"k", masked, reads("crm:customers:1"), cache.epoch())
    got = cache.get(b"k")
    assert got is not None
    body = orjson.loads(got.body({"response": "hit", "age_s": 0.0}))
    assert body == {**PAYLOAD, "extensions": {"masked": {"Customer.emails": "email"},
                                              "cache": {"response": "hit", "age_s": 0.0}}}
    assert cache.put(b"plain", PAYLOAD, reads("crm:customers:1"), cache.epoch())
    assert orjson.loads(cache.get(b"plain").body({"response": "hit"}))["extensions"] == {"cache": {"response": "hit"}}


def test_invalidating_a_tag_or_its_source_drops_only_the_responses_that_read_it() -> None:
    cache = store()
    cache.put(b"one", PAYLOAD, reads("crm:customers:1", "billing:accounts:A1"), cache.epoch())
    cache.put(b"two", PAYLOAD, reads("crm:customers:2", "billing:accounts:A2"), cache.epoch())
    cache.put(b"three", PAYLOAD, reads("loyalty:loyalty:9"), cache.epoch())
    cache.drop(keys=["billing:accounts:A1"])
    assert cache.get(b"one") is None and cache.get(b"two") is not None
    cache.drop(sources=["billing"])
    assert cache.get(b"two") is None and cache.get(b"three") is not None
    assert "billing" not in cache.by_source and not any(t.startswith("billing:") for t in cache.by_tag)
    cache.drop(everything=True)
    assert len(cache) == 0 and cache.bytes == 0


def test_an_answer_expires_with_the_first_record_it_read_and_is_kept_for_the_grace() -> None:
    clock = Clock()
    cache = store(clock)
    r = reads("crm:customers:1", expires=1060.0)
    r.add("helpdesk:tickets:1", 1015.0)
    cache.put(b"k", PAYLOAD, r, cache.epoch())
    clock.now = 1014.9
    assert cache.get(b"k").fresh(clock.now)
    clock.now = 1015.0
    stale = cache.get(b"k")
    assert stale is not None and not stale.fresh(clock.now)  # past its TTL: only for stale-if-error
    clock.now = 1015.0 + 300
    assert cache.get(b"k") is None and len(cache) == 0


def test_an_answer_that_read_nothing_lives_the_default_ttl_and_a_spoiled_or_expired_one_is_not_kept() -> None:
    clock = Clock()
    cache = store(clock)
    assert cache.put(b"none", PAYLOAD, Reads(), cache.epoch())
    assert cache.get(b"none").expires == 1060.0
    spoiled = reads("crm:customers:1")
    spoiled.spoiled = True
    assert not cache.put(b"spoiled", PAYLOAD, spoiled, cache.epoch())
    assert not cache.put(b"old", PAYLOAD, reads("crm:customers:1", expires=999.0), cache.epoch())
    assert cache.get(b"spoiled") is None and cache.get(b"old") is None


def test_an_invalidation_during_execution_keeps_its_answer_out() -> None:
    cache = store()
    since = cache.epoch()
    cache.drop(keys=["crm:customers:1"])  # lands after the request read the record, before it answers
    assert not cache.put(b"k", PAYLOAD, reads("crm:customers:1"), since)
    assert cache.put(b"other", PAYLOAD, reads("crm:customers:2"), since)  # it read nothing invalidated
    since = cache.epoch()
    cache.drop(sources=["crm"])
    assert not cache.put(b"k", PAYLOAD, reads("crm:customers:3"), since)
    since = cache.epoch()
    for i in range(RECENT + 1):  # more invalidations than remembered: nothing begun before is kept
        cache.drop(keys=[f"billing:accounts:{i}"])
    assert not cache.put(b"k", PAYLOAD, reads("crm:customers:4"), since)


def test_bounded_by_entries_and_bytes_least_recently_used_first() -> None:
    cache = store(max_entries=3)
    for i in range(3):
        cache.put(b"%d" % i, PAYLOAD, reads(f"crm:customers:{i}"), cache.epoch())
    cache.get(b"0")  # used: the oldest is now 1
    cache.put(b"3", PAYLOAD, reads("crm:customers:3"), cache.epoch())
    assert [k for k in cache.entries] == [b"2", b"0", b"3"] and cache.evictions == 1
    assert "crm:customers:1" not in cache.by_tag
    one = cache.entries[b"3"].size
    small = store(max_bytes=one * 2 + 10)
    for i in range(5):
        small.put(b"%d" % i, PAYLOAD, reads(f"crm:customers:{i}"), small.epoch())
    assert len(small) == 2 and small.bytes <= one * 2 + 10
    big = {"data": {"blob": "x" * (one * 3)}}
    assert not small.put(b"big", big, reads("crm:customers:9"), small.epoch())  # larger than the bound: never


def test_the_record_tiers_invalidation_and_another_gateways_message_drop_responses() -> None:
    tiers = Tiers(CacheSettings())
    responses = tiers.responses
    assert responses is not None
    later = time.time() + 60  # the tiers' store keeps the wall clock, as records do
    assert responses.put(b"a", PAYLOAD, reads("crm:customers:1", expires=later), responses.epoch())
    assert responses.put(b"b", PAYLOAD, reads("billing:accounts:2", expires=later), responses.epoch())
    asyncio.run(tiers.invalidate(keys=["crm:customers:1"]))  # a mutation, /cache/invalidate, a source event
    assert responses.get(b"a") is None and responses.get(b"b") is not None
    tiers._drop_local([], ["billing"])  # what a pub/sub message from another gateway applies
    assert responses.get(b"b") is None
    assert Tiers(CacheSettings(responses={"enabled": False})).responses is None


def test_only_a_source_failure_brings_back_an_expired_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    query = "query Q { customer { id name } }"
    monkeypatch.setattr(response_cache, "cached_document", lambda q: parse(q))  # as the query cache holds it
    clock = Clock()
    cache = store(clock)
    cache.put(response_key("", "Q", query, None), PAYLOAD, reads("crm:customers:1", expires=1010.0), cache.epoch())
    clock.now = 1020.0  # expired, within the grace

    def settle(payload: dict[str, Any], no_cache: bool = False) -> dict[str, Any] | None:
        answer = Lookup(cache, "", query, "Q", None, no_cache).settle(payload, Reads(), "application/json")
        return None if answer is None else orjson.loads(answer.body)

    def failed(code: str) -> dict[str, Any]:
        return {"data": {"customer": None}, "errors": [{"message": "x", "extensions": {"code": code}}]}

    assert settle(failed("NOT_FOUND")) is None  # the client's answer now: not covered by an older one
    assert settle(failed("SOURCE_UNAVAILABLE"), no_cache=True) is None  # no-cache asked for it live
    stale = settle(failed("SOURCE_TIMEOUT"))
    assert stale == {**PAYLOAD, "extensions": {"cache": {"response": "stale", "age_s": 20.0}}}
    assert Lookup(cache, "pos", query, "Q", None, False).settle(failed("SOURCE_TIMEOUT"), Reads(), "") is None
    clock.now = 1010.0 + 300  # past the grace
    assert settle(failed("SOURCE_TIMEOUT")) is None


def test_a_mutations_answer_is_never_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(response_cache, "cached_document", lambda q: parse(q))
    cache = store()
    mutation = "mutation M { recordInteraction { id } }"
    assert Lookup(cache, "", mutation, "M", None, False).settle(PAYLOAD, reads("contact:interactions:1"), "") is None
    assert len(cache) == 0
    query = "query Q { customer { id } }"
    assert Lookup(cache, "", query, "Q", None, False).settle(PAYLOAD, reads("crm:customers:1", expires=1060.0),
                                                             "") is None
    assert len(cache) == 1
