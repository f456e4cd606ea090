"""OpenTelemetry traces: a span per request, per loader batch and per source call, exported over OTLP/HTTP.

On only when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and neither
`OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none`); the SDK reads the rest of the standard
variables itself: OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES (service name "customer-graph" unless they
name one), OTEL_TRACES_SAMPLER (default: parent-based, always on), OTEL_BSP_* (batching),
OTEL_EXPORTER_OTLP_*_HEADERS / _TIMEOUT / _COMPRESSION. Off, `ENABLED` is False and every call site checks
it once: no span object is made.

W3C trace context (traceparent, tracestate) is read from clients and written to every HTTP source: the
source call's span when on; when off, the client's own context passed on unchanged, so the sources' logs
still join the client's trace. A malformed traceparent is ignored (a new trace), never an error.
Nothing here imports our layers; the provider is ours, not the global one, so start and stop can repeat.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from telemetry.request import RequestFacts

log = logging.getLogger("customer_graph")
ENABLED = False  # spans are made; checked once per call site, so tracing off costs one attribute read
PROPAGATOR = TraceContextTextMapPropagator()  # W3C only: a client's baggage is not forwarded to the sources
SERVICE_NAME = "customer-graph"
PROTOCOL = "http/protobuf"
NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,63}$")  # an operation name fit for a span name
ATTR = "customer_graph."  # our attributes' namespace (the standard ones keep theirs)

_provider: Any = None  # the SDK's TracerProvider while on
_tracer: trace.Tracer = trace.NoOpTracer()


def wanted(env: Mapping[str, str]) -> bool:
    """Whether the environment asks for traces to be exported."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if exporter not in ("otlp", ""):
        if exporter != "none":
            log.warning("OTEL_TRACES_EXPORTER=%s: only otlp (over HTTP) is built in; tracing stays off", exporter)
        return False
    if not (env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")):
        return False
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or PROTOCOL).strip().lower()
    if protocol != PROTOCOL:  # protobuf to a gRPC port would fail on every batch: say so once instead
        log.warning("OTEL_EXPORTER_OTLP_PROTOCOL=%s: only %s is built in; tracing stays off", protocol, PROTOCOL)
        return False
    return True


def start(env: Mapping[str, str] | None = None, exporter: Any = None) -> bool:
    """Turn tracing on when the environment asks for it (once per serving process: the export thread must
    start after uvicorn forks its workers, so the app's lifespan calls this). Returns whether it is on.
    `exporter`: a SpanExporter instead of OTLP/HTTP (the tests' in-memory one), which turns tracing on."""
    global ENABLED, _provider, _tracer
    if ENABLED or (exporter is None and not wanted(os.environ if env is None else env)):
        return ENABLED
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME as SERVICE
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE: SERVICE_NAME}))
    _provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    _provider.add_span_processor(BatchSpanProcessor(exporter or OTLPSpanExporter()))  # it reads its endpoint
    _tracer = _provider.get_tracer("customer_graph")
    ENABLED = True
    return True


def stop() -> None:
    """Flush what is batched and turn tracing off (the app's shutdown)."""
    global ENABLED, _provider, _tracer
    ENABLED = False
    provider, _provider, _tracer = _provider, None, trace.NoOpTracer()
    if provider is not None:
        provider.shutdown()


# The request's span (server/observe.py).

def incoming(traceparent: str | None, tracestate: str | None) -> otel_context.Context | None:
    """The client's trace context, or None when it sent none or a malformed one."""
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent} if tracestate is None else \
        {"traceparent": traceparent, "tracestate": tracestate}
    ctx = PROPAGATOR.extract(carrier)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def begin_request(facts: RequestFacts, parent: otel_context.Context | None) -> tuple[Span | None, object]:
    """Make the request's span current (a child of the client's span when it sent one); off, make the
    client's context current so that it is passed on to the sources. Returns what `end_request` needs."""
    if not ENABLED:
        return None, otel_context.attach(parent) if parent is not None else None
    span = _tracer.start_span(f"{facts.method} {facts.path}", parent, SpanKind.SERVER,
                              {"http.request.method": facts.method, "url.path": facts.path,
                               ATTR + "request_id": facts.request_id})
    return span, otel_context.attach(trace.set_span_in_context(span, parent))


