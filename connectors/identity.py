"""The identity source's declaration: which of its entities link golden ids to every system's records,
and the lookups `findCustomers` offers.

The `identity:` section of the declaration file of the source `gateway.identity` names:

    identity:
      golden_id: {pattern: "^C-[0-9]{6}$", example: C-000042}   # default: any 1-128 non-space characters
      identities: links           # entity: golden id -> the person's records in every system (Identity)
      match: by_match_key         # entity: "kind:value" -> the golden ids with that standardised key
      description: "..."          # findCustomers' description
      lookups:                    # findCustomers' arguments, in order: snake_case, camel-cased in GraphQL
        email: {normalize: email, valid: "value.contains('@')", invalid: is not an email address}
        phone: {normalize: e164, empty: is not a phone number}   # e164: the source's options.phone_country
        member_no: {kind: member, normalize: digits, empty: has no digits}
      system_id:                  # findCustomers(systemId: {system, id}): "system:id" -> golden ids
        entity: by_system_id
        description: "..."        # SystemIdInput's description

A value given for a lookup is checked with `valid` (CEL over `value`, the text as typed; false is a
BAD_USER_INPUT "<argument> '<value>' <invalid>"), normalised (built-in normalisations, connectors/
mapping.py NORMALIZERS; nothing left is "<argument> '<value>' <empty>") and asked for as
"<kind>:<normalised value>" (kind: the lookup's name unless given) from the `match` entity. Customers
matching every identifier given come first, then by how many they match.

The schema (schema/find.py) builds findCustomers' arguments from the declaration, once per process;
the resolvers run the lookups compiled here (`compile_identity`) from the configuration's source.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connectors.declaration import Expression, expression
from connectors.mapping import Normalizer, normalizer

# snake_case without doubled or trailing underscores: camel-casing it is then reversible.
SNAKE = r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$"
RESERVED = {"info", "root", "self"}  # the generated resolver's own parameters
SYSTEM_ID = "system_id"
FIND_DESCRIPTION = "Customers matching any of the identifiers given; those matching every one of them come first."
SYSTEM_ID_DESCRIPTION = "An id as one system knows the customer."


def camel(name: str) -> str:
    """A snake_case name as GraphQL shows it (strawberry's rule): member_no -> memberNo."""
    first, *rest = name.split("_")
    return first + "".join(p.capitalize() for p in rest)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Lookup(_Model):
    """One findCustomers argument: a string matched through the match entity's standardised keys."""

    kind: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$",
                             description="the match key's kind (\"kind:value\"); default: the lookup's name")
    normalize: list[Normalizer] = Field([], description="built-in normalisations, in order (NORMALIZERS)")
    valid: Expression | None = Field(None, description="CEL over `value`, the text as typed: false refuses it")
    invalid: str | None = Field(None, min_length=1, description="why a value `valid` refuses is unusable")
    empty: str = Field("has nothing to look up", min_length=1,
                       description="why a value that normalises to nothing is unusable")

    @field_validator("normalize", mode="before")
    @classmethod
    def _one(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _messages(self) -> Lookup:
        if (self.valid is None) != (self.invalid is None):
            raise ValueError("give valid (a CEL check) and invalid (its message) together")
        return self


class SystemIdLookup(_Model):
    """findCustomers' `systemId: {system, id}` argument, asked for as "system:id"."""

    entity: str = Field(description="this source's entity: \"system:id\" -> the golden ids")
    description: str = Field(SYSTEM_ID_DESCRIPTION, min_length=1, description="SystemIdInput's description")


class GoldenId(_Model):
    """What a golden id looks like: ids of another form are refused as malformed, unasked."""

    pattern: str = Field(r"^\S{1,128}$", description="a regular expression a golden id matches in full")
    example: str | None = Field(None, description="one golden id, shown in messages and descriptions")

    @model_validator(mode="after")
    def _valid(self) -> GoldenId:
        try:
            compiled = re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"pattern: not a regular expression ({exc})") from None
        if self.example is not None and not compiled.fullmatch(self.example):
            raise ValueError(f"example: {self.example!r} does not match the pattern")
        return self

    def expected(self) -> str:
        return f"expected the form {self.example}" if self.example else f"expected a golden id matching {self.pattern}"


