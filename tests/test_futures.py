"""Chained futures deliver what a coroutine would have: the mapped result, the source's error, or fn's."""

from __future__ import annotations

import asyncio

import pytest

from resolvers.futures import all_of, chain


def test_result_error_and_cancellation_travel_down_the_chain() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ok, bad, broken, gone = (loop.create_future() for _ in range(4))
        doubled = chain(ok, lambda v: v * 2)
        failed = chain(bad, lambda v: v)
        raised = chain(broken, lambda v: 1 / v)
        cancelled = chain(gone, lambda v: v)
        ok.set_result(21)
        bad.set_exception(LookupError("source down"))
        broken.set_result(0)
        gone.cancel()
        assert await doubled == 42
        with pytest.raises(LookupError, match="source down"):
            await failed
        with pytest.raises(ZeroDivisionError):
            await raised
        with pytest.raises(asyncio.CancelledError):
            await cancelled

    asyncio.run(scenario())


def test_all_of_keeps_order_and_reports_the_first_error() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        a, b = loop.create_future(), loop.create_future()
        both = all_of([a, b])
        b.set_result("b")
        a.set_result("a")
        assert await both == ["a", "b"]
        single, failing = loop.create_future(), loop.create_future()
        one, err = all_of([single]), all_of([loop.create_future(), failing])
        single.set_result(1)
        failing.set_exception(KeyError("x"))
        assert await one == [1]
        with pytest.raises(KeyError):
            await err

    asyncio.run(scenario())
