"""Start the demo estate and gateways as real processes on loopback, and talk to them over HTTP.

Used by the tests and the benchmarks; nothing here is mocked.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

import config as gateway_settings
from server.auth import issue

ROOT = Path(__file__).resolve().parent.parent
LIVE = {"cache-control": "no-cache"}  # read every record from its source, not the cache


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_base(span: int = 10) -> int:
    """A base such that base+1 .. base+span are all free."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1] - 1
        if base + span < 65000 and all(_free(base + i) for i in range(1, span + 1)):
            return base
    raise RuntimeError("no free port range")


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _wait_http(url: str, proc: subprocess.Popen[Any], what: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            if http("GET", url, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer at {url}")


@dataclass
class Estate:
    proc: subprocess.Popen[str]
    ports: dict[str, int]
    data: Path
    customers: int
    seed: int
    as_of: date

    def url(self, source: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[source]}{path}"

    def stats(self, source: str) -> dict[str, Any]:
        return json.loads(http("GET", self.url(source, "/__stats"))[2])

    def reset_stats(self) -> None:
        for name in self.ports:
            http("POST", self.url(name, "/__stats/reset"))

    def faults(self, source: str, faults: dict[str, Any]) -> None:
        status, _, body = http("POST", self.url(source, "/__faults"), json.dumps(faults).encode(),
                               {"content-type": "application/json"})
        assert status == 200, body

    def clear_faults(self) -> None:
        for name in self.ports:
            self.faults(name, {})

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)


def start_estate(data: Path, customers: int = 300, seed: int = 42) -> Estate:
    base = free_port_base()
    proc = subprocess.Popen([sys.executable, "-m", "estate", "serve", "--port-base", str(base), "--customers",
                             str(customers), "--seed", str(seed), "--data", str(data), "--exit-with-parent"],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"estate exited with {proc.wait()}")
    ready = json.loads(line)
    return Estate(proc, ready["ports"], data, customers, seed, date.fromisoformat(ready["as_of"]))


def running_estate(workdir: Path, name: str, customers: int, seed: int) -> Iterator[Estate]:
    """An estate of its own for a test module's fixture (`yield from`), stopped afterwards."""
    est = start_estate(workdir / name, customers=customers, seed=seed)
    try:
        yield est
    finally:
        est.stop()


def running_gateway(config: dict[str, Any], workdir: Path, name: str) -> Iterator[Gateway]:
    """A gateway of its own for a test module's fixture (`yield from`), stopped afterwards."""
    gw = start_gateway(config, workdir, name)
    try:
        yield gw
    finally:
        gw.stop()


def gateway_config(estate: Estate, overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """gateway.yaml and its sources folder as one self-contained dict (the sources inline), with the HTTP
    sources pointed at this estate and the SQL ones at its files."""
    cfg = gateway_settings.inline(ROOT / "gateway.yaml")
    for name, src in cfg["sources"].items():
        if src["kind"] == "sql":
            src["dsn"] = f"sqlite+aiosqlite:///{estate.data.resolve() / (name + '.sqlite')}"
        else:
            src["url"] = estate.url(name)
        src.update((overrides or {}).get(name, {}))
    return cfg


def tokens_for(config: dict[str, Any], ttl_s: int = 4 * 3600) -> dict[str, str]:
    """A signed token for each role of a config dict (empty when it has no HS256 auth)."""
    cfg = gateway_settings.parse(copy.deepcopy(config))
    if cfg.auth is None or cfg.auth.mode == "none" or not cfg.auth.hs256_secret:
        return {}
    return {role: issue(cfg.auth, role, f"test-{role}", ttl_s) for role in cfg.roles}


@dataclass
class Gateway:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    tokens: dict[str, str] = field(default_factory=dict)  # role -> bearer token

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def auth(self, role: str | None = "agent") -> dict[str, str]:
        """The Authorization header of a role (none for None, or when the gateway has no auth)."""
        return {"authorization": f"Bearer {self.tokens[role]}"} if role and role in self.tokens else {}

    def post(self, payload: Any, headers: dict[str, str] | None = None, raw: bytes | None = None,
             path: str = "/graphql", role: str | None = "agent") -> tuple[int, dict[str, str], bytes]:
        """POST as `role` (an agent unless told otherwise), unless the headers carry their own Authorization."""
        body = raw if raw is not None else json.dumps(payload).encode()
        headers = headers or {}
        if not any(k.lower() == "authorization" for k in headers):
            headers = {**self.auth(role), **headers}
        return http("POST", self.url + path, body, {"content-type": "application/json", **headers})

    def gql(self, query: str, variables: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None, role: str | None = "agent") -> dict[str, Any]:
        status, _, body = self.post({"query": query, "variables": variables or {}}, headers, role=role)
        assert status == 200, (status, body[:500])
        return json.loads(body)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)


def start_gateway(config: dict[str, Any], workdir: Path, name: str = "gateway", workers: int = 1,
                  args: Sequence[str] = ()) -> Gateway:
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return serve_file(path, workdir, name, workers, tokens=tokens_for(config), args=args)


def serve_file(path: Path, workdir: Path, name: str = "gateway", workers: int = 1, env: dict[str, str] | None = None,
               tokens: dict[str, str] | None = None, args: Sequence[str] = ()) -> Gateway:
    """`gateway.py serve --config path` (its types built from the file's sources folder) and `args`, with `env`
    added to the environment; `tokens` (role -> bearer token) for Gateway.post."""
    port = free_port_base(1) + 1
    log = workdir / f"{name}.log"
    proc = subprocess.Popen([sys.executable, "gateway.py", "serve", "--config", str(path), "--port", str(port),
                             "--workers", str(workers), *args],
                            cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    _wait_http(f"http://127.0.0.1:{port}/healthz", proc, "gateway")
    return Gateway(proc, port, log, tokens or {})
