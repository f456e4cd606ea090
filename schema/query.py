"""The root fields: the public contract."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from resolvers.customer import load_customers
from resolvers.errors import BadUserInput
from schema.customer import Customer
from schema.find import find_customers_field
from schema.graph import golden_example


@strawberry.type
class Query:
    @strawberry.field(description=f"One customer by golden id{golden_example()}; null with a NOT_FOUND error if "
                                  "unknown.")
    async def customer(self, info: Info, id: strawberry.ID) -> Customer | None:
        found = (await load_customers(info, [id]))[0]
        if isinstance(found, Exception):
            raise found
        return found  # type: ignore[return-value]

    @strawberry.field(description="Customers by golden id, in the order asked (at most 100); null for an "
                                  "unknown or malformed id, with an error at its position.")
    async def customers(self, info: Info, ids: list[strawberry.ID]) -> list[Customer | None]:
        limit = info.context.config.max_ids
        if len(ids) > limit:
            raise BadUserInput(f"at most {limit} ids per request, got {len(ids)}")
        return await load_customers(info, list(ids))  # type: ignore[return-value]

    # Its arguments are the identity source's declared lookups (schema/find.py).
    find_customers = find_customers_field()
