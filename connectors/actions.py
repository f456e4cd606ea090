"""A source's declared writes: the `actions:` section of its declaration file. A mutation (declared
under `mutations:`, schema/mutations_decl.py) names the action that takes it; the connector of the
source's kind runs it (rest: one request; sql: one statement in one transaction).

    actions:
      create_note:                       # kind rest: one request
        request:
          method: POST
          path: /v1/notes                # {key}, {customer} or {input.field} in it are URL-quoted
          headers: {Idempotency-Key: $input.idempotency_key}
          body: {owner: $key, kind: $input.kind, text: $input.text}
        rejects:                         # 4xx answers refusing the caller's input: the caller's error, never
          - status: 422                  # retried nor counted against the source's circuit
            body_contains: key reused    # text of the source's error that picks this meaning (optional)
            code: IDEMPOTENCY_KEY_REUSED # the client's extensions.code
            message: use a new key for a new note
        answer:                          # the answer as a record, by an entity's compiled mapping
          path: note                     # CEL path in the answer (none: the answer)
          entity: notes                  # an entity of this source with a record mapping
          parent: {owner: $key}          # the mapping's parent (its `parent:` fields read it)
      set_language:                      # kind sql: one UPDATE of every key, in one transaction
        update:
          table: people
          key_column: person_no          # ... WHERE person_no IN :keys
          set:                           # a column whose value is null (not given) is left as it is
            lang: $input.language
            reach_by: {value: $input.mode, map: {LETTER: L, CALL: C}}
            opted_in: {value: $input.opt_in, map: {true: 1, false: 0}}
      link:                              # kind sql: insert the row unless it is there
        insert:
          table: links
          values: {golden_id: $customer, system: $system, system_key: $key}
          unique: [golden_id, system, system_key]   # the table's unique constraint: concurrent inserts add one row

Values: `$input.a.b` (a field of the mutation's input; null when not given; an enum is sent as its
value), `$key` (the first of the customer's keys in the source), `$keys` (all of them), `$customer`
(the golden id), `$system` (the system those keys are in); `{value: ..., map: {...}}` translates a value
(an enum by its name; a value missing from the map is an error); anything else is sent as written
(`$$` for a text starting with `$`).
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from connectors.cel import path_steps

REFS = ("input", "key", "keys", "customer", "system")
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
Args = Mapping[str, Any]  # what one run of an action reads: input, key, keys, customer, system
Value = Callable[[Args], Any]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- values ---------------------------------------------------------------------------------------

def _field(v: Any, name: str) -> Any:
    """A field of an input (a dataclass or a dict); null stays null."""
    if v is None:
        return None
    return v.get(name) if isinstance(v, Mapping) else getattr(v, name)


def _plain(v: Any) -> Any:
    """A value as a source receives it: enums by value, input objects as dicts."""
    if isinstance(v, enum.Enum):
        return v.value
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def reference(text: str) -> tuple[str, tuple[str, ...]]:
    """`$input.a.b` -> ("input", ("a", "b")); ValueError for an unknown name."""
    name, _, rest = text[1:].partition(".")
    if name not in REFS:
        raise ValueError(f"unknown value {text!r} (one of $input.<field>, {', '.join('$' + r for r in REFS[1:])}; "
                         f"$$ for a text starting with $)")
    steps = tuple(rest.split(".")) if rest else ()
    if steps and name != "input":
        raise ValueError(f"{text!r}: only $input has fields")
    if not all(re.fullmatch(IDENTIFIER, s) for s in steps):
        raise ValueError(f"{text!r}: $input.<field>.<field>, each a field name")
    return name, steps


def _read(name: str, steps: tuple[str, ...]) -> Value:
    if not steps:
        return lambda args: args[name]

    def read(args: Args) -> Any:
        v = args[name]
        for s in steps:
            v = _field(v, s)
        return v
    return read


def compile_value(spec: Any, where: str = "") -> Value:
    """A function of an action's arguments building `spec` (module docstring), plain for the source;
    ValueError naming the place inside `spec`."""
    raw = _compile(spec, where)
    return lambda args: _plain(raw(args))


def _compile(spec: Any, where: str) -> Value:
    at = f"{where}: " if where else ""
    if isinstance(spec, str) and spec.startswith("$$"):
        text = spec[1:]
        return lambda _: text
    if isinstance(spec, str) and spec.startswith("$"):
        try:
            return _read(*reference(spec))
        except ValueError as exc:
            raise ValueError(f"{at}{exc}") from None
    if isinstance(spec, dict) and set(spec) == {"value", "map"}:
        return _mapped(spec, where)
    if isinstance(spec, dict):
        parts = {k: _compile(v, f"{where}.{k}" if where else str(k)) for k, v in spec.items()}
        return lambda args: {k: p(args) for k, p in parts.items()}
    if isinstance(spec, list):
        items = [_compile(v, f"{where}[{i}]") for i, v in enumerate(spec)]
        return lambda args: [p(args) for p in items]
    return lambda _: spec


def _mapped(spec: dict[str, Any], where: str) -> Value:
    table = spec["map"]
    if not isinstance(table, dict) or not table:
        raise ValueError(f"{where + ': ' if where else ''}map: a mapping of values to what the source stores")
    value = _compile(spec["value"], f"{where}.value" if where else "value")

    def translate(args: Args) -> Any:
        v = value(args)
        if v is None:
            return None
        found = table.get(v.name if isinstance(v, enum.Enum) else v, table)
        if found is table:
            raise ValueError(f"{where or 'value'}: {v!r} is not in its map ({', '.join(map(str, table))})")
        return found
    return translate


def references(spec: Any) -> list[str]:
    """Every `$...` value `spec` reads (for the checks that an action suits its mutation)."""
    if isinstance(spec, str):
        return [spec] if spec.startswith("$") and not spec.startswith("$$") else []
    if isinstance(spec, dict):
        return [r for v in spec.values() for r in references(v)]
    if isinstance(spec, list):
        return [r for v in spec for r in references(v)]
    return []


def _template(v: Any) -> Any:
    compile_value(v)
    return v


Template = Annotated[Any, AfterValidator(_template)]
Column = Annotated[str, Field(pattern=IDENTIFIER)]


def compile_path(path: str) -> Value:
    """A request path with `{key}`, `{customer}`, `{system}` or `{input.field}` URL-quoted into it."""
    from urllib.parse import quote

    pieces: list[tuple[str, Value]] = []  # (the text before a placeholder, its value)
    pos = 0
    for m in _PLACEHOLDER.finditer(path):
        pieces.append((path[pos:m.start()], _read(*reference("$" + m.group(1)))))
        pos = m.end()
    tail = path[pos:]
    if not pieces:
        return lambda _: tail

    def build(args: Args) -> str:
        return "".join(text + quote(str(_plain(read(args))), safe="@") for text, read in pieces) + tail
    return build


def _path(v: str) -> str:
    compile_path(v)
    if "{keys}" in v:
        raise ValueError("{keys} is not one value: a path takes {key}")
    return v


# --- the declaration ------------------------------------------------------------------------------

class RejectDecl(_Model):
    """A 4xx answer that means the caller's input was refused (connectors.base.Rejection)."""

    status: int = Field(ge=400, le=499)
    body_contains: str = Field("", description="text of the source's error that picks this meaning")
    code: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$", description="the client's extensions.code")
    message: str = Field(min_length=1, description="what the client should do about it")


