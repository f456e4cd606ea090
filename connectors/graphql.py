"""A remote GraphQL API as a source."""

from __future__ import annotations

from typing import Any

from connectors.base import SOURCE_BAD_RESPONSE
from connectors.http import HttpConnector


class GraphQLConnector(HttpConnector):
    async def query(self, document: str, variables: dict[str, Any]) -> dict[str, Any]:
        """The `data` of a GraphQL answer; errors from the remote API are a bad response."""
        path = str(self.config.options.get("path", "/graphql"))
        answer = await self.json("POST", path, json={"query": document, "variables": variables})
        if not isinstance(answer, dict) or answer.get("errors") or not isinstance(answer.get("data"), dict):
            raise self.error(SOURCE_BAD_RESPONSE, "GraphQL errors", repr(answer)[:300])
        return answer["data"]
