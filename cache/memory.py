"""A bounded in-process tier behind aiocache's API.

aiocache's SimpleMemoryCache never evicts and keeps one timer per key; this one holds at most
`max_entries` entries and about `max_bytes`, evicts the least recently used, and checks expiry
lazily on read (no timers).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiocache.base import BaseCache
from aiocache.serializers import NullSerializer


class BoundedMemoryCache(BaseCache):  # type: ignore[misc]
    NAME = "bounded-memory"

    def __init__(self, max_entries: int, max_bytes: int, sizer: Callable[[str, Any], int],
                 clock: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        super().__init__(serializer=NullSerializer(), timeout=None, **kwargs)
        self.max_entries, self.max_bytes, self.sizer, self.clock = max_entries, max_bytes, sizer, clock
        self._data: OrderedDict[str, tuple[Any, float | None, int]] = OrderedDict()  # value, expires, size
        self.bytes = 0
        self.evictions: dict[str, int] = {}  # by the key's first segment (the source)
        self.on_evict: Callable[[str], None] | None = None

    def __len__(self) -> int:
        return len(self._data)

    def _lookup(self, key: str) -> Any:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires, _ = item
        if expires is not None and expires <= self.clock():
            self._drop(key)
            return None
        self._data.move_to_end(key)
        return value

    def _drop(self, key: str) -> bool:
        item = self._data.pop(key, None)
        if item is None:
            return False
        self.bytes -= item[2]
        return True

    def _put(self, key: str, value: Any, ttl: float | None) -> None:
        self._drop(key)
        size = self.sizer(key, value) + len(key) + 200  # + the key, the slot tuple and the dict entry
        self._data[key] = (value, self.clock() + ttl if ttl else None, size)
        self.bytes += size
        while self._data and (len(self._data) > self.max_entries or self.bytes > self.max_bytes):
            old, (_, _, old_size) = self._data.popitem(last=False)
            self.bytes -= old_size
            source = old.split(":", 1)[0]
            self.evictions[source] = self.evictions.get(source, 0) + 1

    def put_many(self, pairs: list[tuple[str, Any]], ttl: float | None) -> None:
        """Store, synchronously: the hot path's write, without aiocache's per-call coroutines."""
        for key, value in pairs:
            self._put(key, value, ttl)

    def peek(self, key: str) -> Any:
        """The value, synchronously: the hot path's hit check, without a coroutine per key."""
        return self._lookup(key)

    async def _get(self, key: str, encoding: str | None = "utf-8", _conn: Any = None) -> Any:
        return self._lookup(key)

    async def _gets(self, key: str, encoding: str | None = "utf-8", _conn: Any = None) -> Any:
        return self._lookup(key)

    async def _multi_get(self, keys: list[str], encoding: str | None = "utf-8", _conn: Any = None) -> list[Any]:
        return [self._lookup(k) for k in keys]

    async def _set(self, key: str, value: Any, ttl: float | None = None, _cas_token: Any = None,
                   _conn: Any = None) -> bool:
        self._put(key, value, ttl)
        return True

    async def _multi_set(self, pairs: list[tuple[str, Any]], ttl: float | None = None, _conn: Any = None) -> bool:
        self.put_many(pairs, ttl)
        return True

    async def _add(self, key: str, value: Any, ttl: float | None = None, _conn: Any = None) -> bool:
        if self._lookup(key) is not None:
            raise ValueError(f"Key {key} already exists, use .set to update the value")
        self._put(key, value, ttl)
        return True

    async def _exists(self, key: str, _conn: Any = None) -> bool:
        return self._lookup(key) is not None

    async def _increment(self, key: str, delta: int, _conn: Any = None) -> int:
        value = int(self._lookup(key) or 0) + delta
        self._put(key, value, None)
        return value

    async def _expire(self, key: str, ttl: float, _conn: Any = None) -> bool:
        value = self._lookup(key)
        if value is None:
            return False
        self._put(key, value, ttl)
        return True

    async def _delete(self, key: str, _conn: Any = None) -> int:
        return int(self._drop(key))

    async def _clear(self, namespace: str | None = None, _conn: Any = None) -> bool:
        if namespace is None:
            self._data.clear()
            self.bytes = 0
        else:
            for key in [k for k in self._data if k.startswith(namespace + ":")]:
                self._drop(key)
        return True

    async def _raw(self, command: str, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("the in-process tier has no raw commands")

    async def _redlock_release(self, key: str, value: Any) -> int:
        return int(self._drop(key))

    def _build_key(self, key: str, namespace: str | None = None) -> str:
        return f"{namespace}:{key}" if namespace else key
