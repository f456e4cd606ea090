"""Every system's data reaches the graph correctly, checked against the generator's ground truth."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from estate.generate import golden_id
from tests.harness import Gateway
from tests.queries import CUSTOMERS_FULL
from tests.truth import Truth

SEGMENTS = {"CONS": "CONSUMER", "SMB": "SMALL_BUSINESS", "ENT": "ENTERPRISE", "VIP": "VIP"}
ORDER_CHANNELS = {"web": "WEB", "store": "STORE", "phone": "VOICE"}
SHIP_CODES = {"LBL": "LABEL_CREATED", "INT": "IN_TRANSIT", "OFD": "OUT_FOR_DELIVERY", "DLV": "DELIVERED",
              "EXC": "EXCEPTION", "RTN": "RETURNED"}


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.fixture(scope="module")
def graph(gateway: Gateway, truth: Any) -> dict[str, dict[str, Any]]:
    """The full view of every customer in the estate, fetched 100 at a time."""
    out: dict[str, dict[str, Any]] = {}
    ids = [golden_id(n) for n in range(1, truth.customers + 1)]
    for start in range(0, len(ids), 100):
        answer = gateway.gql(CUSTOMERS_FULL, {"ids": ids[start:start + 100]})
        assert "errors" not in answer, answer.get("errors")
        for c in answer["data"]["customers"]:
            out[c["id"]] = c
    return out


@pytest.fixture(scope="module")
def t(truth: Any) -> Truth:
    return Truth(truth)


def test_every_customer_comes_back_without_errors(graph: dict[str, Any], truth: Any) -> None:
    assert len(graph) == truth.customers


def test_crm_and_identities(graph: dict[str, Any], t: Truth) -> None:
    keys = {}
    for row in t.est.match_keys:
        keys.setdefault((row["golden_id"], row["kind"]), row["match_key"])
    for gid, c in graph.items():
        crm = t.crm(gid)
        assert crm, gid
        assert c["name"] == f"{crm[0]['given_name'].title()} {crm[0]['family_name']}"
        assert c["emails"] == [keys[(gid, "email")]]  # messy case and spaces folded to one address
        assert c["phones"] == [keys[(gid, "phone")]]  # every typed format folded to E.164
        assert c["segment"] == SEGMENTS[crm[0]["segment_code"]]
        assert c["preferences"]["language"] == crm[0]["lang"]
        assert c["identities"] == t.identities(gid)
    duplicates = [gid for gid in graph if len(t.crm(gid)) > 1]
    assert duplicates, "the estate should hold a few duplicate CRM records"
    for gid in duplicates:
        assert [i["system"] for i in graph[gid]["identities"]].count("crm") == 2
        assert len(graph[gid]["emails"]) == 1


def test_billing_accounts_and_invoices(graph: dict[str, Any], t: Truth) -> None:
    seen = 0
    for gid, c in graph.items():
        expected = t.accounts(gid)
        assert [a["number"] for a in c["accounts"]] == [a["accountNumber"] for a in expected]
        for got, want in zip(c["accounts"], expected):
            seen += 1
            assert got["balance"] == pytest.approx(float(want["balance"]))
            assert got["overdue"] == want["overdue"] and got["status"] == want["status"]
            assert [(i["number"], i["status"].lower(), i["amount"]) for i in got["invoices"]] == \
                   [(i["invoiceNumber"], i["state"], float(i["amount"])) for i in want["invoices"]]
            assert all(date.fromisoformat(i["dueOn"]) for i in got["invoices"])
        assert {i["number"] for i in c["invoices"]} == {i["invoiceNumber"] for a in expected for i in a["invoices"]}
    assert seen > 100


def test_orders_lines_and_shipments(graph: dict[str, Any], t: Truth) -> None:
    shipped = 0
    for gid, c in graph.items():
        expected = {o["order_number"]: o for o in t.orders(gid)}
        assert {o["number"] for o in c["orders"]} == set(expected)
        placed = [ts(o["placedAt"]) for o in c["orders"]]
        assert placed == sorted(placed, reverse=True)  # newest first
        for o in c["orders"]:
            want = expected[o["number"]]
            assert ts(o["placedAt"]) == ts(want["placed_at"])
            assert o["channel"] == ORDER_CHANNELS[want["channel"]] and o["total"] == pytest.approx(want["total"])
            assert [(li["sku"], li["quantity"]) for li in o["lines"]] == \
                   [(li["sku"], li["quantity"]) for li in t.lines[o["number"]]]
            ships = t.est.shipping.get(o["number"], [])
            assert [(s["id"], s["status"], s["carrier"]) for s in o["shipments"]] == \
                   [(s["shipmentId"], SHIP_CODES[s["statusCode"]], s["carrier"]) for s in ships]
            shipped += len(ships)
    assert shipped > 100


def test_helpdesk_tickets_across_pages(graph: dict[str, Any], t: Truth) -> None:
    many = 0
    for gid, c in graph.items():
        expected = {str(x["id"]): x for x in t.tickets(gid)}
        assert {x["id"] for x in c["tickets"]} == set(expected)
        many += len(expected) > 5  # more than one helpdesk page
        for x in c["tickets"]:
            want = expected[x["id"]]
            assert x["status"] == {"hold": "ON_HOLD"}.get(want["status"], want["status"].upper())
            assert x["priority"] == want["priority"].upper() and ts(x["createdAt"]) == ts(want["created_at"])
    assert many > 0, "some requester should have more tickets than one helpdesk page holds"


def test_contact_center_interactions_and_agents(graph: dict[str, Any], t: Truth) -> None:
    for gid, c in graph.items():
        expected = {i["interactionId"]: i for i in t.interactions(gid)}
        assert {i["id"] for i in c["interactions"]} == set(expected)
        for i in c["interactions"]:
            want = expected[i["id"]]
            assert int(ts(i["startedAt"]).timestamp()) == want["startEpoch"]  # epoch seconds -> DateTime
            assert i["durationS"] == want["endEpoch"] - want["startEpoch"]
            assert i["channel"] == want["mediaType"].upper()
            agent = t.est.staff.get(want["agentId"] or "")
            assert (i["agent"] or {}).get("name") == (agent or {}).get("displayName")


def test_marketing_offers(graph: dict[str, Any], t: Truth) -> None:
    for gid, c in graph.items():
        want = t.marketing(gid)
        if want is None:
            assert c["marketing"] is None and c["offers"] == []
            continue
        assert c["marketing"]["contactId"] == want["contactId"]
        assert c["marketing"]["optedOut"] == want["unsubscribed"]
        assert {o["id"] for o in c["offers"]} == {s["sendId"] for s in want["sends"]}


def test_loyalty_members(graph: dict[str, Any], t: Truth) -> None:
    members = 0
    for gid, c in graph.items():
        want = t.loyalty(gid)
        if want is None:
            assert c["loyalty"] is None
            continue
        members += 1
        got = c["loyalty"]
        assert (got["cardNumber"], got["tier"], got["points"], got["memberSince"]) == \
               (want["cardNumber"], want["tier"], want["points"], want["memberSince"])
        assert [r["id"] for r in got["rewards"]] == [r["rewardId"] for r in want["rewards"]]
    assert members > 50


def test_warranty_registrations_and_claims(graph: dict[str, Any], t: Truth) -> None:
    claims = 0
    for gid, c in graph.items():
        expected = {w["serial"]: w for w in t.warranties(gid)}
        assert {w["serial"] for w in c["warranties"]} == set(expected)
        for w in c["warranties"]:
            want = expected[w["serial"]]
            # DD/MM/YYYY in the legacy XML, ISO dates in the graph
            assert date.fromisoformat(w["purchasedOn"]) == want["purchaseDate"]
            assert date.fromisoformat(w["warrantyEndsOn"]) == want["warrantyEnd"]
            assert [(x["number"], x["rmaNumber"], date.fromisoformat(x["openedOn"]), x["status"].lower())
                    for x in w["claims"]] == \
                   [(x["claimNo"], x["rmaNo"], x["opened"], x["status"].lower()) for x in want["claims"]]
            claims += len(w["claims"])
    assert claims > 10


def test_web_analytics_sessions(graph: dict[str, Any], t: Truth) -> None:
    for gid, c in graph.items():
        expected = {s["sessionId"]: s for s in t.sessions(gid)}
        assert {s["id"] for s in c["webActivity"]} == set(expected)
        for s in c["webActivity"]:
            assert s["productsViewed"] == expected[s["id"]]["productsViewed"]


def test_systems_missing_the_customer_give_empty_fields(graph: dict[str, Any], t: Truth) -> None:
    absent = [gid for gid in graph if not t.ids[gid]["billing"] and not t.ids[gid]["helpdesk"]]
    assert absent
    for gid in absent:
        assert graph[gid]["accounts"] == [] and graph[gid]["tickets"] == []