class IdentityDecl(_Model):
    """The `identity:` section: the entities linking golden ids, and findCustomers' lookups."""

    golden_id: GoldenId = GoldenId()
    identities: str = Field(description="this source's entity: golden id -> the person's records in every system")
    match: str | None = Field(None, description="this source's entity: \"kind:value\" -> golden ids")
    description: str = Field(FIND_DESCRIPTION, min_length=1, description="findCustomers' description")
    lookups: dict[Annotated[str, Field(pattern=SNAKE)], Lookup] = {}
    system_id: SystemIdLookup | None = None

    @field_validator("lookups")
    @classmethod
    def _names(cls, v: dict[str, Lookup]) -> dict[str, Lookup]:
        for name in v:
            if keyword.iskeyword(name) or name in RESERVED:
                raise ValueError(f"{name}: not usable as an argument name")
        return v

    @model_validator(mode="after")
    def _offered(self) -> IdentityDecl:
        if not self.lookups and self.system_id is None:
            raise ValueError("lookups: give at least one lookup (or system_id): findCustomers needs an argument")
        if self.lookups and self.match is None:
            raise ValueError("match: required with lookups (the entity they are asked from)")
        if self.system_id is not None and SYSTEM_ID in self.lookups:
            raise ValueError(f"lookups.{SYSTEM_ID}: the name of the system_id argument")
        return self

    def arguments(self) -> list[str]:
        """findCustomers' arguments, as GraphQL names them, in order."""
        return [camel(n) for n in self.lookups] + ([camel(SYSTEM_ID)] if self.system_id is not None else [])

    def check_entities(self, entities: Mapping[str, Any]) -> None:
        """Each entity named is one of the source's."""
        named = {"identities": self.identities, "match": self.match,
                 "system_id.entity": self.system_id.entity if self.system_id else None}
        for key, entity in named.items():
            if entity is not None and entity not in entities:
                raise ValueError(f"identity.{key}: no entity {entity!r} in this source "
                                 f"(entities: {', '.join(entities) or 'none'})")


@dataclass(frozen=True, slots=True)
class CompiledLookup:
    """A lookup ready to run: check, normalise, key."""

    argument: str  # as GraphQL names it, and the messages too
    kind: str
    valid: Callable[[dict[str, Any]], Any] | None
    invalid: str
    normalize: Callable[[str], Any]
    empty: str


@dataclass(frozen=True, slots=True)
class CompiledIdentity:
    """The identity source's entities and its lookups, by their declared (snake_case) names."""

    identities: str
    match: str | None
    system_ids: str | None
    lookups: dict[str, CompiledLookup]
    golden: re.Pattern[str]
    expected: str  # how a malformed golden id is explained

    def malformed(self, golden_id: str) -> str | None:
        """Why `golden_id` is no golden id, or None when it has the form."""
        return None if self.golden.fullmatch(golden_id) else f"malformed customer id {golden_id!r}: {self.expected}"

    def none_given(self) -> str:
        """The message for a findCustomers without any argument."""
        names = [lk.argument for lk in self.lookups.values()] + ([camel(SYSTEM_ID)] if self.system_ids else [])
        listed = f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]
        return f"give at least one of {listed}" if len(names) > 1 else f"give {listed}"


def compile_identity(decl: IdentityDecl, options: Mapping[str, Any]) -> CompiledIdentity:
    """The declaration compiled once: each lookup's check and normalisation (MappingError, or the CEL's
    ValueError, naming `identity.lookups.NAME` when it cannot be)."""
    lookups = {}
    for name, lk in decl.lookups.items():
        where = f"identity.lookups.{name}"
        lookups[name] = CompiledLookup(
            argument=camel(name), kind=lk.kind or name,
            valid=expression(lk.valid) if lk.valid is not None else None, invalid=lk.invalid or "",
            normalize=normalizer(list(lk.normalize), options, where), empty=lk.empty)
    return CompiledIdentity(decl.identities, decl.match, decl.system_id.entity if decl.system_id else None, lookups,
                            re.compile(decl.golden_id.pattern), decl.golden_id.expected())
