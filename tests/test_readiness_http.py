"""Liveness, readiness and the start-up table, end to end: gateways of their own over the session estate,
with the identity database (the crosswalk, SQLite) missing at start, arriving, and failing later, and
other sources down at start. Readiness is polled within a bounded deadline, never timed."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from tests.harness import Estate, Gateway, free_port_base, gateway_config, http, start_gateway
from tests.truth import Truth

PROBE_S = 0.25  # the gateways' readiness probe interval here


def readyz(gw: Gateway) -> tuple[int, dict[str, Any]]:
    status, _, body = http("GET", gw.url + "/readyz")
    return status, json.loads(body)


def until(gw: Gateway, ready: bool, probes: int = 1, deadline_s: float = 30) -> dict[str, Any]:
    """/readyz's body once it says `ready` after at least `probes` probes (or the assertion that it never did)."""
    deadline = time.monotonic() + deadline_s
    while True:
        status, body = readyz(gw)
        if ((status == 200) == ready and body["identity"]["probes"] >= probes) or time.monotonic() > deadline:
            assert (status == 200) == ready and body["status"] == ("ready" if ready else "unavailable"), body
            assert body["identity"]["probes"] >= probes, body
            return body
        time.sleep(PROBE_S / 2)


def start_up_table(gw: Gateway) -> dict[str, tuple[str, str]]:
    """The start-up table's rows in the gateway's output: source -> (status, detail)."""
    text = gw.log.read_text()
    table = text[text.index("sources at start"):].splitlines()[2:]
    rows = [re.match(r"^  (\w+) +(up|DOWN) +[\d.]+ ms +(.*)$", line) for line in table]
    return {m.group(1): (m.group(2), m.group(3)) for m in rows if m}


def test_identity_database_missing_at_start_then_arriving_then_failing(estate: Estate, workdir: Path,
                                                                       tmp_path: Path) -> None:
    mount = tmp_path / "mount"  # not there yet: SQLite cannot open (or create) the file
    db = mount / "crosswalk.sqlite"
    cfg = gateway_config(estate, {"crosswalk": {"dsn": f"sqlite+aiosqlite:///{db}", "circuit_failures": 2,
                                                "circuit_reset_s": 1.0}})
    cfg["gateway"]["ready_probe_s"] = PROBE_S
    gw = start_gateway(cfg, workdir, "latecrosswalk")
    try:
        assert http("GET", gw.url + "/healthz")[0] == 200  # alive all along
        status, body = readyz(gw)
        assert status == 503 and body["reason"].startswith("identity source 'crosswalk' has not answered since start")
        assert set(body["sources"]) == set(cfg["sources"]) and "cache" in body  # the fields clients read stay
        table = start_up_table(gw)
        assert table["crosswalk"] == ("DOWN", f"SOURCE_UNAVAILABLE: no such database file {db}")
        assert all(status == "up" for name, (status, _) in table.items() if name != "crosswalk"), table
        out = gw.log.read_text()
        assert "the identity source crosswalk is down: starting anyway, not ready (/readyz 503) until it answers" in out
        assert "sources down" not in out  # the others are up
        body = until(gw, False, probes=1)  # the background probe has tried, and says why
        assert body["reason"] == ("identity source 'crosswalk' has not answered since start (last probe: "
                                  "SOURCE_UNAVAILABLE: database unavailable)")

        mount.mkdir()
        shutil.copy(estate.data / "crosswalk.sqlite", db)
        body = until(gw, True)
        assert body["reason"] is None and body["identity"]["last_failure"]
        assert body["sources"]["crosswalk"]["calls"] == 0  # no client asked: the probe found it by itself

        with db.open("wb"):  # the database goes away under the held connection: its tables are gone
            pass
        body = until(gw, False)
        assert body["reason"] == ("identity source 'crosswalk' did not answer its last probe: "
                                  "SOURCE_BAD_RESPONSE: query failed")
        assert body["sources"]["crosswalk"]["calls"] == 0 and http("GET", gw.url + "/healthz")[0] == 200

        for gid in ("C-000041", "C-000042"):  # clients fail too, and open the crosswalk's circuit
            answer = gw.gql("query($id: ID!) { customer(id: $id) { id } }", {"id": gid})
            assert answer["errors"][0]["extensions"] == {"code": "SOURCE_BAD_RESPONSE", "source": "crosswalk"}
        status, body = readyz(gw)
        assert status == 503 and body["reason"].startswith("identity source 'crosswalk' circuit is open, next trial in")
        shutil.copy(estate.data / "crosswalk.sqlite", db)
        body = until(gw, True)  # the probe is the circuit's trial call: no client needed to close it
        assert body["sources"]["crosswalk"]["circuit"] == "closed" and body["sources"]["crosswalk"]["calls"] == 2
        answer = gw.gql('{ customer(id: "C-000042") { id } }')
        assert answer == {"data": {"customer": {"id": "C-000042"}}}
    finally:
        gw.stop()


def test_sources_down_at_start_are_reported_and_the_gateway_serves_ready(estate: Estate, workdir: Path,
                                                                        truth: Any) -> None:
    member = next(gid for gid, ids in sorted(Truth(truth).ids.items()) if ids["loyalty"])
    closed = free_port_base(1) + 1  # nobody listens there
    cfg = gateway_config(estate, {"loyalty": {"url": f"http://127.0.0.1:{closed}"}})
    cfg["gateway"]["ready_probe_s"] = PROBE_S
    estate.faults("billing", {"hang": True})  # answers nothing while the gateway starts
    try:
        gw = start_gateway(cfg, workdir, "partialstart", args=["--ping-timeout", "0.5"])
    finally:
        estate.faults("billing", {})
    try:
        table = start_up_table(gw)
        assert table["billing"] == ("DOWN", "SOURCE_TIMEOUT: no answer within 0.5 s")  # the check is bounded
        assert table["loyalty"][0] == "DOWN" and table["loyalty"][1].startswith("SOURCE_UNAVAILABLE: ")
        assert str(closed) not in table["loyalty"][1]  # a source's address is not printed
        assert table["crosswalk"] == ("up", "identities: not found")
        out = gw.log.read_text()
        assert ("2 of 12 sources down: billing, loyalty; starting anyway, the fields they feed give errors beside "
                "the rest (partial results) until they answer") in out
        assert "identity source crosswalk is down" not in out
        until(gw, True)
        answer = gw.gql("query($id: ID!) { customer(id: $id) { id loyalty { tier } } }", {"id": member})
        assert answer["data"]["customer"] == {"id": member, "loyalty": None}
        assert {(e["extensions"]["code"], e["extensions"]["source"]) for e in answer["errors"]} == \
            {("SOURCE_UNAVAILABLE", "loyalty")}
        assert readyz(gw)[0] == 200  # a non-identity source down leaves it ready
    finally:
        gw.stop()
