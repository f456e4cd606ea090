"""The root fields: the public contract."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode
from strawberry.types import Info

from resolvers.customer import CustomerData, find_golden_ids, load_customers, match_keys
from resolvers.errors import BadUserInput
from schema.customer import CRM_FIELDS, Customer


@strawberry.input(description="An id as one system knows the customer, e.g. {system: \"billing\", id: \"BA-20000084\"}.")
class SystemIdInput:
    system: str
    id: str


def _selects(selection_set: Any, fragments: dict[str, Any], wanted: frozenset[str]) -> bool:
    """Whether any of `wanted` is selected directly on this selection set, through fragments too."""
    for node in selection_set.selections:
        if isinstance(node, FieldNode):
            if node.name.value in wanted:
                return True
        elif isinstance(node, InlineFragmentNode):
            if _selects(node.selection_set, fragments, wanted):
                return True
        elif isinstance(node, FragmentSpreadNode) and node.name.value in fragments:
            if _selects(fragments[node.name.value].selection_set, fragments, wanted):
                return True
    return False


def _needs_crm(info: Info) -> bool:
    # The raw AST, not info.selected_fields: converting selections costs ~90 us a request (cProfile).
    raw = info._raw_info
    return any(n.selection_set is not None and _selects(n.selection_set, raw.fragments, CRM_FIELDS)
               for n in raw.field_nodes)


@strawberry.type
class Query:
    @strawberry.field(description="One customer by golden id (C-000042); null with a NOT_FOUND error if unknown.")
    async def customer(self, info: Info, id: strawberry.ID) -> Customer | None:
        found = (await load_customers(info, [id], _needs_crm(info)))[0]
        if isinstance(found, Exception):
            raise found
        return found  # type: ignore[return-value]

    @strawberry.field(description="Customers by golden id, in the order asked (at most 100); null for an "
                                  "unknown or malformed id, with an error at its position.")
    async def customers(self, info: Info, ids: list[strawberry.ID]) -> list[Customer | None]:
        limit = info.context.config.max_ids
        if len(ids) > limit:
            raise BadUserInput(f"at most {limit} ids per request, got {len(ids)}")
        return await load_customers(info, list(ids), _needs_crm(info))  # type: ignore[return-value]

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
        found = await load_customers(info, gids[: info.context.config.max_ids], _needs_crm(info))
        return [c for c in found if isinstance(c, CustomerData)]  # type: ignore[misc]
