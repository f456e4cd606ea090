"""What each entity adds to `Customer.timeline`: the `timeline:` section of a declaration file.

A list of event declarations; each makes zero or one event per record (or per item of a list field):

    timeline:
      - entity: answers                # the customer's records of this entity, from every source providing it
        kind: SURVEY_ANSWERED          # a value of the EventKind enum (the kinds declared, in file order)
        at: answered_at                # a DateTime or Date field (a date is midnight UTC); null: no event
        channel: channel               # CEL giving a Channel (an enum field), or its name (WEB); none: null
        id: id                         # CEL: the record's id (with source and kind, its place among ties)
        summary: "Survey {{survey}} answered: {{score}}/10 ({{status.lowerAscii()}})"   # a CEL template
      - entity: subscriptions
        each: renewals                 # one event per item of this list field; `parent` is the record
        when: "amount > 0"             # CEL condition: no event when false
        ...

`record:` names the entity's record type when no `entities:` section in the folder does. The kinds
make the GraphQL enum `EventKind` (lower-cased names are the values the cursors carry) and the types of
the events' records the union `TimelineRecord`, both in the order first declared (files by name, then
entries in order). Everything is compiled once, at start (connectors/expressions.py).
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time
from typing import Any

import strawberry
from pydantic import BaseModel, ConfigDict, Field

from schema.declared import DeclarationError

CHANNEL = "Channel"  # the enum the timeline's channels are (its `channels:` argument filters by it)
_LITERAL = re.compile(r"""\s*(['"])([A-Za-z_][A-Za-z0-9_]*)\1\s*""")
_NAME = re.compile(r"\s*()([A-Z][A-Z0-9_]*)\s*")  # a bare member name: fields are snake_case
_FIELD = re.compile(r"\s*([a-z_][a-z0-9_]*)\s*")


class EventDecl(BaseModel):
    """One kind of event an entity's records make (see the module's docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entity: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    record: str | None = Field(None, description="the entity's record type (default: its entities: declaration's)")
    each: str | None = Field(None, description="a list field of the record: one event per item")
    when: str | None = Field(None, description="CEL: the record (or item) makes an event only when true")
    kind: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$", description="the EventKind value, e.g. SURVEY_ANSWERED")
    at: str = Field(description="a DateTime or Date field: when it happened")
    channel: str | None = Field(None, description="CEL giving a Channel, or its name; none: null")
    id: str = Field(description="CEL: the record's id")
    summary: str = Field(description="a template: text with {{ CEL }} parts")


@dataclasses.dataclass(frozen=True, slots=True)
class EventPlan:
    """One declaration, compiled: from a record to its events' (at, channel, summary, record, id)."""

    entity: str
    kind: enum.Enum
    each: Callable[[Any], Any] | None
    when: Callable[..., Any] | None
    at: str
    midnight: bool  # `at` is a Date
    channel: Callable[..., Any] | None
    ident: Callable[..., Any]
    summary: Callable[..., str]

    def occurrences(self, record: Any) -> Iterator[tuple[datetime, Any, str, Any, str]]:
        if self.each is None:
            one = self._one(record, (record,))
            if one is not None:
                yield one
            return
        for item in self.each(record) or ():
            one = self._one(item, (item, record))
            if one is not None:
                yield one

    def _one(self, item: Any, args: tuple[Any, ...]) -> tuple[datetime, Any, str, Any, str] | None:
        if self.when is not None and not self.when(*args):
            return None
        at = getattr(item, self.at)
        if at is None:
            return None
        if self.midnight:
            at = datetime.combine(at, time(0, 0), tzinfo=UTC)
        ident = self.ident(*args)
        return (at, self.channel(*args) if self.channel is not None else None, self.summary(*args), item,
                ident if isinstance(ident, str) else str(ident))


@dataclasses.dataclass(frozen=True)
class Timeline:
    """Every declared kind of event: the GraphQL enum of kinds, the union's member types (by name) and,
    per entity, its declarations in order."""

    kinds: type[enum.Enum]
    records: tuple[str, ...]
    streams: Mapping[str, tuple[EventPlan, ...]]
    no_channel: tuple[str, ...]  # the kinds no declaration gives a channel: back-office events
    declared: Mapping[str, tuple[EventDecl, ...]]  # file name -> its declarations (config.py compares)


def compile_timeline(entries: Sequence[tuple[str, int, EventDecl]], entity_records: Mapping[str, str],
                     graph: Any) -> Timeline:
    """The declarations `(file, index, declaration)` compiled against the graph's records; a
    DeclarationError naming the file and key (`survey.yaml: timeline.0.summary: ...`) on a bad one."""
    if not entries:
        raise DeclarationError("timeline: no declaration file declares an event (a `timeline:` section)")
    kinds = list(dict.fromkeys(d.kind for _, _, d in entries))
    members = [(k, k.lower()) for k in kinds]  # the lower-cased name: the value cursors carry
    Kind = strawberry.enum(enum.Enum("EventKind", members, module=__name__, qualname="EventKind"),  # type: ignore[misc]
                           name="EventKind", description="What happened.")
    records: dict[str, None] = {}
    streams: dict[str, list[EventPlan]] = {}
    for file, i, d in entries:
        try:
            plan, record = _plan(d, Kind[d.kind], entity_records, graph)
        except (ValueError, DeclarationError) as exc:
            raise DeclarationError(f"{file}: timeline.{i}.{str(exc).removeprefix('Value error, ')}") from None
        records.setdefault(record)
        streams.setdefault(d.entity, []).append(plan)
    placed = {d.kind for _, _, d in entries if d.channel is not None}
    by_file: dict[str, list[EventDecl]] = {}
    for file, _, d in entries:
        by_file.setdefault(file, []).append(d)
    return Timeline(Kind, tuple(records), {e: tuple(p) for e, p in streams.items()},
                    tuple(k for k in kinds if k not in placed), {f: tuple(ds) for f, ds in by_file.items()})


class _At(ValueError):
    """An error in one key of a declaration: its message starts with the key."""

    def __init__(self, key: str, message: Any) -> None:
        super().__init__(f"{key}: {str(message).removeprefix('Value error, ')}")


def _plan(d: EventDecl, kind: enum.Enum, entity_records: Mapping[str, str], graph: Any) -> tuple[EventPlan, str]:
    """The declaration compiled, and the name of its events' record type."""
    from connectors.expressions import compile_expr, compile_template, fields_of
    from connectors.mapping import _unwrap
    name = d.record or entity_records.get(d.entity)
    if name is None:
        raise _At("entity", f"no entities: section declares {d.entity!r} with a record (or give record:)")
    if name not in graph.records:
        raise _At("record" if d.record else "entity", f"no declared type {name!r}")
    rec = item = graph.records[name]
    each, bound = None, {}
    if d.each is not None:
        _, elem = _unwrap((fields_of(rec) or {}).get(d.each))
        if fields_of(elem) is None:
            raise _At("each", f"{name} has no list field {d.each!r} of records")
        each, item, bound = compile_expr(d.each, rec), elem, {"parent": rec}
        name = elem.__name__
    fields = fields_of(item) or {}
    hint, _ = _unwrap(fields.get(d.at))
    if not (isinstance(hint, type) and issubclass(hint, date)):
        raise _At("at", f"no DateTime or Date field {d.at!r} in {name} (fields: {', '.join(fields)})")

    def expr(key: str, text: str, compile_: Callable[..., Any] = compile_expr) -> Any:
        try:
            return compile_(text, item, bound, label=f"timeline {d.kind}.{key}")
        except ValueError as exc:
            raise _At(key, exc) from None

    return EventPlan(
        entity=d.entity, kind=kind, each=each, when=expr("when", d.when) if d.when else None, at=d.at,
        midnight=not issubclass(hint, datetime),
        channel=_channel(d.channel, fields, graph, expr) if d.channel is not None else None,
        ident=expr("id", d.id), summary=expr("summary", d.summary, compile_template)), name


def _channel(text: str, fields: Mapping[str, Any], graph: Any, expr: Callable[[str, str], Any]) -> Callable[..., Any]:
    """The channel of an event: a name given (checked now), or a value of the record made a Channel."""
    from connectors.mapping import _unwrap
    channels = graph.enums.get(CHANNEL)
    if channels is None:
        raise _At("channel", f"no enum {CHANNEL} is declared")
    literal = _LITERAL.fullmatch(text) or _NAME.fullmatch(text)
    if literal:
        if literal.group(2) not in channels.__members__:
            raise _At("channel", f"{literal.group(2)!r} is not a {CHANNEL} (one of {', '.join(channels.__members__)})")
        member = channels[literal.group(2)]
        return lambda *_: member
    field = _FIELD.fullmatch(text)
    if field and field.group(1) in fields:
        hint, _ = _unwrap(fields[field.group(1)])
        if hint is channels:
            return expr("channel", text)  # a Channel already
        if hint is not str:
            raise _At("channel", f"{field.group(1)!r} is not a {CHANNEL} field")
    value = expr("channel", text)

    def channel(*args: Any) -> Any:
        v = value(*args)
        if v is None or isinstance(v, channels):
            return v
        name = v.name if isinstance(v, enum.Enum) else v
        if name not in channels.__members__:
            raise ValueError(f"timeline: {name!r} is not a {CHANNEL}")
        return channels[name]
    return channel
