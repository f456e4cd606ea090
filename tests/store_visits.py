"""A SQL table the demo estate does not have: the stores' visits, for README "Add your own system" and
tests/test_newcomer.py. One SQLite file with one table, `store_visits`, keyed by CRM number, derived
deterministically from the numbers in the estate's CRM (its `crm.sqlite`):

  python -m tests.store_visits data/visits.sqlite --crm data/crm.sqlite [--as-of YYYY-MM-DD]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

STORES = ("Amsterdam Centraal", "Utrecht Hoog Catharijne", "Rotterdam Lijnbaan", "Eindhoven Piazza")
PURPOSES = ("purchase", "purchase", "return", "repair", "browse")
COLUMNS = ("visit_id", "crm_no", "store_name", "purpose", "visited_at", "spent_cents")


def crm_numbers(crm: Path) -> list[str]:
    with sqlite3.connect(crm) as db:
        return sorted(n for (n,) in db.execute("SELECT cust_no FROM customers"))


def visits_for(crm_no: str, as_of: date) -> list[dict[str, Any]]:
    """This CRM number's visits (none for about half), the same on every run; times naive UTC text."""
    rng = random.Random(f"visits:{crm_no}")
    if rng.random() < 0.5:
        return []
    end = datetime.combine(as_of, time(), timezone.utc).replace(tzinfo=None)
    out = []
    for i in range(rng.randint(1, 4)):
        purpose = rng.choice(PURPOSES)
        out.append({"visit_id": f"V-{crm_no}-{i}", "crm_no": crm_no, "store_name": rng.choice(STORES),
                    "purpose": purpose,
                    "visited_at": (end - timedelta(seconds=rng.randint(3600, 200 * 86400))).isoformat(" "),
                    "spent_cents": rng.randint(500, 150000) if purpose == "purchase" else 0})
    return out


def create(path: Path, crm: Path, as_of: date) -> int:
    """The table, written afresh; the number of visits."""
    path.unlink(missing_ok=True)
    rows = [v for n in crm_numbers(crm) for v in visits_for(n, as_of)]
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE store_visits (visit_id TEXT PRIMARY KEY, crm_no TEXT NOT NULL, store_name TEXT "
                   "NOT NULL, purpose TEXT NOT NULL, visited_at TEXT NOT NULL, spent_cents INTEGER NOT NULL)")
        db.execute("CREATE INDEX store_visits_crm_no ON store_visits (crm_no)")
        db.executemany(f"INSERT INTO store_visits VALUES ({', '.join('?' * len(COLUMNS))})",
                       [tuple(r[c] for c in COLUMNS) for r in rows])
    return len(rows)


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.store_visits", description=__doc__.split("\n\n")[0])
    p.add_argument("path", type=Path, help="the SQLite file to write, e.g. data/visits.sqlite")
    p.add_argument("--crm", required=True, type=Path, help="the estate's crm.sqlite, whose customers visit")
    p.add_argument("--as-of", type=date.fromisoformat, default=datetime.now(timezone.utc).date(),
                   help="the estate's day (visits are dated before it)")
    args = p.parse_args(argv)
    print(f"{args.path}: {create(args.path, args.crm, args.as_of)} visits")


if __name__ == "__main__":
    main(sys.argv[1:])
