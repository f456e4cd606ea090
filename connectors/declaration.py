"""A source's declared entities: how to fetch many keys, where the records are, how each one maps.

The `entities:` section of a source's declaration file; per entity, how the keys are asked for depends
on the source's kind, the rest is shared:

    entities:
      subscriptions:               # kind rest
        request: {method: POST, path: /api/lookup, body: {numbers: $keys}}  # a batch: all keys in one call
        records: subscriptions     # a CEL path to the list of records in the answer (none: the answer)
        key: number                # a CEL path in each record: the key it answers
        record: Subscription       # the declared type (under types:) whose record the mapping builds
        mapping: {fields: {...}}   # connectors/mapping.py's format, compiled once at start
      people:                      # kind sql: a SELECT with `IN :keys` (or table + key_column [+ columns])
        sql: "SELECT * FROM people WHERE id IN :keys"
        key: id                    # a CEL path or expression over the row
      members:                     # kind graphql: a document, $keys in one variable, records in `data`
        document: "query($ids: [ID!]!) { members(ids: $ids) { id name } }"
        variables: {ids: $keys}
        records: members
        key: id
      things:                      # kind xml: the Body's content, {keys}..{key}..{/keys} once per key
        envelope: "<p:Get>{keys}<p:Id>{key}</p:Id>{/keys}</p:Get>"
        action: "urn:x#Get"        # SOAPAction
        namespaces: {p: "urn:x"}
        elements: ".//p:Thing"     # an ElementPath to the records; each element becomes a dict
        key: id

The REST request is either a batch (`$keys` in `body` or as a query parameter: `params: {ids: $keys}`,
joined by `join: ","` or, without `join`, the parameter repeated once per key) or one call per key
(`{key}` in the path, URL-quoted, or `$key` as a parameter), fanned out under the source's concurrency
limit. Static `params` go with every call. Other answers:

- `many: true`: a key has a list of records (several records carry the same key; or, per key, the
  records of one call).
- `group: {key: k, records: items}`: each item of the answer is one key with its list of records; the
  item is the mapping's `parent` (`{parent: k}` reads the key). `group: {python: "pkg.mod:fn"}`: the
  escape hatch, a function outside the framework's packages grouping the records by key.
- `value: path`: each record is a plain value instead of a mapped record.
- `not_found: [404]`: statuses that mean the source does not know the key (no failure).
- `pagination:` one of `cursor`, `offset`, `page`, `next_link` (below), each page's records appended.

A bad answer (a missing path, a wrong type) raises the KeyError/TypeError family that the connector
reports as SOURCE_BAD_RESPONSE.
"""

from __future__ import annotations

import importlib
import operator
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from connectors.mapping import _RUNTIME, RecordMapping, path_steps

KEYS, KEY = "$keys", "$key"
MAX_PAGES = 10_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _path(v: str) -> str:
    path_steps(v)  # a CEL selection path, or ValueError
    return v


Path = Annotated[str, AfterValidator(_path)]


class CursorPages(_Model):
    """The answer carries the next page's cursor; the next call sends it as `param`."""

    style: Literal["cursor"]
    cursor: Path = Field(description="CEL path of the next cursor in the answer")
    has_more: Path | None = Field(None, description="CEL path of the 'more pages' flag; without it, an "
                                                   "empty or missing cursor ends")
    param: str = "cursor"
    size_param: str | None = Field(None, description="the query parameter that carries page_size")
    page_size: int | None = Field(None, ge=1, description="default: the source's options.page_size")


class OffsetPages(_Model):
    """`offset_param` advances by the page size until `total` (or a short page) is reached."""

    style: Literal["offset"]
    total: Path | None = Field(None, description="CEL path of the total count; without it, a short page ends")
    offset_param: str = "offset"
    size_param: str = "limit"
    page_size: int | None = Field(None, ge=1, description="default: the source's options.page_size")


class PageNumbers(_Model):
    """`param` counts pages from `first` until `total_pages` (or a short page) is reached."""

    style: Literal["page"]
    param: str = "page"
    first: int = Field(1, ge=0)
    total_pages: Path | None = Field(None, description="CEL path of the number of pages; without it, a "
                                                      "short or empty page ends")
    size_param: str | None = None
    page_size: int | None = Field(None, ge=1, description="default: the source's options.page_size")


