"""CEL over our own records: the conditions, selections and summary templates of the declarations.

A declaration's filter (`status in ['PENDING', 'FAILED']`), selection (`first_name + ' ' + last_name`),
blocker condition or timeline summary (`Payment {{id}} settled`) is compiled once, at start, into
one Python function of the record (connectors/cel.py's translator), so evaluating it per record costs
what the hand-written line did. Identifiers are the record's fields, checked against its declared
type when compiled (a typo is an error naming the field and the fields there are), plus the names a
caller binds (`parent`, `rules`, `now`, ...). An enum field compared with string literals compares
members, converted when compiled (`status == 'OPEN'`; an unknown member name is an error); string
functions and templates read an enum as its name.

Host functions (CEL lets a host declare its own): `sum(list)`, `rank(enum_field)` (the member's
position in its declared enum: `rank(priority) >= 1`), `money(amount, currency)` ("EUR 1,234.50"),
`day(timestamp)` ("2026-11-23"), `capitalize(s)` ("Voice"), `days(n)` (a duration of n days, for a
window that is a setting: `sent_at >= now - days(rules.within_days)`; CEL's own `duration('336h')`
takes only a literal), and cel-go's `math.round`.

A bound name may also be a pydantic model class (settings): its fields are checked like a record's.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import typing
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from connectors.cel import Translator, _only, parse_cel
from connectors.mapping import _RUNTIME, _unwrap

Hint = Any
_WRAPPERS = ("expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary",
             "member", "primary")
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.S)


class ExpressionError(ValueError):
    """A declared expression that cannot be compiled; the message says why."""


def _name(v: Any) -> Any:
    """An enum member as its name (what GraphQL shows); anything else as it is."""
    return v.name if isinstance(v, enum.Enum) else v


def _text(v: Any) -> str:
    """A value as a template shows it: null as nothing, enums by name, booleans as CEL writes them."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, enum.Enum):
        return v.name
    if isinstance(v, datetime):
        return v.isoformat()
    return str(v)


def _money(amount: float, currency: Any) -> str:
    return f"{_name(currency)} {amount:,.2f}"


def _day(v: date) -> str:
    return v.strftime("%Y-%m-%d")


def _round(v: float) -> int:
    """cel-go's math.round: half away from zero."""
    return int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)


def _dot(v: Any, name: str) -> Any:
    """A field of a value whose type is not known when compiled: a map's key or a record's field."""
    return v[name] if isinstance(v, Mapping) else getattr(v, name)


def _days(n: float) -> timedelta:
    return timedelta(days=n)


_HOST = {"_name": _name, "_text": _text, "_money": _money, "_day": _day, "_round": _round, "_dot": _dot,
         "_capitalize": lambda s: str(_name(s)).capitalize(), "_sum": sum, "_days": _days}


