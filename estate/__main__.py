"""`python -m estate serve|load|generate`: run the demo company's source systems."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
from datetime import date, datetime, timezone
from pathlib import Path

from aiohttp import web

from estate.generate import HTTP_SYSTEMS, PORT_OFFSETS, SQL_SYSTEMS, Estate, generate
from estate.servers import APPS
from estate.sqlsystems import SCHEMA, load, sqlite_dsn


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--customers", type=int, default=2000, help="golden customers to generate (default 2000)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--as-of", type=date.fromisoformat, default=None,
                   help="the estate's 'today' (YYYY-MM-DD; default: today, UTC)")


async def write_data(est: Estate, folder: Path) -> None:
    """SQLite files for the SQL systems plus the ground truth; skipped when already current."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.json"
    wanted = {**est.manifest(), "schema": SCHEMA}
    if manifest.exists() and json.loads(manifest.read_text()) == wanted:
        return
    manifest.unlink(missing_ok=True)
    for system in SQL_SYSTEMS:
        (folder / f"{system}.sqlite").unlink(missing_ok=True)
        await load(est, sqlite_dsn(folder, system), system)
    truth: dict[str, list[list[str]]] = {}
    for row in est.crosswalk:
        truth.setdefault(row["golden_id"], []).append([row["system"], row["system_key"]])
    with (folder / "truth.jsonl").open("w") as out:
        for gid, ids in truth.items():
            out.write(json.dumps({"golden_id": gid, "records": ids}) + "\n")
    manifest.write_text(json.dumps(wanted))


async def serve(args: argparse.Namespace) -> None:
    as_of = args.as_of or datetime.now(timezone.utc).date()
    est = generate(args.customers, args.seed, as_of)
    await write_data(est, Path(args.data))
    os.environ["ESTATE_EVENTS_URL"] = args.events_url  # read by each source's webhook (estate/events.py)
    runners = []
    for name in HTTP_SYSTEMS:
        runner = web.AppRunner(APPS[name](est), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, args.host, args.port_base + PORT_OFFSETS[name]).start()
        runners.append(runner)
    ports = {name: args.port_base + PORT_OFFSETS[name] for name in HTTP_SYSTEMS}
    print(json.dumps({"ready": True, "data": str(Path(args.data).resolve()), "ports": ports,
                      **est.manifest()}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if args.exit_with_parent:
        # The parent holds our stdin open; when it dies, however it dies, we read EOF and stop.
        threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stop.set)), daemon=True).start()
    await stop.wait()
    for runner in runners:
        await runner.cleanup()


async def load_cmd(args: argparse.Namespace) -> None:
    est = generate(args.customers, args.seed, args.as_of or datetime.now(timezone.utc).date())
    systems = SQL_SYSTEMS if args.system == "all" else (args.system,)
    for system in systems:
        n = await load(est, args.dsn, system)
        print(f"{system}: {n} rows -> {args.dsn.split('@')[-1]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m estate", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="start the HTTP sources on port-base+1..+9 and write the SQLite files")
    _common(s)
    s.add_argument("--port-base", type=int, default=9100)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--data", default="data", help="folder for the SQLite files and ground truth")
    s.add_argument("--exit-with-parent", action="store_true", help="stop when standard input closes")
    s.add_argument("--events-url", default=os.environ.get("ESTATE_EVENTS_URL", ""),
                   help="where the HTTP sources POST their signed change events, e.g. http://127.0.0.1:8000/events "
                        "(default: $ESTATE_EVENTS_URL; none: they send none)")
    ld = sub.add_parser("load", help="load a SQL system into PostgreSQL or MariaDB, with the triggers that keep "
                                     "its updated_at columns (and on PostgreSQL NOTIFY the gateway)")
    _common(ld)
    ld.add_argument("--dsn", required=True, help="e.g. postgresql+asyncpg://postgres@127.0.0.1/test")
    ld.add_argument("--system", choices=(*SQL_SYSTEMS, "all"), default="all")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args) if args.cmd == "serve" else load_cmd(args))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
