"""What every connector shares: its configuration, its errors, and fetch-by-entity."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

# The codes a client sees in `extensions.code` when a source lets it down.
SOURCE_UNAVAILABLE = "SOURCE_UNAVAILABLE"
SOURCE_TIMEOUT = "SOURCE_TIMEOUT"
SOURCE_BAD_RESPONSE = "SOURCE_BAD_RESPONSE"


class SourceError(Exception):
    """A source failed; the message is safe for clients, the detail goes to the log only."""

    def __init__(self, source: str, code: str, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.source, self.code, self.detail = source, code, detail
        self.extensions = {"code": code, "source": source}


@dataclass
class SourceConfig:
    """One entry under `sources:` in gateway.yaml."""

    name: str
    kind: str  # sql | rest | graphql | xml
    mapping: str  # module under connectors/mappings
    system: str  # the crosswalk's name for this system
    url: str = ""
    dsn: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 2.0
    concurrency: int = 16
    max_body_bytes: int = 8 * 1024 * 1024
    options: dict[str, Any] = field(default_factory=dict)


# A mapping's fetcher: given the connector and many keys, the records found, by key.
Fetcher = Callable[[Any, list[str]], Awaitable[dict[str, Any]]]


class Connector:
    """Fetches many keys of one entity per call, through a system-specific mapping."""

    def __init__(self, config: SourceConfig) -> None:
        self.config = config
        self.name = config.name
        self.limit = asyncio.Semaphore(config.concurrency)
        self.module: ModuleType = importlib.import_module(f"connectors.mappings.{config.mapping}")
        self.entities: dict[str, Fetcher] = self.module.ENTITIES
        self.calls = self.keys = self.failures = 0  # since start, shown at /readyz

    def error(self, code: str, message: str, detail: str = "") -> SourceError:
        return SourceError(self.name, code, f"{self.name}: {message}", detail)

    async def fetch(self, entity: str, keys: list[str]) -> dict[str, Any]:
        """Records for `keys` (missing keys absent), within the source's timeout."""
        self.calls += 1
        self.keys += len(keys)
        try:
            return await self._fetch(entity, keys)
        except SourceError:
            self.failures += 1
            raise

    async def _fetch(self, entity: str, keys: list[str]) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self.entities[entity](self, keys), self.config.timeout_s)
        except asyncio.TimeoutError:
            raise self.error(SOURCE_TIMEOUT, f"no answer within {self.config.timeout_s:g} s") from None
        except SourceError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            # The source answered, but not in the shape its mapping expects.
            raise self.error(SOURCE_BAD_RESPONSE, "unexpected response", repr(exc)) from exc

    def status(self) -> dict[str, Any]:
        return {"kind": self.config.kind, "calls": self.calls, "keys": self.keys, "failures": self.failures}

    async def close(self) -> None:
        """Release what the connector holds (pools); the default holds nothing."""
