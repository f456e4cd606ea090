"""Operation limits end to end: refused before any source is called, with the status each media type asks for;
the HTTP defects found by attack (several operations, subscriptions, Accept q-values); a request's work
cancelled when its client disconnects or its deadline passes."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import LIVE, Estate, Gateway, gateway_config, http, start_gateway
from tests.queries import FULL_CUSTOMER

NEW = "application/graphql-response+json"
OLD = "application/json"
HTTP_SOURCES = ("billing", "helpdesk", "contact", "marketing", "loyalty", "warranty", "shipping", "staff", "analytics")
IDS = [f"C-{n:06d}" for n in range(1, 101)]
SLOW_MS = 1200  # contact's injected latency: below its 2 s timeout, far above the 0.5 s the client waits


def ask(gw: Gateway, query: str, variables: dict[str, Any] | None = None, accept: str = NEW,
        op: str | None = None) -> tuple[int, dict[str, Any]]:
    payload: dict[str, Any] = {"query": query, "variables": variables}
    if op is not None:
        payload["operationName"] = op
    status, headers, body = gw.post(payload, {"accept": accept, **LIVE})
    assert b"Traceback" not in body
    assert headers["content-type"].startswith(accept)
    return status, json.loads(body)


def codes(answer: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in answer["errors"]]


def source_calls(estate: Estate) -> int:
    return sum(estate.stats(s)["requests"] for s in HTTP_SOURCES)


@pytest.fixture(scope="module")
def loose(estate: Estate, workdir: Path) -> Iterator[Gateway]:
    """A gateway whose alias and token limits are raised (so the customers limit alone must refuse the
    attack), whose deadline is short and whose depth limit is low."""
    cfg = gateway_config(estate)
    cfg["limits"] = {**cfg.get("limits", {}), "max_aliases": 1000, "max_tokens": 200000, "request_deadline_s": 1,
                     "max_depth": 4}
    gw = start_gateway(cfg, workdir, "limits-loose")
    yield gw
    gw.stop()


def attack(aliases: int = 200) -> str:
    """`aliases` x customers(ids: $ids) { full view }: today 35-59 s of CPU and +800 MB with 100 ids."""
    fields = " ".join(f"a{i}: customers(ids: $ids) {{ ...Full }}" for i in range(aliases))
    return FULL_CUSTOMER + f"query Attack($ids: [ID!]!) {{ {fields} }}"


# --- body size -------------------------------------------------------------------------------------------
def raw_exchange(gw: Gateway, head: str, chunks: Iterator[bytes]) -> tuple[bytes, int]:
    """Send a request head and then body chunks until the gateway answers or closes; (answer, bytes sent)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(head.encode())
        s.setblocking(False)
        answer = b""
        for chunk in chunks:
            try:
                answer += s.recv(65536)
            except BlockingIOError:
                pass
            except ConnectionError:
                break
            if answer:
                break
            try:
                s.sendall(chunk)
                sent += len(chunk)
            except (BlockingIOError, ConnectionError):
                time.sleep(0.01)  # the gateway stopped reading
        s.setblocking(True)
        s.settimeout(10)
        try:
            while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < 10:
                more = s.recv(65536)
                if not more:
                    break
                answer += more
        except (ConnectionError, TimeoutError):
            pass
    return answer, sent


def auth_header(gw: Gateway) -> str:
    return "".join(f"{k}: {v}\r\n" for k, v in gw.auth().items())


