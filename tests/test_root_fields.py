"""The public root fields: customer, customers, findCustomers."""

from __future__ import annotations

from typing import Any

import pytest

from estate.generate import golden_id
from tests.harness import Gateway
from tests.queries import POINT_OF_SALE
from tests.truth import Truth

NAME = "query($id: ID!) { customer(id: $id) { id name } }"
FIND = """query($email: String, $phone: String, $card: String, $sys: SystemIdInput) {
  findCustomers(email: $email, phone: $phone, loyaltyCard: $card, systemId: $sys) { id } }"""


def found(gateway: Gateway, **variables: Any) -> list[str]:
    answer = gateway.gql(FIND, variables)
    assert "errors" not in answer, answer
    return [c["id"] for c in answer["data"]["findCustomers"]]


def test_customer_by_id(gateway: Gateway, truth: Any) -> None:
    answer = gateway.gql(NAME, {"id": "C-000042"})
    crm = Truth(truth).crm("C-000042")[0]
    assert answer == {"data": {"customer": {"id": "C-000042",
                                            "name": f"{crm['given_name'].title()} {crm['family_name']}"}}}


def test_customers_keeps_order_and_nulls_unknown_ids(gateway: Gateway) -> None:
    ids = ["C-000007", "C-999999", "C-000003", "nope", "C-000007"]
    answer = gateway.gql("query($ids: [ID!]!) { customers(ids: $ids) { id } }", {"ids": ids})
    assert answer["data"]["customers"] == [{"id": "C-000007"}, None, {"id": "C-000003"}, None, {"id": "C-000007"}]
    errors = {tuple(e["path"]): e["extensions"]["code"] for e in answer["errors"]}
    assert errors == {("customers", 1): "NOT_FOUND", ("customers", 3): "BAD_USER_INPUT"}


def test_find_by_email_in_any_case_and_spacing(gateway: Gateway, truth: Any) -> None:
    t = Truth(truth)
    for gid in (golden_id(n) for n in range(1, 60)):
        shop = t.ids[gid]["shop"]
        crm_email = t.crm(gid)[0]["email_addr"]  # as the CRM holds it: odd case, stray spaces
        assert gid in found(gateway, email=crm_email)
        if shop:
            assert gid in found(gateway, email=f"  {shop[0].upper()} ")


def test_find_by_phone_in_every_format(gateway: Gateway, truth: Any) -> None:
    t = Truth(truth)
    for gid in (golden_id(n) for n in range(1, 40)):
        for row in t.crm(gid):
            for typed in filter(None, (row["phone_home"], row["phone_mobile"])):
                assert gid in found(gateway, phone=typed), (gid, typed)


def test_find_by_loyalty_card_and_system_id(gateway: Gateway, truth: Any) -> None:
    t = Truth(truth)
    members = [g for g in (golden_id(n) for n in range(1, 100)) if t.ids[g]["loyalty"]]
    gid = members[0]
    card = t.ids[gid]["loyalty"][0]
    assert found(gateway, card=f"{card[:4]} {card[4:8]} {card[8:]}") == [gid]
    for system in ("billing", "helpdesk", "marketing", "warranty", "crm"):
        holder = next(g for g in (golden_id(n) for n in range(1, 100)) if t.ids[g][system])
        assert found(gateway, sys={"system": system, "id": t.ids[holder][system][0]}) == [holder]


def test_find_combines_identifiers_best_first(gateway: Gateway, truth: Any) -> None:
    t = Truth(truth)
    phones: dict[str, list[str]] = {}
    for row in truth.match_keys:
        if row["kind"] == "phone":
            phones.setdefault(row["match_key"], []).append(row["golden_id"])
    shared = {p: sorted(set(g)) for p, g in phones.items() if len(set(g)) > 1}
    assert shared, "the estate should hold households sharing a phone"
    phone, gids = next(iter(shared.items()))
    assert found(gateway, phone=phone) == gids  # the crosswalk cannot tell them apart
    email = next(r["match_key"] for r in truth.match_keys if r["golden_id"] == gids[1] and r["kind"] == "email")
    assert found(gateway, phone=phone, email=email) == [gids[1]]  # the email settles it
    assert t.ids[gids[0]]["crm"]


def test_find_unknown_gives_empty_list(gateway: Gateway) -> None:
    assert found(gateway, email="nobody@nowhere.example") == []


def test_point_of_sale_query(gateway: Gateway, truth: Any) -> None:
    t = Truth(truth)
    gid = next(g for g in (golden_id(n) for n in range(1, 200))
               if t.ids[g]["helpdesk"] and t.ids[g]["marketing"] and t.ids[g]["billing"])
    phone = t.crm(gid)[0]["phone_home"]
    answer = gateway.gql(POINT_OF_SALE, {"phone": phone})
    assert "errors" not in answer
    customer = next(c for c in answer["data"]["findCustomers"] if c["id"] == gid)
    assert {"billing", "helpdesk", "marketing"} <= {i["system"] for i in customer["identities"]}
    unresolved = {str(x["id"]) for x in t.tickets(gid) if x["status"] in ("new", "open", "pending", "hold")}
    assert {x["id"] for x in customer["tickets"]} == unresolved


@pytest.mark.parametrize("args", ['status: OPEN', 'unresolved: false'])
def test_ticket_filters(gateway: Gateway, args: str) -> None:
    query = "query($ids: [ID!]!) { customers(ids: $ids) { tickets(%s) { status } } }" % args
    answer = gateway.gql(query, {"ids": [golden_id(n) for n in range(1, 60)]})
    statuses = {x["status"] for c in answer["data"]["customers"] for x in c["tickets"]}
    assert statuses and (statuses == {"OPEN"} if "OPEN" in args else statuses <= {"SOLVED", "CLOSED"})
