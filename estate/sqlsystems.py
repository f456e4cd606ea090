"""The three SQL systems (CRM, identity crosswalk, web shop): their tables and loading.

One table definition serves every engine: the demo's SQLite files and, with
`python -m estate load --dsn URL`, PostgreSQL (asyncpg) or MariaDB (asyncmy). Customers, links and
orders carry an `updated_at` that triggers keep current (estate/sqlevents.py), the gateway's change feed.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
    insert,
)
from sqlalchemy.dialects.mysql import VARCHAR
from sqlalchemy.ext.asyncio import create_async_engine

from estate import sqlevents
from estate.generate import Estate

SCHEMA = 3  # bumped when a table changes, so that `serve` rebuilds SQLite files written by an older one

crm_meta = MetaData()
Table(
    "customers", crm_meta,
    Column("cust_no", String(16), primary_key=True),
    Column("given_name", String(64), nullable=False), Column("family_name", String(64), nullable=False),
    Column("email_addr", String(128)), Column("phone_home", String(32)), Column("phone_mobile", String(32)),
    Column("addr_line1", String(128)), Column("addr_city", String(64)), Column("addr_postcode", String(16)),
    Column("addr_country", String(2)), Column("segment_code", String(4)), Column("lang", String(2)),
    Column("pref_contact", String(1)), Column("consent_email", SmallInteger), Column("consent_sms", SmallInteger),
    Column("consent_phone", SmallInteger), Column("created_on", Date),
    Column("updated_at", DateTime, index=True),
)

crosswalk_meta = MetaData()
Table(
    "xref", crosswalk_meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("golden_id", String(10), nullable=False), Column("system", String(16), nullable=False),
    # System ids are exact (case too): MariaDB's default collation would fold case, in lookups and in the
    # unique link below.
    Column("system_key", String(96).with_variant(VARCHAR(96, collation="utf8mb4_bin"), "mysql", "mariadb"),
           nullable=False),
    Column("updated_at", DateTime, index=True),
    Index("ix_xref_golden", "golden_id"), Index("ix_xref_system_key", "system_key"),
    # One link per record: concurrent first contacts may all try to add it, exactly one row results.
    UniqueConstraint("golden_id", "system", "system_key", name="uq_xref_link"),
)
Table(
    "match_keys", crosswalk_meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("golden_id", String(10), nullable=False), Column("kind", String(16), nullable=False),
    Column("match_key", String(128), nullable=False),
    Index("ix_match_key", "match_key"),
)

shop_meta = MetaData()
Table(
    "accounts", shop_meta,
    Column("account_email", String(128), primary_key=True), Column("display_name", String(64)),
    Column("created_at", DateTime),
)
Table(
    "orders", shop_meta,
    Column("order_number", String(16), primary_key=True),
    Column("account_email", String(128), nullable=False, index=True),
    Column("placed_at", DateTime, nullable=False), Column("channel", String(8), nullable=False),
    Column("status", String(12), nullable=False), Column("total", Float, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("updated_at", DateTime, index=True),
)
Table(
    "order_lines", shop_meta,
    Column("order_number", String(16), primary_key=True), Column("line_no", Integer, primary_key=True),
    Column("sku", String(16), nullable=False), Column("description", String(64)),
    Column("quantity", Integer, nullable=False), Column("unit_price", Float, nullable=False),
)

METADATA = {"crm": crm_meta, "crosswalk": crosswalk_meta, "shop": shop_meta}


def _typed(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """ISO strings to the column's type; the shop keeps naive UTC timestamps, as legacy databases do."""
    out = dict(row)
    for col in table.columns:
        value = out.get(col.name)
        if isinstance(value, str) and isinstance(col.type, DateTime):
            out[col.name] = datetime.fromisoformat(value).replace(tzinfo=None)
        elif isinstance(value, str) and isinstance(col.type, Date):
            out[col.name] = date.fromisoformat(value)
    return out


def rows_of(est: Estate, system: str) -> dict[str, list[dict[str, Any]]]:
    """Each table's rows for one SQL system, in the column types the tables declare."""
    tables = {
        "crm": {"customers": est.crm},
        "crosswalk": {"xref": est.crosswalk, "match_keys": est.match_keys},
        "shop": {"accounts": est.shop_accounts, "orders": est.shop_orders, "order_lines": est.shop_lines},
    }[system]
    meta = METADATA[system]
    return {name: [_typed(meta.tables[name], row) for row in rows] for name, rows in tables.items()}


def sqlite_dsn(folder: Path, system: str) -> str:
    return f"sqlite+aiosqlite:///{folder.resolve() / (system + '.sqlite')}"


async def load(est: Estate, dsn: str, system: str, chunk: int = 5000) -> int:
    """(Re)create one system's tables at `dsn` and fill them; returns rows written."""
    engine = create_async_engine(dsn)
    meta = METADATA[system]
    written = 0
    try:
        async with engine.begin() as conn:
            await conn.run_sync(meta.drop_all)
            await conn.run_sync(meta.create_all)
            for name, rows in rows_of(est, system).items():
                for start in range(0, len(rows), chunk):
                    await conn.execute(insert(meta.tables[name]), rows[start:start + chunk])
                written += len(rows)
            await sqlevents.install(conn, system)
    finally:
        await engine.dispose()
    return written