def test_100_mb_body_refused_by_its_content_length(gateway: Gateway) -> None:
    size = 100 * 1024 * 1024
    head = (f"POST /graphql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\naccept: {NEW}\r\n"
            f"{auth_header(gateway)}content-length: {size}\r\n\r\n")
    answer, sent = raw_exchange(gateway, head, (b"x" * 65536 for _ in range(size // 65536)))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1].split(b"\r\n0\r\n")[0].strip() or b"{}")
    assert body["errors"][0]["extensions"] == {"code": "PAYLOAD_TOO_LARGE",
                                               "limit": {"name": "max_body_bytes", "value": 1048576}}
    assert sent < size  # answered long before the body was all sent
    assert http("GET", gateway.url + "/healthz")[0] == 200


def test_chunked_body_refused_while_reading(gateway: Gateway) -> None:
    """No Content-Length to go by: the cap is enforced on the bytes as they arrive."""
    head = (f"POST /graphql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\naccept: {OLD}\r\n"
            f"{auth_header(gateway)}transfer-encoding: chunked\r\n\r\n")
    piece = b"x" * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    answer, sent = raw_exchange(gateway, head, (chunk for _ in range(1600)))  # 100 MiB offered
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"PAYLOAD_TOO_LARGE" in answer
    assert sent < 1600 * len(chunk)


def test_two_megabytes_of_aliases_refused(gateway: Gateway) -> None:
    query = "{ customer(id: \"C-000001\") { " + " ".join(f"n{i}: name" for i in range(200_000)) + " } }"
    body = json.dumps({"query": query}).encode()
    assert len(body) > 2_000_000
    head = (f"POST /graphql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\naccept: {NEW}\r\n"
            f"{auth_header(gateway)}content-length: {len(body)}\r\n\r\n")
    answer, _ = raw_exchange(gateway, head, (body[i:i + 65536] for i in range(0, len(body), 65536)))
    assert answer.startswith(b"HTTP/1.1 413") and b"PAYLOAD_TOO_LARGE" in answer


@pytest.mark.parametrize("accept,expected", [(OLD, 200), (NEW, 400)])
def test_too_many_tokens_under_the_body_cap(gateway: Gateway, estate: Estate, accept: str, expected: int) -> None:
    query = "{ customer(id: \"C-000001\") { " + " ".join("name" for _ in range(150_000)) + " } }"  # ~750 kB
    estate.reset_stats()
    status, answer = ask(gateway, query, accept=accept)
    assert status == expected and "data" not in answer
    assert answer["errors"][0]["extensions"] == {"code": "QUERY_TOO_COMPLEX",
                                                 "limit": {"name": "max_tokens", "value": 5000}}
    assert source_calls(estate) == 0


# --- the alias attack, and the other shapes ---------------------------------------------------------------
def test_alias_attack_refused_by_the_alias_limit(gateway: Gateway, estate: Estate) -> None:
    estate.reset_stats()
    status, answer = ask(gateway, attack(), {"ids": IDS})
    assert status == 400 and "data" not in answer
    ext = answer["errors"][0]["extensions"]
    assert ext == {"code": "QUERY_TOO_COMPLEX", "limit": {"name": "max_aliases", "value": 30}, "requested": 200}
    assert source_calls(estate) == 0


def test_alias_attack_refused_by_the_customers_limit(loose: Gateway, estate: Estate) -> None:
    estate.reset_stats()
    status, answer = ask(loose, attack(), {"ids": IDS}, accept=OLD)
    assert status == 200 and "data" not in answer
    ext = answer["errors"][0]["extensions"]
    assert ext == {"code": "QUERY_TOO_COMPLEX", "limit": {"name": "max_customers", "value": 100},
                   "requested": 20000}
    assert source_calls(estate) == 0


def test_customers_counted_across_root_fields(gateway: Gateway, estate: Estate) -> None:
    query = 'query($ids: [ID!]!) { one: customer(id: "C-000001") { id } many: customers(ids: $ids) { id } }'
    status, answer = ask(gateway, query, {"ids": IDS})
    assert status == 400 and answer["errors"][0]["extensions"]["requested"] == 101
    status, answer = ask(gateway, query, {"ids": IDS[:99]})
    assert status == 200 and len(answer["data"]["many"]) == 99


def test_cost_from_first(gateway: Gateway, estate: Estate) -> None:
    estate.reset_stats()
    query = 'query($n: Int) { customer(id: "C-000001") { orders(first: $n) { lines { sku } } } }'
    status, answer = ask(gateway, query, {"n": 30000})
    assert status == 400 and answer["errors"][0]["extensions"]["limit"] == {"name": "max_cost", "value": 5000}
    assert source_calls(estate) == 0
    status, answer = ask(gateway, query, {"n": 5})
    assert status == 200 and "errors" not in answer


def test_depth(loose: Gateway, estate: Estate) -> None:
    estate.reset_stats()
    deep = '{ customer(id: "C-000001") { timeline { edges { node { record { ... on Order { lines { sku } } } } } } } }'
    status, answer = ask(loose, deep)
    assert status == 400 and "data" not in answer
    assert answer["errors"][0]["extensions"] == {"code": "QUERY_TOO_COMPLEX", "requested": 5,  # one past: counting stops
                                                 "limit": {"name": "max_depth", "value": 4}}
    assert source_calls(estate) == 0
    status, answer = ask(loose, '{ customer(id: "C-000001") { orders(first: 2) { lines { sku } } } }')
    assert status == 200 and "errors" not in answer


@pytest.mark.parametrize("accept,expected", [(OLD, 200), (NEW, 400)])
def test_int_arguments_in_range(gateway: Gateway, estate: Estate, accept: str, expected: int) -> None:
    """offers(withinDays: 1000000) was an OverflowError in a resolver: an INTERNAL_SERVER_ERROR."""
    estate.reset_stats()
    status, answer = ask(gateway, '{ customer(id: "C-000001") { offers(withinDays: 1000000) { id } } }',
                         accept=accept)
    assert status == expected and codes(answer) == ["BAD_USER_INPUT"]
    assert "Customer.offers.withinDays" in answer["errors"][0]["message"]
    status, answer = ask(gateway, 'query($d: Int) { customer(id: "C-000001") { offers(withinDays: $d) { id } } }',
                         {"d": 1000000}, accept=accept)
    assert status == expected and codes(answer) == ["BAD_USER_INPUT"]
    assert "$d" in answer["errors"][0]["message"] and "withinDays" in answer["errors"][0]["message"]
    assert source_calls(estate) == 0


def test_full_view_of_100_customers_within_every_limit(gateway: Gateway) -> None:
    status, answer = ask(gateway, FULL_CUSTOMER + "query($ids: [ID!]!) { customers(ids: $ids) { ...Full } }",
                         {"ids": IDS})
    assert status == 200 and len(answer["data"]["customers"]) == 100


# --- HTTP defects ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("accept,expected", [(OLD, 200), (NEW, 400)])
def test_several_operations_need_an_operation_name(gateway: Gateway, estate: Estate, accept: str,
                                                   expected: int) -> None:
    """The first operation (here a mutation) used to run."""
    doc = ('mutation Write { recordInteraction(input: {customerId: "C-000001", channel: CHAT, summary: "limits", '
           'idempotencyKey: "limits-test-0001"}) { id } } query Read { customer(id: "C-000001") { id } }')
    estate.reset_stats()
    status, answer = ask(gateway, doc, accept=accept)
    assert status == expected and "data" not in answer
    assert estate.stats("contact")["requests"] == 0  # nothing written
    assert "operationName is required" in answer["errors"][0]["message"]
    status, answer = ask(gateway, doc, accept=accept, op="Read")
    assert status == 200 and answer["data"] == {"customer": {"id": "C-000001"}}


@pytest.mark.parametrize("accept", [OLD, NEW])
def test_subscription_by_post(gateway: Gateway, accept: str) -> None:
    status, answer = ask(gateway, "subscription { ticks }", accept=accept)
    assert status == 400 and "subscriptions are not supported" in answer["errors"][0]["message"]
    assert "mutations" not in answer["errors"][0]["message"]


@pytest.mark.parametrize("accept,media", [
    (f"{NEW};q=0, {OLD}", OLD),
    (f"{OLD};q=0.9, {NEW};q=0.5", OLD),
    (f"{OLD}, {NEW}", NEW),
    (f"{NEW}, */*;q=0.1", NEW),
    ("*/*", OLD),
])
def test_accept_q_values(gateway: Gateway, accept: str, media: str) -> None:
    status, headers, _ = gateway.post({"query": "{ __typename }"}, {"accept": accept})
    assert status == 200 and headers["content-type"].startswith(media)


def test_accept_nothing_we_serve(gateway: Gateway) -> None:
    status, _, _ = gateway.post({"query": "{ __typename }"}, {"accept": f"{NEW};q=0, {OLD};q=0"})
    assert status == 406


# --- cancellation ------------------------------------------------------------------------------------------
SLOW_QUERY = "query($ids: [ID!]!) { customers(ids: $ids) { id interactions { id agent { name } } } }"


def test_disconnect_cancels_the_work(gateway: Gateway, estate: Estate) -> None:
    """contact is slow; staff (the interactions' agents) is only called once contact answers. A client that
    goes away after 0.5 s must leave staff uncalled; one that stays sees staff called (the control)."""
    ids = IDS[:20]
    estate.faults("contact", {"latency_ms": SLOW_MS})
    estate.reset_stats()
    answer = gateway.gql(SLOW_QUERY, {"ids": ids}, LIVE)  # the control: it waits
    assert any(i["agent"] for c in answer["data"]["customers"] for i in c["interactions"] or [])
    assert estate.stats("staff")["requests"] > 0

    body = json.dumps({"query": SLOW_QUERY, "variables": {"ids": ids}}).encode()
    head = (f"POST /graphql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{auth_header(gateway)}"
            f"cache-control: no-cache\r\ncontent-length: {len(body)}\r\n\r\n").encode()
    estate.reset_stats()
    with socket.create_connection(("127.0.0.1", gateway.port)) as s:
        s.sendall(head + body)
        time.sleep(0.5)
    time.sleep(SLOW_MS / 1000 + 1.5)  # long past when contact answers and staff would be asked
    assert estate.stats("contact")["requests"] > 0  # the work had started
    assert estate.stats("staff")["requests"] == 0
    assert http("GET", gateway.url + "/healthz")[0] == 200


@pytest.mark.parametrize("accept,expected", [(OLD, 200), (NEW, 504)])
def test_deadline_cancels_the_work(loose: Gateway, estate: Estate, accept: str, expected: int) -> None:
    estate.faults("contact", {"latency_ms": SLOW_MS})  # slower than the 1 s deadline, within contact's timeout
    estate.reset_stats()
    status, answer = ask(loose, SLOW_QUERY, {"ids": IDS[:5]}, accept=accept)
    assert status == expected and "data" not in answer
    assert answer["errors"][0]["extensions"] == {"code": "DEADLINE_EXCEEDED",
                                                 "limit": {"name": "request_deadline_s", "value": 1}}
    time.sleep(SLOW_MS / 1000 + 0.5)
    assert estate.stats("contact")["requests"] > 0 and estate.stats("staff")["requests"] == 0
