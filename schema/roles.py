"""What the insights read: the `insights:` section of a declaration file.

The rules of crossSell, value and bestAgent (resolvers/insights.py, resolvers/agents.py) read roles, not
systems. A file says which of its records play which role, with CEL for each slot, and declares the
blockers of a cross-sell, whole, with the settings they take (an example, for a system of sales and
support cases):

    insights:
      purchases:                         # a role (see ROLES): where its items come from...
        entity: sales
        record: Sale                     # default: the record the file's own entity declares
        counted: "state != 'VOID'"       # ...and a CEL expression for each slot
        amount: gross
        currency: currency
        at: sold_at
        channel: channel
        products: "items.map(i, i.product)"
      payments: {entity: ledgers, each: receipts, amount: paid, currency: parent.currency}
      settings:                          # set in gateway.yaml under insights.cross_sell, typed here
        severity_at_least: {type: Severity!, default: MEDIUM}
      blockers:
        OPEN_CASE:                       # the kind: a value of the GraphQL enum BlockerKind
          order: 1                       # where the kind stands among the kinds (enum and answer)
          entity: cases
          when: [open, "rank(severity) >= rank(rules.severity_at_least)"]
          reason: "Open {{severity.lowerAscii()}} case #{{id}}: {{title}}"
          id: id                         # the record id the blocker cites

Roles and their slots: purchases (counted, amount, currency, at, channel, products), payments (amount,
currency), owned and viewed (products), offered (products, recent), issues (open, subject), contacts
(agent, good, bad), team (key, id, skills, languages, knows) and language (select). Every slot is CEL
over one item (the record, or with `each: field` each item of that list field), with `parent` (the
record, with `each`), `rules` (the insights.cross_sell settings) and `now` bound; a condition slot (and
each of a blocker's `when`, which must all hold) may instead name a condition its type declares
(`types.T.conditions`). The list roles add up across files; team and language are declared once. A bad
declaration is one line naming the file and the key path.
"""

from __future__ import annotations

import enum
import keyword
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar

import strawberry
import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic.fields import FieldInfo

from resolvers.roles import BlockerRule, Fn, Role, Roles
from resolvers.rules import CrossSellRules, enum_member
from schema.declared import SCALARS, DeclarationError, TypeRef

_ENTITY = r"^[a-z][a-z0-9_]*$"
_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
_KIND = re.compile(r"^[A-Z][A-Z0-9_]*$")
SUFFIXES = (".yaml", ".yml")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Reads(_Model):
    """Where the items come from: an entity's records, or each record's list field."""

    entity: str = Field(pattern=_ENTITY)
    record: str = Field(description="the entity's record type (default: as the file's entity declares it)")
    each: str | None = Field(None, description="a list field of each record whose items are read")
    description: str | None = None

    CONDITIONS: ClassVar[tuple[str, ...]] = ()  # the slots that are conditions


class Purchases(Reads):
    CONDITIONS = ("counted",)
    counted: str = Field("true", description="the purchase counts toward the value and what they bought")
    amount: str
    currency: str
    at: str = Field(description="when it was made (a DateTime)")
    channel: str = Field(description="a field: where it was made (ordersByChannel shows its type)")
    products: str = Field("[]", description="a list of the product ids (skus) bought")


class Payments(Reads):
    amount: str
    currency: str


class Products(Reads):
    products: str = Field(description="a list of product ids (skus)")


class Offered(Products):
    CONDITIONS = ("recent",)
    recent: str = Field("true", description="offered so recently that it is not suggested again")


class Issues(Reads):
    CONDITIONS = ("open",)
    open: str = "true"
    subject: str = Field(description="text whose words call for the team's skills")


class Contacts(Reads):
    CONDITIONS = ("good", "bad")
    agent: str = Field(description="the id of the team member who handled it (the team role's id)")
    good: str = Field(description="it ended well")
    bad: str = Field(description="it ended badly")


class Team(Reads):
    """The people bestAgent ranks."""

    key: str = Field(description="the one key the entity is read by (e.g. the list of those available now)")
    id: str
    skills: str
    languages: str
    knows: str = Field("[]", description="the product categories they know")

    @field_validator("each")
    @classmethod
    def _whole(cls, v: str | None) -> str | None:
        if v is not None:
            raise ValueError("team members are whole records: no each")
        return v


