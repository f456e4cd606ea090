"""The Customer: one person, composed live from every system that knows them.

Its fields are those the declaration files attach to it (`graph:` entries on `Customer`, made in
schema/types.py), each fed through the request's loaders, so 100 customers cost one call per source per
level; plus what the framework composes across them: the timeline, crossSell, value and bestAgent.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import strawberry
from strawberry import Parent
from strawberry.federation.schema_directives import Key
from strawberry.types import Info
from strawberry.types.field import StrawberryField

from resolvers import agents, insights, timeline
from resolvers.customer import CustomerData
from schema.graph import enums, golden_example
from schema.insights import ROLES, AgentMatch, CrossSell, CustomerValue
from schema.timeline import STREAMS, TimelineConnection, connection
from schema.types import CUSTOMER_FIELDS

Channel = enums["Channel"]


class Composed:
    """The fields the framework composes across the sources."""

    @strawberry.field(description="One cross-channel history, newest first: every event the sources declare "
                                  "(see EventKind). A Relay-style connection; a source that fails leaves its "
                                  "events out, with an error naming it.")
    async def timeline(self, root: Parent[CustomerData], info: Info, first: int = 20, after: str | None = None,
                       channels: list[Channel] | None = None, since: datetime | None = None) -> TimelineConnection | None:
        return connection(await timeline.timeline(info, root, STREAMS, first, after, channels, since), after)

    @strawberry.field(description="May we cross-sell now? Blockers (each citing its source record) and suggestions. "
                                  "Null with an error when a source it needs is failing: unknown is not eligible.")
    async def cross_sell(self, root: Parent[CustomerData], info: Info) -> CrossSell | None:
        return await insights.cross_sell(info, root, ROLES)  # type: ignore[return-value]

    @strawberry.field(description="Lifetime value, orders by channel, first and last purchase, and a tier "
                                  "computed across every channel.")
    async def value(self, root: Parent[CustomerData], info: Info) -> CustomerValue | None:
        return await insights.value(info, root, ROLES)  # type: ignore[return-value]

    @strawberry.field(description="Available agents ranked by fit: the topic (or the subjects of open issues), "
                                  "the customer's language, the products they own, and past contacts that "
                                  "ended well.")
    async def best_agent(self, root: Parent[CustomerData], info: Info, topic: str | None = None,
                         language: str | None = None, first: int = 3) -> list[AgentMatch] | None:
        return await agents.best_agents(info, root, topic, language, first, ROLES)  # type: ignore[return-value]


def _customer_type() -> Any:
    body: dict[str, Any] = {"__annotations__": {"id": strawberry.ID}, "__module__": __name__,
                            "__qualname__": "Customer"}
    clash = sorted(set(CUSTOMER_FIELDS) & ({"id"} | {n for n in vars(Composed) if not n.startswith("_")}))
    if clash:
        raise ValueError(f"graph: Customer.{clash[0]} is the framework's own field")
    body.update(CUSTOMER_FIELDS)
    # What the resolvers return for a Customer; graphql-core asks when one comes through a union (_entities).
    body["is_type_of"] = classmethod(lambda _cls, obj, _info: isinstance(obj, CustomerData))
    body.update({n: f for n, f in vars(Composed).items() if isinstance(f, StrawberryField)
                 and (n != "best_agent" or AgentMatch is not None)})  # no team declared: no bestAgent
    cls = type("Customer", (), body)
    return strawberry.type(cls, description=f"One customer across every system: a golden id{golden_example()} "
                                            "and everything each source holds about them, fetched live.")


Customer = _customer_type()
KEY = Key(fields="id", resolvable=strawberry.UNSET)  # Apollo Federation: a supergraph finds a Customer by its golden id


@contextlib.contextmanager
def keyed() -> Iterator[Any]:
    """Customer as a federation entity, `@key(fields: "id")`, while a subgraph schema is built
    (server/federation.py); yields its definition so keyed. Outside, it carries no directive: the plain
    schema and its SDL stay as they are."""
    definition = Customer.__strawberry_definition__
    before = definition.directives
    definition.directives = [*before, KEY]
    try:
        yield copy.copy(definition)
    finally:
        definition.directives = before
