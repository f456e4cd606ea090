"""Cross-cutting observability (metrics, traces, logs): one small interface that every layer may call and
that imports none of them (../shared/ARCHITECTURE.md). Each module holds one concern:

- `request.py`: the facts of the request being served (a context variable), filled by the layers that
  learn them (the server: id, operation, status, errors, who; connectors: the sources called; the cache:
  hits), and handed to the sinks when the request ends.
- `logs.py`: the JSON access log, one of those sinks, and the logging setup of `serve` and `demo`.
- `tracing.py`: OpenTelemetry spans (request, loader batch, source call) exported over OTLP/HTTP when
  the OTEL_* environment asks for it, and the W3C trace context passed on to the HTTP sources.
"""
