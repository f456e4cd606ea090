"""The timeline as a Relay-style connection of typed events: the kinds and record types its
declarations give (schema/events.py, compiled with the graph in schema/graph.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Union

import strawberry

from resolvers import timeline as t
from schema.graph import TIMELINE, enum
from schema.types import types

Channel = enum("Channel")
EventKind = TIMELINE.kinds
STREAMS: t.Streams = TIMELINE.streams
BACK_OFFICE = "Where it happened; null for back-office events" + (
    f" ({', '.join(TIMELINE.no_channel)})." if TIMELINE.no_channel else ".")

# The types of the declared events' records, in the order first declared (schema/events.py).
TimelineRecord = Annotated[Union[tuple(types[n] for n in TIMELINE.records)],  # type: ignore[misc]
                           strawberry.union("TimelineRecord", description="The source record behind an event.")]


@strawberry.type(description="One thing that happened between the customer and the company.")
class TimelineEvent:
    at: datetime
    channel: Channel | None = strawberry.field(description=BACK_OFFICE)
    source: str = strawberry.field(description="The system it comes from.")
    kind: EventKind
    summary: str = strawberry.field(description="One line, for a human.")
    record: TimelineRecord


@strawberry.type
class TimelineEdge:
    cursor: str
    node: TimelineEvent


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None
    has_previous_page: bool
    start_cursor: str | None


@strawberry.type(description="A page of the timeline, newest first. Pass pageInfo.endCursor as `after` "
                             "for the next page.")
class TimelineConnection:
    edges: list[TimelineEdge]
    page_info: PageInfo


def connection(page: t.Page, after: str | None) -> TimelineConnection:
    edges = [TimelineEdge(cursor=t.encode_cursor(e), node=e) for e in page.events]  # type: ignore[arg-type]
    return TimelineConnection(edges=edges, page_info=PageInfo(
        has_next_page=page.has_next, end_cursor=edges[-1].cursor if edges else None,
        has_previous_page=after is not None, start_cursor=edges[0].cursor if edges else None))
