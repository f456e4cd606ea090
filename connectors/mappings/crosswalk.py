"""Identity crosswalk (SQL): which record in which system belongs to which golden customer.

Entities: `identities` by golden id; `match` by "kind:standardised value" (kinds: email,
phone, loyalty_card); `lookup` by "system:system id". The last two answer golden ids.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from connectors.sql import SqlConnector
from schema.graph import record

Identity = record("Identity")


async def fetch_identities(c: SqlConnector, keys: list[str]) -> dict[str, list[Identity]]:
    rows = await c.rows("SELECT golden_id, system, system_key FROM xref WHERE golden_id IN :keys ORDER BY id", keys)
    out: dict[str, list[Identity]] = defaultdict(list)
    for r in rows:
        out[r["golden_id"]].append(Identity(r["system"], r["system_key"]))
    return out


async def _golden_ids(c: SqlConnector, sql: str, keys: list[str]) -> dict[str, list[str]]:
    """Golden ids per "a:b" key, where `sql` selects golden_id, a and b for the b values."""
    wanted = set(keys)
    out: dict[str, list[str]] = defaultdict(list)
    for r in await c.rows(sql, sorted({k.split(":", 1)[1] for k in keys})):
        key = f"{r['a']}:{r['b']}"
        if key in wanted and r["golden_id"] not in out[key]:
            out[key].append(r["golden_id"])
    return out


async def fetch_match(c: SqlConnector, keys: list[str]) -> dict[str, list[str]]:
    return await _golden_ids(c, "SELECT golden_id, kind AS a, match_key AS b FROM match_keys "
                                "WHERE match_key IN :keys ORDER BY golden_id", keys)


async def fetch_lookup(c: SqlConnector, keys: list[str]) -> dict[str, list[str]]:
    return await _golden_ids(c, "SELECT golden_id, system AS a, system_key AS b FROM xref "
                                "WHERE system_key IN :keys ORDER BY golden_id", keys)


ENTITIES = {"identities": fetch_identities, "match": fetch_match, "lookup": fetch_lookup}


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
