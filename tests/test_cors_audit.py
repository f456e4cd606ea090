"""CORS from the config, and one JSON audit line per mutation in the gateway's log, over HTTP.

An estate of its own, because the audit tests write (the shared one keeps matching the ground truth).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from estate.generate import generate
from tests.harness import Estate, Gateway, gateway_config, http, running_estate, running_gateway
from tests.truth import Truth

DESK = "https://desk.example.com"
RECORD = """mutation LogCall($input: RecordInteractionInput!) { recordInteraction(input: $input) { id } }"""


@pytest.fixture(scope="module")
def est(workdir: Path) -> Iterator[Estate]:
    yield from running_estate(workdir, "audit", 60, 11)


@pytest.fixture(scope="module")
def gw(est: Estate, workdir: Path) -> Iterator[Gateway]:
    cfg = gateway_config(est)
    cfg["cors"] = {"allow_origins": [DESK], "allow_headers": ["authorization", "content-type"], "max_age_s": 300}
    yield from running_gateway(cfg, workdir, "cors-audit")


def preflight(gw: Gateway, origin: str, method: str = "POST") -> tuple[int, dict[str, str]]:
    status, headers, _ = http("OPTIONS", gw.url + "/graphql", headers={
        "origin": origin, "access-control-request-method": method,
        "access-control-request-headers": "authorization, content-type"})
    return status, {k.lower(): v for k, v in headers.items()}


def cors_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith("access-control-")}


# -- CORS --------------------------------------------------------------------------------------------------

def test_preflight_from_an_allowed_origin(gw: Gateway) -> None:
    status, headers = preflight(gw, DESK)
    assert status == 200
    assert headers["access-control-allow-origin"] == DESK
    assert {"GET", "POST"} <= {m.strip() for m in headers["access-control-allow-methods"].split(",")}
    assert {"authorization", "content-type"} <= {h.strip().lower()
                                                 for h in headers["access-control-allow-headers"].split(",")}
    assert headers["access-control-max-age"] == "300"
    assert "access-control-allow-credentials" not in headers  # off unless configured


def test_preflight_from_another_origin_gets_no_cors_headers(gw: Gateway) -> None:
    status, headers = preflight(gw, "https://evil.example.com")
    assert status == 400 and "access-control-allow-origin" not in headers
    status, headers = preflight(gw, DESK, method="DELETE")  # a method not allowed
    assert status == 400


def test_requests_from_an_allowed_origin_carry_the_header(gw: Gateway) -> None:
    status, headers, _ = gw.post({"query": "{ __typename }"}, {"origin": DESK})
    assert status == 200 and cors_headers(headers).get("access-control-allow-origin") == DESK
    status, headers, _ = gw.post({"query": "{ __typename }"}, {"origin": "https://evil.example.com"})
    assert status == 200 and "access-control-allow-origin" not in cors_headers(headers)


def test_the_default_config_sends_no_cors_headers(gateway: Gateway) -> None:
    status, headers = preflight(gateway, DESK)
    assert status != 200 and not cors_headers(headers)
    status, headers, _ = gateway.post({"query": "{ __typename }"}, {"origin": DESK})
    assert status == 200 and not cors_headers(headers)


# -- audit -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def t(est: Estate) -> Truth:
    return Truth(generate(est.customers, est.seed, est.as_of))


def audit_lines(gw: Gateway, **match: Any) -> list[dict[str, Any]]:
    """The audit records in the gateway's log whose fields equal `match`."""
    out = []
    for line in gw.log.read_text().splitlines():
        if "customer_graph.audit" in line:
            record = json.loads(line[line.index("{"):])
            if all(record.get(k) == v for k, v in match.items()):
                out.append(record)
    return out


def test_a_mutation_that_succeeds_is_audited_once(gw: Gateway, t: Truth) -> None:
    gid = next(g for g in sorted(t.ids) if t.ids[g]["contact"])
    key = f"audit-{uuid.uuid4()}"
    answer = gw.gql(RECORD, {"input": {"customerId": gid, "channel": "CHAT", "summary": "Asked about a refund",
                                       "idempotencyKey": key}})
    assert "errors" not in answer and answer["data"]["recordInteraction"]["id"]
    [record] = audit_lines(gw, idempotencyKey=key)
    assert record == {**record, "subject": "test-agent", "role": "agent", "mutation": "recordInteraction",
                      "operationName": "LogCall", "customerId": gid, "outcome": "ok"}
    assert record["time"].endswith("Z") and "Asked about a refund" not in json.dumps(record)  # no content


def test_a_mutation_that_fails_is_audited_with_its_code(gw: Gateway) -> None:
    key = f"audit-{uuid.uuid4()}"
    answer = gw.gql(RECORD, {"input": {"customerId": "C-000003", "channel": "CHAT", "summary": "   ",
                                       "idempotencyKey": key}})
    assert answer["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    [record] = audit_lines(gw, idempotencyKey=key)
    assert record["outcome"] == "BAD_USER_INPUT" and record["customerId"] == "C-000003"
    assert record["mutation"] == "recordInteraction" and record["role"] == "agent"


def test_each_mutation_of_one_request_is_audited(gw: Gateway, t: Truth) -> None:
    gid = next(g for g in sorted(t.ids) if t.ids[g]["crm"])
    name = f"Prefs_{uuid.uuid4().hex}"
    answer = gw.gql(f"""mutation {name}($id: ID!) {{
      ok: updatePreferences(input: {{customerId: $id, language: "fr"}}) {{ id }}
      bad: updatePreferences(input: {{customerId: "C-999999", language: "fr"}}) {{ id }}
    }}""", {"id": gid})
    assert answer["data"]["ok"] == {"id": gid} and answer["data"]["bad"] is None
    records = audit_lines(gw, operationName=name)
    assert [(r["mutation"], r["customerId"], r["idempotencyKey"], r["outcome"]) for r in records] == [
        ("updatePreferences", gid, None, "ok"), ("updatePreferences", "C-999999", None, "NOT_FOUND")]
