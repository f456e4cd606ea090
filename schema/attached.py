"""Where the declared types attach: the `graph:` section of a declaration file.

Each entry adds one field to `Customer` or to another declared type, fed live by an entity:

    graph:
      Customer.subscriptions:            # Type.field (snake_case; GraphQL shows it camelCased)
        entity: subscriptions            # the records: the customer's, from every source providing them
        type: "[Subscription!]"          # the field's GraphQL type (a list, or one record with `pick`)
        description: Subscriptions, newest first.
        order: {by: [started_at, number], descending: true}
        args:                            # in this order in the SDL
          status: {equals: status}       # `status: SubscriptionStatus`: keeps the records whose field equals it
          lapsed: {when: lapsed}         # Boolean: a condition of the type (types.Subscription.conditions) or CEL
          first: {first: 20}             # `first: Int = 20` (0 to 100), after ordering
      Customer.payments:
        entity: subscriptions
        record: Subscription             # the entity's records, when the field shows something else
        each: payments                   # each record's list field: its items are the values
        type: "[Payment!]"
      Customer.name:
        entity: profiles
        record: Profile
        select: "first_name + ' ' + last_name"   # CEL over each record (a map makes the field's type)
        pick: first                      # one value: first, {max: field} or {min: field}
        type: String
      Subscription.deliveries:           # on another type: keyed by that record's field, as the
        entity: deliveries               # entity's `keys: {from: subscriptions.number}` says
        type: "[Delivery!]"

Also `unique: true` (drop repeated values), `since: field` (a DateTime argument keeping records at or
after it) and `within_days: field` (an Int argument keeping the last N days). Values that are null are
left out of lists. A source failing makes the field null with an error naming the source.
"""

from __future__ import annotations

import dataclasses
import keyword
import operator
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.identity import camel
from schema.declared import DeclarationError, TypeRef

