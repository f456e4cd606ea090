"""Customer Graph: one live GraphQL view of each customer over many source systems.

  python gateway.py demo [--port 8000] [--port-base 9100] [--customers N]
  python gateway.py serve --config gateway.yaml [--port 8000] [--workers 1] [--log-level info] [--ping-timeout 2]
  python gateway.py token --role ROLE [--sub SUBJECT] [--ttl SECONDS] [--config FILE]
  python gateway.py schema [--config gateway.yaml] [--federation]
  python gateway.py check [--config gateway.yaml] [--ping] [--timeout 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
import uvicorn

from graph_folder import build_or_exit, use_config_folder

if __name__ == "__main__":  # the types are built from the config's sources folder, before any import of them
    use_config_folder(sys.argv[1:])
    build_or_exit()

import config as gateway_config  # noqa: E402
import connectors  # noqa: E402
from connectors.base import Probe, SourceConfig  # noqa: E402
from connectors.declaration import record_class  # noqa: E402
from connectors.events import is_postgres  # noqa: E402
from connectors.mapping import compile_mapping  # noqa: E402
from resolvers import mutations  # noqa: E402
from schema.mutation import PLANS  # noqa: E402
from server.app import build_schema, create_app  # noqa: E402
from server.auth import issue  # noqa: E402
from server.operations import Registry, allow_list  # noqa: E402
from server.policy import Policies  # noqa: E402
from telemetry.logs import LEVELS  # noqa: E402
from telemetry.logs import configure as configure_logging  # noqa: E402
from telemetry.metrics import MULTIPROCESS as metrics_multiprocess  # noqa: E402
from telemetry.metrics import multiprocess_dir  # noqa: E402

HERE = Path(__file__).resolve().parent


DEMO_TOKEN_TTL_S = 12 * 3600
START_PING_S = 2.0  # the start-up check of every source: serving waits at most this long for it


def announce(cfg: gateway_config.GatewayConfig, config_path: str, host: str, port: int, workers: int = 1) -> None:
    """Where the gateway listens and what it loaded, before it starts serving."""
    files = sorted({gateway_config.display_path(Path(f)) for f in cfg.files.values() if f})
    print(f"Customer Graph serving http://{host}:{port}/graphql ({workers} worker{'s' if workers > 1 else ''}); "
          f"config {Path(config_path).resolve()}: {len(cfg.sources)} sources"
          + (f" declared in {Path(files[0]).parent}/" if files else "")
          + f", identity source {cfg.identity}; status http://{host}:{port}/status", flush=True)


def run_server(cfg: gateway_config.GatewayConfig, host: str, port: int,
               graphiql_headers: dict[str, str] | None = None) -> None:
    # One process needs no shared directory, unless the operator set PROMETHEUS_MULTIPROC_DIR anyway.
    with multiprocess_dir() if cfg.metrics.enabled and metrics_multiprocess else contextlib.nullcontext():
        uvicorn.run(create_app(cfg, graphiql_headers), host=host, port=port, loop="uvloop", http="httptools",
                    log_level="warning", access_log=False)


def run_workers(config_path: str, host: str, port: int, workers: int, metrics: bool = True) -> None:
    """Several processes on one port; each builds the app from the config file (and has its own
    in-process cache tier: configure Redis to share one). With metrics on, the workers share their values
    through a directory made for this run (prometheus-client's multiprocess mode), so that any worker's
    /metrics counts them all."""
    os.environ["CUSTOMER_GRAPH_CONFIG"] = str(Path(config_path).resolve())
    with multiprocess_dir() if metrics else contextlib.nullcontext():
        uvicorn.run("server.factory:app", factory=True, host=host, port=port, workers=workers, loop="uvloop",
                    http="httptools", log_level="warning", access_log=False)


def start_estate(port_base: int, customers: int, data: Path,
                 events_url: str = "") -> tuple[subprocess.Popen[str], dict[str, int]]:
    """The demo's source systems in a child process; returns it with the ports it listens on. Its HTTP
    sources send their change events to `events_url` (the gateway's /events)."""
    cmd = [sys.executable, "-m", "estate", "serve", "--port-base", str(port_base), "--customers", str(customers),
           "--data", str(data), "--exit-with-parent", "--events-url", events_url]
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
    proc, ports = start_estate(args.port_base, args.customers, data, f"http://127.0.0.1:{args.port}/events")
    try:
        os.environ["ESTATE_DATA"] = str(data)
        cfg = gateway_config.load(args.config)
        for name, port in ports.items():
            if name in cfg.sources and cfg.sources[name].kind != "sql":
                cfg.sources[name].url = f"http://127.0.0.1:{port}"
        tokens = demo_tokens(cfg)
        first = next(iter(tokens), "")
        decl = cfg.sources[cfg.identity].identity
        example = (decl.golden_id.example if decl is not None else None) or "..."  # the identity declaration's
        print(f"Customer Graph is up: open http://127.0.0.1:{args.port}/graphql (GraphiQL"
              + (f", signed in as {first}" if first else "") + "), "
              f"try {example}.\n"
              + "".join(f"  {role} token: {token}\n" for role, token in tokens.items())
              + f"  curl -s http://127.0.0.1:{args.port}/graphql -H 'content-type: application/json' "
              f"-H 'authorization: Bearer {tokens[list(tokens)[-1]] if tokens else ''}' "
              f"-d '{{\"query\":\"{{ customer(id: \\\"{example}\\\") {{ id identities {{ system id }} }} }}\"}}'\n"
              "Ctrl-C stops the gateway and the estate.", flush=True)
        headers = {"Authorization": f"Bearer {tokens[first]}"} if first else None
        announce(cfg, args.config, args.host, args.port)
        start_up_check(cfg, args.ping_timeout)
        run_server(cfg, args.host, args.port, headers)
    finally:
        proc.terminate()
        proc.wait(10)


def demo_tokens(cfg: gateway_config.GatewayConfig) -> dict[str, str]:
    """A token per configured role (GraphiQL opens signed in as the first), when the config can sign them."""
    if cfg.auth is None or cfg.auth.mode == "none" or not cfg.auth.hs256_secret:
        return {}
    return {role: issue(cfg.auth, role, f"demo-{role}", DEMO_TOKEN_TTL_S) for role in cfg.roles}


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
    return checked(path)[0]


def checked(path: str) -> tuple[gateway_config.GatewayConfig, dict[str, list[str]], Registry]:
    """The config with everything `serve` would refuse at start checked: the files, each source's entities
    and the actions its mutations run, the role policies (every mask names a real field) and the registered
    operations. Returns it with each source's entities and the allow-list; a problem exits in one line."""
    try:
        cfg = gateway_config.load(path)
        origin = gateway_config.display_path(Path(path))
        entities = {name: _entities(src, cfg.files.get(name) or origin) for name, src in cfg.sources.items()}
        try:
            mutations.check(PLANS, cfg)
        except ValueError as exc:  # names the declaration file and key
            raise gateway_config.ConfigError(str(exc)) from None
        schema = build_schema()
        try:
            Policies(schema, cfg.roles, build_schema)
            registry = allow_list(cfg.operations, cfg.roles, schema._schema)
        except ValueError as exc:  # the policy's and the allow-list's messages carry their key path
            raise gateway_config.ConfigError(f"{origin}: {exc}") from None
    except (OSError, gateway_config.ConfigError) as exc:
        raise SystemExit(f"config error: {exc}") from None
    return cfg, entities, registry


def _label(src: Any, origin: str) -> str:
    """Where a source is declared, as errors name it: its file, or the config file and its key."""
    return origin if origin.endswith(f"{src.name}.yaml") else f"{origin}: sources.{src.name}"


def _entities(src: Any, origin: str) -> list[str]:
    """The entities a source declares, each mapping compiled (as the connector will)."""
    where = _label(src, origin)
    for name, entity in src.entities.items():
        if entity.mapping is None or entity.record is None:
            continue  # plain values
        try:
            compile_mapping(entity.mapping, record_class(entity.record), name=f"{src.name}.{name}",
                            options=src.options)
        except ValueError as exc:  # a MappingError starts with the key path inside the mapping
            raise gateway_config.ConfigError(f"{where}: entities.{name}.mapping.{exc}") from None
    return list(src.entities)


SECRET_PARAM = re.compile(r"pass|secret|token|key|sig|auth|credential", re.IGNORECASE)


def hide(address: str) -> str:
    """A URL or DSN fit to print: a password in it and secret-looking query values replaced by ***."""
    try:
        parts = urlsplit(address)
    except ValueError:
        return "***"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = urlencode([(k, "***" if SECRET_PARAM.search(k) else v) for k, v in pairs], safe="*:/") \
        if any(SECRET_PARAM.search(k) for k, _ in pairs) else parts.query
    if netloc == parts.netloc and query == parts.query:
        return address
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    return "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in (header, *rows))


def _wrapped(items: list[str], width: int = 100) -> str:
    lines, line = [], "  "
    for item in items:
        if len(line) + len(item) > width and line.strip():
            lines.append(line.rstrip())
            line = "  "
        line += item + ", "
    lines.append(line.rstrip().rstrip(","))
    return "\n".join(lines)


def events_of(src: SourceConfig) -> str:
    """How a source tells of its changes, as this dsn runs it (connectors/events.py); '-': its TTLs only."""
    ev = src.events
    if ev is None:
        return "-"
    out = ["webhook"] if ev.webhook is not None else []
    if ev.notify is not None and is_postgres(src.dsn):
        out.append(f"notify {ev.notify.channel}")
    elif src.kind == "sql":
        out += [f"poll {p.table}.{p.updated_column} {p.interval_s:g} s" for p in ev.poll]
    return ", ".join(out) or "-"


def check(args: argparse.Namespace) -> None:
    """Validate the configuration and print what it declares; with --ping, call each source once."""
    cfg, entities, registry = checked(args.config)
    origin = gateway_config.display_path(Path(args.config))
    print(f"{origin}: valid")
    rows = []
    for name in sorted(cfg.sources):
        src = cfg.sources[name]
        secrets = [f"{h}: ***" for h in src.headers]
        if src.auth is not None:
            secrets.append(f"auth {next(k for k in ('bearer', 'basic', 'api_key') if getattr(src.auth, k))}: ***")
        auth = ", ".join(secrets) or "-"
        rows.append((name, src.kind, hide(src.dsn if src.kind == "sql" else src.url), ", ".join(entities[name]),
                     events_of(src), auth, cfg.files.get(name) or f"{origin} (inline)"))
    print(f"\nsources ({len(rows)}):")
    print(_table(("name", "kind", "url / dsn", "entities", "change events", "headers", "declared in"), rows))
    customer = build_schema()._schema.type_map["Customer"]
    feeds = _feeds(cfg)
    fields = [f"{n}: {f.type}" + (f" <- {feeds[n]}" if n in feeds else "")
              for n, f in customer.fields.items()]  # type: ignore[attr-defined]
    print(f"\nCustomer fields ({len(fields)}; <- the sources feeding a declared one):\n{_wrapped(fields)}")
    print(f"\nmutations ({len(PLANS)}):")
    print(_table(("mutation", "action", "returns"), [
        (p.name, f"{p.source}.{p.action}" + ("" if p.source in cfg.sources else " (source not configured)"), p.returns)
        for p in PLANS]))
    print(f"\nroles ({len(cfg.roles)}):")
    print(_table(("role", "reads", "denies", "masks", "mutations", "operations"), [
        (n, ", ".join(r.read) if r.read == ["*"] else f"{len(r.read)} patterns", str(len(r.deny)),
         ", ".join(f"{f} {m}" for f, m in r.mask.items()) or "-", ", ".join(r.mutations) or "none", r.operations)
        for n, r in sorted(cfg.roles.items())]))
    auth = "none (serve refuses to start)" if cfg.auth is None else cfg.auth.mode
    print(f"\nauth: {auth}; registered operations: {len(registry)}"
          + (f" in {gateway_config.display_path(Path(cfg.operations.folder))}" if cfg.operations.folder else ""))
    if args.ping:
        results = asyncio.run(ping(cfg, args.timeout))
        print(f"\nping (one call per source, timeout {args.timeout:g} s):")
        print(ping_table(results))
        down = sorted(n for n, p in results.items() if not p.up)
        if down:
            raise SystemExit(f"{len(down)} of {len(results)} sources down: {', '.join(down)}")
        print(f"all {len(results)} sources up")


def _feeds(cfg: gateway_config.GatewayConfig) -> dict[str, str]:
    """GraphQL name of each declared Customer field -> the sources providing its entity."""
    from connectors.identity import camel
    from schema.graph import ATTACHED
    out = {}
    for key, (_, d) in ATTACHED.items():
        owner, field = key.split(".")
        if owner == "Customer":
            out[camel(field)] = ", ".join(
                n for n, s in sorted(cfg.sources.items()) if d.entity in s.entities)
    return out


async def ping(cfg: gateway_config.GatewayConfig, timeout_s: float) -> dict[str, Probe]:
    """Each source asked once for one of its entities, concurrently, on connectors of its own (no retries)."""
    configs = {n: s.model_copy(update={"timeout_s": min(s.timeout_s, timeout_s), "retries": 0})
               for n, s in cfg.sources.items()}
    missing = {n: f"no such database file {db}" for n, s in configs.items()
               if s.kind == "sql" and (db := _sqlite_file(s.dsn)) and not Path(db).exists()}
    async with aiohttp.ClientSession() as session:
        built = connectors.build({n: s for n, s in configs.items() if n not in missing}, session)
        try:
            answers = await asyncio.gather(*(conn.probe(timeout_s) for conn in built.values()))
        finally:
            for conn in built.values():
                await conn.close()
    out = {n: Probe(False, 0.0, f"SOURCE_UNAVAILABLE: {why}") for n, why in missing.items()}
    out.update(zip(built, answers))
    return out


def ping_table(results: dict[str, Probe]) -> str:
    return _table(("source", "status", "latency", "detail"), [
        (n, "up" if p.up else "DOWN", f"{p.ms:.1f} ms", p.detail) for n, p in sorted(results.items())])


def start_up_check(cfg: gateway_config.GatewayConfig, timeout_s: float) -> None:
    """Every source asked once before serving (as `check --ping` does), its table printed. Serving starts
    whatever it says: a source down only fails the fields it feeds, and readiness waits for the identity
    source by itself. Bounded by `timeout_s`, as the sources are asked all at once."""
    if timeout_s <= 0:
        return
    results = asyncio.run(ping(cfg, timeout_s))
    down = sorted(n for n, p in results.items() if not p.up)
    others = [n for n in down if n != cfg.identity]
    lines = [f"sources at start (one call each, timeout {timeout_s:g} s):", ping_table(results)]
    if others:
        lines.append(f"{len(others)} of {len(results)} sources down: {', '.join(others)}; starting anyway, the "
                     "fields they feed give errors beside the rest (partial results) until they answer")
    if cfg.identity in down:
        lines.append(f"the identity source {cfg.identity} is down: starting anyway, not ready (/readyz 503) "
                     "until it answers")
    if not down:
        lines.append(f"all {len(results)} sources up")
    print("\n".join(lines), flush=True)


def _sqlite_file(dsn: str) -> str:
    """The database file of a SQLite DSN (empty for other databases and in-memory ones)."""
    m = re.match(r"sqlite(\+\w+)?:///([^?]+)", dsn)
    return m.group(2) if m and m.group(2) != ":memory:" else ""


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
    for serving in (d, s):
        serving.add_argument("--log-level", choices=LEVELS, default="info",
                             help="info logs a JSON line per request (default)")
        serving.add_argument("--ping-timeout", type=float, default=START_PING_S, help="seconds the start-up check "
                             f"of every source may take (default {START_PING_S:g}; 0 skips it)")
    t = sub.add_parser("token", help="print a signed development token (HS256, the configured secret)")
    t.add_argument("--role", required=True)
    t.add_argument("--sub", default="developer", help="the token's subject (default: developer)")
    t.add_argument("--ttl", type=int, default=0, help="seconds it is valid (default: auth.default_ttl_s)")
    t.add_argument("--config", default=str(HERE / "gateway.yaml"))
    sc = sub.add_parser("schema", help="print the GraphQL SDL")
    sc.add_argument("--config", default=str(HERE / "gateway.yaml"), help="its sources folder's declarations "
                    "(default: sources/)")
    sc.add_argument("--federation", action="store_true", help="the Apollo Federation v2 subgraph SDL (what "
                    "_service { sdl } answers with federation.enabled)")
    c = sub.add_parser("check", help="validate the configuration and print its sources, Customer fields and roles")
    c.add_argument("--config", default=str(HERE / "gateway.yaml"))
    c.add_argument("--ping", action="store_true", help="also call each source once: up or down, and how fast")
    c.add_argument("--timeout", type=float, default=3.0, help="seconds each ping may take (default 3)")
    args = parser.parse_args(argv)
    if args.cmd in ("serve", "demo"):
        configure_logging(args.log_level)
        os.environ["CUSTOMER_GRAPH_LOG_LEVEL"] = args.log_level  # for --workers' processes
    else:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.cmd == "schema":
        print(build_schema(federation=args.federation).as_str())
    elif args.cmd == "demo":
        demo(args)
    elif args.cmd == "token":
        token(args)
    elif args.cmd == "check":
        check(args)
    else:
        cfg = load_config(args.config)
        if cfg.auth is None:
            raise SystemExit(f"config error: {args.config} has no auth section. Secure by default: configure "
                             "auth (see README, Security), or write `auth: {mode: none}` to trust every caller")
        announce(cfg, args.config, args.host, args.port, args.workers)
        start_up_check(cfg, args.ping_timeout)
        if args.workers > 1:
            run_workers(args.config, args.host, args.port, args.workers, cfg.metrics.enabled)
        else:
            run_server(cfg, args.host, args.port)


if __name__ == "__main__":
    main()
