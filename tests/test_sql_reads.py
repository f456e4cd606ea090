"""SQL reads on the driver's connection answer exactly as through SQLAlchemy's execute, for every
statement shape, and their failures are the same SourceErrors (on the demo estate's SQLite files)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from connectors.base import SOURCE_BAD_RESPONSE, SourceConfig, SourceError
from connectors.sql import SqlConnector
from tests.harness import Estate

READS = [
    ("SELECT * FROM customers WHERE cust_no IN :keys ORDER BY cust_no", "crm", {}),
    ("SELECT golden_id, system, system_key FROM xref WHERE golden_id IN :keys ORDER BY id", "crosswalk", {}),
    ("SELECT golden_id FROM xref WHERE golden_id IN :keys AND system = :s ORDER BY id", "crosswalk", {"s": "shop"}),
]


def run(estate: Estate, system: str, body: Callable[[SqlConnector], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        dsn = f"sqlite+aiosqlite:///{estate.data.resolve() / (system + '.sqlite')}"
        connector = SqlConnector(SourceConfig(name=system, kind="sql", system=system, dsn=dsn))
        try:
            return await body(connector)
        finally:
            await connector.close()

    return asyncio.run(go())


async def both_ways(c: SqlConnector, sql: str, keys: list[str], params: dict[str, Any]) -> tuple[Any, Any]:
    direct = [dict(r) for r in await c.rows(sql, keys, **params)]
    driver, c.driver = c.driver, None  # the plain SQLAlchemy path, as for a driver without a direct reader
    try:
        plain = [dict(r) for r in await c.rows(sql, keys, **params)]
    finally:
        c.driver = driver
    return direct, plain


@pytest.mark.parametrize("sql,system,params", READS)
def test_direct_reads_match_sqlalchemy(estate: Estate, sql: str, system: str, params: dict[str, Any]) -> None:
    async def body(c: SqlConnector) -> None:
        assert c.driver is not None
        keys = [r["cust_no"] for r in await c.rows("SELECT cust_no FROM customers WHERE cust_no IN :keys",
                                                    [str(n) for n in range(1000000, 1000400)])][:7] \
            if system == "crm" else ["C-000001", "C-000002", "C-000003", "C-000042", "C-999999"]
        for n in (1, 3, len(keys), 0):  # each count of keys is its own compiled shape
            direct, plain = await both_ways(c, sql, keys[:n], params)
            assert direct == plain
            assert bool(direct) == bool(n), (sql, n)

    run(estate, system, body)


def test_a_bad_statement_is_a_bad_response_not_a_retryable_outage(estate: Estate) -> None:
    async def body(c: SqlConnector) -> SourceError:
        with pytest.raises(SourceError) as caught:
            await c.rows("SELECT * FROM no_such_table WHERE id IN :keys", ["1"])
        return caught.value

    error = run(estate, "crm", body)
    assert (error.code, error.source, error.retryable) == (SOURCE_BAD_RESPONSE, "crm", False)
    assert "no_such_table" in error.detail and "no_such_table" not in str(error)  # detail for the log only