def end_request(facts: RequestFacts, begun: tuple[Span | None, object]) -> None:
    span, token = begun
    if token is not None:
        otel_context.detach(token)  # type: ignore[arg-type]
    if span is None:
        return
    if facts.operation_type:
        named = facts.operation_name if facts.operation_name and NAME.match(facts.operation_name) else None
        span.update_name(f"{facts.operation_type} {named}" if named else facts.operation_type)
    span.set_attributes(request_attributes(facts))
    if facts.outcome == "error":
        span.set_status(Status(StatusCode.ERROR, ", ".join(sorted(set(facts.error_codes))) or f"HTTP {facts.status}"))
    span.end()


def request_attributes(facts: RequestFacts) -> dict[str, Any]:
    """What a request's span says once it is over: no token, no subject, no customer data."""
    attrs: dict[str, Any] = {"http.response.status_code": facts.status, ATTR + "outcome": facts.outcome,
                             ATTR + "cache_hits": facts.cache_hits, ATTR + "sources": sorted(facts.sources)}
    if facts.operation_type:
        attrs["graphql.operation.type"] = facts.operation_type
    if facts.operation_name:
        attrs["graphql.operation.name"] = facts.operation_name[:128]
    if facts.error_codes:
        attrs[ATTR + "error_codes"] = sorted(set(facts.error_codes))
    if facts.role:
        attrs[ATTR + "role"] = facts.role
    if facts.response_cache:
        attrs[ATTR + "response_cache"] = facts.response_cache
    return attrs


# Spans below the request (only ever called when ENABLED).

@contextmanager
def span(name: str, attributes: Mapping[str, Any], kind: SpanKind = SpanKind.INTERNAL) -> Iterator[Span]:
    """A current child span; an exception carrying a `code` (a source's error) marks it failed."""
    with _tracer.start_as_current_span(name, kind=kind, attributes=attributes, record_exception=False,
                                       set_status_on_exception=False) as current:
        try:
            yield current
        except Exception as exc:
            failed(current, getattr(exc, "code", None) or type(exc).__name__, str(exc))
            raise


def failed(target: Span, code: str, message: str) -> None:
    target.set_attribute(ATTR + "error_code", code)
    target.set_attribute("error.type", code)
    target.set_status(Status(StatusCode.ERROR, message))


def note(key: str, value: Any) -> None:
    """Set one of our attributes on the current span (the cache's hits on its batch)."""
    trace.get_current_span().set_attribute(ATTR + key, value)


def retried(code: str) -> None:
    """The current source call is tried again after a failure with `code`: counted (over every request
    of the call, pages included) and noted as an event."""
    current = trace.get_current_span()
    done = (getattr(current, "attributes", None) or {}).get(ATTR + "retries", 0)
    current.set_attribute(ATTR + "retries", done + 1)
    current.add_event("retry", {ATTR + "error_code": code})


def batch_failures(values: list[Any]) -> None:
    """Mark the current batch failed when any of its keys' values is a source's error."""
    errors = [v for v in values if isinstance(v, BaseException)]
    if errors:
        codes = ",".join(sorted({getattr(e, "code", type(e).__name__) for e in errors}))
        failed(trace.get_current_span(), codes, f"{len(errors)} of {len(values)} keys failed")


# Outgoing calls.

def outgoing(headers: dict[str, str]) -> dict[str, str]:
    """`headers` plus the current trace's traceparent (and tracestate), when there is a trace."""
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier)
    return {**headers, **carrier} if carrier else headers
