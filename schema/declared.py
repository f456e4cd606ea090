"""Declared types: one declaration per type gives its record class and its GraphQL type.

A declaration (YAML-friendly; the `types:` and `enums:` of a declaration file) says each type's name,
description and fields, each field's GraphQL type as a type reference (`String`, `Int!`, `[Payment!]!`),
a description and a default; and each enum's name, description and values:

    enums:
      PaymentStatus:
        description: Where a payment stands.
        values: [PENDING, SETTLED, FAILED]        # Python values: the names lower-cased ("open", ...)
      Channel:
        values:
          WEB: {description: Online}               # value "web"
          VOICE: {value: phone}                    # or give the value
    types:
      Subscription:
        description: A subscription.
        fields:
          number: String!                          # shorthand: the type reference alone
          plan: {type: String, description: The plan's name.}
          payments: {type: "[Payment!]!", default: []}
      Payment:
        fields: {id: String!, status: PaymentStatus!, paid_on: Date!}

`build_types` makes, for each type, two classes named after it:
- the record: a slotted dataclass (`Graph.records[name]`), fields in declared order, real annotations
  (`date`, `list[Payment]`, `PaymentStatus | None`: what `connectors.mapping.compile_mapping(spec,
  make=record)` reads for enum tables and nested records), a declared default as the constructor's;
- the GraphQL type: a strawberry type (`Graph.types[name]`) whose fields are plain strawberry fields
  without resolvers, read by attribute off the records (the records ARE the GraphQL objects; the
  executor's one-step path applies) and `is_type_of` by isinstance, so records resolve in unions.
Enums are Python enums made strawberry enums (one class: `Graph.enums[name]`).

Field names are snake_case: the record's attribute and the mapping's key; GraphQL shows them camelCased
(strawberry's auto camel case: `days_past_due` -> `daysPastDue`). Type and enum names are GraphQL names.
A field marked `private: true` is on the record only (e.g. a list served by another field);
a type marked `private: true` is a record only (no GraphQL type; no public field may use it).
Scalars: String, ID (str), Int, Float, Boolean, Date (date), DateTime (datetime).

Names resolve across the whole set in any order, forward references and cycles included: every class
exists before any field is typed. Fields computed by the framework (a resolver, e.g. records of another
source attached by schema/types.py) are added with `Graph.add_field` before `Graph.finish()` decorates the
GraphQL types; `Graph.annotation("[Payment!]")` gives a field's Python type from the same notation.

Records and enums pickle (the cache's Redis tier and size sampling pickle records): a graph registers
them as `schema.registered.<Name>` (their `__module__`), so a process builds its graph once, at start,
and every schema it builds (one per role) uses that one graph's classes.
"""

from __future__ import annotations

import dataclasses
import enum
import keyword
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

import strawberry
import yaml
from graphql import GraphQLError, ListTypeNode, NamedTypeNode, NonNullTypeNode, TypeNode
from graphql.language import parse_type
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from strawberry.types.field import StrawberryField

from schema import registered

# GraphQL scalar name -> (the record's Python type, the strawberry annotation)
SCALARS: dict[str, tuple[type, Any]] = {
    "String": (str, str),
    "ID": (str, strawberry.ID),
    "Int": (int, int),
    "Float": (float, float),
    "Boolean": (bool, bool),
    "Date": (date, date),
    "DateTime": (datetime, datetime),
}
_GRAPHQL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]*")
_RESERVED = frozenset({"is_type_of", "resolve_type"})  # attributes strawberry reads off a type


class DeclarationError(ValueError):
    """A set of declarations that cannot be built; the message starts with the key path."""


