"""REST/JSON sources: the shared HTTP connector plus the two pagination styles seen in the wild."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.http import HttpConnector


class RestConnector(HttpConnector):
    """A REST source; its mapping calls `json`, `cursor_pages` or `offset_pages`."""

    async def cursor_pages(self, path: str, params: dict[str, Any], items: str,
                           next_cursor: Callable[[Any], str | None]) -> list[Any] | None:
        """Every item behind a cursor-paginated list; None when the resource is unknown (404)."""
        out: list[Any] = []
        cursor: str | None = None
        while True:
            page = await self.json("GET", path, params={**params, **({"cursor": cursor} if cursor else {})},
                                   missing_ok=True)
            if page is None:
                return None
            out.extend(page[items])
            cursor = next_cursor(page)
            if not cursor:
                return out

    async def offset_pages(self, path: str, params: dict[str, Any], items: str, limit: int) -> list[Any]:
        """Every item of an offset/limit list whose answer carries `total`."""
        out: list[Any] = []
        offset = 0
        while True:
            page = await self.json("GET", path, params={**params, "offset": offset, "limit": limit})
            out.extend(page[items])
            offset += limit
            if offset >= int(page["total"]) or not page[items]:
                return out
