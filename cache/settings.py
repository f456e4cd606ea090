"""The `cache:` section of gateway.yaml."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CacheSettings:
    enabled: bool = True
    max_entries: int = 200_000  # in-process tier: at most this many records...
    max_bytes: int = 256 * 1024 * 1024  # ...and about this many bytes (pickled size), LRU beyond
    default_ttl_s: float = 60.0  # a source entity without its own ttl_s
    negative_ttl_s: float = 15.0  # "this system does not know that key"
    stale_grace_s: float = 300.0  # how long past its TTL a record may still be served when its source fails
    redis_url: str = ""  # the shared tier; empty: in-process only
    admin_token: str = ""  # bearer token of POST /cache/invalidate; empty: the endpoint is off
    namespace: str = "cg"  # Redis key prefix and pub/sub channel name
