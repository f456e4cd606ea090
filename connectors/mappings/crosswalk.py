"""Identity crosswalk: the link write (writes are not declared yet; the reads, `identities`, `match`
and `lookup`, are declared in sources/crosswalk.yaml)."""

from __future__ import annotations

from typing import Any

from connectors.sql import SqlConnector
from schema.graph import record

Identity = record("Identity")

ENTITIES: dict[str, Any] = {}  # every read is declared


async def link(c: SqlConnector, payload: dict[str, Any]) -> bool:
    """Record that a system id belongs to a golden customer (idempotent); True if it was new."""
    exists = await c.rows("SELECT 1 FROM xref WHERE golden_id IN :keys AND system = :s AND system_key = :k",
                          [payload["golden_id"]], s=payload["system"], k=payload["id"])
    if exists:
        return False
    # Concurrent first contacts all get past the check above; the table's unique link lets one row in.
    return await c.insert_new("xref", {"golden_id": payload["golden_id"], "system": payload["system"],
                                       "system_key": payload["id"]})


ACTIONS = {"link": link}