class Language(Reads):
    select: str = Field(description="the customer's language (the first item's)")


class Setting(_Model):
    type: str = Field(description="a GraphQL type reference: a scalar or a declared enum (Int!, Severity!)")
    default: Any = None
    min: float | None = None
    max: float | None = None
    description: str | None = None

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        TypeRef.parse(v)
        return v


class BlockerDecl(Reads):
    order: int = Field(0, description="where the kind stands among the kinds: the enum's order and the answer's")
    when: list[str] = Field(min_length=1, description="conditions that must all hold: names of the type's "
                                                      "conditions or CEL")
    reason: str = Field(description="a template: the text the blocker shows")
    id: str = Field(description="CEL: the id of the record the blocker cites")

    @field_validator("when", mode="before")
    @classmethod
    def _one(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class InsightsDecl(_Model):
    """One file's `insights:` section."""

    purchases: Purchases | None = None
    payments: Payments | None = None
    owned: Products | None = None
    viewed: Products | None = None
    offered: Offered | None = None
    issues: Issues | None = None
    contacts: Contacts | None = None
    team: Team | None = None
    language: Language | None = None
    settings: dict[str, Setting] = {}
    blockers: dict[str, BlockerDecl] = {}

    @field_validator("settings")
    @classmethod
    def _setting_names(cls, v: dict[str, Setting]) -> dict[str, Setting]:
        for name in v:
            if not _SNAKE.match(name) or keyword.iskeyword(name):
                raise ValueError(f"{name!r}: a snake_case name")
            if name in CrossSellRules.model_fields:
                raise ValueError(f"{name}: the framework's own setting of insights.cross_sell")
        return v

    @field_validator("blockers")
    @classmethod
    def _kinds(cls, v: dict[str, BlockerDecl]) -> dict[str, BlockerDecl]:
        for kind in v:
            if not _KIND.match(kind):
                raise ValueError(f"{kind!r}: a kind is an enum value name in capitals (OPEN_CASE)")
        return v


ROLES = ("purchases", "payments", "owned", "viewed", "offered", "issues", "contacts", "team", "language")
SINGLE = ("team", "language")  # declared once; the others add up across files


# --- reading the files ------------------------------------------------------------------------------

def _with_records(section: Any, entities: Any) -> Any:
    """The section with each role's and blocker's `record` defaulted from the file's own entity."""
    if not isinstance(section, dict):
        return section

    def filled(d: Any) -> Any:
        if isinstance(d, dict) and "record" not in d and isinstance(entities, dict):
            found = entities.get(d.get("entity"))
            if isinstance(found, dict) and isinstance(found.get("record"), str):
                return {**d, "record": found["record"]}
        return d

    out = {k: filled(v) if k in ROLES else v for k, v in section.items()}
    if isinstance(out.get("blockers"), dict):
        out["blockers"] = {k: filled(b) for k, b in out["blockers"].items()}
    return out


def insights_of(raw: Any, file: str) -> InsightsDecl | None:
    """The `insights:` section of one parsed declaration file, checked; None when it has none."""
    if not isinstance(raw, dict) or raw.get("insights") is None:
        return None
    try:
        return InsightsDecl.model_validate(_with_records(raw["insights"], raw.get("entities")))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in ("insights", *err["loc"]))
        raise DeclarationError(f"{file}: {where}: {str(err['msg']).removeprefix('Value error, ')}") from None