class Answer(_Model):
    path: str | None = Field(None, description="CEL path of the record in the answer (none: the answer)")
    entity: str = Field(description="an entity of this source whose compiled mapping maps it")
    parent: Template = Field(None, description="the mapping's parent: values, as in a body")

    @model_validator(mode="after")
    def _steps(self) -> Answer:
        if self.path is not None:
            path_steps(self.path)
        return self


class WriteRequest(_Model):
    method: Literal["POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: Annotated[str, Field(pattern=r"^/"), AfterValidator(_path)]
    params: dict[str, Template] = {}
    headers: dict[str, Template] = Field({}, description="with the source's own headers; a null value is left out")
    body: Template = None


class Update(_Model):
    """`UPDATE table SET column = value, ... WHERE key_column IN :keys`, the columns whose value is given."""

    table: Column
    key_column: Column
    set: Annotated[dict[Column, Template], Field(min_length=1)]

    @model_validator(mode="after")
    def _no_keys(self) -> Update:
        if "keys" in self.set:
            raise ValueError("set.keys: `keys` is the parameter of the key column's IN; rename the column in SQL")
        return self


class Insert(_Model):
    """`INSERT INTO table (...) VALUES (...)` unless a row with the same unique columns is there."""

    table: Column
    values: Annotated[dict[Column, Template], Field(min_length=1)]
    unique: list[Column] = Field(min_length=1, description="the columns of the table's unique constraint that "
                                                           "makes the insert idempotent")

    @model_validator(mode="after")
    def _unique_given(self) -> Insert:
        missing = [c for c in self.unique if c not in self.values]
        if missing:
            raise ValueError(f"unique: {missing[0]!r} is not one of the values")
        if "keys" in self.values:
            raise ValueError("values.keys: `keys` is a reserved parameter name; rename the column in SQL")
        return self


KIND_OF = {"request": "rest", "update": "sql", "insert": "sql"}


class Action(_Model):
    """One write: a `request` (rest), an `update` or an `insert` (sql)."""

    request: WriteRequest | None = None
    rejects: list[RejectDecl] = []
    answer: Answer | None = None
    update: Update | None = None
    insert: Insert | None = None

    @model_validator(mode="after")
    def _one(self) -> Action:
        given = [k for k in KIND_OF if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give one of request (rest), update or insert (sql)")
        if self.request is None and (self.rejects or self.answer is not None):
            raise ValueError(f"{'rejects' if self.rejects else 'answer'}: for a request (rest)")
        return self

    @property
    def kind(self) -> str:
        return next(KIND_OF[k] for k in KIND_OF if getattr(self, k) is not None)

    @property
    def reads(self) -> list[str]:
        """Every `$...` value the action reads."""
        if self.request is not None:
            r = self.request
            placeholders = ["$" + p for p in _PLACEHOLDER.findall(r.path)]
            return [*placeholders, *references(r.params), *references(r.headers), *references(r.body),
                    *references(self.answer.parent if self.answer else None)]
        if self.update is not None:
            return ["$keys", *references(self.update.set)]
        assert self.insert is not None
        return references(self.insert.values)

    @property
    def all_keys(self) -> bool:
        """It writes under every key of the customer (`$keys`), not the first one only."""
        return "$keys" in self.reads
