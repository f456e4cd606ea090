"""The access log (telemetry/logs.py) and request ids (server/observe.py), end to end: a gateway of its
own over the session estate, its log file read back."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from telemetry.request import request_id
from tests.harness import LIVE, Estate, Gateway, gateway_config, http, running_gateway, start_gateway
from tests.truth import Truth

LOOKUP = "query Lookup($id: ID!) { customer(id: $id) { id name accounts { number } } }"
GENERATED = re.compile(r"[0-9a-f]{16}")


@pytest.fixture(scope="module")
def holders(truth: Any) -> list[str]:
    """Customers with a billing account and a CRM profile (so LOOKUP calls billing, crm and crosswalk)."""
    ids = Truth(truth).ids
    return [gid for gid in sorted(ids) if ids[gid]["billing"] and ids[gid]["crm"]]


@pytest.fixture(scope="module")
def gw(estate: Estate, workdir: Path) -> Iterator[Gateway]:
    yield from running_gateway(gateway_config(estate), workdir, "accesslog")


def access_lines(gw: Gateway) -> list[dict[str, Any]]:
    """The JSON lines of the gateway's log (the rest is readable text: start-up, warnings)."""
    return [json.loads(line) for line in gw.log.read_text().splitlines() if line.startswith("{")]


def line_of(gw: Gateway, rid: str, deadline_s: float = 10) -> dict[str, Any]:
    """The one access line of request `rid` (written just after its answer, so waited for)."""
    deadline = time.monotonic() + deadline_s
    while True:
        found = [line for line in access_lines(gw) if line["request_id"] == rid]
        if found or time.monotonic() > deadline:
            assert len(found) == 1, (rid, found)
            return found[0]
        time.sleep(0.05)


def ask(gw: Gateway, query: str, variables: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
        role: str | None = "agent") -> tuple[int, dict[str, Any], dict[str, Any]]:
    """The status, answer and access line of one request (its id chosen here)."""
    rid = f"test-{uuid.uuid4().hex}"
    status, answer_headers, body = gw.post({"query": query, "variables": variables or {}},
                                           {"x-request-id": rid, **(headers or {})}, role=role)
    assert answer_headers["x-request-id"] == rid
    return status, json.loads(body), line_of(gw, rid)


def test_serve_prints_where_it_listens_and_the_config_it_loaded(gw: Gateway, workdir: Path) -> None:
    text = gw.log.read_text()
    assert f"Customer Graph serving http://127.0.0.1:{gw.port}/graphql (1 worker)" in text
    assert f"config {(workdir / 'accesslog.yaml').resolve()}: 12 sources" in text
    assert "identity source crosswalk" in text and f"status http://127.0.0.1:{gw.port}/status" in text


def test_a_query_is_one_line_with_its_operation_caller_and_the_sources_it_called(gw: Gateway,
                                                                                holders: list[str]) -> None:
    status, answer, line = ask(gw, LOOKUP, {"id": holders[0]}, LIVE)
    assert status == 200 and answer["data"]["customer"]["id"] == holders[0] and "errors" not in answer
    assert {k: line[k] for k in ("method", "path", "status", "operation_name", "operation_type", "outcome",
                                 "error_codes", "subject", "role", "cache_hits", "sources")} == {
        "method": "POST", "path": "/graphql", "status": 200, "operation_name": "Lookup", "operation_type": "query",
        "outcome": "success", "error_codes": [], "subject": "test-agent", "role": "agent", "cache_hits": 0,
        "sources": ["billing", "crm", "crosswalk"]}
    assert line["duration_ms"] > 0 and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])


def test_a_warm_repeat_logs_its_cache_hits_and_calls_no_source(gw: Gateway, holders: list[str]) -> None:
    ask(gw, LOOKUP, {"id": holders[1]})
    status, answer, line = ask(gw, LOOKUP, {"id": holders[1]}, role="pos")
    assert status == 200 and "errors" not in answer
    assert line["cache_hits"] >= 3 and line["sources"] == []  # identities, profile, accounts from the cache
    assert (line["subject"], line["role"]) == ("test-pos", "pos")


