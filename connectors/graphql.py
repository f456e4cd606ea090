"""A remote GraphQL API as a source: a declared entity is a query document whose variables carry the
keys; the records are a path into the answer's `data`. Errors in the answer are a bad response."""

from __future__ import annotations

from typing import Any

from connectors.base import SOURCE_BAD_RESPONSE, Fetcher
from connectors.declaration import KEYS, Entity, assemble, getter, template
from connectors.http import HttpConnector


class GraphQLConnector(HttpConnector):
    def declared(self, name: str, e: Entity) -> Fetcher:
        answer = assemble(e, self.mapper(name, e), self.name)
        records, document = getter(e.records), e.document or ""
        variables = template(e.variables, KEYS)
        assert variables is not None  # the declaration checked: the keys are in one variable
        path = e.path or str(self.config.options.get("path", "/graphql"))
        query = self.query

        async def fetch(_: Any, keys: list[str]) -> dict[str, Any]:
            return answer(records(await query(document, variables(keys), path)), keys)
        return fetch

    async def query(self, document: str, variables: dict[str, Any], path: str | None = None) -> dict[str, Any]:
        """The `data` of a GraphQL answer; errors from the remote API are a bad response."""
        path = path or str(self.config.options.get("path", "/graphql"))
        answer = await self.json("POST", path, json={"query": document, "variables": variables})
        if not isinstance(answer, dict) or answer.get("errors") or not isinstance(answer.get("data"), dict):
            raise self.error(SOURCE_BAD_RESPONSE, "GraphQL errors", repr(answer)[:300])
        return answer["data"]
