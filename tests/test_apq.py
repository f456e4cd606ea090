"""Automatic Persisted Queries (Apollo's protocol) and the allow-list of registered operations, over HTTP.

The protocol runs against the session gateway (gateway.yaml: APQ on, memory only). A gateway of its own
adds a `till` role that may run only the registered documents (a copy of operations/pos, found through a
folder relative to its config file) and an unreachable Redis, so APQ must serve from memory. Two gateways
sharing the Redis at 127.0.0.1:6379 show a document registered at one known to the other.
"""

from __future__ import annotations

import copy
import json
import shutil
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from server.apq import sha256
from tests.harness import ROOT, Estate, Gateway, gateway_config, http, start_gateway
from tests.test_persisted_units import closed_port, redis_or_skip

NEW = "application/graphql-response+json"
OLD = "application/json"
POS = ROOT / "operations" / "pos"
POINT_OF_SALE = (POS / "PointOfSale.graphql").read_text()
FIND_AT_TILL = (POS / "FindAtTill.graphql").read_text()


def unique_query() -> str:
    """A query no other test has sent (a comment changes its hash)."""
    return f'# {uuid.uuid4()}\nquery Who($id: ID!) {{ customer(id: $id) {{ id name }} }}'


def ext(query: str | None = None, digest: str | None = None, version: int = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": digest or sha256(query or "")}}


def post(gw: Gateway, payload: dict[str, Any], accept: str = OLD,
         role: str | None = "agent") -> tuple[int, dict[str, str], dict[str, Any]]:
    status, headers, body = gw.post(payload, {"accept": accept}, role=role)
    assert headers["content-type"].startswith(accept), headers
    return status, {k.lower(): v for k, v in headers.items()}, json.loads(body)


def get(gw: Gateway, params: dict[str, Any], accept: str = OLD,
        role: str | None = "agent") -> tuple[int, dict[str, str], dict[str, Any]]:
    """As Apollo clients send APQ over GET: variables and extensions as JSON query parameters."""
    query = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    status, headers, body = http("GET", f"{gw.url}/graphql?{urllib.parse.urlencode(query)}",
                                 headers={"accept": accept, **gw.auth(role)})
    return status, {k.lower(): v for k, v in headers.items()}, json.loads(body)


def code(answer: dict[str, Any]) -> str:
    return answer["errors"][0]["extensions"]["code"]


# -- the protocol, on the session gateway --------------------------------------------------------------

@pytest.mark.parametrize("accept", [OLD, NEW])
def test_unknown_hash_is_not_found_with_200_like_apollo(gateway: Gateway, accept: str) -> None:
    status, headers, answer = post(gateway, {"extensions": ext(unique_query())}, accept)
    assert status == 200, answer
    assert answer == {"errors": [{"message": "PersistedQueryNotFound",
                                  "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}]}
    assert headers["cache-control"] == "private, no-cache, must-revalidate"


def test_register_then_run_by_hash_alone(gateway: Gateway) -> None:
    query = unique_query()
    variables = {"id": "C-000042"}
    status, _, first = post(gateway, {"query": query, "variables": variables, "operationName": "Who",
                                      "extensions": ext(query)})
    assert status == 200 and first["data"]["customer"]["id"] == "C-000042", first
    status, _, again = post(gateway, {"variables": variables, "operationName": "Who", "extensions": ext(query)})
    assert status == 200 and again["data"] == first["data"]  # (the repeat is a response-cache hit)
    plain = gateway.gql(query, variables)
    assert plain["data"] == first["data"]


@pytest.mark.parametrize("accept", [OLD, NEW])
def test_a_hash_that_does_not_match_the_query_is_400(gateway: Gateway, accept: str) -> None:
    query = unique_query()
    status, _, answer = post(gateway, {"query": query, "extensions": ext(digest=sha256(query + " "))}, accept)
    assert status == 400 and code(answer) == "PERSISTED_QUERY_HASH_MISMATCH" and "data" not in answer
    status, _, answer = post(gateway, {"extensions": ext(digest=sha256(query + " "))})
    assert status == 200 and code(answer) == "PERSISTED_QUERY_NOT_FOUND"  # nothing was registered


@pytest.mark.parametrize("persisted,words", [
    ({"version": 2, "sha256Hash": "0" * 64}, "Unsupported persisted query version"),
    ({"version": 1, "sha256Hash": "not-a-hash"}, "64 hexadecimal"),
])
def test_unsupported_version_and_malformed_hash_are_400(gateway: Gateway, persisted: dict[str, Any],
                                                        words: str) -> None:
    status, _, answer = post(gateway, {"extensions": {"persistedQuery": persisted}})
    assert status == 400 and code(answer) == "BAD_REQUEST" and words in answer["errors"][0]["message"]


def test_apq_over_get(gateway: Gateway) -> None:
    query = unique_query()
    variables = {"id": "C-000007"}
    status, headers, answer = get(gateway, {"variables": variables, "extensions": ext(query)})
    assert status == 200 and code(answer) == "PERSISTED_QUERY_NOT_FOUND" and "no-cache" in headers["cache-control"]
    status, _, first = get(gateway, {"query": query, "variables": variables, "extensions": ext(query)})
    assert status == 200 and first["data"]["customer"]["id"] == "C-000007", first
    status, _, again = get(gateway, {"variables": variables, "extensions": ext(query)})
    assert status == 200 and again["data"] == first["data"]
    status, _, answer = get(gateway, {"extensions": "{not json"})
    assert status == 400 and "not valid JSON" in answer["errors"][0]["message"]


def test_get_still_refuses_a_persisted_mutation(gateway: Gateway) -> None:
    mutation = 'mutation { recordInteraction(input: {customerId: "C-000001", channel: CHAT, summary: "x", ' \
               f'idempotencyKey: "apq-get-{uuid.uuid4().hex}"}}) {{ id }} }}'
    status, _, answer = post(gateway, {"query": "{ __typename }", "extensions": ext("{ __typename }")})
    assert status == 200 and answer["data"] == {"__typename": "Query"}
    status, _, answer = get(gateway, {"query": mutation, "extensions": ext(mutation)})
    assert status == 405, answer


# -- the allow-list ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def till(estate: Estate, workdir: Path) -> Iterator[Gateway]:
    """`till`: the pos role's reads, registered operations only. Its documents are in `till-ops/`, next to
    the config file (a relative folder); its Redis is unreachable, so APQ lives in memory."""
    shutil.copytree(POS, workdir / "till-ops", dirs_exist_ok=True)
    cfg = gateway_config(estate)
    cfg["roles"]["till"] = {**copy.deepcopy(cfg["roles"]["pos"]), "operations": "registered"}
    cfg["operations"] = {"folder": "till-ops"}
    cfg["cache"]["redis_url"] = f"redis://127.0.0.1:{closed_port()}/0"
    gw = start_gateway(cfg, workdir, "till")
    yield gw
    gw.stop()


@pytest.mark.parametrize("accept", [OLD, NEW])
def test_registered_documents_run_in_full(till: Gateway, accept: str) -> None:
    status, _, answer = post(till, {"query": POINT_OF_SALE, "variables": {"id": "C-000042"}}, accept, "till")
    assert status == 200, answer
    customer = answer["data"]["customer"]
    assert customer["id"] == "C-000042" and customer["name"] and "crossSell" in customer
    ids = [f"C-{n:06d}" for n in range(1, 41)]
    members = till.gql("query($ids: [ID!]!) { customers(ids: $ids) { id loyalty { cardNumber } } }",
                       {"ids": ids})["data"]["customers"]
    member = next(c for c in members if c and c["loyalty"])
    variables = {"loyaltyCard": member["loyalty"]["cardNumber"]}
    status, _, answer = post(till, {"query": FIND_AT_TILL, "variables": variables}, accept, "till")
    assert status == 200 and member["id"] in [c["id"] for c in answer["data"]["findCustomers"]], answer


def test_the_same_document_with_other_whitespace_runs(till: Gateway) -> None:
    body = " ".join(line for line in POINT_OF_SALE.splitlines() if not line.startswith("#"))
    squashed = " ".join(body.split())
    status, _, answer = post(till, {"query": squashed, "variables": {"id": "C-000042"}}, role="till")
    assert status == 200 and answer["data"]["customer"]["id"] == "C-000042", answer


@pytest.mark.parametrize("accept", [OLD, NEW])
def test_anything_else_is_403_for_that_role(till: Gateway, accept: str) -> None:
    for query in ('{ customer(id: "C-000042") { id name } }',
                  POINT_OF_SALE.replace("segment", "segment firstName")):
        status, _, answer = post(till, {"query": query, "variables": {"id": "C-000042"}}, accept, "till")
        assert status == 403 and "data" not in answer, answer
        assert code(answer) == "FORBIDDEN"
        assert "only registered operations are allowed for this role" in answer["errors"][0]["message"]


def test_roles_without_the_restriction_run_anything(till: Gateway) -> None:
    answer = till.gql('{ customer(id: "C-000042") { id name } }')
    assert answer["data"]["customer"]["id"] == "C-000042"
    answer = till.gql('{ customer(id: "C-000042") { id } }', role="pos")
    assert answer["data"]["customer"]["id"] == "C-000042"


def test_registered_documents_by_apq_hash_of_the_file_text(till: Gateway) -> None:
    """Known by hash without ever being sent in full, over POST and GET."""
    status, _, answer = post(till, {"variables": {"id": "C-000042"}, "extensions": ext(POINT_OF_SALE)}, role="till")
    assert status == 200 and answer["data"]["customer"]["id"] == "C-000042", answer
    status, _, answer = get(till, {"variables": {"loyaltyCard": "0000000000"}, "extensions": ext(FIND_AT_TILL)},
                            role="till")
    assert status == 200 and answer["data"] == {"findCustomers": []}, answer


def test_a_restricted_role_cannot_register_other_documents(till: Gateway) -> None:
    query = unique_query()
    status, _, answer = post(till, {"query": query, "variables": {"id": "C-000042"}, "extensions": ext(query)},
                             role="till")
    assert status == 403 and code(answer) == "FORBIDDEN"
    status, _, answer = post(till, {"extensions": ext(query), "variables": {"id": "C-000042"}})  # as agent
    assert status == 200 and code(answer) == "PERSISTED_QUERY_NOT_FOUND"  # the till registered nothing


def test_apq_without_redis_serves_from_memory_and_warns_once(till: Gateway) -> None:
    """The till gateway's Redis is unreachable: APQ keeps working, with one warning, not one per request."""
    for _ in range(3):
        query = unique_query()
        status, _, first = post(till, {"query": query, "variables": {"id": "C-000001"}, "extensions": ext(query)})
        assert status == 200 and "errors" not in first, first
        status, _, again = post(till, {"variables": {"id": "C-000001"}, "extensions": ext(query)})
        assert status == 200 and again["data"] == first["data"]
    warnings = [line for line in till.log.read_text().splitlines() if "APQ: redis unavailable" in line]
    assert len(warnings) == 1, warnings


# -- shared through Redis ----------------------------------------------------------------------------------

def test_a_document_registered_at_one_gateway_runs_at_another(estate: Estate, workdir: Path) -> None:
    redis_or_skip()
    namespace = f"test-apq-{uuid.uuid4().hex[:12]}"
    cfg = gateway_config(estate)
    cfg["cache"].update(redis_url="redis://127.0.0.1:6379/0", namespace=namespace)
    cfg["apq"] = {"ttl_s": 120}
    query = unique_query()
    one = start_gateway(cfg, workdir, "apq-one")
    try:
        two = start_gateway(cfg, workdir, "apq-two")
        try:
            status, _, answer = post(two, {"variables": {"id": "C-000042"}, "extensions": ext(query)})
            assert status == 200 and code(answer) == "PERSISTED_QUERY_NOT_FOUND"
            status, _, first = post(one, {"query": query, "variables": {"id": "C-000042"}, "extensions": ext(query)})
            assert status == 200 and "errors" not in first, first
            status, _, again = post(two, {"variables": {"id": "C-000042"}, "extensions": ext(query)})
            assert status == 200 and again == first
        finally:
            two.stop()
    finally:
        one.stop()
        client = redis.Redis(host="127.0.0.1", port=6379)
        stored = client.get(f"{namespace}:apq:{sha256(query)}")
        keys = list(client.scan_iter(f"{namespace}:*"))
        if keys:
            client.delete(*keys)
        client.close()
    assert stored == query.encode()
