"""The gateway as an Apollo Federation v2 subgraph (gateway.yaml `federation: {enabled: true}`).

strawberry's federation schema adds `_service { sdl }` (this schema's SDL with `@link` to federation
v2 and `@key` on Customer) and `_entities(representations:)`. Customer carries `@key(fields: "id")`
only in this schema (schema/customer.py `keyed`), so the plain schema and `gateway.py schema` stay as
they were. `_entities` resolves all its representations through one `load_customers`, like
`customers(ids:)` (resolvers/entities.py), instead of strawberry's one `resolve_reference` each.
A role's subgraph schema is restricted like its plain one (server/policy.py): `_entities` answers
with the same forbidden and masked fields as `customer(id:)`.
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.federation.schema import FederationAny
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types import Info

from resolvers.entities import entities
from schema.customer import keyed

# The newest version @theguild/federation-composition and Apollo's composition both know (strawberry's
# default, 2.11, is newer than the Guild's composer).
VERSION = "2.9"


class SubgraphSchema(strawberry.federation.Schema):
    def __init__(self, **kwargs: Any) -> None:
        with keyed() as definition:
            super().__init__(federation_version=VERSION, **kwargs)  # type: ignore[arg-type]
        # `_service` prints the SDL when asked, from the definition each GraphQL type points back to:
        # this schema's Customer points to its keyed one.
        customer = self._schema.type_map["Customer"]
        customer.extensions = {**customer.extensions, GraphQLCoreConverter.DEFINITION_BACKREF: definition}

    async def entities_resolver(  # type: ignore[override]
            self, info: Info, representations: list[FederationAny]) -> list[FederationAny]:
        return await entities(info, representations)  # type: ignore[return-value]
