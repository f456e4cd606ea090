"""One cross-channel history, newest first: a k-way merge of per-source streams, paged by an
opaque cursor that is the last event's position in one total order (time, source, kind, id),
so paging never repeats or skips an event, even when timestamps tie.

What each entity's records add is declared (schema/events.py compiles the `timeline:` sections): the
caller passes, per entity, its declarations (`Declared`), and this module knows no system."""

from __future__ import annotations

import asyncio
import base64
import enum
import heapq
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

import orjson
from strawberry.types import Info

from connectors.base import SourceError
from resolvers.customer import CustomerData, records_by_source
from resolvers.errors import BadUserInput


class Declared(Protocol):
    """One declared kind of event: the events (at, channel, summary, record, id) a record makes."""

    @property
    def kind(self) -> enum.Enum: ...

    def occurrences(self, record: Any) -> Iterator[tuple[datetime, Any, str, Any, str]]: ...


Streams = Mapping[str, Sequence[Declared]]  # entity -> what its records add, in declaration order


@dataclass(slots=True)
class Event:
    at: datetime
    channel: Any  # a Channel, or None
    source: str
    kind: enum.Enum
    summary: str
    record: Any
    id: str

    @property
    def key(self) -> tuple[float, str, str, str]:
        """Position in the timeline's total order: newest first, ties broken by source, kind, id."""
        return (-self.at.timestamp(), self.source, self.kind.value, self.id)


@dataclass(slots=True)
class Page:
    events: list[Event]
    has_next: bool


def encode_cursor(event: Event) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([event.at.isoformat(), event.source, event.kind.value,
                                                  event.id])).decode()


def decode_cursor(cursor: str) -> tuple[float, str, str, str]:
    try:
        at, source, kind, ident = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        return (-datetime.fromisoformat(at).timestamp(), str(source), str(kind), str(ident))
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise BadUserInput("after: not a cursor this timeline gave out") from None


async def _stream(info: Info, customer: CustomerData, entity: str, declared: Sequence[Declared]) -> list[list[Event]]:
    """One stream per source providing `entity`, each sorted: every event its records make."""
    by_source: dict[str, list[Event]] = {}
    for source, record in await records_by_source(info, entity, customer):
        events = by_source.setdefault(source, [])
        for d in declared:
            events.extend(Event(at, channel, source, d.kind, summary, item, ident)
                          for at, channel, summary, item, ident in d.occurrences(record))
    return [sorted(s, key=lambda e: e.key) for s in by_source.values()]


async def events_of(info: Info, customer: CustomerData, entity: str, declared: Sequence[Declared]) -> list[Event]:
    """Every event the customer's records of `entity` make, from every source providing it (a
    SourceError when one fails)."""
    return [e for stream in await _stream(info, customer, entity, declared) for e in stream]


async def timeline(info: Info, customer: CustomerData, streams: Streams, first: int, after: str | None,
                   channels: list[Any] | None, since: datetime | None) -> Page:
    """A page of the events `streams` declares, after the cursor `after`, of the channels and since
    the time given."""
    if not 0 <= first <= 100:
        raise BadUserInput("first must be between 0 and 100")
    after_key = decode_cursor(after) if after else None
    since_utc = since.replace(tzinfo=since.tzinfo or timezone.utc) if since else None
    wanted = set(channels) if channels else None
    results = await asyncio.gather(*(_stream(info, customer, e, d) for e, d in streams.items()),
                                   return_exceptions=True)
    merged_streams: list[list[Event]] = []
    failed: dict[tuple[str, str], SourceError] = {}
    for result in results:
        if isinstance(result, SourceError):  # once per source and message: an entity keyed by a failing
            failed.setdefault((result.source, str(result)), result)  # entity's field fails with it
        elif isinstance(result, BaseException):
            raise result
        else:
            merged_streams.extend(result)
    for error in failed.values():
        _missing(info, error)

    def keep(e: Event) -> bool:
        return ((after_key is None or e.key > after_key) and (since_utc is None or e.at >= since_utc)
                and (wanted is None or e.channel in wanted))

    merged = heapq.merge(*(filter(keep, s) for s in merged_streams), key=lambda e: e.key)
    events = [e for _, e in zip(range(first + 1), merged)]  # reads first+1 events, and no more
    return Page(events[:first], len(events) > first)


def _missing(info: Info, error: SourceError) -> None:
    """The timeline still comes back; a GraphQL error names the source whose events are missing."""
    info.context.soft_errors.append({"message": f"{error} (its events are missing from this timeline)",
                                     "path": info.path.as_list(), "extensions": dict(error.extensions)})
