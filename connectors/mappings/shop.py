"""Web shop (SQL): orders with lines, keyed by the shop account (the email as the customer typed it)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

from connectors.sql import SqlConnector
from schema.graph import enum, record

Order, OrderLine, Channel, OrderStatus = record("Order"), record("OrderLine"), enum("Channel"), enum("OrderStatus")

CHANNELS = {"web": Channel.WEB, "store": Channel.STORE, "phone": Channel.VOICE}
SQL = """
SELECT o.order_number, o.account_email, o.placed_at, o.channel, o.status, o.total, o.currency,
       l.line_no, l.sku, l.description, l.quantity, l.unit_price
FROM orders o LEFT JOIN order_lines l ON l.order_number = o.order_number
WHERE o.account_email IN :keys
ORDER BY o.placed_at DESC, o.order_number, l.line_no
"""


def _utc(value: Any) -> datetime:
    """The shop stores naive UTC timestamps (SQLite hands them back as text)."""
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return dt.replace(tzinfo=timezone.utc)


async def fetch_orders(c: SqlConnector, keys: list[str]) -> dict[str, list[Order]]:
    orders: dict[str, Order] = {}
    out: dict[str, list[Order]] = defaultdict(list)
    # Account emails compare exactly here, even on a case-insensitive collation (MariaDB).
    wanted = set(keys)
    for r in await c.rows(SQL, keys):
        order = orders.get(r["order_number"])
        if order is None and r["account_email"] in wanted:
            order = orders[r["order_number"]] = Order(
                number=r["order_number"], placed_at=_utc(r["placed_at"]), channel=CHANNELS[r["channel"]],
                status=OrderStatus(r["status"]), total=float(r["total"]), currency=r["currency"])
            out[r["account_email"]].append(order)
        if order is not None and r["line_no"] is not None:
            order.lines.append(OrderLine(int(r["line_no"]), r["sku"], r["description"], int(r["quantity"]),
                                         float(r["unit_price"])))
    return out


ENTITIES = {"orders": fetch_orders}
