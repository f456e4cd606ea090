"""Logging for `serve` and `demo`: the level, and the JSON access log (one line per request).

The access log is its own logger (`customer_graph.access`, level INFO) writing bare JSON lines to
standard error, so a log shipper parses it without a pattern; everything else keeps the readable
`time level logger: message` form. `--log-level warning` turns the access log off.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson

from telemetry.request import RequestFacts, add_sink

ACCESS = logging.getLogger("customer_graph.access")
LEVELS = ("debug", "info", "warning", "error")


def configure(level: str = "info") -> None:
    """The process's log level and handlers (called once by the CLI before serving)."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("aiosqlite", "asyncio", "aiocache"):  # their DEBUG lines are per statement or per call
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLogger().level))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    ACCESS.handlers[:] = [handler]
    ACCESS.propagate = False
    ACCESS.setLevel(level.upper())


_second: tuple[int, str] = (-1, "")  # the last second formatted, and how (a thousand lines a second share it)


def _timestamp(now: float) -> str:
    """ISO 8601 UTC with milliseconds, of one reading of the clock (the milliseconds belong to its second)."""
    global _second
    second = int(now)
    if second != _second[0]:
        _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_second[1]}.{int(now * 1000) % 1000:03d}Z"


def access_line(facts: RequestFacts) -> dict[str, object]:
    """What the access log says of one request."""
    line: dict[str, object] = {
        "ts": _timestamp(time.time()),
        "request_id": facts.request_id, "method": facts.method, "path": facts.path, "status": facts.status,
        "duration_ms": round(facts.duration_s * 1000, 2), "operation_name": facts.operation_name,
        "operation_type": facts.operation_type, "outcome": facts.outcome, "error_codes": facts.error_codes,
        "subject": facts.subject, "role": facts.role, "refused_by": facts.auth_failure or facts.limit,
        "cache_hits": facts.cache_hits, "response_cache": facts.response_cache,
        "sources": sorted(facts.sources)}
    return line


def log_access(facts: RequestFacts) -> None:
    # The record made here and handed to the logger's handlers: Logger.info would also walk the stack
    # for the caller's file and line, which the JSON line never shows (~15% of the line's cost).
    if ACCESS.isEnabledFor(logging.INFO):
        line = orjson.dumps(access_line(facts)).decode()
        ACCESS.handle(ACCESS.makeRecord(ACCESS.name, logging.INFO, __file__, 0, line, None, None))


def enable_access_log() -> None:
    add_sink(log_access)
