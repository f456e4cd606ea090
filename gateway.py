"""Customer Graph: one live GraphQL view of each customer over many source systems.

  python gateway.py demo [--port 8000] [--port-base 9100] [--customers N]
  python gateway.py serve --config gateway.yaml [--port 8000] [--workers 1]
  python gateway.py token --role ROLE [--sub SUBJECT] [--ttl SECONDS] [--config FILE]
  python gateway.py schema
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import uvicorn

import config as gateway_config
from server.app import build_schema, create_app
from server.auth import issue
from server.policy import Policies

HERE = Path(__file__).resolve().parent


DEMO_TOKEN_TTL_S = 12 * 3600


def run_server(cfg: gateway_config.GatewayConfig, host: str, port: int,
               graphiql_headers: dict[str, str] | None = None) -> None:
    uvicorn.run(create_app(cfg, graphiql_headers), host=host, port=port, loop="uvloop", http="httptools", log_level="warning",
                access_log=False)


def run_workers(config_path: str, host: str, port: int, workers: int) -> None:
    """Several processes on one port; each builds the app from the config file (and has its own
    in-process cache tier: configure Redis to share one)."""
    os.environ["CUSTOMER_GRAPH_CONFIG"] = str(Path(config_path).resolve())
    uvicorn.run("server.factory:app", factory=True, host=host, port=port, workers=workers, loop="uvloop",
                http="httptools", log_level="warning", access_log=False)


def start_estate(port_base: int, customers: int, data: Path) -> tuple[subprocess.Popen[str], dict[str, int]]:
    """The demo's source systems in a child process; returns it with the ports it listens on."""
    cmd = [sys.executable, "-m", "estate", "serve", "--port-base", str(port_base), "--customers", str(customers),
           "--data", str(data), "--exit-with-parent"]
    proc = subprocess.Popen(cmd, cwd=HERE, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"the demo estate failed to start (exit {proc.wait()})")
    return proc, json.loads(line)["ports"]


def demo(args: argparse.Namespace) -> None:
    data = Path(args.data).resolve()
    print(f"Generating {args.customers} customers and starting the source systems on ports "
          f"{args.port_base + 1}..{args.port_base + 9} ...", flush=True)
    proc, ports = start_estate(args.port_base, args.customers, data)
    try:
        os.environ["ESTATE_DATA"] = str(data)
        cfg = gateway_config.load(args.config)
        for name, port in ports.items():
            if name in cfg.sources and cfg.sources[name].kind != "sql":
                cfg.sources[name].url = f"http://127.0.0.1:{port}"
        tokens = demo_tokens(cfg)
        print(f"Customer Graph is up: open http://127.0.0.1:{args.port}/graphql (GraphiQL, signed in as an agent), "
              "try C-000042.\n"
              + "".join(f"  {role} token: {token}\n" for role, token in tokens.items())
              + f"  curl -s http://127.0.0.1:{args.port}/graphql -H 'content-type: application/json' "
              f"-H 'authorization: Bearer {tokens.get('pos') or tokens.get('agent', '')}' "
              f"-d '{{\"query\":\"{{ customer(id: \\\"C-000042\\\") {{ name emails identities {{ system id }} }} }}\"}}'\n"
              "Ctrl-C stops the gateway and the estate.", flush=True)
        headers = {"Authorization": f"Bearer {tokens['agent']}"} if "agent" in tokens else None
        run_server(cfg, args.host, args.port, headers)
    finally:
        proc.terminate()
        proc.wait(10)


def demo_tokens(cfg: gateway_config.GatewayConfig) -> dict[str, str]:
    """An agent and a point-of-sale token for the demo, when the config can sign them."""
    if cfg.auth is None or cfg.auth.mode == "none" or not cfg.auth.hs256_secret:
        return {}
    return {role: issue(cfg.auth, role, f"demo-{role}", DEMO_TOKEN_TTL_S) for role in ("agent", "pos")
            if role in cfg.roles}


def token(args: argparse.Namespace) -> None:
    cfg = load_config(args.config)
    if cfg.auth is None or cfg.auth.mode == "none":
        raise SystemExit(f"{args.config} has no JWT auth configured (auth.mode jwt with hs256_secret), "
                         "so there is nothing to sign a token with")
    if args.role not in cfg.roles:
        raise SystemExit(f"unknown role {args.role!r}; {args.config} defines: {', '.join(sorted(cfg.roles))}")
    try:
        signed = issue(cfg.auth, args.role, args.sub, args.ttl or cfg.auth.default_ttl_s)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    print(f"# role {args.role}, subject {args.sub}, valid {args.ttl or cfg.auth.default_ttl_s} s; "
          "send it as 'Authorization: Bearer <token>'", file=sys.stderr)
    print(signed)


def load_config(path: str) -> gateway_config.GatewayConfig:
    """The config, checked as `serve` needs it; a problem is one line, no traceback."""
    try:
        cfg = gateway_config.load(path)
        Policies(build_schema(), cfg.roles, build_schema)  # every mask names a real field
    except (OSError, gateway_config.ConfigError, ValueError) as exc:
        raise SystemExit(f"config error: {exc}") from None
    return cfg


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gateway.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="start the demo estate and the gateway over it")
    d.add_argument("--port", type=int, default=8000)
    d.add_argument("--port-base", type=int, default=9100)
    d.add_argument("--customers", type=int, default=2000)
    d.add_argument("--data", default=str(HERE / "data"), help="folder for the estate's SQLite files")
    d.add_argument("--config", default=str(HERE / "gateway.yaml"))
    d.add_argument("--host", default="127.0.0.1")
    s = sub.add_parser("serve", help="the gateway alone, against the configured sources")
    s.add_argument("--config", default="gateway.yaml")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--workers", type=int, default=1, help="processes serving the port (default 1)")
    t = sub.add_parser("token", help="print a signed development token (HS256, the configured secret)")
    t.add_argument("--role", required=True)
    t.add_argument("--sub", default="developer", help="the token's subject (default: developer)")
    t.add_argument("--ttl", type=int, default=0, help="seconds it is valid (default: auth.default_ttl_s)")
    t.add_argument("--config", default=str(HERE / "gateway.yaml"))
    sub.add_parser("schema", help="print the GraphQL SDL")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.cmd == "schema":
        print(build_schema().as_str())
    elif args.cmd == "demo":
        demo(args)
    elif args.cmd == "token":
        token(args)
    else:
        cfg = load_config(args.config)
        if cfg.auth is None:
            raise SystemExit(f"config error: {args.config} has no auth section. Secure by default: configure "
                             "auth (see README, Security), or write `auth: {mode: none}` to trust every caller")
        if args.workers > 1:
            run_workers(args.config, args.host, args.port, args.workers)
        else:
            run_server(cfg, args.host, args.port)


if __name__ == "__main__":
    main()
