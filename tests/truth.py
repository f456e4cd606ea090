"""What the graph should say about a golden customer, computed from the generator's raw data."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

from estate.generate import Estate


def iso_z(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


class Truth:
    def __init__(self, est: Estate) -> None:
        self.est = est

    @cached_property
    def ids(self) -> dict[str, dict[str, list[str]]]:
        out: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for row in self.est.crosswalk:
            out[row["golden_id"]][row["system"]].append(row["system_key"])
        return out

    @cached_property
    def lines(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for line in self.est.shop_lines:
            out[line["order_number"]].append(line)
        return out

    def identities(self, gid: str) -> list[dict[str, str]]:
        return [{"system": system, "id": key} for system, key in self.est.identities(gid)]

    def crm(self, gid: str) -> list[dict[str, Any]]:
        keys = set(self.ids[gid]["crm"])
        return [r for r in self.est.crm if r["cust_no"] in keys]

    def orders(self, gid: str) -> list[dict[str, Any]]:
        accounts = set(self.ids[gid]["shop"])
        return [o for o in self.est.shop_orders if o["account_email"] in accounts]

    def accounts(self, gid: str) -> list[dict[str, Any]]:
        return [self.est.billing[a] for a in self.ids[gid]["billing"]]

    def tickets(self, gid: str) -> list[dict[str, Any]]:
        return [t for e in self.ids[gid]["helpdesk"] for t in self.est.helpdesk[e]]

    def interactions(self, gid: str) -> list[dict[str, Any]]:
        return [i for p in self.ids[gid]["contact"] for i in self.est.contact[p]]

    def marketing(self, gid: str) -> dict[str, Any] | None:
        ids = self.ids[gid]["marketing"]
        return self.est.marketing[ids[0]] if ids else None

    def loyalty(self, gid: str) -> dict[str, Any] | None:
        ids = self.ids[gid]["loyalty"]
        return self.est.loyalty[ids[0]] if ids else None

    def warranties(self, gid: str) -> list[dict[str, Any]]:
        return [w for r in self.ids[gid]["warranty"] for w in self.est.warranty[r]]

    def sessions(self, gid: str) -> list[dict[str, Any]]:
        return [s for v in self.ids[gid]["analytics"] for s in self.est.analytics[v]]


def _ts(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and len(value) == 10:
        return datetime.fromisoformat(value + "T00:00:00+00:00").timestamp()
    if not isinstance(value, str):  # a date
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc).timestamp()
    return datetime.fromisoformat(value).timestamp()


def timeline(t: Truth, gid: str) -> list[tuple[float, str, str, str]]:
    """Every event of the customer as (timestamp, source, kind, record id), in the timeline's order."""
    ev: list[tuple[float, str, str, str]] = []
    for o in t.orders(gid):
        ev.append((_ts(o["placed_at"]), "shop", "order_placed", o["order_number"]))
        for s in t.est.shipping.get(o["order_number"], []):
            if s["shippedAt"]:
                ev.append((_ts(s["shippedAt"]), "shipping", "shipped", s["shipmentId"]))
            if s["deliveredAt"]:
                ev.append((_ts(s["deliveredAt"]), "shipping", "delivered", s["shipmentId"]))
    ev += [(_ts(x["created_at"]), "helpdesk", "ticket_opened", str(x["id"])) for x in t.tickets(gid)]
    ev += [(_ts(i["startEpoch"]), "contact", "contact", i["interactionId"]) for i in t.interactions(gid)]
    m = t.marketing(gid)
    for s in (m or {}).get("sends", []):
        ev.append((_ts(s["sentAt"]), "marketing", "offer_sent", s["sendId"]))
        if s["respondedAt"]:
            ev.append((_ts(s["respondedAt"]), "marketing", "offer_response", s["sendId"]))
    ev += [(_ts(c["opened"]), "warranty", "claim_opened", c["claimNo"]) for w in t.warranties(gid) for c in w["claims"]]
    ev += [(_ts(i["issueDate"]), "billing", "invoice_issued", i["invoiceNumber"])
           for a in t.accounts(gid) for i in a["invoices"]]
    ev += [(_ts(s["startedAt"]), "analytics", "web_session", s["sessionId"]) for s in t.sessions(gid)]
    return sorted(ev, key=lambda e: (-e[0], e[1], e[2], e[3]))