class NextLink(_Model):
    """The answer carries the next page's URL (under the source's URL) or path; null or missing ends."""

    style: Literal["next_link"]
    next: Path = Field(description="CEL path of the next page's link in the answer")
    size_param: str | None = None
    page_size: int | None = Field(None, ge=1, description="default: the source's options.page_size")


Pagination = Annotated[CursorPages | OffsetPages | PageNumbers | NextLink, Field(discriminator="style")]


class Request(_Model):
    """The HTTP call: all keys at once (`$keys`) or one key per call (`{key}` in the path, or `$key`)."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str = Field(pattern=r"^/")
    params: dict[str, Any] = {}
    body: Any = None
    join: str | None = Field(None, description="how the keys of a $keys parameter are joined; without it, "
                                               "the parameter is repeated once per key")

    @model_validator(mode="after")
    def _keys_once(self) -> Request:
        batch = _mentions(self.params, KEYS) + _mentions(self.body, KEYS)
        single = _mentions(self.params, KEY) + _mentions(self.body, KEY) + self.path.count("{key}")
        if batch + single != 1:
            raise ValueError("the keys go in exactly one place: $keys in params or body (a batch), or {key} "
                             "in the path or $key in params or body (one call per key)")
        if self.join is not None and not any(v == KEYS for v in self.params.values()):
            raise ValueError("join is for a $keys query parameter")
        if self.body is not None and self.method == "GET":
            raise ValueError("a GET has no body")
        return self

    @property
    def per_key(self) -> bool:
        return not (_mentions(self.params, KEYS) or _mentions(self.body, KEYS))


def _mentions(value: Any, marker: str) -> int:
    if value == marker:
        return 1
    if isinstance(value, dict):
        return sum(_mentions(v, marker) for v in value.values())
    if isinstance(value, list):
        return sum(_mentions(v, marker) for v in value)
    return 0


FRAMEWORK = ("gateway", "config", "server", "schema", "resolvers", "cache", "connectors")


def python_function(dotted: str) -> Callable[..., Any]:
    """The function at `package.module:function` (or `package.module.function`), imported now. It must
    live outside the framework's packages: an escape hatch is the one place a system's oddity is coded."""
    module, sep, name = dotted.partition(":")
    if not sep:
        module, _, name = dotted.rpartition(".")
    if not module or not name.isidentifier() or not all(p.isidentifier() for p in module.split(".")):
        raise ValueError(f"{dotted!r} is not an importable dotted path (package.module:function)")
    if module.split(".")[0] in FRAMEWORK:
        raise ValueError(f"{dotted!r} is inside the framework's packages ({', '.join(FRAMEWORK)}); an escape hatch "
                         f"lives outside them (e.g. in extensions/)")
    try:
        found = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module} ({str(exc).splitlines()[0]})") from None
    except AttributeError:
        raise ValueError(f"module {module} has no {name!r}") from None
    except Exception as exc:  # noqa: BLE001 (the module failed while importing: still a config error)
        raise ValueError(f"importing {module} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not callable(found):
        raise ValueError(f"{dotted!r} is not a function")
    return found  # type: ignore[no-any-return]


def _python(v: str) -> str:
    python_function(v)
    return v


PythonPath = Annotated[str, AfterValidator(_python)]


def _expression(v: str) -> str:
    expression(v)  # a CEL expression the mapping compiler translates, or ValueError
    return v


Expression = Annotated[str, AfterValidator(_expression)]


class Group(_Model):
    """Each item of the answer is one key with its records; or, with `python`, an escape hatch: a
    function `(records, keys) -> {key: records}` that groups them (e.g. joined rows into nested records),
    whose results the mapping then maps."""

    key: Path | None = Field(None, description="CEL path of the key in the item")
    records: Path | None = Field(None, description="CEL path of the item's list of records")
    python: PythonPath | None = Field(None, description="package.module:function outside the framework")

    @model_validator(mode="after")
    def _one(self) -> Group:
        if self.python is not None:
            if self.key is not None or self.records is not None:
                raise ValueError("give key and records, or python, not both")
        elif self.key is None or self.records is None:
            raise ValueError("give key and records (or python: an escape hatch)")
        return self


IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$"
KIND_MARKERS = {"rest": ("request",), "sql": ("sql", "table"), "graphql": ("document",), "xml": ("envelope",)}


class Keys(_Model):
    """Where an entity's keys for a customer come from. By default, the customer's ids in this source's
    system (from the identity source); with `from`, a field of another entity's records of the same
    customer (`profiles.email`: survey answers keyed by the email of the customer's profile records;
    `purchases.number`: deliveries of the customer's purchases), normalised."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: str = Field(alias="from", pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$",
                       description="entity.field: another entity and the field of its records holding the key "
                                   "(a value or a list of values)")
    normalize: list[str] = Field([], description="built-in normalisations applied to each key (connectors/"
                                                 "mapping.py NORMALIZERS): trim, lower, email, e164, sha256...")

    @field_validator("normalize", mode="before")
    @classmethod
    def _one(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("normalize")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        from connectors.mapping import NORMALIZERS
        unknown = [n for n in v if n not in NORMALIZERS]
        if unknown:
            raise ValueError(f"unknown normalisation {unknown[0]!r} (one of {', '.join(NORMALIZERS)})")
        return v

    @property
    def entity(self) -> str:
        return self.from_.split(".")[0]

    @property
    def field(self) -> str:
        return self.from_.split(".")[1]


class Entity(_Model):
    """One entity a source provides: how its keys are asked for, where the records are, and their
    mapping. How it is asked depends on the source's kind: `request` (rest), `sql` or `table` (sql),
    `document` (graphql), `envelope` (xml)."""

    # rest
    request: Request | None = None
    pagination: Pagination | None = None
    not_found: list[Annotated[int, Field(ge=400, le=599)]] = Field(
        [], description="statuses that mean the key is unknown (not a failure)")
    # sql
    sql: str | None = Field(None, description="a SELECT whose `IN :keys` takes the keys")
    table: str | None = Field(None, pattern=IDENTIFIER, description="or a table, read by key_column")
    key_column: str | None = Field(None, pattern=IDENTIFIER)
    columns: list[Annotated[str, Field(pattern=IDENTIFIER)]] = Field([], description="default: every column")
    bind: Expression | None = Field(None, description="sql: a CEL expression over `key`, the value :keys takes "
                                                       "for each key (default: the key)")
    # graphql
    document: str | None = Field(None, description="a GraphQL query; variables carries the keys")
    variables: dict[str, Any] = {}
    # xml
    envelope: str | None = Field(None, description="the SOAP Body's content; {keys}...{key}...{/keys} is repeated "
                                                   "once per key (the key XML-escaped)")
    action: str = Field("", description="xml: the SOAPAction header")
    namespaces: dict[str, str] = Field({}, description="xml: prefix -> namespace URI, for envelope and elements")
    elements: str | None = Field(None, description="xml: an ElementPath (.//p:Tag) to the records in the Body")
    lists: list[str] = Field([], description="xml: child tags that are always lists, even when there is one")
    # graphql, xml
    path: str | None = Field(None, pattern=r"^/", description="graphql, xml: the endpoint under the source's URL "
                                                                "(default: options.path, or /graphql)")
    # every kind
    records: Path | None = Field(None, description="CEL path of the records in the answer; none: the answer")
    key: Expression | None = Field(None, description="CEL path (or expression) of each record's key")
    many: bool = Field(False, description="a key has a list of records")
    group: Group | None = None
    value: Path | None = Field(None, description="each record is this value of the row or item, unmapped")
    record: str | None = Field(None, description="the declared type whose record this entity's mapping makes")
    mapping: RecordMapping | None = None
    keys: Keys | None = Field(None, description="where the customer's keys come from (default: the identity source)")

    @field_validator("record")
    @classmethod
    def _record(cls, name: str | None) -> str | None:
        if name is not None:
            record_class(name)
        return name

    @property
    def kind(self) -> str:
        return next(k for k, marks in KIND_MARKERS.items() if any(getattr(self, m) is not None for m in marks))

    @model_validator(mode="after")
    def _shape(self) -> Entity:
        kinds = [k for k, marks in KIND_MARKERS.items() if any(getattr(self, m) is not None for m in marks)]
        if len(kinds) != 1:
            raise ValueError("give one of request (rest), sql or table (sql), document (graphql), envelope (xml)")
        kind = kinds[0]
        if self.value is not None:
            if self.record is not None or self.mapping is not None:
                raise ValueError("give value (each record a plain value) or record and mapping, not both")
        elif self.record is None or self.mapping is None:
            raise ValueError("record and mapping: required (or value)")
        given = {f for f in self.model_fields_set if getattr(self, f) not in (None, [], {}, "")}
        foreign = sorted(given & {f for k, fs in KIND_FIELDS.items() if k != kind for f in fs} - KIND_FIELDS[kind])
        if foreign:
            raise ValueError(f"{foreign[0]}: not a setting of a {kind} entity")
        if kind == "rest":
            return self._rest()
        if kind == "sql":
            if self.sql is not None and self.table is not None:
                raise ValueError("give sql or table, not both")
            if self.sql is not None and ":keys" not in self.sql:
                raise ValueError("sql: the statement takes the keys as `IN :keys`")
            if self.table is not None and self.key_column is None:
                raise ValueError("table needs key_column")
            if self.records is not None:
                raise ValueError("records: the rows are the records")
            if self.group is not None and self.group.python is None:
                raise ValueError("group: rows are flat; group them with python (or key and many)")
        if kind == "graphql" and _mentions(self.variables, KEYS) != 1:
            raise ValueError("variables: the keys go in exactly one variable ($keys)")
        if kind == "xml":
            if not re.search(r"\{keys\}.*\{key\}.*\{/keys\}", self.envelope or "", re.S):
                raise ValueError("envelope: repeat an element per key with {keys}...{key}...{/keys}")
            if self.elements is None:
                raise ValueError("elements: required (an ElementPath to the records, e.g. .//p:Record)")
        if self.group is None and self.key is None and self.key_column is None:
            raise ValueError("key: required (each record's key), or group")
        if self.group is not None and self.key is not None:
            raise ValueError("give key or group, not both")
        if self.group is not None and self.group.python is None and not self.many:
            raise ValueError("a group has a list of records per key: many: true")
        return self

    def _rest(self) -> Entity:
        assert self.request is not None
        if self.request.per_key:
            if self.key is not None or self.group is not None:
                raise ValueError("one call per key: the answer is the key's, so no key or group")
            if self.pagination is not None and not self.many:
                raise ValueError("pagination needs many: true (a key's records over several pages)")
        elif self.group is None and self.key is None:
            raise ValueError("a batch request needs key (each record's key) or group (items of key and records)")
        elif self.group is not None and self.key is not None:
            raise ValueError("give key or group, not both")
        elif self.group is not None and not self.many:
            raise ValueError("a group has a list of records per key: many: true")
        elif self.key is not None:
            path_steps(self.key)  # a REST record's key is a path
        if self.group is not None and self.group.python is not None:
            raise ValueError("group.python: for sql, graphql and xml entities")
        return self


KIND_FIELDS = {"rest": {"request", "pagination", "not_found"},
               "sql": {"sql", "table", "key_column", "columns", "bind"},
               "graphql": {"document", "variables", "path"},
               "xml": {"envelope", "action", "namespaces", "elements", "lists", "path"}}


def expression(text: str) -> Callable[[Any], Any]:
    """A CEL expression over a record's fields, compiled once into a function of the record."""
    from connectors.cel import Translator, parse_cel
    code = Translator("r", {}, "p").expr(parse_cel(text))
    scope: dict[str, Any] = dict(_RUNTIME)
    exec(compile(f"def _f(r, p=None):\n    return {code}\n", f"<expression {text!r}>", "exec"), scope)  # noqa: S102
    return scope["_f"]  # type: ignore[no-any-return]


def key_function(text: str | None) -> Callable[[Any], Any]:
    """A record's key: a path read strictly (a missing key is a KeyError), or any CEL expression."""
    if text is None:
        return lambda v: v
    try:
        return getter(text)
    except ValueError:
        return expression(text)


def assemble(e: Entity, mapper: Callable[..., Any], source: str) -> Callable[[Any, list[str]], dict[str, Any]]:
    """How an answer's records become the records by key, for sql, graphql and xml entities: grouped
    by the group's items, an escape hatch, or each record's key (a list per key with `many`). Records
    that are null are skipped; keys not asked for are dropped (a case-insensitive collation may answer
    another spelling)."""
    if e.value is not None:
        value = getter(e.value)
        mapper = lambda r, p=None: value(r)  # noqa: E731
    g = e.group
    if g is not None and g.python is not None:
        hatch, many = python_function(g.python), e.many

        def by_hatch(items: Any, keys: list[str]) -> dict[str, Any]:
            wanted = set(keys)
            grouped = hatch(items, keys)
            return {k: ([mapper(r) for r in rs] if many else mapper(rs)) for k, rs in grouped.items()
                    if k in wanted}
        return by_hatch
    if g is not None:
        group_key, group_records = getter(g.key), getter(g.records)

        def by_group(items: Any, keys: list[str]) -> dict[str, Any]:
            wanted = set(keys)
            out: dict[str, Any] = {}
            for item in items:
                if item is None:
                    continue
                k = group_key(item)
                if k in wanted:
                    out[k] = [mapper(r, item) for r in group_records(item) or ()]
            return out
        return by_group
    key = key_function(e.key if e.key is not None else e.key_column)
    if e.many:
        def by_key_many(items: Any, keys: list[str]) -> dict[str, Any]:
            wanted = set(keys)
            out: dict[str, list[Any]] = {}
            for r in items:
                if r is not None and (k := key(r)) in wanted:
                    rs = out.get(k)
                    if rs is None:
                        out[k] = [mapper(r)]
                    else:
                        rs.append(mapper(r))
            return out
        return by_key_many

    def by_key(items: Any, keys: list[str]) -> dict[str, Any]:
        wanted = set(keys)
        return {k: mapper(r) for r in items if r is not None and (k := key(r)) in wanted}
    return by_key


# The declared types' record classes by name. The schema layer builds them from the declaration files
# (schema/graph.py, once per process) and hands them down with `use_records`: connectors name records,
# never import the schema.
RECORDS: dict[str, type] = {}


def use_records(records: dict[str, type]) -> None:
    """The record classes entities may name (`record: Order`): the process's declared types."""
    RECORDS.clear()
    RECORDS.update(records)


def record_class(name: str) -> type:
    """The record class of a declared type, or ValueError."""
    found = RECORDS.get(name)
    if found is None:
        if not RECORDS:
            raise ValueError(f"no record class {name!r}: no declared types loaded (schema/graph.py builds them)")
        raise ValueError(f"no record class {name!r}: no declared type of that name (under types: in a declaration file)")
    return found


def getter(path: str | None) -> Callable[[Any], Any]:
    """A function reading a CEL path from a value (strictly: a missing step is a KeyError)."""
    if path is None:
        return lambda v: v
    steps = path_steps(path)
    if len(steps) == 1:
        return operator.itemgetter(steps[0])
    first, *rest = steps

    def get(v: Any) -> Any:
        v = v[first]
        for step in rest:
            v = v[step]
        return v
    return get


def template(value: Any, marker: str) -> Callable[[Any], Any] | None:
    """A function of the keys (or key) building `value` with `marker` replaced; None if it is constant."""
    if value == marker:
        return lambda keys: keys
    if isinstance(value, dict):
        parts = {k: template(v, marker) for k, v in value.items()}
        if all(p is None for p in parts.values()):
            return None
        static = {k: v for k, v in value.items() if parts[k] is None}
        live = [(k, p) for k, p in parts.items() if p is not None]
        if len(live) == 1 and not static:
            (name, fill), = live
            return lambda keys: {name: fill(keys)}
        return lambda keys: {**static, **{k: p(keys) for k, p in live}}
    if isinstance(value, list):
        items = [template(v, marker) for v in value]
        if all(p is None for p in items):
            return None
        return lambda keys: [v if p is None else p(keys) for v, p in zip(value, items)]
    return None
