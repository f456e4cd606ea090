"""Tracing end to end over the demo estate: a client's W3C traceparent reaches a REST, the GraphQL and the
SOAP source with tracing off and on; on, the spans a local OTLP/HTTP receiver gets are the request's, its
loader batches' and its source calls', linked as they ran, with a faulted source's call failed."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from estate.generate import Estate as EstateData
from tests.harness import LIVE, Estate, Gateway, free_port_base, gateway_config, serve_file, tokens_for
from tests.otlp_receiver import Receiver, Span, running_receiver
from tests.queries import CUSTOMER_FULL
from tests.truth import Truth

TRACED = ("billing", "loyalty", "warranty")  # a REST source, the GraphQL one and the SOAP/XML one


def traceparent() -> tuple[str, str, str]:
    """A client's trace id, span id and traceparent header, different per test."""
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


@pytest.fixture(scope="module")
def customer(truth: EstateData) -> str:
    """A customer known to billing, loyalty and warranty, so that one view calls all three."""
    ids = Truth(truth).ids
    return next(g for g in sorted(ids) if all(ids[g][s] for s in TRACED))


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


def exporting(estate: Estate, workdir: Path, name: str, env: dict[str, str], workers: int = 1) -> Gateway:
    """A gateway over the estate with `env` (the OTEL_* variables) added to its environment."""
    config = gateway_config(estate)
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return serve_file(path, workdir, name, workers, env=env, tokens=tokens_for(config))


@pytest.fixture(scope="module")
def traced(estate: Estate, workdir: Path, receiver: Receiver) -> Iterator[Gateway]:
    """A gateway exporting to the receiver, batches sent every 50 ms."""
    gw = exporting(estate, workdir, "traced", {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                                               "OTEL_BSP_SCHEDULE_DELAY": "50",
                                               "OTEL_SERVICE_NAME": "customer-graph-test"})
    yield gw
    gw.stop()


def view(gw: Gateway, customer: str, headers: dict[str, str]) -> dict[str, Any]:
    status, _, body = gw.post({"query": CUSTOMER_FULL, "variables": {"id": customer}}, {**LIVE, **headers})
    assert status == 200, body[:300]
    answer: dict[str, Any] = json.loads(body)
    return answer


def received(estate: Estate, trace_id: str) -> dict[str, bool]:
    return {s: trace_id in estate.stats(s)["trace_ids"] for s in TRACED}


def test_off_a_clients_trace_id_reaches_every_http_source(gateway: Gateway, estate: Estate, customer: str) -> None:
    trace_id, _, header = traceparent()
    answer = view(gateway, customer, {"traceparent": header, "tracestate": "client=1"})
    assert "errors" not in answer, answer.get("errors")
    assert received(estate, trace_id) == dict.fromkeys(TRACED, True)


def test_off_without_or_with_a_malformed_traceparent_the_sources_get_none(
        gateway: Gateway, estate: Estate, customer: str) -> None:
    before = {s: (estate.stats(s)["requests"], len(estate.stats(s)["trace_ids"])) for s in TRACED}
    trace_id = os.urandom(16).hex()
    for headers in ({}, {"traceparent": f"00-{trace_id}-nothex-01"}, {"traceparent": "garbage"}):
        answer = view(gateway, customer, headers)
        assert "errors" not in answer and answer["data"]["customer"]["id"] == customer  # never an error
    after = {s: (estate.stats(s)["requests"], len(estate.stats(s)["trace_ids"])) for s in TRACED}
    for s in TRACED:  # called three times more, with no trace id (the deque holds at most 1000)
        assert after[s][0] >= before[s][0] + 3 and (after[s][1] == before[s][1] or after[s][1] == 1000), s
    assert received(estate, trace_id) == dict.fromkeys(TRACED, False)


def spans_of(receiver: Receiver, trace_id: str, sources: tuple[str, ...] = TRACED) -> list[Span]:
    """The trace's spans, once its request span and every listed source's call span have arrived."""
    def complete() -> bool:
        spans = receiver.trace(trace_id)
        called = {s.attributes.get("customer_graph.source") for s in spans if s.kind == "client"}
        return any(s.kind == "server" for s in spans) and set(sources) <= called

    receiver.wait_for(complete)
    return receiver.trace(trace_id)


def test_on_the_spans_nest_request_batch_call_and_the_sources_get_the_trace(
        traced: Gateway, estate: Estate, receiver: Receiver, customer: str) -> None:
    trace_id, client_span, header = traceparent()
    answer = view(traced, customer, {"traceparent": header, "x-request-id": "trace-test-1"})
    assert "errors" not in answer, answer.get("errors")
    assert received(estate, trace_id) == dict.fromkeys(TRACED, True)
    spans = spans_of(receiver, trace_id)
    [request] = [s for s in spans if s.kind == "server"]
    assert (request.parent_id, request.name, request.service) == (client_span, "query One", "customer-graph-test")
    attrs = request.attributes
    assert (attrs["customer_graph.request_id"], attrs["graphql.operation.name"], attrs["graphql.operation.type"],
            attrs["http.response.status_code"], attrs["customer_graph.outcome"], attrs["customer_graph.role"]) == \
        ("trace-test-1", "One", "query", 200, "success", "agent")
    assert set(TRACED) <= set(attrs["customer_graph.sources"])
    assert not any(customer in str(v) or "test-agent" in str(v) for s in spans for v in s.attributes.values())
    batches = {s.attributes["customer_graph.source"]: s for s in spans if s.name.startswith("load ")}
    calls = {s.attributes["customer_graph.source"]: s for s in spans if s.kind == "client"}
    for source in TRACED:
        batch, call = batches[source], calls[source]
        assert batch.parent_id == request.span_id, source  # the dispatch task kept the request's context
        assert call.parent_id == batch.span_id, source
        assert batch.attributes["customer_graph.keys"] >= 1 and batch.attributes["customer_graph.cache_hits"] == 0
        assert call.attributes["customer_graph.entity"] == batch.attributes["customer_graph.entity"]
        assert (call.attributes["customer_graph.keys"], call.attributes["customer_graph.retries"], call.status) == \
            (batch.attributes["customer_graph.keys"], 0, "unset")
    by_id = {s.span_id for s in spans}
    assert all(s.parent_id in by_id for s in spans if s is not request)  # one tree under the request


