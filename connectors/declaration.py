"""A source's declared entities: how to fetch many keys, where the records are, how each one maps.

The `entities:` section of a source's declaration file (REST sources for now); per entity:

    entities:
      accounts:
        request: {method: POST, path: /api/lookup, body: {numbers: $keys}}  # a batch: all keys in one call
        records: accounts          # a CEL path to the list of records in the answer (none: the answer)
        key: number                # a CEL path in each record: the key it answers
        record: Account            # the record class (connectors/records.py) the mapping builds
        mapping: {fields: {...}}   # connectors/mapping.py's format, compiled once at start

The request is either a batch (`$keys` in `body` or as a query parameter: `params: {ids: $keys}`,
joined by `join: ","` or, without `join`, the parameter repeated once per key) or one call per key
(`{key}` in the path, URL-quoted, or `$key` as a parameter), fanned out under the source's concurrency
limit. Static `params` go with every call. Other answers:

- `many: true`: a key has a list of records (several records carry the same key; or, per key, the
  records of one call).
- `group: {key: k, records: items}`: each item of the answer is one key with its list of records; the
  item is the mapping's `parent` (`{parent: k}` reads the key).
- `not_found: [404]`: statuses that mean the source does not know the key (no failure).
- `pagination:` one of `cursor`, `offset`, `page`, `next_link` (below), each page's records appended.

A bad answer (a missing path, a wrong type) raises the KeyError/TypeError family that the connector
reports as SOURCE_BAD_RESPONSE.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from connectors.mapping import RecordMapping, path_steps

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


class Group(_Model):
    """Each item of the answer is one key with its records."""

    key: Path = Field(description="CEL path of the key in the item")
    records: Path = Field(description="CEL path of the item's list of records")


class Entity(_Model):
    """One entity a source provides: its request, where the records are, and their mapping."""

    request: Request
    pagination: Pagination | None = None
    records: Path | None = Field(None, description="CEL path of the records in the answer; none: the answer")
    key: Path | None = Field(None, description="CEL path of each record's key (batch requests)")
    many: bool = Field(False, description="a key has a list of records")
    group: Group | None = None
    not_found: list[Annotated[int, Field(ge=400, le=599)]] = Field(
        [], description="statuses that mean the key is unknown (not a failure)")
    record: str = Field(description="the declared type whose record this entity's mapping makes")
    mapping: RecordMapping

    @field_validator("record")
    @classmethod
    def _record(cls, name: str) -> str:
        record_class(name)
        return name

    @model_validator(mode="after")
    def _shape(self) -> Entity:
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
        return self


def record_class(name: str) -> type:
    """The record class of a declared type (schema/graph.py: the types of every declaration file), or
    ValueError."""
    from schema.graph import records
    found = records.get(name)
    if found is None:
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
