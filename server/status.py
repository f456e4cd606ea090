"""The live status page's data (`GET /status.json`; the page itself is static/status/, no CDN).

Per source: its state (up, degraded, down), circuit, p50/p99 latency, error rate and calls per second
over the last minutes (connectors/window.py, recorded by every source call); the cache's hit rate and
size; the gateway's request rate. An operator sees at a glance which system is hurting.
"""

from __future__ import annotations

from typing import Any

from connectors.base import Connector
from connectors.window import RecentCalls, Summary

WINDOW_S = 300  # "the last minutes"
DOWN_ERROR_RATE = 0.5  # of the last minute's calls: at least this many failing is down, any is degraded


def source_state(connector: Connector, last_minute: Summary) -> str:
    """down: its circuit is open, or its last call failed and most of the last minute's did; degraded:
    some failures lately, or its circuit half open; up otherwise (including no calls yet)."""
    circuit = connector.circuit.state
    if circuit == "open":
        return "down"
    rate = last_minute.error_rate
    if rate is not None and rate >= DOWN_ERROR_RATE and not connector.recent.last_ok:
        return "down"
    if circuit == "half_open" or (rate or 0) > 0:
        return "degraded"
    return "up"


def _source(name: str, c: Connector) -> dict[str, Any]:
    window, minute = c.recent.summary(WINDOW_S), c.recent.summary(60)
    return {"name": name, "kind": c.config.kind, "state": source_state(c, minute), "circuit": c.circuit.state,
            "p50_ms": window.p50_ms, "p99_ms": window.p99_ms, "calls": window.calls,
            "error_rate": None if window.error_rate is None else round(window.error_rate, 3),
            "per_second": window.per_second, "last_error": c.recent.last_error}


def snapshot(connectors: dict[str, Connector], cache: Any, requests: RecentCalls) -> dict[str, Any]:
    """Everything the page shows, as JSON."""
    out: dict[str, Any] = {"window_s": WINDOW_S,
                           "sources": [_source(n, c) for n, c in sorted(connectors.items())]}
    req = requests.summary(60)
    out["requests"] = {"per_second": req.per_second, "p50_ms": req.p50_ms, "p99_ms": req.p99_ms,
                       "error_rate": req.error_rate}
    if cache is not None:
        status = cache.tiers.status()
        hits = sum(v.get("hits", 0) for v in status["sources"].values())
        misses = sum(v.get("misses", 0) for v in status["sources"].values())
        out["cache"] = {"entries": status["entries"], "bytes": status["bytes"], "max_entries": status["max_entries"],
                        "hit_rate": round(hits / (hits + misses), 3) if hits + misses else None}
    else:
        out["cache"] = None
    return out
