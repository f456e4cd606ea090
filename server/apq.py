"""Automatic Persisted Queries, Apollo's protocol: a client sends a query's SHA-256 instead of its text.

    {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "<64 hex>"}}}

A known hash runs its document; an unknown one answers `PersistedQueryNotFound` (code
PERSISTED_QUERY_NOT_FOUND, HTTP 200 like Apollo Server, with `Cache-Control: private, no-cache,
must-revalidate`) and the client retries with hash and text, which registers the text once
sha256(text) is checked against the hash. Over GET, `extensions` is a JSON query parameter.

Documents are kept in a bounded in-process LRU (`apq.max_documents`) and, when `cache.redis_url` is
set, in Redis under `<cache.namespace>:apq:<hash>` for `apq.ttl_s`, so every gateway knows what one
has learnt. Redis is an optimisation: when it fails the store serves from memory, warns at most once
per WARN_EVERY_S, and leaves Redis alone for RETRY_AFTER_S before trying again.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio

from cache.logthrottle import LogThrottle
from server.settings import ApqSettings

log = logging.getLogger("customer_graph.apq")
HASH = re.compile(r"^[0-9a-fA-F]{64}$")
NOT_FOUND_HEADERS = {"cache-control": "private, no-cache, must-revalidate"}  # as Apollo Server sends


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ApqError:
    """Why a persisted-query request cannot run: the message, extensions.code and HTTP status."""

    message: str
    code: str
    status: int

    @property
    def headers(self) -> dict[str, str]:
        return NOT_FOUND_HEADERS if self.status == 200 else {}


NOT_FOUND = ApqError("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND", 200)
NOT_SUPPORTED = ApqError("PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED", 200)


def _bad(message: str, code: str = "BAD_REQUEST") -> ApqError:
    return ApqError(message, code, 400)


class ApqStore:
    """Query text by SHA-256: a bounded LRU in memory, over Redis when configured."""

    WARN_EVERY_S = 60.0  # at most one "redis unavailable" warning per minute...
    RETRY_AFTER_S = 5.0  # ...and no Redis call for this long after one failed (no timeout per request)

    def __init__(self, settings: ApqSettings, redis_url: str = "", namespace: str = "cg",
                 fixed: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.prefix = f"{namespace}:apq:"
        self.fixed = dict(fixed or {})  # the allow-list's documents: always known, never evicted
        self.memory: OrderedDict[str, str] = OrderedDict()
        self.clock = clock
        self.redis: redis.asyncio.Redis | None = None
        if redis_url:
            self.redis = redis.asyncio.Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._down_until = -1e18
        self.warnings = LogThrottle(log, self.WARN_EVERY_S, clock)
        self.counts = {"hits": 0, "misses": 0, "registered": 0, "redis_errors": 0}

    # -- the two tiers -------------------------------------------------------------------------------

    def _remember(self, digest: str, query: str) -> None:
        self.memory[digest] = query
        self.memory.move_to_end(digest)
        while len(self.memory) > self.settings.max_documents:
            self.memory.popitem(last=False)

    def _redis_usable(self) -> bool:
        return self.redis is not None and self.clock() >= self._down_until

    def _redis_failed(self, exc: BaseException) -> None:
        now = self.clock()
        self.counts["redis_errors"] += 1
        self._down_until = now + self.RETRY_AFTER_S
        self.warnings.warning("redis", "APQ: redis unavailable, serving persisted queries from memory only: %r", exc)

    async def get(self, digest: str) -> str | None:
        found = self.fixed.get(digest)
        if found is None:
            found = self.memory.get(digest)
            if found is not None:
                self.memory.move_to_end(digest)
            elif self._redis_usable():
                assert self.redis is not None
                try:
                    raw = await self.redis.get(self.prefix + digest)
                except Exception as exc:  # noqa: BLE001 - the shared tier is an optimisation, never a failure
                    self._redis_failed(exc)
                    raw = None
                if raw is not None:
                    text = raw.decode() if isinstance(raw, bytes) else str(raw)
                    if sha256(text) == digest:  # whatever is in Redis, only a matching text runs
                        found = text
                        self._remember(digest, found)
        self.counts["hits" if found is not None else "misses"] += 1
        return found

    async def put(self, digest: str, query: str) -> None:
        if digest in self.fixed:
            return
        if digest in self.memory:
            self.memory.move_to_end(digest)
            return
        self._remember(digest, query)
        self.counts["registered"] += 1
        if self._redis_usable():
            assert self.redis is not None
            try:
                await self.redis.set(self.prefix + digest, query.encode(), ex=self.settings.ttl_s)
            except Exception as exc:  # noqa: BLE001
                self._redis_failed(exc)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()

    # -- the protocol --------------------------------------------------------------------------------

    async def resolve(self, query: Any, extensions: Any, register: bool = True) -> str | ApqError | None:
        """The query text to run, an error, or None when the request does not use APQ.

        `extensions` is the request's (a JSON string over GET). `register=False` resolves known
        hashes but stores nothing (for callers that may only run the allow-list anyway)."""
        if isinstance(extensions, str):
            try:
                extensions = orjson.loads(extensions)
            except orjson.JSONDecodeError:
                return _bad("'extensions' is not valid JSON")
        if extensions is None:
            return None
        if not isinstance(extensions, dict):
            return _bad("'extensions' must be an object")
        pq = extensions.get("persistedQuery")
        if pq is None:
            return None
        if not self.settings.enabled:
            return NOT_SUPPORTED
        if not isinstance(pq, dict):
            return _bad("'extensions.persistedQuery' must be an object")
        if pq.get("version") != 1:
            return _bad("Unsupported persisted query version")
        digest = pq.get("sha256Hash")
        if not isinstance(digest, str) or not HASH.match(digest):
            return _bad("'extensions.persistedQuery.sha256Hash' must be 64 hexadecimal characters")
        digest = digest.lower()
        if query is None or query == "":
            found = await self.get(digest)
            return found if found is not None else NOT_FOUND
        if not isinstance(query, str):
            return None  # the usual parameter check reports it
        if sha256(query) != digest:
            return _bad("provided sha does not match query", "PERSISTED_QUERY_HASH_MISMATCH")
        if register:
            await self.put(digest, query)
        return query
