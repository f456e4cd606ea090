"""Apollo Federation's `_entities`: the customers a supergraph's router names by key, found the way
`customers(ids:)` finds them (one `load_customers` for all, so 100 representations cost one call per
source per level), in the order given, with an error in place of each unusable or unknown one."""

from __future__ import annotations

from typing import Any

from strawberry.types import Info

from resolvers.customer import CustomerData, load_customers
from resolvers.errors import BadUserInput

ENTITY = "Customer"  # the one type this subgraph resolves by key: @key(fields: "id")


def golden_id(representation: Any) -> str | BadUserInput:
    """The golden id a representation names, or why it names none (its values are not echoed back)."""
    if not isinstance(representation, dict):
        return BadUserInput("a representation must be an object with __typename and id")
    if representation.get("__typename") != ENTITY:
        return BadUserInput(f"only {ENTITY} is an entity of this subgraph (its __typename must be {ENTITY!r})")
    value = representation.get("id")
    if not isinstance(value, str) or not value:
        return BadUserInput(f"a {ENTITY} representation needs its id, a non-empty string")
    return value


async def entities(info: Info, representations: list[Any]) -> list[CustomerData | Exception]:
    limit = info.context.config.max_ids
    if len(representations) > limit:
        raise BadUserInput(f"at most {limit} representations per request, got {len(representations)}")
    ids = [golden_id(r) for r in representations]
    found = iter(await load_customers(info, [i for i in ids if isinstance(i, str)]))
    return [next(found) if isinstance(i, str) else i for i in ids]
