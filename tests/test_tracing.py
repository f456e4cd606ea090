"""Tracing's logic in-process (telemetry/tracing.py): the client's trace context read or ignored, the off
path making no span and passing the client's context on, the spans' names, parents and attributes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, get_current_span

from connectors.base import SOURCE_UNAVAILABLE, Connector, SourceConfig, SourceError
from telemetry import tracing
from telemetry.request import RequestFacts

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
CLIENT = f"00-{TRACE}-{PARENT}-01"


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):  # the service name is then ours
        monkeypatch.delenv(name, raising=False)
    exporter = InMemorySpanExporter()
    assert tracing.start(exporter=exporter) and tracing.ENABLED
    try:
        yield exporter
    finally:
        tracing.stop()


def finished(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    tracing.stop()  # flushes the batch
    return list(exporter.get_finished_spans())


def test_tracing_is_on_only_when_an_otlp_endpoint_is_set() -> None:
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert tracing.wanted(endpoint)
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"})
    assert not tracing.wanted({})
    assert not tracing.wanted({**endpoint, "OTEL_SDK_DISABLED": "TRUE"})
    assert not tracing.wanted({**endpoint, "OTEL_TRACES_EXPORTER": "none"})
    assert tracing.wanted({**endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    assert not tracing.wanted({**endpoint, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"})  # not built in
    assert not tracing.start({}) and not tracing.ENABLED


def test_a_valid_traceparent_is_read_and_a_malformed_one_ignored() -> None:
    ctx = tracing.incoming(CLIENT, "vendor=x")
    assert ctx is not None
    span = get_current_span(ctx).get_span_context()
    assert (format(span.trace_id, "032x"), format(span.span_id, "016x"), span.trace_flags.sampled) == \
        (TRACE, PARENT, True)
    for bad in ("", "garbage", f"00-{TRACE[:-1]}-{PARENT}-01", f"ff-{TRACE}-{PARENT}-01", f"00-{'0' * 32}-{PARENT}-01",
                f"00-{TRACE}-{'0' * 16}-01", f"00-{TRACE.upper()}-{PARENT}-01", f"00-{TRACE}-{PARENT}"):
        assert tracing.incoming(bad, None) is None, bad
    assert tracing.incoming(None, "vendor=x") is None


def test_off_the_clients_context_is_passed_on_unchanged_and_no_span_is_made(exported: InMemorySpanExporter) -> None:
    with pytest.MonkeyPatch.context() as patched:  # a provider that would record, behind the flag every site checks
        patched.setattr(tracing, "ENABLED", False)
        headers = {"accept": "application/json"}
        assert tracing.outgoing(headers) is headers  # no trace: not even a copy
        facts = RequestFacts("r1", "POST", "/graphql")
        begun = tracing.begin_request(facts, tracing.incoming(CLIENT, "vendor=x"))
        assert tracing.outgoing(headers) == {**headers, "traceparent": CLIENT, "tracestate": "vendor=x"}
        facts.status = 200
        tracing.end_request(facts, begun)
        assert tracing.outgoing(headers) is headers
        connector = source(retries=0)
        assert asyncio.run(connector.fetch("accounts", ["A1"])) == {"A1": {"key": "A1"}}
    assert finished(exported) == []


def source(retries: int = 2, fail_times: int = 0, circuit_failures: int = 5) -> Connector:
    """A connector whose one entity fails retryably `fail_times` times (through `guarded`), then answers."""
    config = SourceConfig(name="billing", kind="rest", system="billing", url="http://127.0.0.1:9", retries=retries,
                          retry_backoff_ms=0, circuit_failures=circuit_failures)
    connector = Connector(config)
    failures = iter(range(fail_times))

    async def once(keys: list[str]) -> dict[str, Any]:
        if next(failures, None) is not None:
            raise connector.error(SOURCE_UNAVAILABLE, "answered HTTP 503", retryable=True)
        return {k: {"key": k} for k in keys}

    async def fetch(c: Connector, keys: list[str]) -> dict[str, Any]:
        return await c.guarded(lambda: once(keys))

    connector.entities["accounts"] = fetch
    return connector


def test_the_request_span_continues_the_clients_trace_with_its_facts(exported: InMemorySpanExporter) -> None:
    facts = RequestFacts("req-7", "POST", "/graphql")
    begun = tracing.begin_request(facts, tracing.incoming(CLIENT, None))
    with tracing.span("load billing.accounts", {"customer_graph.keys": 2}):
        sent = tracing.outgoing({})["traceparent"]
    facts.operation_name, facts.operation_type, facts.status = "PointOfSale", "query", 200
    facts.subject, facts.role, facts.cache_hits, facts.sources = "agent-17", "pos", 3, {"crm", "billing"}
    facts.error_codes = ["SOURCE_TIMEOUT", "SOURCE_TIMEOUT"]
    facts.partial = True
    facts.response_cache = "miss"
    tracing.end_request(facts, begun)
    child, request = finished(exported)
    assert request.name == "query PointOfSale" and request.kind is SpanKind.SERVER
    assert request.resource.attributes["service.name"] == "customer-graph"
    assert format(request.context.trace_id, "032x") == TRACE and format(request.parent.span_id, "016x") == PARENT
    assert child.parent.span_id == request.context.span_id and child.context.trace_id == request.context.trace_id
    assert sent == f"00-{TRACE}-{format(child.context.span_id, '016x')}-01"  # the sources see the inner span
    assert dict(request.attributes) == {
        "http.request.method": "POST", "url.path": "/graphql", "customer_graph.request_id": "req-7",
        "http.response.status_code": 200, "customer_graph.outcome": "partial", "customer_graph.cache_hits": 3,
        "customer_graph.sources": ("billing", "crm"), "graphql.operation.type": "query",
        "graphql.operation.name": "PointOfSale", "customer_graph.error_codes": ("SOURCE_TIMEOUT",),
        "customer_graph.role": "pos", "customer_graph.response_cache": "miss"}  # never the subject, a token or customer data
    assert request.status.status_code is StatusCode.UNSET  # partial: the answer carried data


def test_a_failed_request_is_an_error_span_and_an_odd_operation_name_is_not_its_name(
        exported: InMemorySpanExporter) -> None:
    facts = RequestFacts("req-8", "POST", "/graphql")
    begun = tracing.begin_request(facts, None)
    facts.operation_name, facts.operation_type, facts.status = "x" * 65, "query", 200
    facts.error_codes = ["SOURCE_UNAVAILABLE"]
    tracing.end_request(facts, begun)
    facts = RequestFacts("req-9", "POST", "/graphql")
    tracing.end_request(facts, tracing.begin_request(facts, None))  # refused before any document was read
    odd, unparsed = finished(exported)
    assert odd.name == "query" and odd.parent is None and odd.attributes["graphql.operation.name"] == "x" * 65
    assert odd.status.status_code is StatusCode.ERROR and odd.status.description == "SOURCE_UNAVAILABLE"
    assert unparsed.name == "POST /graphql"


def test_a_source_call_span_counts_its_retries_and_fails_with_the_code(exported: InMemorySpanExporter) -> None:
    asyncio.run(source(fail_times=2).fetch("accounts", ["A1", "A2", "A3"]))
    failing = source(fail_times=10, circuit_failures=1)
    with pytest.raises(SourceError):
        asyncio.run(failing.fetch("accounts", ["A1"]))
    with pytest.raises(SourceError):
        asyncio.run(failing.fetch("accounts", ["A1"]))  # refused: the circuit opened
    recovered, failed, refused = finished(exported)
    assert recovered.name == "fetch billing.accounts" and recovered.kind is SpanKind.CLIENT
    assert dict(recovered.attributes) == {"customer_graph.source": "billing", "customer_graph.entity": "accounts",
                                          "customer_graph.keys": 3, "customer_graph.retries": 2}
    assert [e.name for e in recovered.events] == ["retry", "retry"]
    assert recovered.status.status_code is StatusCode.UNSET
    assert failed.attributes["customer_graph.retries"] == 2 and failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes["customer_graph.error_code"], failed.status.description) == \
        (SOURCE_UNAVAILABLE, "billing: answered HTTP 503")
    assert refused.attributes["customer_graph.error_code"] == "CIRCUIT_OPEN"
    assert refused.attributes["customer_graph.retries"] == 0 and refused.status.status_code is StatusCode.ERROR


def test_a_write_is_a_source_call_span_named_by_its_action(exported: InMemorySpanExporter) -> None:
    connector = source()

    async def update(args: Any) -> dict[str, Any]:
        return {"ok": True}

    connector.actions["update_ticket"] = update
    assert asyncio.run(connector.write("update_ticket", {})) == {"ok": True}
    [write] = finished(exported)
    assert (write.name, write.kind) == ("write billing.update_ticket", SpanKind.CLIENT)
    assert dict(write.attributes) == {"customer_graph.source": "billing", "customer_graph.action": "update_ticket",
                                      "customer_graph.retries": 0}
