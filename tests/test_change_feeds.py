"""The change feeds and the bus, in-process: polling an updated_at column of a real SQLite table (ties,
late commits, bursts larger than a batch), NOTIFY payloads and bursts, the bus's fan-out, and the cache
never keeping a record read while its key was invalidated."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from cache.records import RecordCache
from cache.settings import CacheSettings
from cache.tiers import Pending
from connectors import feeds
from connectors.changes import ChangeBus, ChangeEvent
from connectors.events import Notify, Poll
from connectors.feeds import NotifyFeed, PollFeed, parse_notification
from connectors.sql_drivers import Aiosqlite, Driver

OPEN: list[PollFeed] = []  # the feeds a test made, closed after it


def on_table(tmp_path: Path, test: Callable[[AsyncEngine], Awaitable[None]], rows: bool = True) -> None:
    """Run `test` in a loop of its own over a fresh SQLite table `items` (with two old rows unless told)."""

    async def scenario() -> None:
        eng = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'feed.sqlite'}")
        try:
            async with eng.begin() as conn:
                await conn.execute(text("CREATE TABLE items (id TEXT PRIMARY KEY, updated_at TEXT)"))
                if rows:
                    await conn.execute(text("INSERT INTO items VALUES ('old-1', '2026-01-01 10:00:00.000'), "
                                            "('old-2', '2026-01-01 10:00:01.000')"))
            await test(eng)
        finally:
            while OPEN:
                await OPEN.pop().close()
            await eng.dispose()

    asyncio.run(scenario())


async def write(engine: AsyncEngine, *rows: tuple[str, str]) -> None:
    async with engine.begin() as conn:
        for key, at in rows:
            await conn.execute(text("INSERT INTO items VALUES (:k, :u) ON CONFLICT (id) DO UPDATE SET updated_at = :u"),
                               {"k": key, "u": at})


def feed(engine: AsyncEngine, driver: Driver | None = Aiosqlite(), **poll: Any) -> PollFeed:
    async def deliver(_: list[ChangeEvent]) -> None:
        raise AssertionError("poll_once is called directly here")

    made = PollFeed("shop", engine, Poll(entity="orders", table="items", key_column="id",
                                         updated_column="updated_at", **poll), deliver, driver)
    OPEN.append(made)
    return made


async def keys(f: PollFeed) -> list[str]:
    return [e.key for e in await f.poll_once()]


def test_a_poll_reports_rows_changed_since_it_started_once_each(tmp_path: Path) -> None:
    on_table(tmp_path, _a_poll_reports_rows_changed_since_it_started_once_each)


async def _a_poll_reports_rows_changed_since_it_started_once_each(engine: AsyncEngine) -> None:
    f = feed(engine)
    assert await keys(f) == []  # what changed before the gateway started is not news
    await write(engine, ("a", "2026-01-01 10:00:02.000"), ("b", "2026-01-01 10:00:03.000"))
    events = await f.poll_once()
    assert [(e.source, e.entity, e.key, e.change) for e in events] == [("shop", "orders", "a", "changed"),
                                                                       ("shop", "orders", "b", "changed")]
    assert events[0].at == pytest.approx(1767261602.0)  # naive timestamps are UTC
    assert await keys(f) == []
    await write(engine, ("a", "2026-01-01 10:00:04.000"))  # the same row written again
    assert await keys(f) == ["a"]


def test_a_driver_without_a_direct_reader_polls_through_sqlalchemy(tmp_path: Path) -> None:
    on_table(tmp_path, _through_sqlalchemy)


async def _through_sqlalchemy(engine: AsyncEngine) -> None:
    f = feed(engine, driver=None)
    assert await keys(f) == []
    await write(engine, ("a", "2026-01-01 10:00:02.000"))
    assert await keys(f) == ["a"] and await keys(f) == []


def test_ties_and_late_commits_are_not_missed(tmp_path: Path) -> None:
    on_table(tmp_path, _ties_and_late_commits_are_not_missed)


async def _ties_and_late_commits_are_not_missed(engine: AsyncEngine) -> None:
    f = feed(engine, lookback=3)
    await f.poll_once()
    await write(engine, ("a", "2026-01-01 10:00:05.000"))
    assert await keys(f) == ["a"]
    # Committed after the poll saw 10:00:05, one with the same value and one with an earlier one.
    await write(engine, ("tie", "2026-01-01 10:00:05.000"), ("late", "2026-01-01 10:00:04.500"))
    assert sorted(await keys(f)) == ["late", "tie"]
    assert await keys(f) == []


def test_a_burst_larger_than_a_batch_is_read_over_several_polls(tmp_path: Path) -> None:
    on_table(tmp_path, _a_burst_larger_than_a_batch_is_read_over_several_polls)


async def _a_burst_larger_than_a_batch_is_read_over_several_polls(engine: AsyncEngine) -> None:
    f = feed(engine, batch=10)
    await f.poll_once()
    burst = [f"k{i:02}" for i in range(25)]
    await write(engine, *[(k, f"2026-01-01 10:01:{i:02}.000") for i, k in enumerate(burst)])
    seen = [await keys(f) for _ in range(5)]
    assert [k for batch in seen for k in batch] == burst
    assert all(len(batch) <= 10 for batch in seen) and seen[-1] == []


def test_an_empty_table_is_read_from_its_first_row(tmp_path: Path) -> None:
    on_table(tmp_path, _an_empty_table_is_read_from_its_first_row, rows=False)


async def _an_empty_table_is_read_from_its_first_row(engine: AsyncEngine) -> None:
    f = feed(engine)
    assert await keys(f) == []
    await write(engine, ("first", "2026-01-01 10:00:00.000"))
    assert await keys(f) == ["first"]


def test_notify_payloads_become_events_and_others_are_ignored() -> None:
    entities = {"crm"}
    assert parse_notification("crm", entities, '{"entity": "crm", "key": "1000003", "change": "deleted"}') == \
        ChangeEvent("crm", "crm", "1000003", "deleted")
    assert parse_notification("crm", entities, '{"entity": "crm", "key": 7, "at": 1767225600.5}') == \
        ChangeEvent("crm", "crm", "7", "changed", 1767225600.5)
    for bad in ("not json", '{"entity": "orders", "key": "1"}', '{"entity": "crm"}', '{"entity": "crm", "key": null}',
                '{"entity": "crm", "key": "1", "change": "gone"}', "[1]"):
        assert parse_notification("crm", entities, bad) is None, bad


def test_the_bus_hands_every_event_to_every_listener_and_never_blocks() -> None:
    asyncio.run(_bus())


async def _bus() -> None:
    bus = ChangeBus()
    fast, slow = bus.subscribe(), bus.subscribe(size=2)
    events = [ChangeEvent("helpdesk", "tickets", f"k{i}@example.com") for i in range(3)]
    for e in events:
        bus.publish(e)
    assert [await fast.get() for _ in range(3)] == events
    assert slow.missed == 1 and [await slow.get() for _ in range(2)] == events[1:]  # the oldest lost, and said so
    slow.close()
    bus.publish(events[0])
    assert await fast.get() == events[0] and slow._queue.empty()
    with bus.subscribe() as listener:
        bus.publish(events[2])
        async for event in listener:
            assert event == events[2]
            break
    assert bus._subscribers == {fast}


def test_events_wait_with_their_invalidations_until_redis_takes_them() -> None:
    pending = Pending(limit=3)
    pending.add(["a:e:1"], [], [{"key": "1"}])
    batch = pending.batch()
    pending.add(["a:e:2"], [], [{"key": "2"}])  # while the first batch was being sent
    pending.delivered(batch)
    assert [e for _, e in pending.events] == [{"key": "2"}] and list(pending.keys) == ["a:e:2"]
    for i in range(5):
        pending.add([], ["a"], [{"key": str(i)}])
    assert [e["key"] for _, e in pending.events] == ["2", "3", "4"]  # bounded: the oldest dropped


class SlowSource:
    """A connector stand-in whose read returns the value it had when the read started."""

    name = "helpdesk"

    def __init__(self) -> None:
        self.value = "OPEN"
        self.reading = asyncio.Event()
        self.release = asyncio.Event()

    async def fetch(self, entity: str, keys: list[str], deadline: float | None = None) -> dict[str, Any]:
        seen = self.value
        self.reading.set()
        await self.release.wait()
        return dict.fromkeys(keys, seen)


def test_a_read_under_way_when_its_key_is_invalidated_is_answered_but_not_kept() -> None:
    asyncio.run(_racing_read())


async def _racing_read() -> None:
    cache = RecordCache(CacheSettings(), {"helpdesk": {"tickets": 300}}, {})
    source = SlowSource()
    read = asyncio.create_task(cache.fetch(source, "tickets", ["ann"], None))  # type: ignore[arg-type]
    await source.reading.wait()
    source.value = "SOLVED"  # the change, and its event, while the old value is on its way
    await cache.tiers.invalidate(keys=["helpdesk:tickets:ann"])
    source.release.set()
    assert (await read)[0] == ["OPEN"]
    assert cache.tiers.lookup_local("helpdesk", "tickets", ["ann"]) == {}
    assert (await cache.fetch(source, "tickets", ["ann"], None))[0] == ["SOLVED"]  # type: ignore[arg-type]
    assert "helpdesk:tickets:ann" in cache.tiers.l1._data  # and a read after the change is kept


def test_notifications_of_a_burst_are_applied_together_and_an_overflow_drops_the_source(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feeds, "BACKLOG", 3)
    asyncio.run(_bursts())


async def _bursts() -> None:
    delivered: list[list[str]] = []
    gaps: list[str] = []

    async def deliver(events: list[ChangeEvent]) -> None:
        delivered.append([e.key for e in events])

    async def gap(source: str) -> None:
        gaps.append(source)

    f = NotifyFeed("crm", "postgresql+asyncpg://gateway@db.example/crm", Notify(channel="crm_changes"), {"crm"},
                   deliver, gap)
    drain = asyncio.create_task(f._drain())
    try:
        for key in ("1", "2"):
            f._notified(None, 0, "crm_changes", f'{{"entity": "crm", "key": "{key}"}}')
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert delivered == [["1", "2"]] and gaps == []
        for key in ("3", "4", "5", "6", "7"):  # more than the backlog before the drain runs
            f._notified(None, 0, "crm_changes", f'{{"entity": "crm", "key": "{key}"}}')
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert delivered == [["1", "2"]] and gaps == ["crm"]  # what was waiting is covered by the gap
    finally:
        drain.cancel()
