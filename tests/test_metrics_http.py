"""GET /metrics over HTTP against the demo estate: the names, label sets and values a scrape shows after
known requests, with one worker and with two, and no route at all when metrics are off."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import LIVE, Estate, Gateway, gateway_config, http, serve_file, start_gateway, tokens_for
from tests.queries import CUSTOMER_FULL
from tests.truth import Truth

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
ONE = 'query MetricsOne($id: ID!) { customer(id: $id) { id name loyalty { tier } } }'


def scrape(gw: Gateway, accept: str = "") -> tuple[str, Samples]:
    status, headers, body = http("GET", gw.url + "/metrics", headers={"accept": accept} if accept else {})
    assert status == 200, body[:300]
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return headers["content-type"], samples


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include these."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


@pytest.fixture(scope="module")
def gw(estate: Estate, workdir: Path) -> Iterator[Gateway]:
    cfg = gateway_config(estate, {"loyalty": {"retries": 1, "retry_backoff_ms": 0, "circuit_failures": 50}})
    cfg["cache"]["responses"] = {"enabled": False}  # repeats reach the records' tier (its metrics are tested here)
    g = start_gateway(cfg, workdir, "metrics")
    yield g
    g.stop()


@pytest.fixture(scope="module")
def ids(truth: Any) -> list[str]:
    t = Truth(truth)
    return [g for g in sorted(t.ids) if t.ids[g]["loyalty"]][:3]


def test_requests_and_source_calls_are_counted_with_their_labels(gw: Gateway, ids: list[str]) -> None:
    content_type, before = scrape(gw)
    assert content_type.startswith("text/plain; version=") and "charset=utf-8" in content_type
    for gid in ids:
        assert "errors" not in gw.gql(ONE, {"id": gid}, headers=LIVE)  # every record from its source
    _, after = scrape(gw)
    labels = {"operation_name": "MetricsOne", "operation_type": "query", "outcome": "success"}
    assert get(after, "customer_graph_requests_total", **labels) - get(before, "customer_graph_requests_total",
                                                                       **labels) == 3
    assert get(after, "customer_graph_request_duration_seconds_count", **labels) == 3
    read = {"source": "loyalty", "entity": "loyalty", "operation": "read"}
    assert get(after, "customer_graph_source_calls_total", **read) - get(before, "customer_graph_source_calls_total",
                                                                         **read) == 3
    assert get(after, "customer_graph_source_call_duration_seconds_count", **read) >= 3
    assert get(after, "customer_graph_source_call_keys_count", source="loyalty", entity="loyalty") >= 3
    assert get(after, "customer_graph_source_circuit_state", source="loyalty") == 0
    for gid in ids:  # now from the in-process tier
        gw.gql(ONE, {"id": gid})
    _, warm = scrape(gw)
    assert get(warm, "customer_graph_cache_hits_total", tier="l1", source="loyalty") - \
        get(after, "customer_graph_cache_hits_total", tier="l1", source="loyalty") == 3
    assert get(warm, "customer_graph_cache_entries", tier="l1") > 0 and get(warm, "customer_graph_cache_bytes",
                                                                             tier="l1") > 0


def test_a_source_down_counts_its_errors_by_code_and_retries(estate: Estate, gw: Gateway, ids: list[str]) -> None:
    _, before = scrape(gw)
    estate.faults("loyalty", {"down": True})
    answer = gw.gql(ONE, {"id": ids[0]}, headers=LIVE)
    assert answer["errors"][0]["extensions"]["code"] == "SOURCE_UNAVAILABLE"
    _, after = scrape(gw)
    read = {"source": "loyalty", "entity": "loyalty", "operation": "read"}
    errors = "customer_graph_source_errors_total"
    assert get(after, errors, **read, code="SOURCE_UNAVAILABLE") - get(before, errors, **read,
                                                                       code="SOURCE_UNAVAILABLE") == 1
    assert get(after, "customer_graph_source_retries_total", **read) - \
        get(before, "customer_graph_source_retries_total", **read) == 1  # retries: 1
    partial = {"operation_name": "MetricsOne", "operation_type": "query", "outcome": "partial"}
    assert get(after, "customer_graph_requests_total", **partial) - get(before, "customer_graph_requests_total",
                                                                        **partial) == 1


def test_auth_and_limit_rejections_by_reason(gw: Gateway) -> None:
    _, before = scrape(gw)
    assert gw.post({"query": "{ __typename }"}, role=None)[0] == 401
    assert gw.post({"query": "{ __typename }"}, headers={"authorization": "Bearer nonsense"})[0] == 401
    assert gw.post({"query": "{ __typename }"}, headers={"authorization": "Basic eDp5"})[0] == 401
    deep = "{ __schema { types " + "{ fields { type " * 20 + "{ name }" + " } }" * 20 + " } }"
    assert gw.post({"query": deep})[0] == 200
    assert gw.post({"query": "{ __typename }"}, raw=b" " * (2 << 20))[0] == 413
    _, after = scrape(gw)

    def rose(name: str, reason: str) -> float:
        return get(after, name, reason=reason) - get(before, name, reason=reason)

    assert rose("customer_graph_auth_rejections_total", "missing") == 1
    assert rose("customer_graph_auth_rejections_total", "malformed") == 2
    assert rose("customer_graph_limit_rejections_total", "max_depth") == 1
    assert rose("customer_graph_limit_rejections_total", "max_body_bytes") == 1
    rejected = {"operation_name": "(none)", "operation_type": "none", "outcome": "rejected"}
    assert get(after, "customer_graph_requests_total", **rejected) - \
        get(before, "customer_graph_requests_total", **rejected) == 4  # refused before a document was parsed


def test_operation_names_beyond_the_bound_are_other_and_no_label_holds_ids_or_queries(
        gw: Gateway, ids: list[str]) -> None:
    gw.gql(CUSTOMER_FULL, {"id": ids[0]})
    for i in range(60):  # max_operation_names is 50: some of these are "(other)"
        gw.gql(f"query Flood{i} {{ __typename }}")
    _, samples = scrape(gw)
    names = {dict(ls).get("operation_name") for n, ls in samples if n == "customer_graph_requests_total"}
    assert "(other)" in names and 0 < len({n for n in names if n and n.startswith("Flood")}) <= 50
    assert "One" in names  # CUSTOMER_FULL's operation
    values = {v for _, ls in samples for _, v in ls}
    assert not [v for v in values if re.search(r"C-\d{6}|[{}()$:]", v) and v not in ("(other)", "(none)",
                                                                                      "(anonymous)")]
    assert not any(g in v for g in ids for v in values)
    ours = {n for n, _ in samples if not n.startswith(("process_", "python_"))}
    assert ours and all(n.startswith("customer_graph_") for n in ours)


def test_openmetrics_when_asked(gw: Gateway) -> None:
    status, headers, body = http("GET", gw.url + "/metrics", headers={"accept": "application/openmetrics-text"})
    assert status == 200 and headers["content-type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_metrics_off_has_no_route(estate: Estate, workdir: Path) -> None:
    cfg = gateway_config(estate)
    cfg["metrics"] = {"enabled": False}
    g = start_gateway(cfg, workdir, "metrics-off")
    try:
        assert http("GET", g.url + "/metrics")[0] == 404
        assert g.gql("{ __typename }")["data"] == {"__typename": "Query"}
    finally:
        g.stop()


def _per_worker(folder: Path) -> dict[str, float]:
    """Requests each worker has counted so far, from its own file (what a scrape merges)."""
    out = {}
    for f in folder.glob("counter_*.db"):
        found = [s.value for m in MultiProcessCollector.merge([str(f)]) for s in m.samples
                 if s.name == "customer_graph_requests_total" and s.labels.get("operation_name") == "Spread"]
        out[f.stem.split("_", 1)[1]] = sum(found)
    return out


def test_two_workers_are_counted_on_one_scrape(estate: Estate, workdir: Path, tmp_path: Path) -> None:
    cfg = gateway_config(estate)
    path = workdir / "metrics-workers.yaml"
    path.write_text(json.dumps(cfg))
    folder = tmp_path / "prometheus"
    g = serve_file(path, workdir, "metrics-workers", workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(folder)},
                   tokens=tokens_for(cfg))
    sent = 0
    try:
        def burst() -> None:
            threads = [threading.Thread(target=g.gql, args=("query Spread { __typename }",)) for _ in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        # Until both workers have served some: the kernel picks which accepts, and the second may still be
        # starting (its lifespan starts feeds and probes) when the first already answers.
        deadline = time.time() + 60
        while time.time() < deadline:
            burst()
            sent += 16
            if len([n for n in _per_worker(folder).values() if n > 0]) >= 2:
                break
            time.sleep(0.2)
        assert len([n for n in _per_worker(folder).values() if n > 0]) == 2
        labels = {"operation_name": "Spread", "operation_type": "query", "outcome": "success"}
        for _ in range(4):  # whichever worker answers the scrape, it counts them all
            _, samples = scrape(g)
            assert get(samples, "customer_graph_requests_total", **labels) == sent
            assert get(samples, "customer_graph_request_duration_seconds_count", **labels) == sent
            assert total(samples, "customer_graph_source_circuit_state") == 0
    finally:
        g.stop()
    assert not list(folder.glob("*.db"))  # the operator's folder is left empty
