"""How the SQL systems tell of their writes: an `updated_at` column every write sets, on every engine, and
on PostgreSQL a NOTIFY per changed row as well.

Installed after a system's rows are loaded (all start at the load's time): triggers, so that every
writer (the gateway's updatePreferences and crosswalk links, a test writing behind the gateway's back)
sets it without knowing. A changed order line touches its order. The channels, entities and key
columns are those the gateway's declarations name (sources/crm.yaml, shop.yaml, crosswalk.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class Feed:
    table: str
    key: str  # the column the gateway keys the entity by
    channel: str
    entity: str


FEEDS = {
    "crm": [Feed("customers", "cust_no", "crm_changes", "crm")],
    "crosswalk": [Feed("xref", "golden_id", "crosswalk_changes", "identities")],
    "shop": [Feed("orders", "account_email", "shop_changes", "orders")],
}
CHILDREN = {"shop": [("order_lines", "orders", "order_number")]}  # (table, parent, the column joining them)

SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"  # milliseconds, UTC, sortable as text

PG_FUNCTIONS = [
    """CREATE OR REPLACE FUNCTION cg_touch() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN NEW.updated_at := clock_timestamp() AT TIME ZONE 'UTC'; RETURN NEW; END $$""",
    """CREATE OR REPLACE FUNCTION cg_notify() RETURNS trigger LANGUAGE plpgsql AS $$
       DECLARE row jsonb;
       BEGIN
         row := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
         PERFORM pg_notify(TG_ARGV[0], json_build_object('entity', TG_ARGV[1], 'key', row ->> TG_ARGV[2],
           'change', CASE TG_OP WHEN 'INSERT' THEN 'created' WHEN 'DELETE' THEN 'deleted' ELSE 'changed' END,
           'at', extract(epoch FROM clock_timestamp()))::text);
         RETURN NULL;
       END $$""",
    """CREATE OR REPLACE FUNCTION cg_touch_parent() RETURNS trigger LANGUAGE plpgsql AS $$
       DECLARE row jsonb;
       BEGIN
         row := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
         EXECUTE format('UPDATE %I SET updated_at = now() WHERE %I = $1', TG_ARGV[0], TG_ARGV[1])
           USING row ->> TG_ARGV[1];
         RETURN NULL;
       END $$""",
]


def _sqlite(system: str) -> list[str]:
    out = []
    for f in FEEDS[system]:
        touch = f"UPDATE {f.table} SET updated_at = {SQLITE_NOW} WHERE rowid = NEW.rowid"
        out += [f"CREATE TRIGGER {f.table}_touch_insert AFTER INSERT ON {f.table} FOR EACH ROW BEGIN {touch}; END",
                f"CREATE TRIGGER {f.table}_touch_update AFTER UPDATE ON {f.table} FOR EACH ROW "
                f"WHEN NEW.updated_at IS OLD.updated_at BEGIN {touch}; END"]
    for child, parent, col in CHILDREN.get(system, []):
        for op, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
            out.append(f"CREATE TRIGGER {child}_touch_{op.lower()} AFTER {op} ON {child} FOR EACH ROW BEGIN "
                       f"UPDATE {parent} SET updated_at = {SQLITE_NOW} WHERE {col} = {row}.{col}; END")
    return out


def _postgres(system: str) -> list[str]:
    out = list(PG_FUNCTIONS)
    for f in FEEDS[system]:
        out += [f"CREATE TRIGGER {f.table}_touch BEFORE INSERT OR UPDATE ON {f.table} FOR EACH ROW "
                "EXECUTE FUNCTION cg_touch()",
                f"CREATE TRIGGER {f.table}_notify AFTER INSERT OR UPDATE OR DELETE ON {f.table} FOR EACH ROW "
                f"EXECUTE FUNCTION cg_notify('{f.channel}', '{f.entity}', '{f.key}')"]
    for child, parent, col in CHILDREN.get(system, []):
        out.append(f"CREATE TRIGGER {child}_touch AFTER INSERT OR UPDATE OR DELETE ON {child} FOR EACH ROW "
                   f"EXECUTE FUNCTION cg_touch_parent('{parent}', '{col}')")
    return out


def _mariadb(system: str) -> list[str]:
    now = "CURRENT_TIMESTAMP(6)"
    out = [f"ALTER TABLE {f.table} MODIFY updated_at DATETIME(6) NOT NULL DEFAULT {now} ON UPDATE {now}"
           for f in FEEDS[system]]
    for child, parent, col in CHILDREN.get(system, []):
        for op, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
            out.append(f"CREATE TRIGGER {child}_touch_{op.lower()} AFTER {op} ON {child} FOR EACH ROW "
                       f"UPDATE {parent} SET updated_at = {now} WHERE {col} = {row}.{col}")
    return out


async def install(conn: AsyncConnection, system: str) -> None:
    """Set every row's updated_at to now, then install the triggers that keep it (and NOTIFY) current."""
    dialect = conn.dialect.name
    now = {"sqlite": SQLITE_NOW, "postgresql": "now() AT TIME ZONE 'UTC'"}.get(dialect, "CURRENT_TIMESTAMP(6)")
    for f in FEEDS[system]:
        await conn.execute(text(f"UPDATE {f.table} SET updated_at = {now}"))
    ddl = {"sqlite": _sqlite, "postgresql": _postgres}.get(dialect, _mariadb)(system)
    for statement in ddl:
        await conn.execute(text(statement))
