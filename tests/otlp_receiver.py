"""A small OTLP/HTTP trace receiver on loopback (POST /v1/traces, protobuf), for the tests and the bench.

It runs an aiohttp app on its own event loop in a thread, answers as a collector does, and keeps what it
received: every span decoded with opentelemetry-proto's ExportTraceServiceRequest (or, for the bench, only
the counts of requests, bytes and spans, which costs the receiver next to nothing).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.harness import free_port_base

KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
STATUS = {0: "unset", 1: "ok", 2: "error"}


def value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [value(x) for x in v.array_value.values]
    return getattr(v, which) if which else None


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    name: str
    kind: str
    attributes: dict[str, Any]
    status: str
    status_message: str
    events: list[tuple[str, dict[str, Any]]]
    service: str


def decode(request: ExportTraceServiceRequest) -> list[Span]:
    out = []
    for rs in request.resource_spans:
        service = next((value(a.value) for a in rs.resource.attributes if a.key == "service.name"), "")
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(Span(s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.name,
                                KINDS.get(s.kind, str(s.kind)), {a.key: value(a.value) for a in s.attributes},
                                STATUS.get(s.status.code, str(s.status.code)), s.status.message,
                                [(e.name, {a.key: value(a.value) for a in e.attributes}) for e in s.events], service))
    return out


@dataclass
class Receiver:
    port: int
    keeping: bool = True  # keep every span decoded (False: count them only)
    requests: int = 0
    bytes: int = 0
    count: int = 0  # spans received
    spans: list[Span] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        """The value for OTEL_EXPORTER_OTLP_ENDPOINT (the exporter appends /v1/traces)."""
        return f"http://127.0.0.1:{self.port}"

    async def traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        message = ExportTraceServiceRequest.FromString(body)
        found = decode(message) if self.keeping else []
        count = sum(len(ss.spans) for rs in message.resource_spans for ss in rs.scope_spans)
        with self.lock:
            self.requests += 1
            self.bytes += len(body)
            self.count += count
            self.spans += found
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    def trace(self, trace_id: str) -> list[Span]:
        with self.lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def wait_for(self, found: Callable[[], bool], timeout_s: float = 20) -> None:
        """Until `found()` holds (the exporter sends in batches), or fail saying what arrived."""
        deadline = time.monotonic() + timeout_s
        while not found():
            if time.monotonic() > deadline:
                raise AssertionError(f"not exported within {timeout_s} s; received {len(self.spans)} spans")
            time.sleep(0.05)


@contextmanager
def running_receiver(keeping: bool = True) -> Iterator[Receiver]:
    receiver = Receiver(free_port_base(1) + 1, keeping)
    loop = asyncio.new_event_loop()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.add_routes([web.post("/v1/traces", receiver.traces)])
    runner = web.AppRunner(app, access_log=None)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", receiver.port).start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name="otlp-receiver", daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the OTLP receiver did not start")
    try:
        yield receiver
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