def test_a_failing_source_logs_its_error_code_and_a_partial_outcome(estate: Estate, gw: Gateway,
                                                                     holders: list[str]) -> None:
    estate.faults("billing", {"down": True})
    status, answer, line = ask(gw, LOOKUP, {"id": holders[2]}, LIVE)
    codes = [e["extensions"]["code"] for e in answer["errors"]]
    assert status == 200 and codes and set(codes) == {"SOURCE_UNAVAILABLE"}
    assert line["error_codes"] == codes and line["outcome"] == "partial"
    assert line["sources"] == ["billing", "crm", "crosswalk"]


def test_a_refused_request_logs_its_status_and_code_without_a_caller(gw: Gateway) -> None:
    status, answer, line = ask(gw, LOOKUP, {"id": "C-000042"}, role=None)
    assert status == 401 and line["status"] == 401 and line["outcome"] == "rejected"
    assert line["error_codes"] == [e["extensions"]["code"] for e in answer["errors"]] == ["UNAUTHENTICATED"]
    assert (line["subject"], line["role"], line["sources"]) == (None, None, [])
    assert line["refused_by"] == "missing"  # the bounded reason the metrics count too


def test_an_invalid_mutation_logs_its_type_and_the_validation_codes(gw: Gateway) -> None:
    status, answer, line = ask(gw, 'mutation Nothing { recordInteraction(customerId: "C-000042") { id } }')
    assert status == line["status"] and line["operation_name"] == "Nothing" and line["operation_type"] == "mutation"
    assert line["error_codes"] == [e["extensions"]["code"] for e in answer["errors"]]
    assert set(line["error_codes"]) == {"GRAPHQL_VALIDATION_FAILED"} and line["outcome"] == "rejected"
    assert line["sources"] == []


def test_a_missing_request_id_is_generated_and_echoed(gw: Gateway) -> None:
    status, headers, _ = gw.post({"query": LOOKUP, "variables": {"id": "C-000042"}})
    rid = headers["x-request-id"]
    assert status == 200 and GENERATED.fullmatch(rid)
    assert line_of(gw, rid)["operation_name"] == "Lookup"


@pytest.mark.parametrize("bad", ["x" * 300, "two words", "quote\"d", "caf\u00e9"])
def test_a_malformed_request_id_is_replaced(gw: Gateway, bad: str) -> None:
    status, headers, _ = gw.post({"query": LOOKUP, "variables": {"id": "C-000042"}},
                                 {"x-request-id": bad.encode().decode("latin-1")})
    rid = headers["x-request-id"]
    assert status == 200 and GENERATED.fullmatch(rid)
    line_of(gw, rid)
    assert bad not in gw.log.read_text(encoding="latin-1")


def test_every_answer_echoes_the_id_but_probes_are_not_logged(gw: Gateway) -> None:
    for path in ("/healthz", "/readyz", "/status.json"):
        rid = f"probe-{uuid.uuid4().hex}"
        assert http("GET", gw.url + path, headers={"x-request-id": rid})[1]["x-request-id"] == rid
        _, _, after = ask(gw, LOOKUP, {"id": "C-000042"})  # logged after the probe's would be
        assert all(line["request_id"] != rid for line in access_lines(gw)), path
        assert after["path"] == "/graphql"


def test_log_level_warning_logs_no_access_line(estate: Estate, workdir: Path) -> None:
    quiet = start_gateway(gateway_config(estate), workdir, "quiet", args=["--log-level", "warning"])
    try:
        status, headers, _ = quiet.post({"query": LOOKUP, "variables": {"id": "C-000042"}})
        assert status == 200 and headers["x-request-id"]
    finally:
        quiet.stop()  # its log is complete once it has exited
    assert access_lines(quiet) == []
    assert f"serving http://127.0.0.1:{quiet.port}/graphql" in quiet.log.read_text()


@pytest.mark.parametrize("given", ["abc\n", "", "x" * 129, "a b"])
def test_request_ids_outside_the_safe_token_are_replaced(given: str) -> None:
    assert GENERATED.fullmatch(request_id(given))


def test_a_safe_request_id_is_kept() -> None:
    assert request_id("a/B:c.d_e+f=g-1") == "a/B:c.d_e+f=g-1"