@dataclass
class Loaded:
    """Every file's `insights:` (by file name), merged: a setting, a kind or a single role declared
    twice is an error naming both files."""

    files: dict[str, InsightsDecl] = field(default_factory=dict)  # by file name
    roles: dict[str, list[tuple[str, Reads]]] = field(default_factory=dict)
    settings: dict[str, tuple[str, Setting]] = field(default_factory=dict)
    blockers: list[tuple[str, str, BlockerDecl]] = field(default_factory=list)  # (file, kind, decl), in order

    def add(self, file: str, decl: InsightsDecl) -> None:
        self.files[file] = decl
        for name in ROLES:
            role = getattr(decl, name)
            if role is None:
                continue
            if name in SINGLE and self.roles.get(name):
                raise DeclarationError(f"{file}: insights.{name}: already declared in {self.roles[name][0][0]}")
            self.roles.setdefault(name, []).append((file, role))
        for name, s in decl.settings.items():
            if name in self.settings:
                raise DeclarationError(f"{file}: insights.settings.{name}: already declared in "
                                       f"{self.settings[name][0]}")
            self.settings[name] = (file, s)
        for kind, b in decl.blockers.items():
            other = next((f for f, k, _ in self.blockers if k == kind), None)
            if other is not None:
                raise DeclarationError(f"{file}: insights.blockers.{kind}: already declared in {other}")
            self.blockers.append((file, kind, b))
        self.blockers.sort(key=lambda fkb: fkb[2].order)  # stable: files, then their own order


def load_insights(where: Path) -> Loaded:
    """Every file's `insights:` section in `where`."""
    loaded = Loaded()
    for path in sorted(p for p in where.iterdir() if p.suffix in SUFFIXES and p.is_file()):
        decl = insights_of(yaml.safe_load(path.read_text()), path.name)
        if decl is not None:
            loaded.add(path.name, decl)
    return loaded


# --- the settings: typed fields of insights.cross_sell ------------------------------------------------

def setting_fields(loaded: Loaded, graph: Any) -> dict[str, tuple[Any, FieldInfo]]:
    """name -> (its Python type, a pydantic Field with its default and bounds), for resolvers.rules."""
    out: dict[str, tuple[Any, FieldInfo]] = {}
    for name, (file, s) in loaded.settings.items():
        where = f"{file}: insights.settings.{name}"
        ref = TypeRef.parse(s.type)
        if ref.of is not None or (ref.named not in SCALARS and ref.named not in graph.enums):
            raise DeclarationError(f"{where}.type: a scalar or a declared enum, not {s.type}")
        hint = graph.annotation(ref, graphql=False)
        bounds = {k: v for k, v in (("ge", s.min), ("le", s.max)) if v is not None}
        if bounds and ref.named not in ("Int", "Float"):
            raise DeclarationError(f"{where}: min and max are for Int and Float settings")
        if "default" not in s.model_fields_set and not ref.nullable:
            raise DeclarationError(f"{where}.default: required (gateway.yaml may leave the setting out)")
        try:
            default = TypeAdapter(Annotated[hint, Field(**bounds)]).validate_python(enum_member(hint, s.default))
        except ValidationError as exc:
            raise DeclarationError(f"{where}.default: {exc.errors()[0]['msg']}, got {s.default!r}") from None
        out[name] = (hint, Field(default, description=s.description, **bounds))  # type: ignore[arg-type]
    return out


def blocker_kinds(loaded: Loaded, module: str) -> type[enum.Enum] | None:
    """The kinds of blocker, in their declared order, as a Python enum (values: the names lower-cased;
    a blocker's description is its value's); None when no file declares one."""
    if not loaded.blockers:
        return None
    members = [(k, strawberry.enum_value(k.lower(), description=b.description) if b.description else k.lower())
               for _, k, b in loaded.blockers]
    return enum.Enum("BlockerKind", members, module=module, qualname="BlockerKind")  # type: ignore[misc]


# --- compiling --------------------------------------------------------------------------------------

def _item(d: Reads, graph: Any) -> tuple[type, str, type | None, Callable[[Any], Any] | None]:
    """(the item's record class, its type name, the parent's class or None, each's getter or None)."""
    from connectors.expressions import compile_expr, fields_of
    from connectors.mapping import _unwrap
    if d.record not in graph.records:
        raise ValueError(f"record: no declared type {d.record!r}")
    rec = graph.records[d.record]
    if d.each is None:
        return rec, d.record, None, None
    _, elem = _unwrap((fields_of(rec) or {}).get(d.each))
    if fields_of(elem) is None:
        raise ValueError(f"each: {d.record} has no list field of records {d.each!r}")
    return elem, elem.__name__, rec, compile_expr(d.each, rec)


