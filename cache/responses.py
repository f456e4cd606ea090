"""Whole responses above the record cache, tagged by the records they read.

A response is keyed by (role scope, operationName, query text, canonical variables) and kept as the bytes
it was answered with. Each one carries the record keys ("source:entity:key") it read, and an index from
those tags (and from their sources) to the responses finds what an invalidation must drop: `Tiers`
calls `drop` from the one place every invalidation goes through (its own, Redis pub/sub from other
gateways, a lost subscription). A response expires when the first record it read would, and is kept
`grace_s` longer, only to be served when answering it again fails (stale-if-error).

An invalidation that lands while a request runs may come after the request read a record and before
it stores its answer: `put` refuses an answer that read anything invalidated since `epoch()` was taken
at its start, so an old answer is never stored over a newer invalidation.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

SLOT = 200  # bytes of bookkeeping per response (entry, key, dict slots), beside its body
TAG_SLOT = 100  # per tag: the string in the entry and its place in the two indexes
RECENT = 256  # invalidations remembered for `put`'s race check; older ones refuse any answer begun before


def response_key(scope: str, operation: str | None, query: str, variables: dict[str, Any] | None) -> bytes:
    """A 16-byte digest of what makes two requests' answers the same; nothing is shared across scopes."""
    h = hashlib.blake2b(scope.encode(), digest_size=16)
    h.update(b"\0" + (operation or "").encode() + b"\0")
    h.update(query.encode())
    if variables:  # canonical: key order does not matter
        h.update(b"\0" + orjson.dumps(variables, option=orjson.OPT_SORT_KEYS))
    return h.digest()


class Reads:
    """The records one request read (fresh hits, fetched or refreshed ones) and when the first expires."""

    __slots__ = ("tags", "expires", "spoiled")

    def __init__(self) -> None:
        self.tags: set[str] = set()
        self.expires = float("inf")  # wall clock
        self.spoiled = False  # something was served stale or failed: the answer is not to be kept

    def add(self, tag: str, expires: float) -> None:
        self.tags.add(tag)
        if expires < self.expires:
            self.expires = expires


@dataclass(slots=True)
class Stored:
    head: bytes  # the payload's JSON without its closing brace and without extensions
    extensions: bytes  # the members of its extensions object (b"" when it had none)
    tags: frozenset[str]
    stored_at: float
    expires: float
    size: int

    def fresh(self, now: float) -> bool:
        return now < self.expires

    def body(self, mark: dict[str, Any]) -> bytes:
        """The stored answer with `extensions.cache` set to `mark`, spliced in without re-serialising."""
        members = self.extensions + b"," if self.extensions else b""
        return self.head + b',"extensions":{' + members + b'"cache":' + orjson.dumps(mark) + b"}}"


def split(payload: dict[str, Any]) -> tuple[bytes, bytes]:
    """(head, extension members) of a payload, for `Stored`."""
    rest = {k: v for k, v in payload.items() if k != "extensions"}
    extensions = orjson.dumps(payload["extensions"])[1:-1] if payload.get("extensions") else b""
    return orjson.dumps(rest)[:-1], extensions


def _source(tag: str) -> str:
    return tag[: tag.find(":")]


class ResponseCache:
    def __init__(self, max_entries: int, max_bytes: int, grace_s: float, default_ttl_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.grace_s = grace_s  # past expiry, kept for stale-if-error only
        self.default_ttl_s = default_ttl_s  # for an answer that read no record (introspection, an empty list)
        self.clock = clock
        self.entries: OrderedDict[bytes, Stored] = OrderedDict()
        self.by_tag: dict[str, set[bytes]] = {}
        self.by_source: dict[str, set[bytes]] = {}
        self.bytes = 0
        self.evictions = 0
        self.dropped = 0  # responses invalidated
        self._epoch = 0
        self._recent: deque[tuple[int, frozenset[str], frozenset[str], bool]] = deque(maxlen=RECENT)

    def __len__(self) -> int:
        return len(self.entries)

    def epoch(self) -> int:
        """Taken when a request starts; handed back to `put`."""
        return self._epoch

    def get(self, key: bytes) -> Stored | None:
        """The response, fresh or within its grace; None when absent or past both."""
        stored = self.entries.get(key)
        if stored is None:
            return None
        if self.clock() >= stored.expires + self.grace_s:
            self._remove(key)
            return None
        self.entries.move_to_end(key)
        return stored

    def holds(self, key: bytes, stored: Stored) -> bool:
        """Whether `stored` is still the response under `key` (not invalidated or replaced since)."""
        return self.entries.get(key) is stored

    def put(self, key: bytes, payload: dict[str, Any], reads: Reads, since: int) -> bool:
        """Keep an error-free answer until the first record it read expires; whether it was kept."""
        now = self.clock()
        expires = reads.expires if reads.tags else now + self.default_ttl_s
        if reads.spoiled or expires <= now or self._invalidated_since(since, reads.tags):
            return False
        head, extensions = split(payload)
        tags = frozenset(reads.tags)
        size = len(head) + len(extensions) + SLOT + sum(len(t) + TAG_SLOT for t in tags)
        if size > self.max_bytes:
            return False
        self._remove(key)
        self.entries[key] = Stored(head, extensions, tags, now, expires, size)
        self.bytes += size
        for tag in tags:
            self.by_tag.setdefault(tag, set()).add(key)
            self.by_source.setdefault(_source(tag), set()).add(key)
        while len(self.entries) > self.max_entries or self.bytes > self.max_bytes:
            self._remove(next(iter(self.entries)))
            self.evictions += 1
        return True

    def _invalidated_since(self, since: int, tags: set[str]) -> bool:
        if since == self._epoch:
            return False
        if not self._recent or self._recent[0][0] > since + 1:
            return True  # the invalidations since then are no longer all remembered
        sources = {_source(t) for t in tags}
        return any(everything or not keys.isdisjoint(tags) or not dropped.isdisjoint(sources)
                   for epoch, keys, dropped, everything in self._recent if epoch > since)

    def drop(self, keys: Iterable[str] = (), sources: Iterable[str] = (), everything: bool = False) -> None:
        """Drop every response that read one of these record keys or any record of these sources."""
        keys, sources = frozenset(keys), frozenset(sources)
        self._epoch += 1
        self._recent.append((self._epoch, keys, sources, everything))
        if everything:
            self.dropped += len(self.entries)
            self.entries.clear()
            self.by_tag.clear()
            self.by_source.clear()
            self.bytes = 0
            return
        doomed: set[bytes] = set()
        for tag in keys:
            doomed |= self.by_tag.get(tag, set())
        for source in sources:
            doomed |= self.by_source.get(source, set())
        for key in doomed:
            self._remove(key)
        self.dropped += len(doomed)

    def _remove(self, key: bytes) -> None:
        stored = self.entries.pop(key, None)
        if stored is None:
            return
        self.bytes -= stored.size
        for tag in stored.tags:
            for index, name in ((self.by_tag, tag), (self.by_source, _source(tag))):
                holders = index.get(name)
                if holders is not None:
                    holders.discard(key)
                    if not holders:
                        del index[name]

    def status(self) -> dict[str, Any]:
        return {"entries": len(self.entries), "bytes": self.bytes, "max_entries": self.max_entries,
                "max_bytes": self.max_bytes, "evictions": self.evictions, "invalidated": self.dropped}
