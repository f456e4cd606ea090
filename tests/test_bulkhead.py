"""The bulkhead's slots are never lost or doubled: not when waiters queue, overflow, or are cancelled."""

from __future__ import annotations

import asyncio

import pytest

from connectors.resilience import Bulkhead, BulkheadFull


def test_waiters_take_freed_slots_in_order_and_overflow_fails_at_once() -> None:
    async def scenario() -> list[str]:
        bulkhead, order = Bulkhead(limit=1, queue=2), []
        assert bulkhead.try_enter()

        async def wait(name: str) -> None:
            await bulkhead.enter()
            order.append(name)

        waiters = [asyncio.create_task(wait(n)) for n in ("first", "second")]
        await asyncio.sleep(0)
        assert bulkhead.waiting == 2
        with pytest.raises(BulkheadFull):
            await bulkhead.enter()  # the line is full
        assert bulkhead.rejected == 1
        bulkhead.leave()
        await asyncio.sleep(0)
        assert order == ["first"] and bulkhead.free == 0
        bulkhead.leave()
        await asyncio.gather(*waiters)
        bulkhead.leave()
        assert bulkhead.free == 1 and bulkhead.waiting == 0
        return order

    assert asyncio.run(scenario()) == ["first", "second"]


def test_cancelled_waiters_give_their_slot_back() -> None:
    async def scenario() -> Bulkhead:
        bulkhead = Bulkhead(limit=1, queue=5)
        assert bulkhead.try_enter()
        gone = asyncio.create_task(bulkhead.enter())
        handed = asyncio.create_task(bulkhead.enter())
        await asyncio.sleep(0)
        gone.cancel()  # cancelled while waiting
        await asyncio.sleep(0)
        bulkhead.leave()  # the slot goes to `handed`...
        handed.cancel()  # ...which is cancelled before it runs: it must pass the slot on
        for task in (gone, handed):
            with pytest.raises(asyncio.CancelledError):
                await task
        return bulkhead

    bulkhead = asyncio.run(scenario())
    assert (bulkhead.free, bulkhead.waiting) == (1, 0)
    assert bulkhead.try_enter() and not bulkhead.try_enter()
