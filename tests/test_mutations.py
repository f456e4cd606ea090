"""Write-backs: recordInteraction (contact center) and updatePreferences (CRM), with their retries and
failure paths. A separate estate, so the shared one keeps matching the ground truth."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from estate.generate import generate
from tests.harness import LIVE, Estate, Gateway, gateway_config, running_estate, running_gateway, start_gateway
from tests.truth import Truth

RECORD = """mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) {
  id channel summary agentId startedAt phone } }"""
UPDATE = """mutation($input: UpdatePreferencesInput!) { updatePreferences(input: $input) {
  id preferences { preferredChannel language consent { email sms phone } } } }"""
LATEST = """query($id: ID!) { customer(id: $id) { interactions(first: 100) { id }
  timeline(first: 1) { edges { node { kind summary record { ... on Interaction { id } } } } } } }"""


@pytest.fixture(scope="module")
def est(workdir: Path) -> Iterator[Estate]:
    yield from running_estate(workdir, "writes", 300, 7)


@pytest.fixture(scope="module")
def t(est: Estate) -> Truth:
    return Truth(generate(est.customers, est.seed, est.as_of))


@pytest.fixture(scope="module")
def gw(est: Estate, workdir: Path) -> Iterator[Gateway]:
    yield from running_gateway(gateway_config(est), workdir, "writes")


def key() -> str:
    return f"test-{uuid.uuid4()}"


def record(gw: Gateway, **fields: Any) -> dict[str, Any]:
    return gw.gql(RECORD, {"input": fields})


def code(answer: dict[str, Any]) -> str:
    return answer["errors"][0]["extensions"]["code"]


def test_record_interaction_shows_on_the_timeline_at_once(gw: Gateway, t: Truth) -> None:
    gid = next(g for g in sorted(t.ids) if t.ids[g]["contact"])
    before = gw.gql(LATEST, {"id": gid})["data"]["customer"]  # warms the cache on purpose
    answer = record(gw, customerId=gid, channel="CHAT", summary="Asked to continue by phone", agentId="AG-007",
                    idempotencyKey=key())
    created = answer["data"]["recordInteraction"]
    assert created["id"] and created["channel"] == "CHAT" and created["agentId"] == "AG-007"
    after = gw.gql(LATEST, {"id": gid})["data"]["customer"]
    assert len(after["interactions"]) == len(before["interactions"]) + 1
    newest = after["timeline"]["edges"][0]["node"]
    assert newest["kind"] == "CONTACT" and newest["record"]["id"] == created["id"]


def test_retry_with_the_same_key_creates_nothing_twice(gw: Gateway, t: Truth) -> None:
    gid = next(g for g in sorted(t.ids)[10:] if t.ids[g]["contact"])
    k = key()
    first = record(gw, customerId=gid, channel="VOICE", summary="Callback requested", idempotencyKey=k)
    second = record(gw, customerId=gid, channel="VOICE", summary="Callback requested", idempotencyKey=k)
    assert first == second and "errors" not in first
    ids = [i["id"] for i in gw.gql(LATEST, {"id": gid}, LIVE)["data"]["customer"]["interactions"]]
    assert ids.count(first["data"]["recordInteraction"]["id"]) == 1


def test_first_contact_links_the_crm_phone(gw: Gateway, t: Truth) -> None:
    gid = next(g for g in sorted(t.ids) if not t.ids[g]["contact"])
    created = record(gw, customerId=gid, channel="SMS", summary="Sent delivery slot", idempotencyKey=key())
    phone = created["data"]["recordInteraction"]["phone"]
    assert phone.startswith("+")
    view = gw.gql("query($id: ID!) { customer(id: $id) { identities(system: \"contact\") { id } "
                  "interactions { id } } }", {"id": gid})["data"]["customer"]
    assert view["identities"] == [{"id": phone}]
    assert [i["id"] for i in view["interactions"]] == [created["data"]["recordInteraction"]["id"]]


@pytest.mark.parametrize("fields,expected", [
    ({"customerId": "C-999999"}, "NOT_FOUND"),
    ({"customerId": "oops"}, "BAD_USER_INPUT"),
    ({"channel": "WEB"}, "BAD_USER_INPUT"),
    ({"summary": "   "}, "BAD_USER_INPUT"),
    ({"summary": "x" * 2001}, "BAD_USER_INPUT"),
    ({"idempotencyKey": "short"}, "BAD_USER_INPUT"),
    ({"agentId": "AG-999"}, "BAD_USER_INPUT"),
])
def test_record_interaction_validation(gw: Gateway, est: Estate, fields: dict[str, Any], expected: str) -> None:
    est.reset_stats()
    answer = record(gw, **{"customerId": "C-000003", "channel": "EMAIL", "summary": "Hello",
                           "idempotencyKey": key(), **fields})
    assert answer["data"] == {"recordInteraction": None} and code(answer) == expected
    assert est.stats("contact")["requests"] == 0  # nothing reached the contact center


def test_bad_channel_name_is_a_graphql_error(gw: Gateway) -> None:
    answer = record(gw, customerId="C-000003", channel="PIGEON", summary="Hello", idempotencyKey=key())
    assert "data" not in answer and code(answer) == "BAD_USER_INPUT"


def test_failed_write_reports_and_writes_nothing_then_retry_succeeds_once(gw: Gateway, est: Estate,
                                                                           t: Truth) -> None:
    gid = next(g for g in sorted(t.ids)[20:] if t.ids[g]["contact"])
    count = len(gw.gql(LATEST, {"id": gid}, LIVE)["data"]["customer"]["interactions"])
    k = key()
    est.faults("contact", {"status": 500})
    try:
        failed = record(gw, customerId=gid, channel="EMAIL", summary="Refund confirmed", idempotencyKey=k)
    finally:
        est.clear_faults()
    assert failed["data"] == {"recordInteraction": None}
    assert failed["errors"][0]["extensions"] == {"code": "SOURCE_UNAVAILABLE", "source": "contact"}
    assert len(gw.gql(LATEST, {"id": gid}, LIVE)["data"]["customer"]["interactions"]) == count
    retried = record(gw, customerId=gid, channel="EMAIL", summary="Refund confirmed", idempotencyKey=k)
    again = record(gw, customerId=gid, channel="EMAIL", summary="Refund confirmed", idempotencyKey=k)
    assert "errors" not in retried and retried == again
    assert len(gw.gql(LATEST, {"id": gid}, LIVE)["data"]["customer"]["interactions"]) == count + 1


def test_update_preferences_writes_every_crm_record(gw: Gateway, est: Estate, t: Truth) -> None:
    gid = next(g for g in sorted(t.ids) if len(t.ids[g]["crm"]) == 2)  # entered twice in the CRM
    answer = gw.gql(UPDATE, {"input": {"customerId": gid, "preferredChannel": "SMS", "language": "fr",
                                       "consent": {"email": False, "sms": True}}})
    prefs = answer["data"]["updatePreferences"]["preferences"]
    assert prefs["preferredChannel"] == "SMS" and prefs["language"] == "fr"
    assert prefs["consent"]["email"] is False and prefs["consent"]["sms"] is True
    assert prefs["consent"]["phone"] == bool(t.crm(gid)[0]["consent_phone"])  # left out: unchanged
    again = gw.gql("query($id: ID!) { customer(id: $id) { preferences { preferredChannel language } } }",
                   {"id": gid})  # the cached CRM record was dropped: this reads the new one
    assert again["data"]["customer"]["preferences"] == {"preferredChannel": "SMS", "language": "fr"}
    db = sqlite3.connect(str(est.data / "crm.sqlite"))
    rows = db.execute("SELECT lang, pref_contact FROM customers WHERE cust_no IN (?, ?)",
                      t.ids[gid]["crm"]).fetchall()
    assert rows == [("fr", "S"), ("fr", "S")]


@pytest.mark.parametrize("fields,expected", [
    ({"customerId": "C-999999", "language": "de"}, "NOT_FOUND"),
    ({"customerId": "C-000004", "language": "french"}, "BAD_USER_INPUT"),
    ({"customerId": "C-000004", "preferredChannel": "WEB"}, "BAD_USER_INPUT"),
    ({"customerId": "C-000004"}, "BAD_USER_INPUT"),
])
def test_update_preferences_validation(gw: Gateway, fields: dict[str, Any], expected: str) -> None:
    answer = gw.gql(UPDATE, {"input": fields})
    assert answer["data"] == {"updatePreferences": None} and code(answer) == expected


def test_update_preferences_with_the_crm_down_reports_and_changes_nothing(est: Estate, workdir: Path,
                                                                          t: Truth) -> None:
    cfg = gateway_config(est)
    cfg["sources"]["crm"]["dsn"] = "postgresql+asyncpg://postgres@127.0.0.1:1/none"
    g = start_gateway(cfg, workdir, "crm-down")
    try:
        answer = g.gql(UPDATE, {"input": {"customerId": "C-000005", "language": "de"}})
        assert answer["data"] == {"updatePreferences": None}
        assert answer["errors"][0]["extensions"]["source"] == "crm"
    finally:
        g.stop()
