"""The web shop's joined rows (an order repeated once per line) as orders, each with its lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

LINE = ("line_no", "sku", "description", "quantity", "unit_price")


def orders_from_rows(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Orders by account email, in the rows' order, each a dict of its columns plus `lines`: the line
    columns of its rows (a LEFT JOIN gives an order without lines one row whose line_no is null)."""
    orders: dict[Any, dict[str, Any]] = {}
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        number = r["order_number"]
        order = orders.get(number)
        if order is None:
            order = orders[number] = {**r, "lines": []}
            out.setdefault(r["account_email"], []).append(order)
        if r["line_no"] is not None:
            order["lines"].append({c: r[c] for c in LINE})
    return out
