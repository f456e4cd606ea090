"""The `cache:` section of gateway.yaml (pydantic v2: unknown keys and out-of-range values refused)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ResponseSettings(BaseModel):
    """The whole-response cache above the records (cache/responses.py); needs the record cache on."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_entries: int = Field(10_000, ge=1)  # at most this many responses...
    max_bytes: int = Field(64 * 1024 * 1024, ge=1)  # ...and about this many bytes, least recently used dropped


class CacheSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_entries: int = Field(200_000, ge=1)  # in-process tier: at most this many records...
    max_bytes: int = Field(256 * 1024 * 1024, ge=1)  # ...and about this many bytes (pickled size), LRU beyond
    default_ttl_s: float = Field(60.0, gt=0)  # a source entity without its own ttl_s
    negative_ttl_s: float = Field(15.0, gt=0)  # "this system does not know that key"
    stale_grace_s: float = Field(300.0, ge=0)  # how long past its TTL a record may still be served when its source fails
    redis_url: str = ""  # the shared tier; empty: in-process only
    admin_token: str = ""  # bearer token of POST /cache/invalidate; empty: the endpoint is off
    namespace: str = Field("cg", min_length=1)  # Redis key prefix and pub/sub channel name
    responses: ResponseSettings = ResponseSettings()
