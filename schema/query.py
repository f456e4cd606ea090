"""The root fields: the public contract."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from resolvers.customer import CustomerData, find_golden_ids, load_customers, match_keys
from resolvers.errors import BadUserInput
from schema.customer import Customer


@strawberry.input(description="An id as one system knows the customer, e.g. {system: \"billing\", id: \"BA-20000084\"}.")
class SystemIdInput:
    system: str
    id: str


@strawberry.type
class Query:
    @strawberry.field(description="One customer by golden id (C-000042); null with a NOT_FOUND error if unknown.")
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

    @strawberry.field(description="Customers matching any identifier seen at a point of contact: email (any case "
                                  "or spacing), phone (any format), loyalty card, or a system's own id. Those "
                                  "matching every identifier given come first; several only where the crosswalk "
                                  "cannot tell them apart (e.g. a shared household phone).")
    async def find_customers(self, info: Info, email: str | None = None, phone: str | None = None,
                             loyalty_card: str | None = None,
                             system_id: SystemIdInput | None = None) -> list[Customer]:
        if email is None and phone is None and loyalty_card is None and system_id is None:
            raise BadUserInput("give at least one of email, phone, loyaltyCard or systemId")
        keys = match_keys(info.context, email, phone, loyalty_card)
        system_key = f"{system_id.system}:{system_id.id.strip()}" if system_id else None
        gids = await find_golden_ids(info, keys, system_key)
        found = await load_customers(info, gids[: info.context.config.max_ids])
        return [c for c in found if isinstance(c, CustomerData)]  # type: ignore[misc]
