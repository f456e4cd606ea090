"""Change events from the sources, and the in-process bus that hands them to whoever listens.

A `ChangeEvent` says "entity E of source S, key K, changed / created / deleted". The gateway publishes
each accepted one on the `ChangeBus` after its cache entries are dropped (resolvers/changes.py), so a
listener that re-reads on an event reads fresh records. Events other gateways accepted arrive through
Redis with their invalidation (cache/tiers.py) and are published here too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")
Change = Literal["changed", "created", "deleted"]
CHANGES: tuple[Change, ...] = ("changed", "created", "deleted")


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    source: str
    entity: str
    key: str
    change: Change = "changed"
    at: float | None = None  # when it changed at the source (epoch seconds), when the source said

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ChangeEvent:
        return cls(str(raw["source"]), str(raw["entity"]), str(raw["key"]), raw.get("change", "changed"),
                   raw.get("at"))


class Subscription(Generic[T]):
    """One listener's bounded queue. A listener too slow to keep up loses the oldest items and is told
    so by `missed` (then it should re-read what it watches): the bus never blocks the publisher."""

    def __init__(self, bus: Bus[T], size: int) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[T] = asyncio.Queue(size)
        self.missed = 0

    def put(self, item: T) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.missed += 1
        self._queue.put_nowait(item)

    async def get(self) -> T:
        return await self._queue.get()

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[T]:
        while True:
            yield await self._queue.get()

    def close(self) -> None:
        self._bus._subscribers.discard(self)

    def __enter__(self) -> Subscription[T]:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


class Bus(Generic[T]):
    """Items handed to every subscriber's bounded queue, in process."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription[T]] = set()
        self.published = 0

    def subscribe(self, size: int = 1000) -> Subscription[T]:
        sub = Subscription(self, size)
        self._subscribers.add(sub)
        return sub

    def publish(self, item: T) -> None:
        self.published += 1
        for sub in tuple(self._subscribers):
            sub.put(item)

    def __len__(self) -> int:
        return len(self._subscribers)


class ChangeBus(Bus[ChangeEvent]):
    """Every change event accepted, after its invalidation."""
