"""`findCustomers`, made from the identity source's declaration (connectors/identity.py): one nullable
String argument per declared lookup, in order, then `systemId: SystemIdInput` when offered.

The declaration is the one schema/graph.py read from the declaration files, once per process; the
configuration checks that its identity source declares the same (config.py), and the resolver runs the
lookups compiled from it (resolvers/customer.py `find_customers`).
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from connectors.identity import SYSTEM_ID, IdentityDecl
from resolvers.customer import CustomerData, find_customers
from schema.customer import Customer
from schema.declared import DeclarationError
from schema.graph import IDENTITY, folder


def system_id_input(description: str) -> type:
    """The input type of the `systemId` argument: a system's name and the customer's id there."""
    cls = type("SystemIdInput", (), {"__annotations__": {"system": str, "id": str}, "__module__": __name__})
    return strawberry.input(cls, description=description)


def resolver(decl: IdentityDecl, system_input: type | None) -> Any:
    """An async resolver with the declared lookups as its parameters (strawberry reads them off the
    signature), handing their values to `find_customers` by declared name."""
    async def impl(info: Info, given: dict[str, str | None], system_id: Any) -> list[CustomerData]:
        system_key = (system_id.system, system_id.id) if system_id is not None else None
        return await find_customers(info, given, system_key)

    scope: dict[str, Any] = {"_Info": Info, "_impl": impl, "_S": system_input, "__name__": __name__}
    params = "".join(f", {name}: str | None = None" for name in decl.lookups)
    if system_input is not None:
        params += f", {SYSTEM_ID}: _S | None = None"
    given = ", ".join(f"{n!r}: {n}" for n in decl.lookups)
    system = SYSTEM_ID if system_input is not None else "None"
    code = (f"async def find_customers(root, info: _Info{params}):\n"
            f"    return await _impl(info, {{{given}}}, {system})\n")
    exec(compile(code, "<resolver find_customers>", "exec", dont_inherit=True), scope)  # noqa: S102 (code we generated)
    return scope["find_customers"]


def find_customers_field() -> Any:
    """The `findCustomers` field of Query, from the process's identity declaration."""
    if IDENTITY is None:
        raise DeclarationError(f"{folder()}: no declaration file has an identity: section (the entities that link "
                               f"golden ids, and findCustomers' lookups)")
    decl = IDENTITY[1]
    system_input = system_id_input(decl.system_id.description) if decl.system_id is not None else None
    return strawberry.field(resolver=resolver(decl, system_input), graphql_type=list[Customer],
                            description=decl.description)
