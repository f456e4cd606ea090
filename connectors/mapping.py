"""Declared mappings: a source's record shape -> our record, compiled once into plain Python.

A declaration lists, for each field of the target record, where its value comes from and its type:

    fields:
      number: subscriptionNo                                  # a path; type string
      balance: {from: balance, type: float}
      status: {from: status, type: enum, case_insensitive: true}
      days_past_due: {from: daysPastDue, type: int, default: 0}
      issued_on: {from: issueDate, type: date}                # ISO, or format: "%d/%m/%Y"
      started_at: {from: startEpoch, type: datetime, format: epoch}
      duration_s: {expr: "endEpoch > startEpoch ? endEpoch - startEpoch : 0", type: int}
      subscription: {parent: subscriptionNo}                  # a field of the enclosing record
      payments: {from: payments, type: list, default: [], of: {fields: {...}}}
      email: {from: email_addr, optional: true, normalize: email}  # built-in normalisations (NORMALIZERS)
      phones: {expr: "[home, mobile]", type: list, of: string, normalize: e164, unique: true}
      address: {type: object, flat: true, fields: {...}}      # the nested record's fields from this record

Paths and expressions are CEL (https://cel.dev, the Common Expression Language of Kubernetes and
Envoy): a path is CEL's field selection (`a.b`, `a[0]`, `a["odd key"]`); `expr` is any CEL expression
of the subset below, over the record's fields as variables. `compile_mapping` parses each one once
(with cel-python's parser) and translates it to Python source, which it compiles, with every parser,
enum table and default as a closure constant, into ONE function per record type (nested records are
inlined as comprehensions). Mapping a record then costs what hand-written Python costs; no
interpreter runs per record.

The CEL subset translated: literals, lists and maps; field selection and indexing; `+ - * / %`
(integer `/` and `%` truncate, as in CEL); comparisons and `in`; `&& || !`; `c ? a : b`; `has(a.b)`;
`size`, `int`, `uint`, `double`, `string`, `bool`, `max`, `min`, `math.greatest`, `math.least`;
the string methods `startsWith endsWith contains matches lowerAscii upperAscii trim split join replace
size`; the macros `map filter all exists exists_one`. Anything else is refused when compiled, with
the field's key path. Deviations from CEL's spec: arithmetic does not check for overflow, and mixed
int/double arithmetic is allowed (CEL refuses it).

Errors at run time are those of hand-written code: a missing required key is a KeyError, a bad value a
ValueError/TypeError (the connector reports them as SOURCE_BAD_RESPONSE); the message names the field.
Declaration errors (an unknown type, bad CEL, an enum value that is no member, a field the record does
not have) are raised by `compile_mapping` (pydantic's ValidationError or a `MappingError`), naming the
key path.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import types
import typing
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connectors.cel import (
    Translator,
    _cel_bool,
    _cel_div,
    _cel_matches,
    _cel_mod,
    _cel_split,
    _cel_string,
    parse_cel,
    path_steps,
)

Normalizer = Literal["trim", "lower", "upper", "title", "email", "e164", "digits", "sha256"]
Scalar = Literal["string", "int", "float", "bool", "date", "datetime", "enum", "any"]
Kind = Literal["string", "int", "float", "bool", "date", "datetime", "enum", "any", "list", "object"]
Mapper = Callable[..., Any]  # (raw, parent=None) -> record


class MappingError(ValueError):
    """A declaration that cannot be compiled; the message starts with the key path."""


# --- the declaration ------------------------------------------------------------------------------

class FieldMapping(BaseModel):
    """One field of the target record. Without `from`, `expr` or `parent`, it comes from the source
    field of the same name."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    from_: str | None = Field(None, alias="from", description="a CEL path in the source record")
    expr: str | None = Field(None, description="a CEL expression over the source record's fields")
    parent: str | None = Field(None, description="a CEL path in the enclosing source record")
    type: Kind = "string"
    format: str | None = Field(None, description="date: iso | a strptime format; "
                                                 "datetime: iso | epoch | epoch_ms | a strptime format")
    naive: Literal["keep", "utc"] = Field("keep", description="datetime: a value without a zone is UTC")
    values: dict[str, list[str | int | bool] | str | int | bool] | None = Field(
        None, description="enum: member -> the source value(s) that mean it")
    by_value: bool = Field(True, description="enum: also accept each member's own value")
    case_insensitive: bool = False
    unknown: Literal["error", "default"] = Field("error", description="enum: a value not listed")
    of: Scalar | RecordMapping | None = Field(None, description="list: element type or record")
    fields: dict[str, FieldMapping] | None = Field(None, description="object: the nested record's fields")
    default: Any = Field(None, description="when the value is missing or null")
    optional: bool = Field(False, description="missing or null -> None")
    normalize: Normalizer | list[Normalizer] | None = Field(
        None, description="string, or a list's strings: built-in normalisations applied in order (NORMALIZERS)")
    unique: bool = Field(False, description="list: drop repeated values (the first one kept)")
    flat: bool = Field(False, description="object: its fields are read from this same record (a flat row)")

    @field_validator("fields", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return _shorthands(v)

    @field_validator("from_", "parent")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is not None:
            path_steps(v)
        return v

    @field_validator("expr")
    @classmethod
    def _expr(cls, v: str | None) -> str | None:
        if v is not None:
            Translator("r", {}, "p").expr(parse_cel(v))  # syntax and subset, at declaration time
        return v

    @model_validator(mode="after")
    def _consistent(self) -> FieldMapping:
        given = [k for k in ("from_", "expr", "parent") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError("give one of from, expr, parent")
        t = self.type
        if self.format is not None and t not in ("date", "datetime"):
            raise ValueError(f"format is for date and datetime, not {t}")
        if t == "datetime" and self.format not in (None, "iso", "epoch", "epoch_ms") and "%" not in self.format:
            raise ValueError(f"datetime format must be iso, epoch, epoch_ms or a strptime format, "
                             f"not {self.format!r}")
        if t == "date" and self.format not in (None, "iso") and "%" not in self.format:
            raise ValueError(f"date format must be iso or a strptime format, not {self.format!r}")
        if t != "enum" and (self.values is not None or self.unknown != "error"):
            raise ValueError("values and unknown are for type enum")
        if (self.of is None) != (t != "list"):
            raise ValueError("type list needs of (an element type or {fields: ...}); only lists have of")
        if (self.fields is None) != (t != "object"):
            raise ValueError("type object needs fields; only objects have fields")
        if self.optional and "default" in self.model_fields_set:
            raise ValueError("give optional or default, not both")
        if self.normalize is not None and not (t == "string" or t == "list" and self.of == "string"):
            raise ValueError("normalize is for a string or a list of strings")
        if self.unique and (t != "list" or isinstance(self.of, RecordMapping)):
            raise ValueError("unique is for a list of scalars")
        if self.flat and (t != "object" or given):
            raise ValueError("flat is for an object read from this same record (no from, expr or parent)")
        return self


class RecordMapping(BaseModel):
    """A record: its fields, each a FieldMapping or, as shorthand, a path (type string)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: dict[str, FieldMapping]

    @field_validator("fields", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return _shorthands(v)


def _shorthands(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: {"from": f} if isinstance(f, str) else f for k, f in v.items()}
    return v


FieldMapping.model_rebuild()


# --- converters used by the generated code --------------------------------------------------------

def _to_str(v: Any) -> str:
    if v is None or isinstance(v, (dict, list)):
        raise TypeError(f"expected a string, got {type(v).__name__}")
    return str(v)


def _to_bool(v: Any) -> bool:
    if v is None or isinstance(v, str) and v not in ("true", "false", "True", "False", "0", "1"):
        raise TypeError(f"expected a bool, got {v!r}")
    return v in ("true", "True", "1") if isinstance(v, str) else bool(v)


def _native_date(v: Any) -> date:
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    raise TypeError(f"expected a date, got {type(v).__name__}")


def _native_datetime(v: Any) -> datetime:
    if isinstance(v, datetime):
        return v
    raise TypeError(f"expected a datetime, got {type(v).__name__}")


def _str_list(v: Any) -> list[str]:
    out = list(v) if isinstance(v, (list, tuple)) else _not_list(v)
    for x in out:
        if x.__class__ is not str:
            return [_to_str(x) for x in out]
    return out


def _not_list(v: Any) -> list[Any]:
    raise TypeError(f"expected a list, got {type(v).__name__}")


_RUNTIME: dict[str, Any] = {
    "_cel_div": _cel_div, "_cel_mod": _cel_mod, "_cel_string": _cel_string, "_cel_bool": _cel_bool,
    "_cel_matches": _cel_matches, "_cel_split": _cel_split, "_to_str": _to_str, "_to_bool": _to_bool, "_str_list": _str_list,
    "_date_iso": date.fromisoformat, "_dt_iso": datetime.fromisoformat, "_native_date": _native_date,
    "_native_datetime": _native_datetime, "_fromts": datetime.fromtimestamp, "_UTC": UTC,
    "_strptime": datetime.strptime, "_list": list, "_tuple": tuple,
}


def _late_runtime() -> None:
    _RUNTIME.update({"_norm_list": _norm_list, "_unique": _unique})


# --- compiling a record mapping -------------------------------------------------------------------

@dataclasses.dataclass
class _Target:
    """What the mapping builds: a dataclass (called positionally) or a dict; its fields' types."""

    make: Callable[..., Any] | None  # None: a dict
    order: list[str] | None  # the dataclass's init fields, in order
    required: set[str]
    hints: dict[str, Any]


def _target(make: Callable[..., Any] | None, where: str) -> _Target:
    if make is None or make is dict:
        return _Target(None, None, set(), {})
    if dataclasses.is_dataclass(make) and isinstance(make, type):
        init = [f for f in dataclasses.fields(make) if f.init]
        required = {f.name for f in init if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING}
        try:
            hints = typing.get_type_hints(make)
        except Exception:  # noqa: BLE001 (unresolvable annotations: no inference, still a valid target)
            hints = {}
        return _Target(make, [f.name for f in init], required, hints)
    return _Target(make, None, set(), {})  # any callable taking keyword arguments


def _unwrap(hint: Any) -> tuple[Any, Any]:
    """(the hint without `| None`, the element type if it is a list)."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = rest[0] if len(rest) == 1 else hint
    if typing.get_origin(hint) is list:
        (elem,) = typing.get_args(hint) or (Any,)
        return hint, elem
    return hint, None


class _Compiler:
    """Writes one Python expression per record (nested records inline), with constants named."""

    def __init__(self, enums: Mapping[str, type[enum.Enum]], options: Mapping[str, Any] | None = None) -> None:
        self.consts: dict[str, Any] = dict(_RUNTIME)
        self.temps = 0
        self.enums = enums
        self.options = options or {}

    def const(self, value: Any, hint: str = "c") -> str:
        name = f"_{hint}{len(self.consts)}"
        self.consts[name] = value
        return name

    def temp(self) -> str:
        self.temps += 1
        return f"_t{self.temps}"

    def record(self, spec: RecordMapping, make: Callable[..., Any] | None, rec: str, parent: str,
               where: str) -> str:
        target = _target(make, where)
        if target.order is not None:
            unknown = [n for n in spec.fields if n not in target.order]
            if unknown:
                raise MappingError(f"{where}fields.{unknown[0]}: {target.make.__name__} has no field "
                                   f"{unknown[0]!r}")
            missing = sorted(target.required - set(spec.fields))
            if missing:
                raise MappingError(f"{where}fields: {target.make.__name__}'s field {missing[0]!r} is not mapped")
        values = {name: self.field(f, target.hints.get(name), rec, parent, f"{where}fields.{name}")
                  for name, f in spec.fields.items()}
        if target.make is None:
            return "{" + ", ".join(f"{n!r}: {v}" for n, v in values.items()) + "}"
        fn = self.const(target.make, "make")
        if target.order is not None and all(n in values for n in target.order):
            return f"{fn}(" + ", ".join(values[n] for n in target.order) + ")"
        return f"{fn}(" + ", ".join(f"{n}={v}" for n, v in values.items()) + ")"

    def source(self, f: FieldMapping, name: str, rec: str, parent: str, lenient: bool) -> str:
        """The raw value: `lenient` gives None for a missing key instead of a KeyError."""
        if f.expr is not None:
            return Translator(rec, {}, parent).expr(parse_cel(f.expr))
        base, path = (parent, f.parent) if f.parent is not None else (rec, f.from_ or name)
        out = base
        steps = path_steps(path) if (f.from_ or f.parent) else [name]
        for i, step in enumerate(steps):
            if lenient and isinstance(step, str):
                out = f"{out}.get({step!r})" if i == 0 else f"({out} or _EMPTY).get({step!r})"
            else:
                out = f"{out}[{step!r}]"
        if lenient and len(steps) > 1:
            self.consts["_EMPTY"] = types.MappingProxyType({})
        return out

    def field(self, f: FieldMapping, hint: Any, rec: str, parent: str, where: str) -> str:
        name = where.rsplit(".", 1)[-1]
        has_default = "default" in f.model_fields_set
        lenient = f.optional or has_default
        raw = rec if f.flat else self.source(f, name, rec, parent, lenient)
        hint, elem = _unwrap(hint)
        if not lenient:
            return self.convert(f, raw, hint, elem, rec, where)
        default = "None" if f.optional else self.default(f, hint, elem, where)
        t = self.temp()
        empty = f" or {t} == ''" if f.type not in ("string", "any") else ""
        return f"({default} if ({t} := {raw}) is None{empty} else {self.convert(f, t, hint, elem, rec, where)})"

    def default(self, f: FieldMapping, hint: Any, elem: Any, where: str) -> str:
        value = f.default
        if value is None:
            return "None"
        if f.type == "list":
            if value != []:
                raise MappingError(f"{where}.default: a list's default can only be []")
            return "[]"
        if f.type == "object":
            raise MappingError(f"{where}.default: an object has no default (use optional)")
        # Converted (and so checked) now, by the code a value would run through.
        fn = _evaluate(self, f, hint, elem, where)
        try:
            converted = fn(value)
        except (KeyError, ValueError, TypeError) as exc:
            raise MappingError(f"{where}.default: {value!r} is not a valid {f.type}: {exc}") from None
        return self.const(converted, "d") if not isinstance(converted, (int, float, str, bool)) \
            else repr(converted)

    def convert(self, f: FieldMapping, v: str, hint: Any, elem: Any, rec: str, where: str) -> str:
        """Python for the field's value, given `v`, the expression of the raw value (evaluated once)."""
        kind = f.type
        if kind == "any":
            return v
        if kind == "string" and f.normalize is not None:
            fn = self.const(normalizer(f.normalize, self.options, where), "norm")
            out = f"{fn}({self.scalar(kind, f, v, hint, where)})"
            return f"({out} or None)" if f.optional else out  # optional: what normalises to nothing is null
        if kind in ("string", "int", "float", "bool", "date", "datetime", "enum"):
            return self.scalar(kind, f, v, hint, where)
        if kind == "object":
            return self.nested(RecordMapping(fields=f.fields or {}), hint, v, rec, where)
        # a list
        of = f.of
        if isinstance(of, RecordMapping):
            x = f"_x{self.temps}"
            self.temps += 1
            return f"[{self.nested(of, elem, x, rec, where + '.of', inline_var=True)} for {x} in {v}]"
        if of == "string" and f.normalize is not None:
            fn = self.const(normalizer(f.normalize, self.options, where), "norm")
            return f"_norm_list({v}, {fn}, {f.unique})"
        if of == "any":
            out = f"_list({v})"
        elif of == "string":
            out = f"_str_list({v})"
        else:
            x = f"_x{self.temps}"
            self.temps += 1
            item = FieldMapping(type=of, format=f.format, naive=f.naive)
            out = f"[{self.scalar(of, item, x, elem, where + '.of')} for {x} in {v}]"
        return f"_unique({out})" if f.unique else out

    def nested(self, spec: RecordMapping, hint: Any, v: str, rec: str, where: str, inline_var: bool = False) -> str:
        make = hint if dataclasses.is_dataclass(hint) and isinstance(hint, type) else None
        if inline_var:  # a comprehension's variable: use it directly as the nested record
            return self.record(spec, make, v, rec, where + ".")
        t = self.temp()  # a single nested object: bind it once
        body = self.record(spec, make, t, rec, where + ".")
        return f"[{body} for {t} in ({v},)][0]"

    def scalar(self, kind: str, f: FieldMapping, v: str, hint: Any, where: str) -> str:
        if kind == "int":
            return f"int({v})"
        if kind == "float":
            return f"float({v})"
        if kind == "enum":
            table = self.enum_table(f, hint, where)
            key = f"({v}).lower()" if f.case_insensitive else v
            if f.unknown == "default":
                return f"{table}.get({key}, {self.default(f.model_copy(update={'unknown': 'error'}), hint, None, where)})"
            return f"{table}[{key}]"
        t = v if re.fullmatch(r"_[tx]\d+", v) else None
        bind = v if t else f"({(t := self.temp())} := {v})"
        if kind == "string":
            return f"({t} if {bind}.__class__ is str else _to_str({t}))"
        if kind == "bool":
            return f"({t} if {bind}.__class__ is bool else _to_bool({t}))"
        if kind == "date":
            if f.format in (None, "iso"):
                return f"(_date_iso({t}) if {bind}.__class__ is str else _native_date({t}))"
            fast = _fast_date(f.format or "")
            if fast is not None:
                return f"({self.const(fast, 'date')}({t}) if {bind}.__class__ is str else _native_date({t}))"
            fmt = repr(f.format)
            return f"(_strptime({t}, {fmt}).date() if {bind}.__class__ is str else _native_date({t}))"
        # datetime
        fmt = f.format or "iso"
        if fmt == "epoch":
            return f"_fromts({v}, _UTC)"
        if fmt == "epoch_ms":
            return f"_fromts(({v}) / 1000, _UTC)"
        parse = "_dt_iso({t})" if fmt == "iso" else f"_strptime({{t}}, {fmt!r})"
        out = f"({parse.format(t=t)} if {bind}.__class__ is str else _native_datetime({t}))"
        if f.naive == "utc":
            t2 = self.temp()
            out = f"({t2} if ({t2} := {out}).tzinfo is not None else {t2}.replace(tzinfo=_UTC))"
        return out

    def enum_table(self, f: FieldMapping, hint: Any, where: str) -> str:
        cls = hint if isinstance(hint, type) and issubclass(hint, enum.Enum) else None
        if cls is None and f.values is None:
            raise MappingError(f"{where}: an enum needs values, or a record field typed with an Enum")
        fold = (lambda s: s.lower() if isinstance(s, str) else s) if f.case_insensitive else (lambda s: s)
        table: dict[Any, Any] = {}
        if cls is not None and f.by_value:
            table.update({fold(m.value): m for m in cls})
        for member, sources in (f.values or {}).items():
            if cls is not None:
                if member not in cls.__members__:
                    raise MappingError(f"{where}.values: {member!r} is not a member of {cls.__name__} "
                                       f"({', '.join(cls.__members__)})")
                target: Any = cls[member]
            else:
                target = member
            for s in sources if isinstance(sources, list) else [sources]:
                table[fold(s)] = target
        if cls is None and f.by_value:
            for member in f.values or {}:
                table.setdefault(fold(member), member)
        return self.const(table, "enum")


NORMALIZERS = {"trim": "surrounding spaces removed", "lower": "lower-cased", "upper": "upper-cased",
               "title": "each word capitalised", "email": "trimmed and lower-cased",
               "e164": "an E.164 phone number (+31612345678), the country from the source's options.phone_country "
                       "when typed without one; null when it is no phone number",
               "digits": "digits only", "sha256": "the SHA-256 hex digest of its UTF-8"}


def normalizer(names: str | list[str], options: Mapping[str, Any], where: str) -> Callable[[str], Any]:
    """One function applying the named built-in normalisations in order (null stays null)."""
    import hashlib

    from connectors import normalize

    steps: list[Callable[[str], Any]] = []
    for name in [names] if isinstance(names, str) else names:
        if name == "e164":
            country = options.get("phone_country")
            if not country:
                raise MappingError(f"{where}.normalize: e164 needs the source's options.phone_country (the country "
                                   f"code of numbers typed without one)")
            steps.append(lambda v, c=str(country): normalize.phone(v, c))
        else:
            steps.append({"trim": str.strip, "lower": str.lower, "upper": str.upper, "title": str.title,
                          "email": normalize.email, "digits": normalize.digits,
                          "sha256": lambda v: hashlib.sha256(v.encode()).hexdigest()}[name])
    if len(steps) == 1:
        return steps[0]

    def chain(v: Any) -> Any:
        for step in steps:
            if v is None:
                return None
            v = step(v)
        return v
    return chain


def _norm_list(v: Any, fn: Callable[[str], Any], unique: bool) -> list[Any]:
    """A list's strings normalised: nulls and empty strings, before or after, left out."""
    if not isinstance(v, (list, tuple)):
        _not_list(v)
    out = [n for n in (fn(x if x.__class__ is str else _to_str(x)) for x in v if x is not None and x != "") if n]
    return list(dict.fromkeys(out)) if unique else out


def _unique(v: list[Any]) -> list[Any]:
    return list(dict.fromkeys(v))


_DMY = re.compile(r"%([dmY])([^%\w])%([dmY])\2%([dmY])")


def _fast_date(fmt: str) -> Callable[[str], date] | None:
    """A split instead of strptime (~5x faster) for day/month/year formats like %d/%m/%Y."""
    m = _DMY.fullmatch(fmt)
    if m is None or sorted(m.group(1, 3, 4)) != ["Y", "d", "m"]:
        return None
    sep, order = m.group(2), m.group(1, 3, 4)
    iy, im, id_ = order.index("Y"), order.index("m"), order.index("d")

    def parse(text: str) -> date:
        parts = text.strip().split(sep)
        if len(parts) != 3:
            raise ValueError(f"{text!r} does not match format {fmt!r}")
        return date(int(parts[iy]), int(parts[im]), int(parts[id_]))
    return parse


def _evaluate(comp: _Compiler, f: FieldMapping, hint: Any, elem: Any, where: str) -> Callable[[Any], Any]:
    """The field's conversion alone, as a function of the raw value (for defaults)."""
    sub = _Compiler(comp.enums, comp.options)
    body = sub.convert(f.model_copy(update={"optional": False}), "_v", hint, elem, "_r", where)
    code = f"def _conv(_v, _r=None):\n    return {body}\n"
    scope = dict(sub.consts)
    exec(compile(code, f"<mapping default {where}>", "exec"), scope)  # noqa: S102 (code we generated)
    return scope["_conv"]


def compile_mapping(spec: RecordMapping | Mapping[str, Any] | str, make: Callable[..., Any] | None = None,
                    *, name: str = "record", enums: Mapping[str, type[enum.Enum]] | None = None,
                    options: Mapping[str, Any] | None = None) -> Mapper:
    """Compile a record mapping once; returns `map(raw, parent=None) -> record`.

    `spec` is a RecordMapping, its dict form, or YAML text. `make` is the record constructor (a
    dataclass is called positionally; enum classes and nested records come from its field types);
    None or `dict` builds plain dicts, with enum members as their names."""
    if isinstance(spec, str):
        spec = yaml.safe_load(spec)
    if not isinstance(spec, RecordMapping):
        spec = RecordMapping.model_validate(spec)
    comp = _Compiler(enums or {}, options)
    try:
        body = comp.record(spec, make, "r", "p", "")
    except ValueError as exc:
        if isinstance(exc, MappingError):
            raise
        raise MappingError(str(exc)) from None
    fields = {n: comp.field(f, _target(make, "").hints.get(n), "r", "p", f"fields.{n}")
              for n, f in spec.fields.items()}
    checks = "".join(f"    {_ident(n)} = lambda r, p: {v}\n" for n, v in fields.items())
    code = (f"def {_ident(name)}(r, p=None):\n"
            f"    try:\n"
            f"        return {body}\n"
            f"    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:\n"
            f"        raise _explain(exc, r, p) from exc\n"
            f"def _fields():\n{checks or '    pass'}\n    return locals()\n")
    scope = dict(comp.consts)
    exec(compile(code, f"<mapping {name}>", "exec"), scope)  # noqa: S102 (code we generated)
    per_field = scope["_fields"]()

    def _explain(exc: Exception, r: Any, p: Any) -> Exception:
        """Which field failed (found again, slowly, only on failure); the same exception type."""
        for field_name, fn in per_field.items():
            try:
                fn(r, p)
            except Exception as inner:  # noqa: BLE001
                if type(inner) is type(exc) or isinstance(exc, type(inner)):
                    detail = inner.args[0] if inner.args else ""
                    try:
                        return type(exc)(f"{name}.{field_name}: {detail!s}")
                    except Exception:  # noqa: BLE001 (an exception type with other arguments)
                        return exc
        return exc

    scope["_explain"] = _explain
    fn = scope[_ident(name)]
    fn.__mapping_source__ = code  # type: ignore[attr-defined]  # for debugging: what was compiled
    return fn  # type: ignore[no-any-return]


def _ident(name: str) -> str:
    out = re.sub(r"\W", "_", name)
    return out if out.isidentifier() and not out[0].isdigit() else f"_{out}"


_late_runtime()
