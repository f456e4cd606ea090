"""The Mutation type, built from the declaration files' `inputs:` and `mutations:` (the format:
schema/mutations_decl.py): each mutation a field taking `input: <Input>!` and returning the record its
source's action answers, or the Customer re-read. resolvers/mutations.py runs them from the Plans
compiled here (the input's CEL checks and message templates compiled once, against the input type).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import strawberry
from strawberry.types import Info
from strawberry.utils.str_converters import to_camel_case

from connectors.expressions import compile_expr, compile_template
from connectors.mapping import normalizer
from resolvers import mutations
from resolvers.mutations import CUSTOMER, Check, Exists, Link, Plan
from schema import mutations_decl
from schema.customer import Customer
from schema.declared import SCALARS, DeclarationError, TypeRef
from schema.graph import GRAPH, folder
from schema.mutations_decl import Declared, InputDecl, LinkDecl, MutationDecl

DECLARED = mutations_decl.load(folder())
T = TypeVar("T")


class _Inputs:
    """The declared input types made strawberry inputs, each after the inputs its fields use."""

    def __init__(self, declared: Declared) -> None:
        self.declared = declared
        self.built: dict[str, type] = {}
        self.normalizers: dict[str, Callable[[Any], None]] = {}
        self._building: list[str] = []
        for name, (file, _) in declared.inputs.items():
            if name in GRAPH.declarations.types or name in GRAPH.declarations.enums or name in SCALARS:
                raise DeclarationError(f"{file}: inputs.{name}: also the name of a declared type, enum or scalar")
        for name in declared.inputs:
            self.build(name)

    def build(self, name: str) -> type:
        if name in self.built:
            return self.built[name]
        file, decl = self.declared.inputs[name]
        if name in self._building:
            raise DeclarationError(f"{file}: inputs.{name}: refers to itself through {' -> '.join(self._building)}")
        self._building.append(name)
        ns: dict[str, Any] = {"__annotations__": {}, "__module__": __name__, "__qualname__": name}
        for fname, f in decl.fields.items():
            ref = TypeRef.parse(f.type)
            ns["__annotations__"][fname] = self.annotation(ref, f"{file}: inputs.{name}.fields.{fname}.type")
            settings: dict[str, Any] = {"description": f.description} if f.description else {}
            if ref.nullable:
                settings["default"] = None  # left out: null
            if settings:
                ns[fname] = strawberry.field(**settings)
        self._building.pop()
        self.built[name] = strawberry.input(type(name, (), ns), name=name, description=decl.description)
        self.normalizers[name] = self._normalizer(name, file, decl)
        return self.built[name]

    def annotation(self, ref: TypeRef, where: str) -> Any:
        if ref.of is not None:
            inner: Any = list[self.annotation(ref.of, where)]  # type: ignore[misc]
        elif ref.name in SCALARS:
            inner = SCALARS[ref.name][1]
        elif ref.name in GRAPH.enums:
            inner = GRAPH.enums[ref.name]
        elif ref.name in self.declared.inputs:
            inner = self.build(ref.name)
        else:
            raise DeclarationError(f"{where}: {ref.name!r} is not a scalar, a declared enum or an input type"
                                   + (" (an output type)" if ref.name in GRAPH.records else ""))
        return inner | None if ref.nullable else inner

    def _normalizer(self, name: str, file: str, decl: InputDecl) -> Callable[[Any], None]:
        """The input's declared normalisations applied in place, nested inputs' too."""
        steps = [(f, normalizer(list[str](d.normalize), {}, f"{file}: inputs.{name}.fields.{f}"))
                 for f, d in decl.fields.items() if d.normalize]
        nested = [(f, self.normalizers[TypeRef.parse(d.type).named]) for f, d in decl.fields.items()
                  if TypeRef.parse(d.type).named in self.declared.inputs]

        def apply(obj: Any) -> None:
            for f, fn in steps:
                v = getattr(obj, f)
                if v is not None:
                    setattr(obj, f, [fn(x) if x is not None else None for x in v] if isinstance(v, list) else fn(v))
            for f, sub in nested:
                v = getattr(obj, f)
                for item in v if isinstance(v, list) else [v] if v is not None else []:
                    sub(item)
        return apply

    def paths(self, name: str, prefix: str = "") -> set[str]:
        """Every field path of an input (`a`, `a.b` for a nested input `a`), for the check of what actions read."""
        out: set[str] = set()
        for f, d in self.declared.inputs[name][1].fields.items():
            out.add(prefix + f)
            named = TypeRef.parse(d.type).named
            if named in self.declared.inputs and named != name:
                out |= self.paths(named, f"{prefix}{f}.")
        return out


def _compiled(where: str, compile_text: Callable[[str, type], T], text: str, input_type: type) -> T:
    try:
        return compile_text(text, input_type)
    except ValueError as exc:  # an ExpressionError or bad CEL: says what is wrong
        raise DeclarationError(f"{where}: {exc}") from None


def _plan(name: str, file: str, d: MutationDecl, inputs: _Inputs) -> Plan:
    where = f"{file}: mutations.{name}"
    if d.input not in inputs.built:
        known = ", ".join(inputs.built) or "none"
        raise DeclarationError(f"{where}.input: no input type {d.input!r} (inputs: {known})")
    cls, fields = inputs.built[d.input], inputs.declared.inputs[d.input][1].fields
    for key, field in (("customer", d.customer), ("idempotency_key", d.idempotency_key), *(
            (f"exists.{f}", f) for f in d.exists)):
        if field is not None and field not in fields:
            raise DeclarationError(f"{where}.{key}: {d.input} has no field {field!r} ({', '.join(fields)})")
    if d.returns != CUSTOMER and d.returns not in GRAPH.types:
        raise DeclarationError(f"{where}.returns: {d.returns!r} is not a declared type (nor {CUSTOMER})")
    source = mutations_decl.source_of(file)
    missing = d.keys.missing or f"customer {{{{{d.customer}}}}} has no id in the system of {source}"
    link = d.keys.link
    return Plan(
        name=to_camel_case(name), key=name, file=file, source=source, action=d.action, customer=d.customer,
        idempotency_key=d.idempotency_key, normalize=inputs.normalizers[d.input],
        checks=tuple(Check(_compiled(f"{where}.validate.{i}.require", compile_expr, c.require, cls), c.message)
                     for i, c in enumerate(d.checks)),
        exists=tuple(Exists(f, e.entity, _compiled(f"{where}.exists.{f}.message", compile_template, e.message, cls))
                     for f, e in d.exists.items()),
        link=_link(link, f"{where}.keys.link") if link is not None else None,
        missing=_compiled(f"{where}.keys.missing", compile_template, missing, cls),
        invalidates=tuple(d.invalidates), returns=d.returns, input_paths=frozenset(inputs.paths(d.input)))


def _link(d: LinkDecl, where: str) -> Link:
    try:
        norm = normalizer(d.normalize, {}, where) if d.normalize else None
    except ValueError as exc:  # e164 needs a source's phone_country: the value linked is normalised already
        raise DeclarationError(str(exc)) from None
    return Link(d.entity, d.field, norm, d.action)


def _field(plan: Plan, d: MutationDecl, input_type: type) -> Any:
    returns = Customer if plan.returns == CUSTOMER else GRAPH.types[plan.returns]

    async def resolve(info: Info, input: Any) -> Any:  # `input`: the argument's GraphQL name
        return await mutations.run(info, plan, input)

    resolve.__annotations__ = {"info": Info, "input": input_type, "return": returns | None}
    return strawberry.mutation(resolver=resolve, description=d.description)


def build(declared: Declared) -> tuple[type | None, list[Plan]]:
    """The Mutation type (None when nothing is declared) and its fields' plans."""
    inputs = _Inputs(declared)
    plans, fields = [], {}
    for name, (file, d) in declared.mutations.items():
        plan = _plan(name, file, d, inputs)
        plans.append(plan)
        fields[name] = _field(plan, d, inputs.built[d.input])
    if not fields:
        return None, plans
    return strawberry.type(type("Mutation", (), {"__module__": __name__, "__qualname__": "Mutation", **fields})), plans


Mutation, PLANS = build(DECLARED)
