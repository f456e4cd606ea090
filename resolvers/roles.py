"""What the rules of crossSell, value and bestAgent read: the roles and blockers the declaration files'
`insights:` sections declare (schema/roles.py compiles them into these). A rule knows a role by the part
it plays (purchases, payments, ...), never by the system or the records behind it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# A compiled slot: (item, its parent record when the role reads a list field of each, or None,
# the cross-sell settings, now) -> the value.
Fn = Callable[[Any, Any, Any, datetime], Any]


@dataclass(frozen=True, slots=True)
class Role:
    """One declared role: the records of an entity (or a list field of each) and its slots."""

    entity: str
    each: Callable[[Any], Any] | None
    slots: Mapping[str, Fn]
    key: str | None = None  # an entity read by one fixed key (a list of people), not the customer's keys

    def items(self, records: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        return _items(self.each, records)


@dataclass(frozen=True, slots=True)
class BlockerRule:
    """A reason not to cross-sell: items of an entity meeting every condition, each one a blocker."""

    kind: Any  # the member of the GraphQL enum of blocker kinds
    entity: str
    each: Callable[[Any], Any] | None
    when: tuple[Fn, ...]
    reason: Fn
    record_id: Fn

    def items(self, records: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        return _items(self.each, records)


@dataclass(frozen=True)
class Roles:
    """Every role the declarations give; the list roles add up across files."""

    purchases: tuple[Role, ...] = ()  # counted, amount, currency, at, channel, products
    payments: tuple[Role, ...] = ()  # amount, currency
    owned: tuple[Role, ...] = ()  # products
    viewed: tuple[Role, ...] = ()  # products (each view counts)
    offered: tuple[Role, ...] = ()  # products, recent
    issues: tuple[Role, ...] = ()  # open, subject
    contacts: tuple[Role, ...] = ()  # agent, good, bad
    team: Role | None = None  # id, skills, languages, knows
    language: Role | None = None  # select
    blockers: tuple[BlockerRule, ...] = ()  # in the order their kinds are declared

    def entities(self, *names: str) -> list[str]:
        """The entities the named list roles read, each once, in order."""
        return list(dict.fromkeys(r.entity for n in names for r in getattr(self, n)))


def _items(each: Callable[[Any], Any] | None, records: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
    """(item, parent) for each item: the records themselves, or each one's list field."""
    if each is None:
        for r in records:
            yield r, None
    else:
        for r in records:
            for item in each(r) or ():
                yield item, r


def products(value: Any) -> list[Any]:
    """A products slot's value as a list, nulls left out."""
    return [p for p in value if p is not None] if isinstance(value, list) else [] if value is None else [value]
