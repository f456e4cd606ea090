"""One JSON audit line per mutation, on the `customer_graph.audit` logger (INFO, whatever the root level).

    {"time": "2025-01-31T09:12:03.120Z", "subject": "u-17", "role": "agent", "mutation": "recordInteraction",
     "operationName": "LogCall", "customerId": "C-000042", "idempotencyKey": "call-7781", "outcome": "ok"}

`outcome` is "ok" or the error's `extensions.code` (BAD_USER_INPUT, NOT_FOUND, SOURCE_UNAVAILABLE, ...;
INTERNAL_SERVER_ERROR for anything unexpected). The line is written when the mutation has finished,
success or failure; what was written (summaries, preferences) is never in it. Subject and role are null
when the gateway runs without auth. Route the logger to its own file or collector with logging's usual
configuration; when nothing is configured at all (e.g. a uvicorn worker process) it writes to stderr.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson

log = logging.getLogger("customer_graph.audit")
log.setLevel(logging.INFO)


def _code(exc: BaseException) -> str:
    extensions = getattr(exc, "extensions", None)
    if isinstance(extensions, dict) and isinstance(extensions.get("code"), str):
        return extensions["code"]  # ClientError and SourceError carry their client-facing code
    return "INTERNAL_SERVER_ERROR"


def _emit(record: dict[str, Any]) -> None:
    if not log.hasHandlers():  # never lose an audit line to logging's WARNING-only last resort
        log.addHandler(logging.StreamHandler())
    log.info(orjson.dumps(record).decode())


@asynccontextmanager
async def audited(info: Any, mutation: str, customer_id: str,
                  idempotency_key: str | None = None) -> AsyncIterator[None]:
    """Around one mutation resolver: `async with audited(info, "recordInteraction", id, key): ...`."""
    outcome = "INTERNAL_SERVER_ERROR"
    try:
        yield
        outcome = "ok"
    except BaseException as exc:
        outcome = "CANCELLED" if isinstance(exc, asyncio.CancelledError) else _code(exc)  # e.g. the deadline
        raise
    finally:
        record(info, mutation, customer_id, idempotency_key, outcome)


def record(info: Any, mutation: str, customer_id: str | None, idempotency_key: str | None, outcome: str) -> None:
    """The audit line of one mutation (also of one refused before it ran, e.g. FORBIDDEN for the role)."""
    principal = getattr(getattr(info, "context", None), "principal", None)
    operation = getattr(info, "operation", None)
    name = getattr(getattr(operation, "name", None), "value", None)
    _emit({"time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
           "subject": getattr(principal, "subject", None), "role": getattr(principal, "role", None),
           "mutation": mutation, "operationName": name, "customerId": customer_id,
           "idempotencyKey": idempotency_key, "outcome": outcome})
