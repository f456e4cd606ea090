"""The declared GraphQL types, finished: schema/graph.py's graph plus the fields the declarations attach.

Every type a source's records become is declared once, in the declaration files (schema/graph.py builds
them). Their `graph:` sections say where entities attach (schema/attached.py): a field on another type
(a subscription's payments from another system) is added here, before the types are finished; a field on `Customer` is made here
and collected in `CUSTOMER_FIELDS` for schema/customer.py.
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from connectors.identity import camel
from resolvers.customer import FIELD_ENTITIES, attached_now, records_now, then
from schema.attached import AttachDecl, Plan, arg_annotation, compile_plan, parse_target
from schema.declared import DeclarationError
from schema.graph import ATTACHED, GRAPH


def resolver(field: str, d: AttachDecl, plan: Plan, on_customer: bool) -> Any:
    """A resolver with the declared arguments as its parameters (strawberry reads them off the
    signature), returning the value at once when the records are, else a future of it."""
    fetch = records_now if on_customer else attached_now
    entity, shape, filters = plan.entity, plan.shape, plan.filters

    def impl(root: Any, info: Info, values: dict[str, Any]) -> Any:
        keep = filters(values)
        return then(fetch(info, entity, root), lambda records: shape(records, values, keep))

    scope: dict[str, Any] = {"_Info": Info, "_impl": impl, "__name__": __name__}
    params = []
    for name in d.args:
        scope[f"_T_{name}"], scope[f"_D_{name}"] = arg_annotation(d, name, GRAPH)
        params.append(f", {name}: _T_{name} = _D_{name}")
    code = (f"def {field}(root, info: _Info{''.join(params)}):\n"
            f"    return _impl(root, info, {{{', '.join(f'{n!r}: {n}' for n in d.args)}}})\n")
    exec(compile(code, f"<resolver {field}>", "exec", dont_inherit=True), scope)  # noqa: S102 (code we generated)
    return scope[field]


def attach() -> dict[str, Any]:
    """Every declared attachment made a field; Customer's returned (by field name), the others added."""
    customer: dict[str, Any] = {}
    for key, (file, d) in ATTACHED.items():
        type_name, name = parse_target(key)
        try:
            plan = compile_plan(key, d, GRAPH)
            made = strawberry.field(resolver=resolver(name, d, plan, type_name == "Customer"),
                                    graphql_type=GRAPH.annotation(d.type), description=d.description)
        except DeclarationError as exc:
            raise DeclarationError(f"{file}: {exc}") from None
        if type_name == "Customer":
            customer[name] = made
            FIELD_ENTITIES[made.graphql_name or camel(name)] = d.entity
        else:
            GRAPH.add_field(type_name, name, made)
    return customer


CUSTOMER_FIELDS = attach()
GRAPH.finish()
types: dict[str, type] = GRAPH.types