MAX_FIRST = 100
_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArgDecl(_Model):
    """One standard argument: exactly one of equals, when, since, within_days, first."""

    equals: str | None = Field(None, description="a field of the records: the argument has its type")
    when: str | None = Field(None, description="a condition of the records' type, by name, or CEL: a Boolean")
    since: str | None = Field(None, description="a DateTime field: keeps the records at or after the argument")
    within_days: str | None = Field(None, description="a DateTime field: keeps the records of the last N days")
    first: int | None = Field(None, ge=0, le=MAX_FIRST, description="the default of an Int limiting the count")
    description: str | None = None

    @model_validator(mode="after")
    def _one(self) -> ArgDecl:
        given = [k for k in ("equals", "when", "since", "within_days", "first") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of equals, when, since, within_days, first")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("equals", "when", "since", "within_days", "first") if getattr(self, k) is not None)


class Order(_Model):
    by: list[str] = Field(min_length=1, description="fields of the records, compared in turn")
    descending: bool = False


class Extreme(_Model):
    max: str | None = None
    min: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Extreme:
        if (self.max is None) == (self.min is None):
            raise ValueError("give max or min")
        return self


class AttachDecl(_Model):
    """One field fed by an entity (see the module's docstring)."""

    entity: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    type: str = Field(description="the field's GraphQL type reference")
    description: str | None = None
    record: str | None = Field(None, description="the entity's record type (default: the field's type)")
    each: str | None = Field(None, description="a list field of each record whose items are the values")
    select: str | None = Field(None, description="CEL over each record (or item): the value")
    unique: bool = False
    pick: Literal["first"] | Extreme | None = None
    order: Order | None = None
    args: dict[str, ArgDecl] = {}

    @model_validator(mode="after")
    def _shape(self) -> AttachDecl:
        ref = TypeRef.parse(self.type)
        if (ref.of is None) != (self.pick is not None):
            raise ValueError("a list type takes no pick; a single value needs pick (first, {max: f}, {min: f})")
        if ref.of is None and self.args:
            raise ValueError("args: only for a list")
        if sum(a.kind == "first" for a in self.args.values()) > 1:
            raise ValueError("args: one first")
        for name in self.args:
            if not _SNAKE.match(name) or keyword.iskeyword(name) or name in ("root", "info", "self"):
                raise ValueError(f"args.{name}: a snake_case name (GraphQL shows it camelCased)")
        if (self.each or self.select) and self.record is None:
            raise ValueError("record: required with each or select (the entity's record type)")
        return self


def parse_target(key: str) -> tuple[str, str]:
    type_name, _, field = key.partition(".")
    if not type_name or not _SNAKE.match(field) or keyword.iskeyword(field):
        raise ValueError(f"{key!r}: write Type.field (a declared type or Customer, and a snake_case field)")
    return type_name, field


# --- what a declared field does at run time ---------------------------------------------------------

@dataclasses.dataclass
class Plan:
    """One attached field, compiled against the graph's records: from the records to the value."""

    entity: str
    each: Callable[[Any], Any] | None
    select: Callable[[Any], Any] | None
    make: type | None  # the record class a selected map becomes
    unique: bool
    pick: tuple[str, str] | None  # ("first", "") | ("max", field) | ("min", field)
    order: Callable[[Any], Any] | None
    descending: bool
    args: list[tuple[str, str, Any]]  # (name, kind, compiled: a field, a condition, a default)

    def __post_init__(self) -> None:
        self.first_arg = next((n for n, kind, _ in self.args if kind == "first"), None)

    def filters(self, values: dict[str, Any]) -> list[Callable[[Any], bool]]:
        """The argument values as tests of an item; BadUserInput (ValueError subclass) for bad ones."""
        if not self.args:
            return _NONE
        from resolvers.errors import BadUserInput
        keep: list[Callable[[Any], bool]] = []
        for name, kind, what in self.args:
            v = values.get(name)
            if kind == "first":
                if v is not None and not 0 <= v <= MAX_FIRST:
                    raise BadUserInput(f"first must be between 0 and {MAX_FIRST}")
                continue
            if v is None:
                continue
            if kind == "equals":
                keep.append(lambda i, f=what, v=v: getattr(i, f) == v)
            elif kind == "when":
                keep.append(lambda i, c=what, v=v: bool(c(i)) == v)
            elif kind == "since":
                since = v.replace(tzinfo=v.tzinfo or timezone.utc)
                keep.append(lambda i, f=what, s=since: getattr(i, f) >= s)
            elif kind == "within_days":
                if v < 0:
                    raise BadUserInput(f"{camel(name)} must not be negative")
                cutoff = datetime.now(timezone.utc) - timedelta(days=v)
                keep.append(lambda i, f=what, c=cutoff: getattr(i, f) >= c)
        return keep

    def first(self, values: dict[str, Any]) -> int | None:
        return values.get(self.first_arg) if self.first_arg is not None else None

    def shape(self, records: list[Any], values: dict[str, Any], keep: list[Callable[[Any], bool]]) -> Any:
        """The field's value from the records: items, filtered, ordered, cut, selected, unique, picked."""
        items = records if self.each is None else [x for r in records for x in self.each(r) or ()]
        if keep:
            items = [i for i in items if all(k(i) for k in keep)]
        if self.order is not None:
            items = sorted(items, key=self.order, reverse=self.descending)
        if self.first_arg is not None:
            first = values.get(self.first_arg)
            if first is not None:
                items = items[:first]
        if self.pick is not None and self.pick[0] != "first" and items:
            f = self.pick[1]
            items = [max(items, key=lambda i: getattr(i, f)) if self.pick[0] == "max"
                     else min(items, key=lambda i: getattr(i, f))]
        if self.select is not None:
            items = [self.select(i) for i in items]
            if self.make is not None:
                items = [self.make(**v) if isinstance(v, dict) else v for v in items]
        if self.pick is None:
            items = [v for v in items if v is not None]
        if self.unique:
            seen: dict[Any, Any] = {}
            for v in items:
                seen.setdefault(_frozen(v), v)
            items = list(seen.values())
        if self.pick is not None:
            return items[0] if items else None
        return items


_NONE: list[Callable[[Any], bool]] = []  # no filters (never appended to)


def _frozen(v: Any) -> Any:
    """A hashable stand-in for a value (records compare by their fields)."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return (type(v).__name__, *(_frozen(getattr(v, f.name)) for f in dataclasses.fields(v)))
    if isinstance(v, list):
        return tuple(_frozen(x) for x in v)
    return v


def compile_plan(key: str, d: AttachDecl, graph: Any) -> Plan:
    """The field's plan over the graph's record classes; DeclarationError naming the key on a bad one."""
    from connectors.expressions import compile_expr, fields_of
    from connectors.mapping import _unwrap
    try:
        ref = TypeRef.parse(d.type)
        record_name = d.record or ref.named
        if record_name not in graph.records:
            raise ValueError(f"record: no declared type {record_name!r}")
        rec = graph.records[record_name]
        item, item_name = rec, record_name
        each = None
        if d.each is not None:
            hints = fields_of(rec) or {}
            _, elem = _unwrap(hints.get(d.each))
            if d.each not in hints or elem is None:
                raise ValueError(f"each: {record_name} has no list field {d.each!r}")
            each = compile_expr(d.each, rec, label=f"{key}.each")
            item, item_name = elem, getattr(elem, "__name__", "")
        fields = fields_of(item) or {}
        for f in [*(d.order.by if d.order else []),
                  *([d.pick.max or d.pick.min] if isinstance(d.pick, Extreme) else [])]:
            if f not in fields:
                raise ValueError(f"no field {f!r} in {item_name} (fields: {', '.join(fields)})")
        args: list[tuple[str, str, Any]] = []
        for name, a in d.args.items():
            target = getattr(a, a.kind)
            if a.kind in ("equals", "since", "within_days") and target not in fields:
                raise ValueError(f"args.{name}.{a.kind}: no field {target!r} in {item_name}")
            if a.kind == "when":
                target = graph.condition(item_name, target, f"{key}.args.{name}")
            args.append((name, a.kind, target))
        select = compile_expr(d.select, item, label=f"{key}.select") if d.select else None
        make = graph.records.get(ref.named) if d.select and ref.named in graph.records else None
        order = operator.attrgetter(*d.order.by) if d.order is not None else None
        pick = None if d.pick is None else ("first", "") if d.pick == "first" else \
            ("max", d.pick.max) if d.pick.max else ("min", d.pick.min)  # type: ignore[union-attr]
    except (ValueError, DeclarationError) as exc:
        raise DeclarationError(f"graph.{key}: {str(exc).removeprefix('Value error, ')}") from None
    return Plan(d.entity, each, select, make, d.unique, pick, order, d.order.descending if d.order else False, args)


def arg_annotation(d: AttachDecl, name: str, graph: Any) -> tuple[Any, Any]:
    """(the argument's Python type for strawberry, its default)."""
    a = d.args[name]
    if a.kind == "first":
        return int | None, a.first
    if a.kind == "when":
        return bool | None, None
    if a.kind == "within_days":
        return int | None, None
    if a.kind == "since":
        return datetime | None, None
    record_name = d.record or TypeRef.parse(d.type).named
    decl = graph.declarations.types[record_name]
    if d.each is not None:
        elem = TypeRef.parse(decl.fields[d.each].type)
        decl = graph.declarations.types[elem.named]
    ref = TypeRef.parse(decl.fields[a.equals].type)  # type: ignore[index]
    return graph.annotation(TypeRef(ref.name, True, ref.of)), None
