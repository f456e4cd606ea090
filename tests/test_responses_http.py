"""The response cache end to end: repeats answered without a source call and marked, never across roles,
dropped by mutations and /cache/invalidate, skipped and refreshed by no-cache, errors never kept, an
expired answer served when its source fails, and the access log and metrics saying so. An estate of its
own: its records are written to."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from estate.generate import generate
from server.policy import mask_email
from tests.harness import LIVE, Estate, Gateway, gateway_config, http, running_estate, running_gateway, start_gateway
from tests.test_access_log import line_of
from tests.test_metrics_http import get, scrape
from tests.truth import Truth

TOKEN = "test-admin-token"
VIEW = """query Seen($id: ID!) { customer(id: $id) { id name emails
  preferences { preferredChannel language } loyalty { tier points } } }"""
POS = "query Till($id: ID!) { customer(id: $id) { id name emails } }"
LATEST = "query Latest($id: ID!) { customer(id: $id) { interactions(first: 100) { id } } }"
RECORD = "mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) { id } }"
UPDATE = "mutation($input: UpdatePreferencesInput!) { updatePreferences(input: $input) { id } }"


@pytest.fixture(scope="module")
def est(workdir: Path) -> Iterator[Estate]:
    yield from running_estate(workdir, "responses", 200, 11)


@pytest.fixture(scope="module")
def t(est: Estate) -> Truth:
    return Truth(generate(est.customers, est.seed, est.as_of))


def config(est: Estate, **cache: Any) -> dict[str, Any]:
    cfg = gateway_config(est, {"loyalty": {"ttl_s": {"loyalty": 1}, "retries": 0}})
    cfg["cache"] = {"enabled": True, "admin_token": TOKEN, **cache}
    return cfg


@pytest.fixture(scope="module")
def gw(est: Estate, workdir: Path) -> Iterator[Gateway]:
    yield from running_gateway(config(est), workdir, "responses")


def people(t: Truth, start: int, n: int, *systems: str) -> list[str]:
    """n golden ids from `start` on, each known to every one of `systems`."""
    return [g for g in sorted(t.ids)[start:] if all(t.ids[g][s] for s in systems)][:n]


def calls(est: Estate) -> int:
    """Requests the HTTP sources have had (the SQL ones, crm and crosswalk, show in the access log)."""
    return sum(est.stats(s)["requests"] for s in est.ports)


def mark(answer: dict[str, Any]) -> str | None:
    return (answer.get("extensions") or {}).get("cache", {}).get("response")


def invalidate(gw: Gateway, body: dict[str, Any]) -> int:
    return http("POST", gw.url + "/cache/invalidate", json.dumps(body).encode(),
                {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"})[0]


def test_a_repeat_is_answered_from_the_cache_without_a_source_call(gw: Gateway, est: Estate, t: Truth) -> None:
    gid, other_id = people(t, 0, 2, "crm", "loyalty")
    first = gw.gql(VIEW, {"id": gid})
    assert "errors" not in first and mark(first) is None
    est.reset_stats()
    rid = f"test-{uuid.uuid4().hex}"
    again = gw.gql(VIEW, {"id": gid}, {"x-request-id": rid})
    assert calls(est) == 0 and line_of(gw, rid)["sources"] == []
    assert again["data"] == first["data"] and mark(again) == "hit"
    assert 0 <= again["extensions"]["cache"]["age_s"] < 60
    other = gw.gql(VIEW, {"id": other_id})  # other variables: another answer
    assert mark(other) is None and other["data"]["customer"]["id"] == other_id


def test_a_role_never_gets_another_roles_answer(gw: Gateway, t: Truth) -> None:
    gid = next(g for g in people(t, 10, 20, "crm") if t.crm(g)[0]["email_addr"])
    agent = gw.gql(POS, {"id": gid})
    pos = gw.gql(POS, {"id": gid}, role="pos")
    assert mark(pos) is None and pos["data"]["customer"]["emails"] != agent["data"]["customer"]["emails"]
    assert pos["extensions"]["masked"] == {"Customer.emails": "email"}
    assert all(mask_email(e) in pos["data"]["customer"]["emails"] for e in agent["data"]["customer"]["emails"])
    again = gw.gql(POS, {"id": gid}, role="pos")
    assert mark(again) == "hit" and again["data"] == pos["data"]
    assert again["extensions"]["masked"] == {"Customer.emails": "email"}
    assert gw.gql(POS, {"id": gid})["data"] == agent["data"]  # and the agent still gets its own


def test_update_preferences_drops_the_answers_that_read_what_it_wrote(gw: Gateway, t: Truth) -> None:
    gid, bystander = people(t, 30, 2, "crm")
    gw.gql(VIEW, {"id": gid})
    gw.gql(VIEW, {"id": bystander})
    written = gw.gql(UPDATE, {"input": {"customerId": gid, "preferredChannel": "SMS", "language": "fr"}})
    assert "errors" not in written, written
    after = gw.gql(VIEW, {"id": gid})
    assert mark(after) is None
    assert after["data"]["customer"]["preferences"] == {"preferredChannel": "SMS", "language": "fr"}
    assert mark(gw.gql(VIEW, {"id": bystander})) == "hit"  # it read none of those records


def test_record_interaction_drops_the_answers_that_listed_them(gw: Gateway, t: Truth) -> None:
    gid = people(t, 40, 1, "contact")[0]
    before = gw.gql(LATEST, {"id": gid})
    assert mark(gw.gql(LATEST, {"id": gid})) == "hit"
    created = gw.gql(RECORD, {"input": {"customerId": gid, "channel": "CHAT", "summary": "Asked about a refund",
                                        "idempotencyKey": f"test-{uuid.uuid4()}"}})
    assert "errors" not in created, created
    after = gw.gql(LATEST, {"id": gid})
    assert mark(after) is None
    ids = [i["id"] for i in after["data"]["customer"]["interactions"]]
    assert len(ids) == len(before["data"]["customer"]["interactions"]) + 1
    assert created["data"]["recordInteraction"]["id"] in ids


def test_cache_invalidate_drops_a_customers_answers_and_a_sources(gw: Gateway, t: Truth) -> None:
    gid, other = people(t, 50, 2, "crm", "loyalty")
    for g in (gid, other):
        gw.gql(VIEW, {"id": g})
    assert invalidate(gw, {"customer": gid}) == 200
    assert mark(gw.gql(VIEW, {"id": gid})) is None and mark(gw.gql(VIEW, {"id": other})) == "hit"
    assert invalidate(gw, {"source": "loyalty"}) == 200  # both read loyalty
    assert mark(gw.gql(VIEW, {"id": gid})) is None and mark(gw.gql(VIEW, {"id": other})) is None


def test_no_cache_skips_the_answer_and_replaces_it(gw: Gateway, est: Estate, t: Truth) -> None:
    gid = people(t, 60, 1, "crm")[0]
    crm_id = t.ids[gid]["crm"][0]
    first = gw.gql(VIEW, {"id": gid})
    with sqlite3.connect(str(est.data / "crm.sqlite")) as db:  # the CRM changes behind the gateway's back
        db.execute("UPDATE customers SET given_name = 'Renamed' WHERE cust_no = ?", (crm_id,))
    assert gw.gql(VIEW, {"id": gid})["data"] == first["data"]  # cached until its records expire
    est.reset_stats()
    live = gw.gql(VIEW, {"id": gid}, LIVE)
    assert mark(live) is None and live["data"]["customer"]["name"].startswith("Renamed")
    est.reset_stats()
    again = gw.gql(VIEW, {"id": gid})
    assert mark(again) == "hit" and again["data"] == live["data"] and calls(est) == 0


def test_errors_are_never_kept(gw: Gateway, est: Estate, t: Truth) -> None:
    gid = people(t, 70, 1, "loyalty")[0]
    est.faults("loyalty", {"down": True})
    failed = gw.gql(VIEW, {"id": gid})
    assert failed["errors"][0]["extensions"]["code"] == "SOURCE_UNAVAILABLE"
    assert mark(gw.gql(VIEW, {"id": gid})) is None  # asked again, not served the failure
    est.clear_faults()
    healed = gw.gql(VIEW, {"id": gid})
    assert "errors" not in healed and mark(healed) is None
    assert mark(gw.gql(VIEW, {"id": gid})) == "hit"


def test_a_hit_is_in_the_access_log_and_the_metrics(gw: Gateway, t: Truth) -> None:
    gid = people(t, 80, 1, "crm")[0]
    _, before = scrape(gw)
    rid = f"test-{uuid.uuid4().hex}"
    gw.gql(VIEW, {"id": gid})
    gw.gql(VIEW, {"id": gid}, {"x-request-id": rid})
    gw.gql(VIEW, {"id": gid}, LIVE)
    line = line_of(gw, rid)
    assert line["response_cache"] == "hit" and line["operation_name"] == "Seen" and line["sources"] == []
    assert line["outcome"] == "success"
    _, after = scrape(gw)
    name = "customer_graph_response_cache_requests_total"
    assert {r: get(after, name, result=r) - get(before, name, result=r) for r in ("hit", "miss", "bypass")} == \
        {"hit": 1, "miss": 1, "bypass": 1}
    assert get(after, "customer_graph_cache_entries", tier="responses") > 0


def test_an_expired_answer_is_served_when_its_source_fails(est: Estate, workdir: Path, t: Truth) -> None:
    # A records' tier of one entry: the records are gone by then, so only the stored answer can cover.
    g = start_gateway(config(est, max_entries=1), workdir, "responses-stale")
    try:
        gid, churn = people(t, 90, 2, "loyalty")
        first = g.gql(VIEW, {"id": gid})
        g.gql(VIEW, {"id": churn})
        time.sleep(1.2)  # past the loyalty record's TTL (1 s), and so the answer's
        est.faults("loyalty", {"down": True})
        stale = g.gql(VIEW, {"id": gid})
        assert "errors" not in stale and stale["data"] == first["data"]
        assert stale["extensions"]["cache"]["response"] == "stale" and stale["extensions"]["cache"]["age_s"] >= 1.0
        est.clear_faults()
        fresh = g.gql(VIEW, {"id": gid})
        assert "errors" not in fresh and mark(fresh) is None
        assert mark(g.gql(VIEW, {"id": gid})) == "hit"
    finally:
        g.stop()


def test_an_invalidation_at_one_gateway_drops_the_others_answers(est: Estate, workdir: Path, t: Truth,
                                                                 redis_url: str) -> None:
    cfg = config(est, redis_url=redis_url, namespace=f"cgtest-{uuid.uuid4().hex[:8]}")
    a = start_gateway(cfg, workdir, "responses-a")
    b = start_gateway(cfg, workdir, "responses-b")
    try:
        gid, other = people(t, 100, 2, "crm")  # POS reads no loyalty record: nothing of it expires here
        for g in (gid, other):
            b.gql(POS, {"id": g})
        assert mark(b.gql(POS, {"id": gid})) == "hit"
        assert invalidate(a, {"customer": gid}) == 200  # at the other gateway, as a mutation there would
        deadline = time.monotonic() + 5  # pub/sub reaches the other gateway within a second or so
        dropped = False
        while not dropped and time.monotonic() < deadline:
            time.sleep(0.1)
            dropped = mark(b.gql(POS, {"id": gid})) is None
        assert dropped
        assert mark(b.gql(POS, {"id": gid})) == "hit"  # answered again after the drop, and kept
        assert mark(b.gql(POS, {"id": other})) == "hit"
    finally:
        a.stop()
        b.stop()
