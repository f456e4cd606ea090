"""Redis down: invalidations never fail the write that asked for them, drop the in-process tier at
once and wait in a bounded queue; keys they cover are not read back from Redis's stale entries; the
log says so once per interval, not once per request. No sleeps: the clocks are injected."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any

import pytest

from cache.logthrottle import LogThrottle
from cache.settings import CacheSettings
from cache.tiers import Entry, Pending, Tiers, cache_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def entry(value: Any) -> Entry:
    return Entry(value, True, time.time(), 60.0)


def test_log_throttle_logs_once_per_kind_per_interval_with_the_count_left_out(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    throttle = LogThrottle(logging.getLogger("test.throttle"), every_s=30, clock=clock)
    with caplog.at_level(logging.WARNING, "test.throttle"):
        assert throttle.warning("redis", "redis down: %s", "refused")
        for _ in range(500):
            clock.now += 0.01
            assert not throttle.warning("redis", "redis down: %s", "refused")
        assert throttle.warning("pubsub", "pub/sub lost")  # another kind has its own interval
        clock.now += 30
        assert throttle.warning("redis", "redis down: %s", "refused")
    assert [r.getMessage() for r in caplog.records] == [
        "redis down: refused", "pub/sub lost", "redis down: refused (500 more like it in the last 35 s not logged)"]
    assert throttle.suppressed == {}


def test_pending_invalidations_are_bounded_and_survive_an_older_delivery() -> None:
    pending = Pending(limit=3)
    pending.add(["crm:crm:1"], ["billing"])
    assert pending.covers("crm:crm:1") and pending.covers("billing:accounts:9") and not pending.covers("crm:crm:2")
    sent = pending.batch()
    pending.add(["crm:crm:1"], [])  # invalidated again while the first delivery was on its way
    pending.delivered(sent)
    assert pending.covers("crm:crm:1") and not pending.covers("billing:accounts:9")
    pending.add([f"shop:orders:{n}" for n in range(5)], [])  # past the bound: one "everything" instead
    assert pending.everything and not pending.keys and pending.covers("any:thing:at-all")
    pending.delivered(pending.batch())
    assert not pending


def test_invalidate_with_redis_down_drops_locally_queues_and_does_not_raise(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()

    async def scenario() -> None:
        tiers = Tiers(CacheSettings(redis_url=f"redis://127.0.0.1:{closed_port()}/0", namespace="outage"), clock=clock)
        try:
            tiers.store_local("crm", "crm", {"K1": entry("old"), "K2": entry("other")})
            for _ in range(50):  # a burst of writes while Redis is down
                await tiers.invalidate(keys=[cache_key("crm", "crm", "K1")])
            assert tiers.lookup_local("crm", "crm", ["K1", "K2"]).keys() == {"K2"}  # dropped here at once
            assert tiers.status()["pending_invalidations"] == 1
            assert tiers._flusher is not None and not tiers._flusher.done()  # retrying in the background

            # Redis is tried again after its pause, and holds the stale K1 and a K3: only K3 may come from there.
            clock.now += 60
            asked: list[list[str]] = []

            async def stale_redis(keys: list[str]) -> list[Entry]:
                asked.append(keys)
                return [entry("stale") for _ in keys]

            tiers.l2.multi_get = stale_redis  # type: ignore[union-attr,method-assign]
            found = await tiers.lookup("crm", "crm", ["K1", "K3"])
            assert asked == [[cache_key("crm", "crm", "K3")]]
            assert set(found) == {"K3"} and "K1" not in tiers.lookup_local("crm", "crm", ["K1"])
        finally:
            await tiers.close()

    with caplog.at_level(logging.INFO, "customer_graph.cache"):
        asyncio.run(scenario())
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "redis tier unavailable" in warnings[0].getMessage(), warnings
    assert not any(r.exc_info for r in caplog.records)  # a known outage: no traceback