def fields_of(hint: Hint) -> dict[str, Hint] | None:
    """A record type's (or a settings model's) fields and their types, or None if it is neither."""
    hint, _ = _unwrap(hint)
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return {n: f.annotation for n, f in hint.model_fields.items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        try:
            return typing.get_type_hints(hint)
        except Exception:  # noqa: BLE001 (unresolvable annotations: fields known, types not)
            return {f.name: Any for f in dataclasses.fields(hint)}
    return None


class _RecordTranslator(Translator):
    """Translator whose identifiers are fields of a typed record (attribute access) and bound names."""

    def __init__(self, record: str, hints: dict[str, Hint], bound: dict[str, tuple[str, Hint]],
                 consts: dict[str, Any]) -> None:
        super().__init__(record, {n: py for n, (py, _) in bound.items()}, "")
        self.hints, self.bound, self.consts = hints, bound, consts

    def const(self, value: Any) -> str:
        name = f"_k{len(self.consts)}"
        self.consts[name] = value
        return name

    # static types: the hint of a path expression where it is known, else None
    def type_of(self, node: Any) -> Hint:
        node = _only(node, _WRAPPERS)
        if node is None:
            return None
        if node.data == "ident":
            name = str(node.children[0])
            if name in self.bound:
                return self.bound[name][1]
            return self.hints.get(name)
        if node.data == "member_dot":
            inner = fields_of(self.type_of(node.children[0]))
            return inner.get(str(node.children[1])) if inner else None
        return None

    def enum_of(self, node: Any) -> type[enum.Enum] | None:
        hint, _ = _unwrap(self.type_of(node))
        return hint if isinstance(hint, type) and issubclass(hint, enum.Enum) else None

    def expr(self, node: Any) -> str:
        if isinstance(node, _Raw):
            return node.code
        kind = node.data
        kids = node.children
        if kind == "ident":
            name = str(kids[0])
            if name in self.bound:
                return self.bound[name][0]
            if name not in self.hints:
                raise ExpressionError(f"no field {name!r} here (fields: {', '.join(self.hints) or 'none'})")
            return f"{self.record}.{name}"
        if kind == "member_dot":
            target, name = kids[0], str(kids[1])
            inner = fields_of(self.type_of(target))
            if inner is not None:
                if name not in inner:
                    raise ExpressionError(f"no field {name!r} in {_unwrap(self.type_of(target))[0].__name__} "
                                          f"(fields: {', '.join(inner)})")
                return f"({self.expr(target)}).{name}"
            return f"_dot({self.expr(target)}, {name!r})"
        if kind == "relation" and len(kids) == 2 and kids[0].data in ("relation_eq", "relation_ne", "relation_in"):
            members = self._enum_literal(kids[0].children[0], kids[1], kids[0].data == "relation_in")
            if members is not None:
                op = {"relation_eq": "==", "relation_ne": "!=", "relation_in": "in"}[kids[0].data]
                return f"(({self.expr(kids[0].children[0])}) {op} {members})"
        return super().expr(node)

    def _enum_literal(self, left: Any, right: Any, many: bool) -> str | None:
        """`enum_field == 'NAME'` / `in ['A', 'B']`: the members, as a constant; None when not that shape."""
        members = self.enum_of(left)
        if members is None:
            return None
        lit = _only(right, _WRAPPERS)
        names: list[Any]
        if many and lit is not None and lit.data == "list_lit":
            items = [_only(a, _WRAPPERS) for a in self.args(lit.children[0] if lit.children else None)]
            if not all(i is not None and i.data == "literal" for i in items):
                return None
            names = [pyliteral(i) for i in items]
        elif not many and lit is not None and lit.data == "literal":
            names = [pyliteral(lit)]
            if names == [None]:  # `field == null`: compared as it is
                return None
        else:
            return None
        found = []
        for n in names:
            if not isinstance(n, str) or n not in members.__members__:
                raise ExpressionError(f"{n!r} is not a {members.__name__} (one of {', '.join(members.__members__)})")
            found.append(members[n])
        return self.const(frozenset(found) if many else found[0])

    def call(self, name: str, args: list[Any]) -> str:
        if name == "rank":
            members = self.enum_of(args[0]) if len(args) == 1 else None
            if members is None:
                raise ExpressionError("rank() takes one enum field, e.g. rank(priority)")
            return f"{self.const({m: i for i, m in enumerate(members)})}[{self.expr(args[0])}]"
        host = {"sum": ("_sum", 1), "money": ("_money", 2), "day": ("_day", 1), "capitalize": ("_capitalize", 1),
                "days": ("_days", 1)}
        if name in host:
            fn, n = host[name]
            if len(args) != n:
                raise ExpressionError(f"{name}() takes {n} argument{'s' * (n != 1)}")
            return f"{fn}({', '.join(self.expr(a) for a in args)})"
        return super().call(name, args)

    def method(self, target: Any, name: str, args: list[Any]) -> str:
        head = _only(target, ("member", "primary"))
        if getattr(head, "data", None) == "ident" and str(head.children[0]) == "math" and name == "round":
            return f"_round({self.expr(args[0])})"
        if name in ("map", "filter", "all", "exists", "exists_one"):
            return self.macro(target, name, args)
        if self.enum_of(target) is not None:  # string functions read an enum as its name
            return super().method(_Raw(f"_name({self.expr(target)})"), name, args)
        return super().method(target, name, args)

    def inner(self, var: str, py: str, target: Any) -> Translator:
        _, elem = _unwrap(self.type_of(target))  # the macro's variable is typed: an item of the list
        return _RecordTranslator(self.record, self.hints, {**self.bound, var: (py, elem)}, self.consts)


class _Raw:
    """Already-translated Python standing in for a parse-tree node."""

    data = "raw"

    def __init__(self, code: str) -> None:
        self.code = code


def pyliteral(node: Any) -> Any:
    from connectors.cel import _literal
    return _literal(str(node.children[0]))


def _compile(body: str, names: list[str], consts: dict[str, Any], label: str) -> Callable[..., Any]:
    code = f"def _fn(_r, {', '.join(names)}):\n    return {body}\n" if names else f"def _fn(_r):\n    return {body}\n"
    scope = {**_RUNTIME, **_HOST, **consts}
    exec(compile(code, f"<expression {label}>", "exec"), scope)  # noqa: S102 (code we generated)
    fn = scope["_fn"]
    fn.__expression_source__ = code
    return fn  # type: ignore[no-any-return]


def _translator(record: Hint, bound: Mapping[str, Hint] | None) -> _RecordTranslator:
    hints = fields_of(record)
    if hints is None:
        raise ExpressionError(f"{record!r} is not a record type")
    names = {n: (f"_v_{n}", h) for n, h in (bound or {}).items()}
    return _RecordTranslator("_r", hints, names, {})


def compile_expr(text: str, record: Hint, bound: Mapping[str, Hint] | None = None,
                 label: str = "") -> Callable[..., Any]:
    """`fn(record, *bound values in order)` evaluating the CEL expression `text` over a record of type
    `record`; ExpressionError (or ValueError for bad CEL) when it cannot be compiled."""
    tr = _translator(record, bound)
    body = tr.expr(parse_cel(text))
    return _compile(body, [py for py, _ in tr.bound.values()], tr.consts, label or text)


def static_type(text: str, record: Hint, bound: Mapping[str, Hint] | None = None) -> Hint:
    """The type of a path expression (`channel`, `parent.currency`) as the declarations give it; None
    for any other expression (its type is known only when evaluated)."""
    return _translator(record, bound).type_of(parse_cel(text))


def compile_template(text: str, record: Hint, bound: Mapping[str, Hint] | None = None,
                     label: str = "") -> Callable[..., str]:
    """`fn(record, *bound)` -> the text with each `{{ CEL }}` replaced by its value (null as nothing)."""
    tr = _translator(record, bound)
    parts: list[str] = []
    pos = 0
    for m in _TEMPLATE.finditer(text):
        if m.start() > pos:
            parts.append(repr(text[pos:m.start()]))
        parts.append(f"_text({tr.expr(parse_cel(m.group(1).strip()))})")
        pos = m.end()
    if pos < len(text):
        parts.append(repr(text[pos:]))
    if "{{" in text[pos:] or "}}" in text[pos:]:
        raise ExpressionError("an unclosed {{ in the template")
    body = " + ".join(parts) or "''"
    return _compile(body, [py for py, _ in tr.bound.values()], tr.consts, label or text)
