"""strawberry's DataLoader, dispatching a batch only once keys have stopped arriving.

The stock loader dispatches on the next loop iteration. Fields of different customers reach
their `load` after different numbers of hops (one source key or two, a gather or not), so
stragglers one iteration late would cost a second call to the source. Waiting until a few
iterations pass with no new key keeps it to one call per source per level, for a few
microseconds of latency.
"""

from __future__ import annotations

from asyncio import Future, create_task
from collections.abc import Callable
from typing import Any

from strawberry.dataloader import Batch, DataLoader, dispatch_batch

SETTLE_TICKS = 4  # loop iterations without a new key before the batch goes out


class SettledLoader(DataLoader[str, Any]):
    def __init__(self, load_fn: Any, peek: Callable[[str], tuple[bool, Any]] | None = None) -> None:
        super().__init__(load_fn)
        self.peek = peek  # a synchronous cache check: a warm key needs no batch and no loop tick

    def load(self, key: str) -> Future[Any]:  # type: ignore[override]
        future = self.cache_map.get(key) if self.cache else None
        if future is not None and not future.cancelled():
            return future
        future = self.loop.create_future()
        if self.cache:
            self.cache_map.set(key, future)
        if self.peek is not None:
            hit, value = self.peek(key)
            if hit:
                future.set_result(value)
                return future
        batch = self.batch
        if batch is None or batch.dispatched or (self.max_batch_size and len(batch) >= self.max_batch_size):
            batch = self.batch = Batch()
            self._watch(batch, 0, 0)
        batch.add_task(key, future)
        return future

    def _watch(self, batch: Batch[str, Any], seen: int, idle: int) -> None:
        def tick() -> None:
            size = len(batch)
            quiet = idle + 1 if size == seen else 0
            if quiet >= SETTLE_TICKS:
                batch._dispatch_task = create_task(dispatch_batch(self, batch))
            else:
                self._watch(batch, size, quiet)

        self.loop.call_soon(tick)