def test_on_a_faulted_source_is_an_error_span_with_its_retries(
        traced: Gateway, estate: Estate, receiver: Receiver, customer: str) -> None:
    estate.faults("billing", {"status": 503})  # retryable: tried 1 + retries (2) times
    trace_id, _, header = traceparent()
    answer = view(traced, customer, {"traceparent": header})
    assert {e["extensions"]["code"] for e in answer["errors"]} == {"SOURCE_UNAVAILABLE"}
    spans = spans_of(receiver, trace_id, ("billing",))
    [call] = [s for s in spans if s.kind == "client" and s.attributes["customer_graph.source"] == "billing"]
    assert (call.status, call.attributes["customer_graph.error_code"], call.attributes["customer_graph.retries"]) == \
        ("error", "SOURCE_UNAVAILABLE", 2)
    assert [name for name, _ in call.events] == ["retry", "retry"]
    assert "127.0.0.1" not in call.status_message and "injected" not in call.status_message  # no URL, no body
    [batch] = [s for s in spans if s.span_id == call.parent_id]
    assert batch.status == "error" and batch.attributes["customer_graph.error_code"] == "SOURCE_UNAVAILABLE"
    [request] = [s for s in spans if s.kind == "server"]
    assert request.attributes["customer_graph.outcome"] == "partial"
    assert request.attributes["customer_graph.error_codes"] == ["SOURCE_UNAVAILABLE"]


def test_on_a_request_without_a_traceparent_is_a_new_trace_whose_id_the_sources_get(
        traced: Gateway, estate: Estate, receiver: Receiver, customer: str) -> None:
    answer = view(traced, customer, {"traceparent": "00-zz-yy-01", "x-request-id": "trace-test-root"})
    assert "errors" not in answer

    def root() -> list[Span]:
        with receiver.lock:
            return [s for s in receiver.spans if s.attributes.get("customer_graph.request_id") == "trace-test-root"]

    receiver.wait_for(lambda: bool(root()))
    [request] = root()
    assert request.parent_id == ""
    assert received(estate, request.trace_id) == dict.fromkeys(TRACED, True)


def test_the_spans_still_batched_are_sent_when_the_gateway_stops(
        estate: Estate, workdir: Path, receiver: Receiver, customer: str) -> None:
    gw = exporting(estate, workdir, "flushing", {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                                                 "OTEL_BSP_SCHEDULE_DELAY": "600000"})  # no batch before the stop
    try:
        trace_id, _, header = traceparent()
        assert "errors" not in view(gw, customer, {"traceparent": header})
    finally:
        gw.stop()
    assert any(s.kind == "server" for s in receiver.trace(trace_id))  # sent by the shutdown, nothing to wait for


def test_an_unreachable_collector_never_fails_a_request(
        estate: Estate, workdir: Path, customer: str) -> None:
    dead = f"http://127.0.0.1:{free_port_base(1) + 1}"
    gw = exporting(estate, workdir, "collector-down", {"OTEL_EXPORTER_OTLP_ENDPOINT": dead,
                                                       "OTEL_BSP_SCHEDULE_DELAY": "50",
                                                       "OTEL_EXPORTER_OTLP_TIMEOUT": "1"})
    try:
        for _ in range(3):
            trace_id, _, header = traceparent()
            answer = view(gw, customer, {"traceparent": header})
            assert "errors" not in answer and answer["data"]["customer"]["id"] == customer
            assert received(estate, trace_id) == dict.fromkeys(TRACED, True)
    finally:
        gw.stop()


def test_with_two_workers_every_requests_span_is_exported(estate: Estate, workdir: Path, receiver: Receiver) -> None:
    """Each worker starts its own exporter after uvicorn spawned it; requests land on either."""
    gw = exporting(estate, workdir, "traced-workers", {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                                                       "OTEL_BSP_SCHEDULE_DELAY": "50"}, workers=2)
    try:
        traces = [traceparent()[0::2] for _ in range(12)]
        for _, header in traces:  # a new connection each
            assert gw.gql('{ customer(id: "C-000001") { id } }', headers={"traceparent": header})["data"]

        def exported() -> int:
            return sum(any(s.kind == "server" for s in receiver.trace(t)) for t, _ in traces)

        receiver.wait_for(lambda: exported() == len(traces))
    finally:
        gw.stop()
