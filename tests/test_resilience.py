"""Partial results, timeouts, retries, circuit breakers and bulkheads, through HTTP against injected faults."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Estate, Gateway, gateway_config, http, start_gateway
from tests.queries import CUSTOMERS_FULL
from tests.truth import Truth

TIMEOUT_S = 1.0
MARGIN_S = 1.5  # generous: this checks that a hung source costs its timeout, not a benchmark
RESET_S = 1.0
SOURCES = ("crosswalk", "crm", "shop", "billing", "helpdesk", "contact", "marketing", "loyalty", "warranty",
           "shipping", "staff", "analytics")
# The Customer fields each source feeds (a dotted path is a nested field).
FEEDS = {"billing": ("accounts", "invoices"), "loyalty": ("loyalty",), "warranty": ("warranties",),
         "helpdesk": ("tickets",), "marketing": ("marketing", "offers"), "contact": ("interactions",),
         "analytics": ("webActivity",), "shipping": ("orders.shipments",)}
FAULTS = {
    "down": ({"down": True}, "SOURCE_UNAVAILABLE"),
    "hang": ({"hang": True}, "SOURCE_TIMEOUT"),
    "500s": ({"status": 500}, "SOURCE_UNAVAILABLE"),
    "503s": ({"status": 503}, "SOURCE_UNAVAILABLE"),
    "invalid payload": ({"body": "invalid"}, "SOURCE_BAD_RESPONSE"),
    "wrong shape": ({"body": "shape"}, "SOURCE_BAD_RESPONSE"),
    "html error page": ({"body": "html"}, "SOURCE_BAD_RESPONSE"),
    "oversized payload": ({"body": "huge"}, "SOURCE_BAD_RESPONSE"),
}


def resilient(estate: Estate, **gateway: Any) -> dict[str, Any]:
    settings = {"timeout_s": TIMEOUT_S, "retries": 2, "retry_backoff_ms": 20, "circuit_failures": 3,
                "circuit_reset_s": RESET_S, "max_body_bytes": 1 << 20}
    cfg = gateway_config(estate, {s: dict(settings) for s in SOURCES})
    cfg["gateway"].update(gateway)
    cfg["cache"] = {"enabled": False}  # every call reaches the source; the cache's own tests cover it
    return cfg


@pytest.fixture(scope="module")
def gw(estate: Estate, workdir: Path) -> Iterator[Gateway]:
    g = start_gateway(resilient(estate), workdir, "resilient")
    yield g
    g.stop()


@pytest.fixture(scope="module")
def ids(truth: Any) -> list[str]:
    """Customers known to every HTTP source whose faults we inject."""
    t = Truth(truth)
    return [g for g in sorted(t.ids) if all(t.ids[g][s] for s in ("billing", "loyalty", "warranty", "helpdesk",
                                                                 "marketing", "contact", "shop"))][:5]


@pytest.fixture(scope="module")
def baseline(gw: Gateway, ids: list[str]) -> list[dict[str, Any]]:
    answer = gw.gql(CUSTOMERS_FULL, {"ids": ids})
    assert "errors" not in answer
    return answer["data"]["customers"]


def circuits(gw: Gateway) -> dict[str, str]:
    return {n: s["circuit"] for n, s in json.loads(http("GET", gw.url + "/readyz")[2])["sources"].items()}


def heal(estate: Estate, gw: Gateway, ids: list[str]) -> None:
    """Clear every fault and wait until every circuit has closed again (a probe closes it)."""
    estate.clear_faults()
    deadline = time.time() + 10
    while any(state != "closed" for state in circuits(gw).values()):
        assert time.time() < deadline, circuits(gw)
        time.sleep(RESET_S / 4)
        gw.gql(CUSTOMERS_FULL, {"ids": ids})


def timed(gw: Gateway, ids: list[str]) -> tuple[dict[str, Any], float]:
    start = time.monotonic()
    answer = gw.gql(CUSTOMERS_FULL, {"ids": ids})
    return answer, time.monotonic() - start


def strip(customer: dict[str, Any], failed: tuple[str, ...]) -> dict[str, Any]:
    """The customer without the fields the failed sources feed."""
    out = dict(customer)
    for source in failed:
        for f in FEEDS[source]:
            if "." in f:
                top, sub = f.split(".")
                out[top] = [{k: v for k, v in item.items() if k != sub} for item in out[top] or []]
            else:
                out.pop(f, None)
    return out


def check_partial(answer: dict[str, Any], baseline: list[dict[str, Any]], failed: tuple[str, ...],
                  code: str | None) -> None:
    customers = answer["data"]["customers"]
    assert [strip(c, failed) for c in customers] == [strip(c, failed) for c in baseline]
    expected = {(tuple(str(p) for p in ["customers", i, f]), s)
                for s in failed for f in FEEDS[s] if "." not in f for i in range(len(customers))}
    got = {(tuple(str(p) for p in e["path"]), e["extensions"]["source"]) for e in answer.get("errors", [])}
    assert got == expected
    if code:
        assert {e["extensions"]["code"] for e in answer["errors"]} == {code}
    for e in answer.get("errors", []):
        assert "Traceback" not in e["message"] and "127.0.0.1" not in e["message"] and "<html" not in e["message"]


@pytest.mark.parametrize("failed", [("billing",), ("warranty",), ("billing", "loyalty")],
                         ids=["billing", "warranty-xml", "billing+loyalty-graphql"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_gives_partial_result_then_circuit_opens_and_closes(
        estate: Estate, gw: Gateway, ids: list[str], baseline: list[dict[str, Any]], fault: str,
        failed: tuple[str, ...]) -> None:
    spec, code = FAULTS[fault]
    heal(estate, gw, ids)
    for s in failed:
        estate.faults(s, spec)
    estate.reset_stats()
    for attempt in range(3):  # three failed calls in a row open the circuit
        answer, elapsed = timed(gw, ids)
        check_partial(answer, baseline, failed, code)
        assert elapsed < TIMEOUT_S + MARGIN_S
    for s in failed:
        retried = spec.get("status") == 503 or "down" in spec
        assert estate.stats(s)["requests"] == 3 * (3 if retried else 1), "retry on 503/connection errors only"
        assert circuits(gw)[s] == "open"
    before = {s: estate.stats(s)["requests"] for s in failed}
    answer, elapsed = timed(gw, ids)
    check_partial(answer, baseline, failed, "CIRCUIT_OPEN")
    assert {s: estate.stats(s)["requests"] for s in failed} == before  # failing fast, source untouched
    assert elapsed < MARGIN_S
    heal(estate, gw, ids)  # the source is back: after reset_s a probe closes the circuit
    assert gw.gql(CUSTOMERS_FULL, {"ids": ids}) == {"data": {"customers": baseline}}


def test_slow_within_timeout_is_complete(estate: Estate, gw: Gateway, ids: list[str],
                                         baseline: list[dict[str, Any]]) -> None:
    heal(estate, gw, ids)
    for s in ("billing", "loyalty"):
        estate.faults(s, {"latency_ms": 400, "jitter_ms": 100})
    answer, _ = timed(gw, ids)
    assert answer == {"data": {"customers": baseline}}


def test_503_then_recovery_within_retries(estate: Estate, gw: Gateway, ids: list[str],
                                          baseline: list[dict[str, Any]]) -> None:
    """A source answering 503 to half its calls still yields the full view: retries absorb it."""
    heal(estate, gw, ids)
    estate.faults("billing", {"status": 503, "fail_rate": 0.5})
    complete = sum(gw.gql(CUSTOMERS_FULL, {"ids": ids}) == {"data": {"customers": baseline}} for _ in range(10))
    assert complete >= 7  # a call fails only if three attempts in a row do (1 in 8)


def test_flapping_source_mostly_correct(estate: Estate, gw: Gateway, ids: list[str],
                                        baseline: list[dict[str, Any]]) -> None:
    heal(estate, gw, ids)
    estate.faults("loyalty", {"status": 503, "fail_rate": 0.3})
    estate.reset_stats()
    answers = [gw.gql(CUSTOMERS_FULL, {"ids": ids}) for _ in range(20)]
    assert sum("errors" not in a for a in answers) >= 17  # 0.3^3 = 2.7% of calls fail after retries
    for a in answers:
        check_partial(a, baseline, ("loyalty",) if "errors" in a else (), None)
    assert estate.stats("loyalty")["requests"] > 20  # the retries happened


def test_4xx_is_not_retried(estate: Estate, gw: Gateway, ids: list[str], baseline: list[dict[str, Any]]) -> None:
    heal(estate, gw, ids)
    estate.faults("billing", {"status": 401})
    estate.reset_stats()
    answer, _ = timed(gw, ids)
    check_partial(answer, baseline, ("billing",), "SOURCE_BAD_RESPONSE")
    assert estate.stats("billing")["requests"] == 1
    heal(estate, gw, ids)


def test_readyz_reports_circuits(estate: Estate, gw: Gateway, ids: list[str]) -> None:
    heal(estate, gw, ids)
    status, _, body = http("GET", gw.url + "/readyz")
    ready = json.loads(body)
    assert status == 200 and ready["status"] == "ready"
    assert set(ready["sources"]) == set(SOURCES) and all(s["circuit"] == "closed" for s in ready["sources"].values())


def test_request_deadline_bounds_slow_sources(estate: Estate, workdir: Path, ids: list[str]) -> None:
    cfg = resilient(estate, request_timeout_s=1.5)
    cfg["sources"]["billing"]["timeout_s"] = 30  # the source alone would wait far longer
    g = start_gateway(cfg, workdir, "deadline")
    try:
        estate.faults("billing", {"hang": True})
        answer, elapsed = timed(g, ids)
        assert elapsed < 1.5 + MARGIN_S
        assert {e["extensions"]["code"] for e in answer["errors"]} == {"SOURCE_TIMEOUT"}
        assert all(c["loyalty"] for c in answer["data"]["customers"])
    finally:
        g.stop()
        estate.clear_faults()


def test_bulkhead_bounds_a_slow_source(estate: Estate, workdir: Path, truth: Any) -> None:
    cfg = resilient(estate)
    cfg["sources"]["helpdesk"].update({"concurrency": 2, "queue": 3, "timeout_s": 5})
    g = start_gateway(cfg, workdir, "bulkhead")
    t = Truth(truth)
    many = [gid for gid in sorted(t.ids) if t.ids[gid]["helpdesk"]][:20]
    try:
        estate.faults("helpdesk", {"latency_ms": 300})
        estate.reset_stats()
        answer = g.gql("query($ids: [ID!]!) { customers(ids: $ids) { id tickets { id } accounts { number } } }",
                       {"ids": many})
        assert estate.stats("helpdesk")["max_in_flight"] == 2
        rejected = [e for e in answer["errors"] if e["path"][-1] == "tickets"]
        assert rejected and all(e["extensions"] == {"code": "SOURCE_UNAVAILABLE", "source": "helpdesk"}
                                for e in rejected)
        assert "waiting" in rejected[0]["message"]
        assert all(c["accounts"] is not None for c in answer["data"]["customers"])  # others unaffected
    finally:
        g.stop()
        estate.clear_faults()


def test_failing_crm_and_crosswalk(estate: Estate, workdir: Path, ids: list[str]) -> None:
    dead = "postgresql+asyncpg://postgres@127.0.0.1:1/none"
    cfg = resilient(estate)
    cfg["sources"]["crm"]["dsn"] = dead
    g = start_gateway(cfg, workdir, "nocrm")
    try:
        answer = g.gql("query($ids: [ID!]!) { customers(ids: $ids) { id name emails identities { system } "
                       "accounts { number } } }", {"ids": ids})
        for c in answer["data"]["customers"]:
            assert c["name"] is None and c["emails"] is None and c["identities"] and c["accounts"]
        assert {(e["extensions"]["code"], e["extensions"]["source"]) for e in answer["errors"]} == \
               {("SOURCE_UNAVAILABLE", "crm")}
        assert len(answer["errors"]) == 2 * len(ids)  # one per failed field path
    finally:
        g.stop()
    cfg = resilient(estate)
    cfg["sources"]["crosswalk"]["dsn"] = dead
    g = start_gateway(cfg, workdir, "nocrosswalk")
    try:
        for _ in range(3):
            status, _, body = g.post({"query": '{ customer(id: "C-000001") { id } }'})
            answer = json.loads(body)
            assert status == 200 and answer["data"] == {"customer": None}
            assert answer["errors"][0]["extensions"]["source"] == "crosswalk"
        status, _, body = http("GET", g.url + "/readyz")
        assert status == 503 and "crosswalk" in json.loads(body)["reason"]
        assert http("GET", g.url + "/healthz")[0] == 200
    finally:
        g.stop()


def test_hundred_customers_one_error_per_failed_field_path(estate: Estate, gw: Gateway, truth: Any,
                                                           ids: list[str]) -> None:
    heal(estate, gw, ids)
    t = Truth(truth)
    many = [f"C-{n:06d}" for n in range(101, 201)]
    estate.faults("billing", {"down": True})
    answer = gw.gql(CUSTOMERS_FULL, {"ids": many})
    holders = [i for i, gid in enumerate(many) if t.ids[gid]["billing"]]
    assert sorted((e["path"][1], e["path"][2]) for e in answer["errors"]) == \
           sorted((i, f) for i in holders for f in ("accounts", "invoices"))
    customers = answer["data"]["customers"]
    assert all(c["name"] and c["identities"] for c in customers)
    assert all(customers[i]["accounts"] == [] for i in range(100) if i not in holders)  # never asked: no error
    heal(estate, gw, ids)
