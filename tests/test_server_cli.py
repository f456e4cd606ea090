"""The front door: the demo command, the SDL printer, GraphiQL offline, health."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness import ROOT, Gateway, free_port_base, http


def test_schema_command_prints_the_public_contract() -> None:
    sdl = subprocess.run([sys.executable, "gateway.py", "schema"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert "customer(id: ID!): Customer" in sdl
    assert "customers(ids: [ID!]!): [Customer]!" in sdl
    assert re.search(r"findCustomers\(email: String = null, phone: String = null, loyaltyCard: String = null, "
                     r"systemId: SystemIdInput = null\): \[Customer!\]!", sdl)
    assert "JSON" not in sdl  # typed fields only, no blobs


def test_graphiql_is_served_offline_with_an_example(gateway: Gateway) -> None:
    status, headers, body = http("GET", gateway.url + "/graphql", headers={"accept": "text/html"})
    page = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "PointOfSale" in page and "__DEFAULT_QUERY_JSON__" not in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets and all(a.startswith("/static/") for a in assets)  # nothing from a CDN
    for asset in assets:
        status, _, content = http("GET", gateway.url + asset)
        assert status == 200 and len(content) > 1000, asset


def test_health(gateway: Gateway) -> None:
    status, _, body = http("GET", gateway.url + "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"


def _post_when_up(port: int, token: str, query: str) -> tuple[int, bytes]:
    """A query to a gateway that has said it serves: it binds its port a moment later."""
    deadline = time.time() + 30
    while True:
        try:
            status, _, body = http("POST", f"http://127.0.0.1:{port}/graphql", json.dumps({"query": query}).encode(),
                                   {"content-type": "application/json", "authorization": f"Bearer {token}"},
                                   timeout=10)
            return status, body
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def test_demo_command_starts_estate_and_gateway(tmp_path: Path) -> None:
    base = free_port_base(12)
    port = base + 11
    proc = subprocess.Popen([sys.executable, "gateway.py", "demo", "--port", str(port), "--port-base", str(base),
                             "--customers", "150", "--data", str(tmp_path / "data")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(5)]
        assert f"http://127.0.0.1:{port}/graphql" in lines[1], lines
        # The demo signs an agent and a point-of-sale token and shows a curl line using one.
        tokens = dict(line.strip().split(" token: ") for line in lines[2:4])
        assert set(tokens) == {"agent", "pos"} and f"Bearer {tokens['pos']}" in lines[4], lines
        while not lines[-1].startswith("all ") and lines[-1] and len(lines) < 40:  # to the start-up table's end
            lines.append(proc.stdout.readline())
        text = "".join(lines)
        assert f"serving http://127.0.0.1:{port}/graphql" in text and f"config {ROOT / 'gateway.yaml'}" in text
        table = text[text.index("sources at start"):]
        assert all(re.search(rf"^  {s} +up ", table, re.M) for s in ("crosswalk", "crm", "billing")), table
        assert lines[-1] == "all 12 sources up\n", lines
        status, body = _post_when_up(port, tokens["agent"],
                                     '{ customer(id: "C-000042") { id loyalty { tier } identities { system } } }')
        answer = json.loads(body)
        assert status == 200 and answer["data"]["customer"]["id"] == "C-000042" and "errors" not in answer
        assert (tmp_path / "data" / "crm.sqlite").exists()  # embedded SQLite, no database server
        page = http("GET", f"http://127.0.0.1:{port}/graphql", headers={"accept": "text/html"})[2].decode()
        assert f"Bearer {tokens['agent']}" in page  # GraphiQL opens signed in as an agent
    finally:
        proc.terminate()
        proc.wait(20)


def test_make_demo_is_the_front_door(tmp_path: Path) -> None:
    """README's first command, `make demo`, runs the demo in the environment make keeps (this one)."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("the tests do not run in a virtual environment, so there is none for make to reuse")
    base = free_port_base(12)
    port = base + 11
    args = f"--port {port} --port-base {base} --customers 120 --data {tmp_path / 'data'} --log-level warning"
    proc = subprocess.Popen(["make", "-s", "demo", f"VENV={sys.prefix}", f"ARGS={args}"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        lines: list[str] = []  # make may install first (the environment older than pyproject.toml): its output
        while not (lines and lines[-1].startswith("Customer Graph serving")) and len(lines) < 500:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        served = lines[-1] if lines else ""
        assert f"http://127.0.0.1:{port}/graphql" in served and "gateway.yaml" in served, lines
        token = next(line.split(" token: ")[1].strip() for line in lines if "agent token: " in line)
        status, body = _post_when_up(port, token, '{ customer(id: "C-000042") { id } }')
        assert status == 200 and json.loads(body)["data"]["customer"]["id"] == "C-000042"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # make, the demo and its estate
        proc.wait(20)
