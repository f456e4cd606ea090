"""A survey-answers REST service the demo estate does not have: the 13th system of README "Add your own
system", for its walk-through and tests/test_newcomer.py.

Answers are keyed by the customer's email, trimmed and lower-cased, and derived deterministically from
the emails in the estate's CRM (its `crm.sqlite`), so a test can say what any customer answered:

  POST /v1/answers:batchGet {"emails": [...]}  -> {"answers": [{email, survey, score, answered_at, comment}]}
  GET  /v1/answers/{email}                     -> {"answers": [...]}   (one email a call; 404 when unknown)
  GET  /__stats                                -> {"endpoints": {"batchGet": {"calls", "keys"}, "get": {...}}}
  POST /__stats/reset
  POST /__faults {"down": true} | {"status": 500} | {}   (down: every connection dropped; {} clears)

  python -m tests.survey_service --crm data/crm.sqlite [--port 9110] [--as-of YYYY-MM-DD] [--exit-with-parent]

It prints {"port": N} on one line once it listens (`--port 0` takes a free one).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import sqlite3
import sys
import threading
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

from aiohttp import web

COMMENTS = ("Quick and friendly.", "Waited too long on the phone.", "Great product, slow delivery.",
            "The store staff knew their stuff.", "Refund took weeks.", None, None)


def crm_emails(crm: Path) -> list[str]:
    """The CRM's emails as the service keys them: trimmed and lower-cased, each once."""
    with sqlite3.connect(crm) as db:
        rows = db.execute("SELECT email_addr FROM customers WHERE email_addr IS NOT NULL").fetchall()
    return sorted({e.strip().lower() for (e,) in rows if e.strip()})


def answers_for(email: str, as_of: date) -> list[dict[str, Any]]:
    """What this email answered (none for about a third), the same on every run."""
    rng = random.Random(hashlib.sha256(email.encode()).digest())
    if rng.random() < 0.35:
        return []
    end = datetime.combine(as_of, time(), timezone.utc)
    out = []
    for _ in range(rng.randint(1, 3)):
        survey = rng.choice(("nps", "nps", "csat"))
        out.append({"email": email, "survey": survey,
                    "score": rng.randint(0, 10) if survey == "nps" else rng.randint(1, 5),
                    "answered_at": (end - timedelta(seconds=rng.randint(3600, 400 * 86400))).isoformat(),
                    "comment": rng.choice(COMMENTS)})
    return out


class Survey:
    """The answers of every email, and what was asked of them."""

    def __init__(self, emails: list[str], as_of: date) -> None:
        self.answers = {e: answers_for(e, as_of) for e in emails}
        self.stats: dict[str, dict[str, int]] = {}
        self.faults: dict[str, Any] = {}
        self.reset()

    def reset(self) -> None:
        self.stats = {"batchGet": {"calls": 0, "keys": 0}, "get": {"calls": 0, "keys": 0}}

    def count(self, endpoint: str, keys: int) -> None:
        self.stats[endpoint]["calls"] += 1
        self.stats[endpoint]["keys"] += keys

    def failure(self, request: web.Request) -> web.Response | None:
        """The injected fault, if any: a dropped connection (down) or an error status."""
        if self.faults.get("down"):
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if "status" in self.faults:
            return web.json_response({"error": "injected failure"}, status=int(self.faults["status"]))
        return None

    async def batch_get(self, request: web.Request) -> web.Response:
        body = await request.json()
        emails = body.get("emails") if isinstance(body, dict) else None
        if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
            return web.json_response({"error": "emails: a list of strings"}, status=400)
        self.count("batchGet", len(emails))
        failed = self.failure(request)
        if failed is not None:
            return failed
        return web.json_response({"answers": [a for e in dict.fromkeys(emails) for a in self.answers.get(e, ())]})

    async def get_one(self, request: web.Request) -> web.Response:
        email = request.match_info["email"]
        self.count("get", 1)
        failed = self.failure(request)
        if failed is not None:
            return failed
        if email not in self.answers:
            return web.json_response({"error": "unknown email"}, status=404)
        return web.json_response({"answers": self.answers[email]})

    async def get_stats(self, _: web.Request) -> web.Response:
        return web.json_response({"endpoints": self.stats, "faults": self.faults})

    async def reset_stats(self, _: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def set_faults(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not isinstance(body, dict) or set(body) - {"down", "status"}:
            return web.json_response({"error": "faults: {down: true} or {status: 500}, or {}"}, status=400)
        self.faults = body
        return web.json_response({"ok": True, "faults": body})

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([web.post("/v1/answers:batchGet", self.batch_get), web.get("/v1/answers/{email}", self.get_one),
                        web.get("/__stats", self.get_stats), web.post("/__stats/reset", self.reset_stats),
                        web.post("/__faults", self.set_faults)])
        return app


async def serve(survey: Survey, port: int, exit_with_parent: bool) -> None:
    runner = web.AppRunner(survey.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(json.dumps({"port": runner.addresses[0][1]}), flush=True)
    stop = asyncio.Event()
    if exit_with_parent:  # the parent holds our stdin open; when it dies, however it dies, we read EOF
        loop = asyncio.get_running_loop()
        threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stop.set)), daemon=True).start()
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.survey_service", description=__doc__.split("\n\n")[0])
    p.add_argument("--crm", required=True, type=Path, help="the estate's crm.sqlite, whose emails answered")
    p.add_argument("--port", type=int, default=9110)
    p.add_argument("--as-of", type=date.fromisoformat, default=datetime.now(timezone.utc).date(),
                   help="the estate's day (answers are dated before it)")
    p.add_argument("--exit-with-parent", action="store_true", help="stop when standard input closes")
    args = p.parse_args(argv)
    try:
        asyncio.run(serve(Survey(crm_emails(args.crm), args.as_of), args.port, args.exit_with_parent))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
