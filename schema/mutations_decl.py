"""The mutations a declaration file declares: the GraphQL side of its source's writes.

Beside its `actions:` (connectors/actions.py: the request or statement), a source's file may declare
the mutations they take and the input types those read:

    inputs:                                    # GraphQL input types, by their GraphQL name
      NoteInput:
        description: A note to add.
        fields:                                # snake_case; GraphQL shows them camelCased
          customer_id: ID!
          kind: {type: NoteKind!, description: One of the kinds of note.}
          text: {type: String!, normalize: trim}   # built-in normalisations, applied before anything
          idempotency_key: String!
          author_id: String                    # a nullable field defaults to null
    mutations:
      add_note:                                # the Mutation field (addNote)
        description: Add a note; it shows at once.
        input: NoteInput                       # its one argument, `input: NoteInput!`
        customer: customer_id                  # the input field holding the golden id (the default)
        validate:                              # CEL over the input, in order: the first that does not hold
          - require: "size(text) >= 1 && size(text) <= 500"   # answers BAD_USER_INPUT with its message
            message: text must be 1 to 500 characters
        exists:                                # input values that must be the key of a known record
          author_id: {entity: agents, message: "unknown author '{{author_id}}'"}   # (when given)
        action: create_note                    # the action of this file's source that writes it
        keys:                                  # the customer's keys there: their ids in its system
          link: {from: members.numbers}        # none yet: link the first of these in the identity source
          missing: "customer {{customer_id}} has no number to add the note under"
        idempotency_key: idempotency_key       # the input field audited as the key; the action must send it
        invalidates: [notes]                   # the source's cached entities under the keys written
        returns: Note                          # the record the action's answer maps into; or Customer

Validation runs first (nothing is written for bad input), then the customer is read (NOT_FOUND when
unknown), then `exists`, then the keys; a link goes first and is harmless if the write then fails (the
person does own that id). Messages are templates: `{{ CEL }}` over the input. A link runs the identity
source's action named by `link.action` (default `link`) with `$customer`, `$system` (the writing
source's) and `$key` (the value linked).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from connectors.declaration import Keys
from schema.declared import DeclarationError, TypeRef

SNAKE = r"^[a-z][a-z0-9_]*$"
GRAPHQL_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
Normalizer = Literal["trim", "lower", "upper", "title", "email", "digits", "sha256"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class InputFieldDecl(_Model):
    """One field of an input type; as shorthand, its GraphQL type reference alone."""

    type: str = Field(description="a GraphQL type reference: a scalar, an enum or an input type")
    description: str | None = None
    normalize: list[Normalizer] = Field([], description="built-in normalisations of a string, in order")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"type": v} if isinstance(v, str) else v

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        TypeRef.parse(v)
        return v

    @field_validator("normalize", mode="before")
    @classmethod
    def _one(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class InputDecl(_Model):
    description: str | None = None
    fields: dict[str, InputFieldDecl] = Field(min_length=1)

    @field_validator("fields")
    @classmethod
    def _names(cls, v: dict[str, InputFieldDecl]) -> dict[str, InputFieldDecl]:
        for name in v:
            if not re.fullmatch(SNAKE, name):
                raise ValueError(f"field {name!r}: names are snake_case (GraphQL shows them camelCased)")
        return v


class CheckDecl(_Model):
    require: str = Field(description="CEL over the input that must hold")
    message: str = Field(min_length=1, description="the BAD_USER_INPUT message when it does not")


class ExistsDecl(_Model):
    entity: str = Field(pattern=SNAKE, description="the entity whose record the value must be the key of")
    message: str = Field(min_length=1, description="a template: {{ CEL }} over the input")


class LinkDecl(Keys):
    """`from`: entity.field, the customer's records whose field holds the id to link (the first of
    them, normalised as `normalize` says); `action`: the identity source's action that links it."""

    action: str = Field("link", pattern=SNAKE, description="the identity source's action that links")


class KeysDecl(_Model):
    link: LinkDecl | None = Field(None, description="when the customer has no id in the source's system")
    missing: str | None = Field(None, description="the BAD_USER_INPUT message when there is no key (a template)")

    @field_validator("link", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"from": v} if isinstance(v, str) else v


class MutationDecl(_Model):
    """One Mutation field (see the module's docstring)."""

    description: str | None = None
    input: str = Field(pattern=GRAPHQL_NAME, description="the input type of its one argument")
    customer: str = Field("customer_id", pattern=SNAKE, description="the input field holding the golden id")
    checks: list[CheckDecl] = Field([], alias="validate")
    exists: dict[str, ExistsDecl] = {}
    action: str = Field(pattern=SNAKE, description="the action of this file's source that takes the write")
    keys: KeysDecl = KeysDecl()
    idempotency_key: str | None = Field(None, pattern=SNAKE, description="the input field carrying the key")
    invalidates: list[str] = Field([], description="the source's entities whose cached records it changes")
    returns: str = Field(pattern=GRAPHQL_NAME, description="a declared type (the action's answer) or Customer")


@dataclass(frozen=True)
class Declared:
    """Every file's inputs and mutations: name -> (the file, the declaration)."""

    inputs: dict[str, tuple[str, InputDecl]]
    mutations: dict[str, tuple[str, MutationDecl]]


def source_of(file: str) -> str:
    """The source a mutation belongs to: the one its file declares (named after the file)."""
    return Path(file).stem


_INPUTS = TypeAdapter(dict[str, InputDecl])
_MUTATIONS = TypeAdapter(dict[str, MutationDecl])


def _section(adapter: TypeAdapter[Any], raw: Any, file: str, section: str) -> dict[str, Any]:
    try:
        found: dict[str, Any] = adapter.validate_python(raw or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in (section, *err["loc"]))
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (misspelt, or not a setting here)"
        raise DeclarationError(f"{file}: {where}: {msg}") from None
    pattern, kind = (GRAPHQL_NAME, "a GraphQL") if section == "inputs" else (SNAKE, "a snake_case")
    for name in found:
        if not re.fullmatch(pattern, name):
            raise DeclarationError(f"{file}: {section}.{name}: not {kind} name")
    return found


def declared_of(raw: Any, file: str, shared: bool = False) -> Declared:
    """The `inputs:` and `mutations:` of one parsed declaration file."""
    if not isinstance(raw, dict):
        return Declared({}, {})
    if shared and raw.get("mutations"):
        raise DeclarationError(f"{file}: mutations: declared in the file of the source whose action takes them, "
                               f"not in a shared file")
    inputs = _section(_INPUTS, raw.get("inputs"), file, "inputs")
    mutations = _section(_MUTATIONS, raw.get("mutations"), file, "mutations")
    return Declared({n: (file, d) for n, d in inputs.items()}, {n: (file, d) for n, d in mutations.items()})


def load(where: Path, suffixes: tuple[str, ...] = (".yaml", ".yml")) -> Declared:
    """Every file's inputs and mutations in `where`; a name declared twice is an error naming both files."""
    inputs: dict[str, tuple[str, InputDecl]] = {}
    mutations: dict[str, tuple[str, MutationDecl]] = {}
    for path in sorted(p for p in where.iterdir() if p.suffix in suffixes and p.is_file()):
        part = declared_of(yaml.safe_load(path.read_text()), path.name, path.name.startswith("_"))
        for section, mine, into in (("inputs", part.inputs, inputs), ("mutations", part.mutations, mutations)):
            for name, found in mine.items():
                if name in into:
                    raise DeclarationError(f"{path.name}: {section}.{name}: already declared in {into[name][0]}")
                into[name] = found  # type: ignore[assignment]
    return Declared(inputs, mutations)