class _Slots:
    """Compiles one role's or blocker's expressions over its items, with the bound names."""

    def __init__(self, d: Reads, graph: Any, rules: type) -> None:
        self.graph = graph
        self.item, self.name, parent, self.each = _item(d, graph)
        self.bound: dict[str, Any] = {**({"parent": parent} if parent is not None else {}),
                                      "rules": rules, "now": datetime}

    def _uniform(self, fn: Callable[..., Any]) -> Fn:
        """(item, parent, rules, now), whichever names the expression was compiled with."""
        if "parent" in self.bound:
            return fn
        return lambda i, p, r, n: fn(i, r, n)

    def expr(self, text: str, key: str) -> Fn:
        from connectors.expressions import compile_expr
        try:
            return self._uniform(compile_expr(text, self.item, self.bound, label=key))
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None

    def condition(self, text: str, key: str) -> Fn:
        named = self.graph.conditions.get(self.name, {}).get(text)
        if named is not None:
            return lambda i, p, r, n: named(i)
        return self.expr(text, key)

    def template(self, text: str, key: str) -> Fn:
        from connectors.expressions import compile_template
        try:
            return self._uniform(compile_template(text, self.item, self.bound, label=key))
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None


_META = frozenset(Reads.model_fields) | {"key"}


def compile_role(d: Reads, graph: Any, rules: type) -> Role:
    slots = _Slots(d, graph, rules)
    compiled = {name: slots.condition(text, name) if name in d.CONDITIONS else slots.expr(text, name)
                for name in type(d).model_fields if name not in _META
                for text in (getattr(d, name),)}
    return Role(d.entity, slots.each, compiled, getattr(d, "key", None))


def compile_blocker(kind: Any, d: BlockerDecl, graph: Any, rules: type) -> BlockerRule:
    slots = _Slots(d, graph, rules)
    when = tuple(slots.condition(w, f"when.{i}" if len(d.when) > 1 else "when") for i, w in enumerate(d.when))
    return BlockerRule(kind, d.entity, slots.each, when, slots.template(d.reason, "reason"), slots.expr(d.id, "id"))


def compile_insights(loaded: Loaded, graph: Any, rules: type, kinds: type[enum.Enum] | None) -> Roles:
    """The roles and blockers over the graph's records; DeclarationError naming the file and key."""
    out: dict[str, Any] = {}
    for name, found in loaded.roles.items():
        made = []
        for file, d in found:
            try:
                made.append(compile_role(d, graph, rules))
            except (ValueError, DeclarationError) as exc:
                raise DeclarationError(f"{file}: insights.{name}.{_message(exc)}") from None
        out[name] = made[0] if name in SINGLE else tuple(made)
    blockers = []
    for file, kind, d in loaded.blockers:
        try:
            blockers.append(compile_blocker(kinds[kind] if kinds else kind, d, graph, rules))
        except (ValueError, DeclarationError) as exc:
            raise DeclarationError(f"{file}: insights.blockers.{kind}.{_message(exc)}") from None
    return Roles(**out, blockers=tuple(blockers))


def _message(exc: Exception) -> str:
    return str(exc).removeprefix("Value error, ")


def shown_type(loaded: Loaded, role: str, slot: str, graph: Any, rules: type) -> Any:
    """The Python type of a slot that a composed field shows (a purchase's channel), from the
    declarations: the same in every file declaring the role; None when no file declares it."""
    from connectors.expressions import static_type
    from connectors.mapping import _unwrap
    found = set()
    for file, d in loaded.roles.get(role, []):
        try:
            item, _, parent, _ = _item(d, graph)
        except ValueError as exc:
            raise DeclarationError(f"{file}: insights.{role}.{exc}") from None
        bound = {**({"parent": parent} if parent is not None else {}), "rules": rules, "now": datetime}
        hint, _ = _unwrap(static_type(getattr(d, slot), item, bound))
        if not isinstance(hint, type) or hint not in graph.enums.values() and hint not in (str, int, float, bool):
            raise DeclarationError(f"{file}: insights.{role}.{slot}: a field whose type is a scalar or an enum")
        found.add(hint)
    if len(found) > 1:
        raise DeclarationError(f"insights.{role}.{slot}: one type in every file (found {len(found)})")
    return next(iter(found), None)
