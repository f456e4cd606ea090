"""The declared GraphQL types, finished: schema/graph.py's graph plus the fields the framework computes.

Every type a source's records become is declared once, in the declaration files (schema/graph.py builds
them). What the declarations cannot say yet is added here, before the types are finished: fields whose
value comes live from another source through the request's loaders (hand-wired relations until the
declarations say where a type attaches).
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from resolvers.customer import related_now, then
from schema.graph import GRAPH


def _shipments(root: Any, info: Info) -> Any:
    return related_now(info, "shipments", [root.number])


def _agent(root: Any, info: Info) -> Any:
    if root.agent_id is None:
        return None
    return then(related_now(info, "agents", [root.agent_id]), lambda found: found[0] if found else None)


# type name -> field name -> (resolver, GraphQL type reference, description)
COMPUTED: dict[str, dict[str, tuple[Any, str, str]]] = {
    "Order": {"shipments": (_shipments, "[Shipment!]", "Shipments of this order, live from the shipping system.")},
    "Interaction": {"agent": (_agent, "Agent", "The agent who handled it, live from the staff directory.")},
}

for _type, _fields in COMPUTED.items():
    for _name, (_fn, _ref, _description) in _fields.items():
        GRAPH.add_field(_type, _name, strawberry.field(resolver=_fn, graphql_type=GRAPH.annotation(_ref),
                                                       description=_description))
GRAPH.finish()
types: dict[str, type] = GRAPH.types
