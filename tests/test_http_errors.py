"""Bad input gets a clear GraphQL error and the status the GraphQL-over-HTTP spec asks for, never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.harness import LIVE, Gateway, http

NEW = "application/graphql-response+json"
OLD = "application/json"


def ask(gateway: Gateway, query: str, variables: dict[str, Any] | None = None,
        accept: str = OLD) -> tuple[int, dict[str, Any]]:
    status, headers, body = gateway.post({"query": query, "variables": variables}, {"accept": accept, **LIVE})
    assert status < 500 and b"Traceback" not in body
    assert headers["content-type"].startswith(accept)
    return status, json.loads(body)


def codes(answer: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in answer["errors"]]


@pytest.mark.parametrize("accept", [OLD, NEW])
def test_unknown_and_malformed_ids(gateway: Gateway, accept: str) -> None:
    status, answer = ask(gateway, '{ a: customer(id: "C-999999") { id } b: customer(id: "42") { id } }', accept=accept)
    assert status == 200 and answer["data"] == {"a": None, "b": None}
    by_path = {e["path"][0]: e for e in answer["errors"]}
    assert by_path["a"]["extensions"]["code"] == "NOT_FOUND" and "C-999999" in by_path["a"]["message"]
    assert by_path["b"]["extensions"]["code"] == "BAD_USER_INPUT" and "C-000042" in by_path["b"]["message"]


@pytest.mark.parametrize("accept", [OLD, NEW])
def test_more_than_100_ids(gateway: Gateway, accept: str) -> None:
    ids = [f"C-{n:06d}" for n in range(1, 102)]
    status, answer = ask(gateway, "query($ids: [ID!]!) { customers(ids: $ids) { id } }", {"ids": ids}, accept)
    assert status == 200 and answer["data"] is None  # the field ran and failed: data is present, null
    assert codes(answer) == ["BAD_USER_INPUT"] and "at most 100" in answer["errors"][0]["message"]


def test_find_customers_needs_an_argument(gateway: Gateway) -> None:
    status, answer = ask(gateway, "{ findCustomers { id } }")
    assert status == 200 and codes(answer) == ["BAD_USER_INPUT"]
    assert "at least one" in answer["errors"][0]["message"]


@pytest.mark.parametrize("query", ['{ findCustomers(phone: "call me") { id } }',
                                   '{ findCustomers(email: "no-at-sign") { id } }',
                                   '{ customer(id: "C-000001") { orders(first: -1) { number } } }',
                                   '{ customer(id: "C-000001") { offers(withinDays: -3) { id } } }'])
def test_unusable_arguments(gateway: Gateway, query: str) -> None:
    status, answer = ask(gateway, query)
    assert status == 200 and codes(answer) == ["BAD_USER_INPUT"]


@pytest.mark.parametrize("accept,expected", [(OLD, 200), (NEW, 400)])
def test_query_that_does_not_parse(gateway: Gateway, accept: str, expected: int) -> None:
    status, answer = ask(gateway, "{ customer(id: ", accept=accept)
    assert status == expected and "data" not in answer
    assert codes(answer) == ["GRAPHQL_PARSE_FAILED"]


@pytest.mark.parametrize("accept,expected", [(OLD, 200), (NEW, 400)])
def test_query_that_does_not_validate(gateway: Gateway, accept: str, expected: int) -> None:
    status, answer = ask(gateway, '{ customer(id: "C-000001") { shoeSize } }', accept=accept)
    assert status == expected and "data" not in answer
    assert codes(answer) == ["GRAPHQL_VALIDATION_FAILED"] and "shoeSize" in answer["errors"][0]["message"]


def test_variables_of_the_wrong_type(gateway: Gateway) -> None:
    status, answer = ask(gateway, "query($ids: [ID!]!) { customers(ids: $ids) { id } }", {"ids": {"not": "a list"}}, NEW)
    assert status == 400 and "data" not in answer and codes(answer) == ["BAD_USER_INPUT"]


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"query": 5}', b'{"variables": {}}',
                                  b'{"query": "{ __typename }", "variables": [1]}'])
def test_malformed_request_bodies(gateway: Gateway, body: bytes) -> None:
    status, headers, raw = gateway.post(None, raw=body)
    assert status == 400 and b"Traceback" not in raw
    assert json.loads(raw)["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_wrong_content_type_and_accept(gateway: Gateway) -> None:
    status, _, _ = http("POST", gateway.url + "/graphql", b"query=x", {"content-type": "text/plain", **gateway.auth()})
    assert status == 415
    status, _, _ = gateway.post({"query": "{ __typename }"}, {"accept": "text/plain"})
    assert status == 406


def test_get_runs_queries_but_not_mutations(gateway: Gateway) -> None:
    status, _, body = http("GET", gateway.url + '/graphql?query={customer(id:"C-000001"){id}}'.replace('"', "%22"),
                           headers={"accept": OLD, **gateway.auth()})
    assert status == 200 and json.loads(body) == {"data": {"customer": {"id": "C-000001"}}}
    status, _, body = http("GET", gateway.url + "/graphql?query=mutation%7Bx%7D", headers={"accept": OLD, **gateway.auth()})
    assert status == 405


def test_source_down_nulls_only_its_fields(gateway: Gateway, estate: Any) -> None:
    estate.faults("billing", {"down": True})
    status, answer = ask(gateway, '{ customer(id: "C-000002") { id name accounts { number } orders { number } } }')
    assert status == 200
    customer = answer["data"]["customer"]
    assert customer["id"] == "C-000002" and customer["name"] and customer["accounts"] is None
    assert isinstance(customer["orders"], list)
    [error] = answer["errors"]
    assert error["path"] == ["customer", "accounts"]
    assert error["extensions"] == {"code": "SOURCE_UNAVAILABLE", "source": "billing"}
    assert "127.0.0.1" not in error["message"] and "Traceback" not in json.dumps(answer)