# --- the declaration ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class TypeRef:
    """A parsed GraphQL type reference: a named type, or a list of `of`; `nullable` unless `!`."""

    name: str | None
    nullable: bool
    of: TypeRef | None = None

    @property
    def named(self) -> str:
        return self.name if self.of is None else self.of.named  # type: ignore[return-value]

    @classmethod
    def parse(cls, text: str) -> TypeRef:
        try:
            node = parse_type(text)
        except GraphQLError as exc:
            raise ValueError(f"{text!r} is not a GraphQL type reference ({exc.message})") from None
        return cls._of(node, True)

    @classmethod
    def _of(cls, node: TypeNode, nullable: bool) -> TypeRef:
        if isinstance(node, NonNullTypeNode):
            return cls._of(node.type, False)
        if isinstance(node, ListTypeNode):
            return cls(None, nullable, cls._of(node.type, True))
        assert isinstance(node, NamedTypeNode)
        return cls(node.name.value, nullable)

    def __str__(self) -> str:
        inner = self.name if self.of is None else f"[{self.of}]"
        return f"{inner}{'' if self.nullable else '!'}"


class FieldDecl(BaseModel):
    """One field: its GraphQL type reference; as shorthand, the reference alone (`number: String!`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(description='a GraphQL type reference: "String", "Int!", "[Payment!]!", an enum\'s name')
    description: str | None = None
    default: Any = Field(None, description="the record's default when a mapping leaves the field out")
    private: bool = Field(False, description="on the record only, not in the GraphQL type")

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        TypeRef.parse(v)
        return v

    @property
    def ref(self) -> TypeRef:
        return TypeRef.parse(self.type)

    @property
    def has_default(self) -> bool:
        return "default" in self.model_fields_set


class TypeDecl(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str | None = None
    fields: dict[str, FieldDecl]
    private: bool = Field(False, description="a record only: no GraphQL type")
    conditions: dict[str, str] = Field({}, description="named CEL conditions over a record (unresolved: \"status "
                                                        "in ['NEW', 'OPEN']\"), for the graph's filters and the "
                                                        "insights' roles; compiled with the record's types")

    @field_validator("fields", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: {"type": f} if isinstance(f, str) else f for k, f in v.items()}
        return v

    @field_validator("fields")
    @classmethod
    def _names(cls, v: dict[str, FieldDecl]) -> dict[str, FieldDecl]:
        if not v:
            raise ValueError("a type needs at least one field")
        for name in v:
            if not _FIELD_NAME.fullmatch(name) or keyword.iskeyword(name) or name in _RESERVED:
                raise ValueError(f"field {name!r}: names are snake_case identifiers (a-z, 0-9, _), "
                                 f"not a Python keyword nor {', '.join(sorted(_RESERVED))}")
        seen = False
        for name, f in v.items():
            if f.has_default:
                seen = True
            elif seen:
                raise ValueError(f"field {name!r} has no default but follows one that has: "
                                 f"fields with a default come last")
        return v


class EnumValueDecl(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    value: str | int | None = Field(None, description="the Python value; default: the name lower-cased")
    description: str | None = None


class EnumDecl(BaseModel):
    """Values as a list of names, or names -> {value, description} (or the value alone)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str | None = None
    values: dict[str, EnumValueDecl]

    @field_validator("values", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        if isinstance(v, list):
            return {name: {} for name in v}
        if isinstance(v, dict):
            return {k: {} if x is None else {"value": x} if isinstance(x, (str, int)) else x for k, x in v.items()}
        return v

    @field_validator("values")
    @classmethod
    def _names(cls, v: dict[str, EnumValueDecl]) -> dict[str, EnumValueDecl]:
        if not v:
            raise ValueError("an enum needs at least one value")
        for name in v:
            if not _GRAPHQL_NAME.fullmatch(name) or name in ("true", "false", "null"):
                raise ValueError(f"{name!r} is not a GraphQL enum value name")
        values = [x.value if x.value is not None else n.lower() for n, x in v.items()]
        dup = next((x for x in values if values.count(x) > 1), None)
        if dup is not None:
            raise ValueError(f"two values are {dup!r}")
        return v

    def python_values(self) -> dict[str, str | int]:
        return {n: x.value if x.value is not None else n.lower() for n, x in self.values.items()}


class Declarations(BaseModel):
    """A set of type and enum declarations; every name a field uses must be in it (or a scalar)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enums: dict[str, EnumDecl] = {}
    types: dict[str, TypeDecl] = {}

    @model_validator(mode="after")
    def _consistent(self) -> Declarations:
        for kind, names in (("enums", self.enums), ("types", self.types)):
            for name in names:
                if not _GRAPHQL_NAME.fullmatch(name) or name.startswith("__"):
                    raise ValueError(f"{kind}.{name}: not a GraphQL name")
                if name in SCALARS:
                    raise ValueError(f"{kind}.{name}: {name} is a built-in scalar")
        both = sorted(set(self.enums) & set(self.types))
        if both:
            raise ValueError(f"types.{both[0]}: also declared as an enum")
        for tname, t in self.types.items():
            for fname, f in t.fields.items():
                where = f"types.{tname}.fields.{fname}"
                named = f.ref.named
                if named not in SCALARS and named not in self.enums and named not in self.types:
                    raise ValueError(f"{where}.type: unknown type {named!r} (a scalar: {', '.join(SCALARS)}; "
                                     f"or a declared type or enum)")
                if not (t.private or f.private) and named in self.types and self.types[named].private:
                    raise ValueError(f"{where}.type: {named} is private (a record only); "
                                     f"mark this field private too")
                if f.has_default:
                    try:
                        _default(f.ref, f.default, self.enums, None)
                    except (ValueError, TypeError) as exc:
                        raise ValueError(f"{where}.default: {exc}") from None
        return self

    @classmethod
    def load(cls, source: str | Mapping[str, Any] | Declarations) -> Declarations:
        """From YAML text, its parsed dict, or a Declarations."""
        if isinstance(source, Declarations):
            return source
        if isinstance(source, str):
            source = yaml.safe_load(source) or {}
        return cls.model_validate(source)

    @classmethod
    def merge(cls, parts: Mapping[str, Declarations]) -> Declarations:
        """Several files' declarations as one set; `parts` by file name, which a duplicate's error names."""
        enums: dict[str, EnumDecl] = {}
        types: dict[str, TypeDecl] = {}
        where: dict[str, str] = {}
        for file, part in parts.items():
            for kind, mine, into in (("enums", part.enums, enums), ("types", part.types, types)):
                for name, decl in mine.items():
                    if name in where:
                        raise DeclarationError(f"{file}: {kind}.{name}: already declared in {where[name]}")
                    where[name] = file
                    into[name] = decl  # type: ignore[assignment]
        try:
            return cls(enums=enums, types=types)
        except ValidationError as exc:  # e.g. a field's unknown type: name the file declaring the field
            msg = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            kind, _, rest = msg.partition(".")
            name = re.split(r"[.:]", rest, maxsplit=1)[0]
            if kind in ("types", "enums") and name in where:
                raise DeclarationError(f"{where[name]}: {msg}") from None
            raise


def _default(ref: TypeRef, raw: Any, enums: Mapping[str, EnumDecl], classes: Mapping[str, type] | None) -> Any:
    """The Python value of a declared default (checked against the field's type)."""
    if raw is None:
        if not ref.nullable:
            raise ValueError(f"null for non-null {ref}")
        return None
    if ref.of is not None:
        if not isinstance(raw, list):
            raise TypeError(f"a {ref} needs a list, got {raw!r}")
        return [_default(ref.of, x, enums, classes) for x in raw]
    name = ref.name
    if name in enums:
        members = enums[name].values
        if raw not in members:
            raise ValueError(f"{raw!r} is not a value of {name} ({', '.join(members)})")
        return classes[name][raw] if classes is not None else raw
    py = SCALARS[name][0] if name in SCALARS else None
    if py is None:
        raise ValueError(f"an object ({name}) can only default to null")
    if py is date and isinstance(raw, str):
        return date.fromisoformat(raw)
    if py is datetime and isinstance(raw, str):
        return datetime.fromisoformat(raw)
    if py is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if type(raw) is not py:
        raise TypeError(f"{raw!r} is not a {name}")
    return raw


# --- building -------------------------------------------------------------------------------------

class _Unset:
    """Placeholder annotation while the record classes are made (patched to the real types after)."""


def _condition(type_name: str, name: str, text: str, record: type) -> Callable[[Any], bool]:
    from connectors.expressions import compile_expr
    try:
        return compile_expr(text, record, label=f"{type_name}.{name}")
    except ValueError as exc:
        raise DeclarationError(f"types.{type_name}.conditions.{name}: {exc}") from None


class Graph:
    """The records, GraphQL types and enums built from a set of declarations.

    Until `finish()` the GraphQL types are plain classes (every name already resolvable, so fields
    added with `add_field` can refer to any of them); `finish()` makes them strawberry types."""

    def __init__(self, declarations: Declarations | Mapping[str, Any] | str, *, register: bool = True) -> None:
        self.declarations = Declarations.load(declarations)
        self.enums: dict[str, type[enum.Enum]] = {}
        self.records: dict[str, type] = {}
        self.types: dict[str, type] = {}
        self.finished = False
        self._extra: dict[str, dict[str, StrawberryField]] = {}
        decls = self.declarations
        for name, e in decls.enums.items():
            self.enums[name] = _make_enum(name, e, _module(register))
        for name, t in decls.types.items():
            self.records[name] = _make_record(name, t, _module(register), decls.enums, self.enums)
            if not t.private:
                self.types[name] = type(name, (), {"__module__": __name__, "__qualname__": name,
                                                   "__doc__": t.description})
        for name, t in decls.types.items():  # every class exists: now the annotations
            rec = self.records[name]
            for fname, f in t.fields.items():
                hint = self.annotation(f.type, graphql=False)
                rec.__annotations__[fname] = hint
                rec.__dataclass_fields__[fname].type = hint  # type: ignore[attr-defined]
        if register:
            for name, cls in [*self.enums.items(), *self.records.items()]:
                setattr(registered, name, cls)
        self.conditions: dict[str, dict[str, Callable[[Any], bool]]] = {
            name: {c: _condition(name, c, text, self.records[name]) for c, text in t.conditions.items()}
            for name, t in decls.types.items() if t.conditions}

    def condition(self, type_name: str, name_or_cel: str, where: str = "") -> Callable[[Any], bool]:
        """A condition over records of a type: one it declares by name, or a CEL expression."""
        named = self.conditions.get(type_name, {}).get(name_or_cel)
        return named if named is not None else _condition(type_name, where or name_or_cel, name_or_cel,
                                                         self.records[type_name])

    def annotation(self, ref: str | TypeRef, *, graphql: bool = True) -> Any:
        """The Python type of a GraphQL type reference: for the strawberry type (`graphql`), or the record's."""
        ref = TypeRef.parse(ref) if isinstance(ref, str) else ref
        if ref.of is not None:
            inner: Any = list[self.annotation(ref.of, graphql=graphql)]  # type: ignore[misc]
        elif ref.name in SCALARS:
            inner = SCALARS[ref.name][1 if graphql else 0]
        elif ref.name in self.enums:
            inner = self.enums[ref.name]
        elif graphql:
            if ref.name not in self.types:
                raise DeclarationError(f"no GraphQL type {ref.name!r}"
                                       + (" (it is private)" if ref.name in self.records else ""))
            inner = self.types[ref.name]
        else:
            if ref.name not in self.records:
                raise DeclarationError(f"no declared type {ref.name!r}")
            inner = self.records[ref.name]
        return inner | None if ref.nullable else inner

    def add_field(self, type_name: str, name: str, field: StrawberryField) -> None:
        """A field computed by the framework (a resolver), added to a GraphQL type before `finish()`.

        E.g. `graph.add_field("Subscription", "payments", strawberry.field(resolver=fn,
        graphql_type=graph.annotation("[Payment!]"), description=...))`; `fn(root, info)` gets the record."""
        if self.finished:
            raise DeclarationError(f"{type_name}.{name}: the types are finished; add fields before finish()")
        if type_name not in self.types:
            raise DeclarationError(f"{type_name}.{name}: no GraphQL type {type_name!r}")
        decl = self.declarations.types[type_name].fields.get(name)
        if (decl is not None and not decl.private) or name in self._extra.get(type_name, {}):
            raise DeclarationError(f"{type_name}.{name}: the type already has this field")
        if not isinstance(field, StrawberryField):
            raise DeclarationError(f"{type_name}.{name}: expected a strawberry.field(...)")
        self._extra.setdefault(type_name, {})[name] = field

    def finish(self) -> Graph:
        """Make the GraphQL types strawberry types (once); returns self."""
        if self.finished:
            return self
        for name, cls in self.types.items():
            decl = self.declarations.types[name]
            annotations: dict[str, Any] = {}
            for fname, f in decl.fields.items():
                if f.private:
                    continue
                annotations[fname] = self.annotation(f.type)
                setattr(cls, fname, strawberry.field(description=f.description))
            for fname, sf in self._extra.get(name, {}).items():
                setattr(cls, fname, sf)
            cls.__annotations__ = annotations
            cls.RECORD = self.records[name]  # type: ignore[attr-defined]
            cls.is_type_of = _is_type_of((self.records[name], cls))  # type: ignore[attr-defined]
            built = strawberry.type(cls, name=name, description=decl.description)
            assert built is cls  # decorated in place: the references made before finish() stay good
        self.finished = True
        return self


def _is_type_of(classes: tuple[type, ...]) -> Any:
    def is_type_of(obj: Any, _info: Any) -> bool:
        return isinstance(obj, classes)
    return staticmethod(is_type_of)


def _module(register: bool) -> str:
    return registered.__name__ if register else __name__


def _make_enum(name: str, decl: EnumDecl, module: str) -> type[enum.Enum]:
    values = decl.python_values()
    members = [(n, strawberry.enum_value(values[n], description=v.description) if v.description else values[n])
               for n, v in decl.values.items()]
    cls = enum.Enum(name, members, module=module, qualname=name)  # type: ignore[misc]
    cls.__doc__ = decl.description
    return strawberry.enum(cls, name=name, description=decl.description)


def _make_record(name: str, decl: TypeDecl, module: str, enum_decls: Mapping[str, EnumDecl],
                 enums: Mapping[str, type[enum.Enum]]) -> type:
    ns: dict[str, Any] = {"__module__": module, "__qualname__": name, "__doc__": decl.description,
                          "__annotations__": {}}
    for fname, f in decl.fields.items():
        ns["__annotations__"][fname] = _Unset
        if f.has_default:
            value = _default(f.ref, f.default, enum_decls, enums)
            # a list is fresh per record; scalars and enum members are immutable
            if isinstance(value, list):
                value = dataclasses.field(default_factory=value.copy if value else list)
            ns[fname] = value
    return dataclasses.dataclass(slots=True)(type(name, (), ns))


def build_types(declarations: Declarations | Mapping[str, Any] | str, *,
                fields: Callable[[Graph], Mapping[str, Mapping[str, StrawberryField]]] | None = None,
                register: bool = True) -> Graph:
    """Records, GraphQL types and enums from declarations, finished. `fields(graph)` returns framework
    fields to add, by type name then field name (called with the unfinished graph, so it can use
    `graph.annotation`)."""
    graph = Graph(declarations, register=register)
    for type_name, extra in (fields(graph) if fields else {}).items():
        for name, f in extra.items():
            graph.add_field(type_name, name, f)
    return graph.finish()

