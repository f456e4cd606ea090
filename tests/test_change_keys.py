"""Which cached records a change event drops (resolvers/changes.py), in-process over the real declarations
and a crosswalk loaded into SQLite: the changed key, what is keyed off it, and a golden id's lookups (all
of the crosswalk's records when it cannot say what they are now)."""

from __future__ import annotations

import asyncio
import time
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import text

import config
import connectors
from cache.tiers import Entry
from connectors.changes import ChangeEvent
from connectors.http import new_session
from estate.generate import generate
from estate.sqlsystems import load
from resolvers.changes import Changes
from resolvers.context import Sources
from tests.harness import ROOT


def entry(value: Any) -> Entry:
    return Entry(value, True, time.time(), 300)


async def scenario(tmp_path: Path) -> None:
    est = generate(20, 42, date(2026, 1, 1))
    dsn = f"sqlite+aiosqlite:///{tmp_path / 'crosswalk.sqlite'}"
    await load(est, dsn, "crosswalk")
    raw = config.inline(ROOT / "gateway.yaml")
    raw["sources"]["crosswalk"]["dsn"] = dsn
    cfg = config.parse(raw, ROOT)
    session = new_session()
    sources = Sources.build(cfg, connectors.build(cfg.sources, session))
    try:
        changes = Changes(sources)
        tiers = sources.cache.tiers  # type: ignore[union-attr]

        # An order changing: the shipments keyed by its orders' numbers, as cached, go with it.
        orders = [SimpleNamespace(number="SO-1"), SimpleNamespace(number="SO-2")]
        tiers.store_local("shop", "orders", {"ann@example.com": entry(orders)})
        keys, complete = await changes.keys_for(ChangeEvent("shop", "orders", "ann@example.com"))
        assert complete and sorted(keys) == ["shipping:shipments:SO-1", "shipping:shipments:SO-2",
                                             "shop:orders:ann@example.com"]
        # Nothing cached of it: only the key itself.
        assert await changes.keys_for(ChangeEvent("shop", "orders", "bob@example.com")) == \
            (["shop:orders:bob@example.com"], True)
        assert await changes.keys_for(ChangeEvent("helpdesk", "tickets", "ann@example.com")) == \
            (["helpdesk:tickets:ann@example.com"], True)

        # A golden id's links changing: the lookups of its ids as cached (one since removed) and as they are now.
        gid = "C-000001"
        tiers.store_local("crosswalk", "identities", {gid: entry([SimpleNamespace(system="loyalty", id="gone")])})
        keys, complete = await changes.keys_for(ChangeEvent("crosswalk", "identities", gid))
        now = {f"crosswalk:lookup:{system}:{key}" for system, key in est.identities(gid)}
        assert complete and now and set(keys) == {f"crosswalk:identities:{gid}", "crosswalk:lookup:loyalty:gone", *now}

        # The crosswalk cannot say who the id is now: every cached record of the crosswalk goes.
        async with sources.connectors["crosswalk"].engine.begin() as conn:  # type: ignore[attr-defined]
            await conn.execute(text("DROP TABLE xref"))
        tiers.store_local("crosswalk", "match", {"email:ann@example.com": entry([gid])})
        assert (await changes.keys_for(ChangeEvent("crosswalk", "identities", gid)))[1] is False
        await changes.apply([ChangeEvent("crosswalk", "identities", gid)])
        assert tiers.lookup_local("crosswalk", "match", ["email:ann@example.com"]) == {}

        # Applying drops them and then tells the bus.
        with sources.bus.subscribe() as listener:
            tiers.store_local("helpdesk", "tickets", {"ann@example.com": entry([])})
            event = ChangeEvent("helpdesk", "tickets", "ann@example.com", "changed")
            assert await changes.apply([event]) == 1
            assert tiers.lookup_local("helpdesk", "tickets", ["ann@example.com"]) == {}
            assert await listener.get() == event

        # With the cache off there is nothing to drop, and listeners still hear of the change.
        uncached = Sources(cfg, sources.connectors)
        with uncached.bus.subscribe() as listener:
            assert await Changes(uncached).apply([event]) == 0
            assert await listener.get() == event
    finally:
        await sources.close()
        await session.close()


def test_an_event_drops_its_key_what_is_keyed_off_it_and_a_golden_ids_lookups(tmp_path: Path) -> None:
    asyncio.run(scenario(tmp_path))
