"""Tokens and roles against the real demo over HTTP: 401s, the pos role's masks and FORBIDDEN fields,
forbidden mutations, introspection per role, secure-by-default start, the token command, GraphiQL."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml

from tests.harness import ROOT, Estate, Gateway, gateway_config, http, start_gateway

POS_VIEW = """query($id: ID!) { customer(id: $id) {
  id name emails phones identities { system id } addresses { city }
  accounts { number holder invoices { number } } tickets(unresolved: true) { id status }
  offers { offerCode } loyalty { tier } crossSell { eligible } value { tier } } }"""
SECRET = "demo-only-secret-do-not-deploy-anywhere"


def _codes(answer: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in answer.get("errors", [])]


def _customer_with_contacts(gateway: Gateway) -> str:
    """A customer whose CRM record has an email, a phone and an address."""
    for n in range(1, 60):
        gid = f"C-{n:06d}"
        c = gateway.gql("query($id: ID!) { customer(id: $id) { emails phones addresses { city } } }",
                        {"id": gid})["data"]["customer"]
        if c and c["emails"] and c["phones"] and c["addresses"]:
            return gid
    raise AssertionError("no customer with email, phone and address")


def _token(claims: dict[str, Any], secret: str = SECRET) -> str:
    base = {"iss": "customer-graph", "aud": "customer-graph", "exp": int(time.time()) + 600}
    return jwt.encode({**base, **claims}, secret, algorithm="HS256")


def test_no_token_is_401_and_says_how_to_get_one(gateway: Gateway) -> None:
    status, headers, body = gateway.post({"query": "{ __typename }"}, role=None)
    assert status == 401
    assert headers.get("www-authenticate", headers.get("WWW-Authenticate", "")).startswith("Bearer")
    [error] = json.loads(body)["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "gateway.py token" in error["message"]
    status, _, _ = http("GET", gateway.url + "/graphql?query=%7B__typename%7D")
    assert status == 401


@pytest.mark.parametrize("token, words", [
    ("not-a-jwt", "not a JWT"),
    (_token({"roles": ["agent"]}, secret="x" * 40), "signature"),
    (_token({"roles": ["agent"], "exp": int(time.time()) - 3600}), "expired"),
    (_token({"roles": ["agent"], "aud": "someone-else"}), "audience"),
    (_token({"roles": ["agent"], "iss": "someone-else"}), "issued"),
    (_token({"roles": ["agent"], "nbf": int(time.time()) + 3600}), "not valid yet"),
])
def test_bad_tokens_are_401_with_the_reason(gateway: Gateway, token: str, words: str) -> None:
    status, _, body = gateway.post({"query": "{ __typename }"}, {"authorization": f"Bearer {token}"})
    assert status == 401, body
    [error] = json.loads(body)["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED" and words in error["message"]


def test_roles_from_scope_and_unknown_roles(gateway: Gateway) -> None:
    status, _, body = gateway.post({"query": "{ __typename }"},
                                   {"authorization": f"Bearer {_token({'scope': 'openid pos'})}"})
    assert status == 200 and json.loads(body) == {"data": {"__typename": "Query"}}
    status, _, body = gateway.post({"query": "{ __typename }"},
                                   {"authorization": f"Bearer {_token({'roles': ['admin']})}"})
    assert status == 403 and _codes(json.loads(body)) == ["FORBIDDEN"]


def test_pos_sees_masked_contacts_and_no_addresses_or_invoices(gateway: Gateway) -> None:
    gid = _customer_with_contacts(gateway)
    agent = gateway.gql(POS_VIEW, {"id": gid})
    pos = gateway.gql(POS_VIEW, {"id": gid}, role="pos")
    a, p = agent["data"]["customer"], pos["data"]["customer"]
    assert "errors" not in agent and "masked" not in agent.get("extensions", {})
    # Masked: the first letter and the domain of an email; the last three digits of a phone.
    for clear, masked in zip(a["emails"], p["emails"], strict=True):
        assert masked == f"{clear[0]}\u2022\u2022\u2022@{clear.split('@')[1]}"
    for clear, masked in zip(a["phones"], p["phones"], strict=True):
        assert masked[-3:] == clear[-3:] and len(masked) == len(clear) and masked[1:-3].strip("\u2022") == ""
    assert pos["extensions"]["masked"] == {"Customer.emails": "email", "Customer.phones": "phone",
                                           "Identity.id": "contact",
                                           **({"BillingAccount.holder": "initials"} if a["accounts"] else {})}
    # A system's id that is the customer's email or phone (shop, contact center) is masked too.
    clear_ids = {i["id"] for i in a["identities"]}
    for ia, ip in zip(a["identities"], p["identities"], strict=True):
        assert ia["system"] == ip["system"]
        if "@" in ia["id"] or ia["id"].startswith("+"):
            assert ip["id"] != ia["id"] and ip["id"] not in clear_ids and "\u2022" in ip["id"]
        else:
            assert ip["id"] == ia["id"]
    # Forbidden: null plus an error naming the field; what the role may read is unchanged.
    assert p["addresses"] is None and a["addresses"]
    forbidden = [e for e in pos["errors"] if e["extensions"]["code"] == "FORBIDDEN"]
    assert {e["extensions"]["field"] for e in forbidden} >= {"Customer.addresses"}
    assert all("pos" in e["message"] for e in forbidden)
    for key in ("id", "name", "tickets", "offers", "loyalty", "crossSell", "value"):
        assert p[key] == a[key], key
    for acc_a, acc_p in zip(a["accounts"], p["accounts"], strict=True):
        assert acc_p["invoices"] is None and acc_p["number"] == acc_a["number"]


def test_pos_may_not_run_mutations(gateway: Gateway, estate: Estate) -> None:
    before = estate.stats("contact")
    answer = gateway.gql("""mutation { recordInteraction(input: {customerId: "C-000001", channel: CHAT,
        summary: "should not be written", idempotencyKey: "pos-forbidden-1"}) { id } }""", role="pos")
    assert answer["data"] == {"recordInteraction": None}
    assert _codes(answer) == ["FORBIDDEN"] and "recordInteraction" in answer["errors"][0]["message"]
    after = estate.stats("contact")
    assert after["requests"] == before["requests"]  # nothing reached the contact center
    audit = [json.loads(line.split("customer_graph.audit: ", 1)[1]) for line in gateway.log.read_text().splitlines()
             if "customer_graph.audit" in line and "pos-forbidden-1" in line]
    assert [(a["role"], a["mutation"], a["customerId"], a["outcome"]) for a in audit] == \
        [("pos", "recordInteraction", "C-000001", "FORBIDDEN")]


@pytest.fixture(scope="module")
def locked(estate: Estate, workdir: Path) -> Iterator[Gateway]:
    """A gateway whose kiosk role may not introspect, and whose anonymous callers get that role."""
    cfg = gateway_config(estate)
    cfg["roles"]["kiosk"] = {"read": ["Query.customer", "Customer.id", "Customer.name"], "mutations": [],
                             "introspection": False}
    cfg["auth"]["anonymous_role"] = "kiosk"
    gw = start_gateway(cfg, workdir, "locked")
    yield gw
    gw.stop()


def test_introspection_per_role_and_anonymous_role(locked: Gateway) -> None:
    status, _, body = locked.post({"query": "{ __schema { queryType { name } } }"}, role=None)
    answer = json.loads(body)
    assert "data" not in answer and _codes(answer) == ["FORBIDDEN"]
    assert status == 200  # application/json: a well-formed request that did not run
    answer = locked.gql('{ customer(id: "C-000001") { __typename id name emails } }', role=None)
    assert answer["data"]["customer"]["id"] == "C-000001" and answer["data"]["customer"]["emails"] is None
    assert _codes(answer) == ["FORBIDDEN"]
    agent = locked.gql("{ __schema { queryType { name } } }")
    assert agent == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


def _serve(config: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "gateway.py", "serve", "--config", str(path), "--port", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_serve_refuses_without_auth_and_warns_with_mode_none(estate: Estate, tmp_path: Path) -> None:
    cfg = gateway_config(estate)
    del cfg["auth"]
    done = _serve(cfg, tmp_path)
    assert done.returncode != 0 and "no auth section" in done.stderr and "Traceback" not in done.stderr
    cfg["auth"] = {"mode": "none"}
    gw = start_gateway(cfg, tmp_path, "open")
    try:
        assert gw.gql("{ __typename }", role=None) == {"data": {"__typename": "Query"}}
        assert "auth mode none" in gw.log.read_text()
    finally:
        gw.stop()


def test_bad_security_config_is_one_line(estate: Estate, tmp_path: Path) -> None:
    cfg = gateway_config(estate)
    cfg["roles"]["pos"]["mask"]["Customer.emial"] = "email"
    done = _serve(cfg, tmp_path)
    assert done.returncode != 0 and "roles.pos.mask: Customer.emial" in done.stderr
    cfg = gateway_config(estate)
    cfg["roles"]["pos"]["mask"]["Customer.emails"] = "blur"
    done = _serve(cfg, tmp_path)
    assert "roles.pos.mask.Customer.emails" in done.stderr and "Traceback" not in done.stderr


def test_token_command(gateway: Gateway, estate: Estate, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "gateway.py", "token", "--role", "pos", "--sub", "till-7", "--ttl", "60"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip().splitlines()[-1]
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="customer-graph")
    assert claims["sub"] == "till-7" and claims["roles"] == ["pos"] and claims["exp"] - claims["iat"] == 60
    status, _, body = gateway.post({"query": '{ customer(id: "C-000001") { emails } }'},
                                   {"authorization": f"Bearer {token}"})
    assert status == 200 and json.loads(body)["extensions"]["masked"] == {"Customer.emails": "email"}
    (tmp_path / "none.yaml").write_text(yaml.safe_dump({**gateway_config(estate), "auth": {"mode": "none"}}))
    done = subprocess.run([sys.executable, "gateway.py", "token", "--role", "pos", "--config",
                           str(tmp_path / "none.yaml")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "nothing to sign" in done.stderr and "Traceback" not in done.stderr


def test_graphiql_preloads_headers_only_when_asked(gateway: Gateway) -> None:
    status, _, body = http("GET", gateway.url + "/graphql", headers={"accept": "text/html"})
    assert status == 200 and b"defaultHeaders: \"{}\"" in body  # serve: no token baked into the page
