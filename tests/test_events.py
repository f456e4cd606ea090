"""Change events end to end, cache on, over a demo estate of this module's own (its data is changed here):
a change at a source, made behind the gateway's back, shows in the gateway's view long before its TTL
(300 s here, so only the event can explain it) — by webhook (helpdesk, contact center), by the polling
feed (SQLite: CRM, shop, crosswalk), by NOTIFY (PostgreSQL) and polling (MariaDB); two gateways sharing
Redis are both fresh after one webhook to one of them; refused deliveries (bad signature, stale timestamp,
replay) drop nothing.

The issue's goal is 1 s at p99: bench/events.py measures it. Here each change must show within
DEADLINE_S, far inside the TTLs, so that a loaded machine does not make a timing test of it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from server.events import SIGNATURE, TIMESTAMP, sign
from tests.harness import Estate, Gateway, gateway_config, http, running_estate, running_gateway, start_gateway
from tests.test_sql_engines import fresh_database, kill_connections, load_estate

DEADLINE_S = 5.0
TTLS = {"helpdesk": {"ttl_s": {"tickets": 300}}, "contact": {"ttl_s": {"interactions": 300}},
        "shop": {"ttl_s": {"orders": 300}}, "crm": {"ttl_s": {"crm": 300}}}
HELPDESK_SECRET = "demo-helpdesk-events-secret"  # the default both sources/helpdesk.yaml and the estate use
IDS = [f"C-{n:06}" for n in range(1, 61)]
VIEW = """query($ids: [ID!]!) { customers(ids: $ids) { id identities { system id } preferences { language }
  tickets { id status } interactions { id summary } orders { number }
  crossSell { eligible blockers { kind recordId } } } }"""
FIND = "query($sys: SystemIdInput) { findCustomers(systemId: $sys) { id } }"


@pytest.fixture(scope="module")
def est(workdir: Path) -> Iterator[Estate]:
    yield from running_estate(workdir, "events-estate", customers=120, seed=13)


def events_config(est: Estate, **cache: Any) -> dict[str, Any]:
    cfg = gateway_config(est, TTLS)
    cfg["cache"].update(cache)
    return cfg


@pytest.fixture(scope="module")
def gw(est: Estate, workdir: Path) -> Iterator[Gateway]:
    yield from running_gateway(events_config(est), workdir, "events-gateway")


def send_events_to(est: Estate, url: str) -> None:
    for source in ("helpdesk", "contact"):
        status, _, body = http("POST", est.url(source, "/__events"), json.dumps({"url": url}).encode(),
                               {"content-type": "application/json"})
        assert status == 200, body


@pytest.fixture
def webhooks(est: Estate, gw: Gateway) -> Iterator[None]:
    send_events_to(est, gw.url + "/events")
    yield
    send_events_to(est, "")


def view(gw: Gateway, ids: list[str]) -> list[dict[str, Any]]:
    answer = gw.gql(VIEW, {"ids": ids})
    assert "errors" not in answer, answer["errors"]
    return answer["data"]["customers"]  # type: ignore[no-any-return]


def one(gw: Gateway, gid: str) -> dict[str, Any]:
    return view(gw, [gid])[0]


def until(probe: Callable[[], bool]) -> float:
    """Seconds until `probe` held; fails past DEADLINE_S."""
    started = time.monotonic()
    while not probe():
        assert time.monotonic() - started < DEADLINE_S, "the change did not show before the deadline"
        time.sleep(0.02)
    return time.monotonic() - started


def cached(est: Estate, gw: Gateway, gid: str, source: str) -> dict[str, Any]:
    """The customer's view, read twice: the second answer must come from the cache (no call to `source`)."""
    one(gw, gid)
    before = est.stats(source)["requests"]
    answer = one(gw, gid)
    assert est.stats(source)["requests"] == before, f"{source} was called again: the cache is not on"
    return answer


def blocked_by_ticket(gw: Gateway) -> dict[str, Any]:
    return next(c for c in view(gw, IDS) if any(b["kind"] == "OPEN_TICKET" for b in c["crossSell"]["blockers"]))


def ticket_ids(customer: dict[str, Any]) -> list[str]:
    return [b["recordId"] for b in customer["crossSell"]["blockers"] if b["kind"] == "OPEN_TICKET"]


def set_ticket(est: Estate, ticket: str, status: str) -> None:
    code, _, body = http("PUT", est.url("helpdesk", f"/api/v2/tickets/{ticket}"),
                         json.dumps({"status": status}).encode(), {"content-type": "application/json"})
    assert code == 200, body


def status_of(gw: Gateway, gid: str, ticket: str) -> str:
    return next(t["status"] for t in one(gw, gid)["tickets"] if t["id"] == ticket)


def ident(customer: dict[str, Any], system: str) -> str:
    return next(i["id"] for i in customer["identities"] if i["system"] == system)


def test_a_ticket_solved_at_the_helpdesk_unblocks_the_cross_sell_at_once(est: Estate, gw: Gateway,
                                                                         webhooks: None) -> None:
    customer = blocked_by_ticket(gw)
    cached(est, gw, customer["id"], "helpdesk")
    for ticket in ticket_ids(customer):
        set_ticket(est, ticket, "solved")
    until(lambda: not any(b["kind"] == "OPEN_TICKET" for b in one(gw, customer["id"])["crossSell"]["blockers"]))
    assert all(status_of(gw, customer["id"], t) == "SOLVED" for t in ticket_ids(customer))
    delivered = json.loads(http("GET", est.url("helpdesk", "/__events"))[2])
    assert delivered["delivered"] >= len(ticket_ids(customer)) and delivered["failed"] == 0


def test_an_interaction_recorded_at_the_contact_center_shows_at_once(est: Estate, gw: Gateway, webhooks: None) -> None:
    customer = next(c for c in view(gw, IDS) if any(i["system"] == "contact" for i in c["identities"]))
    cached(est, gw, customer["id"], "contact")
    summary = f"Called about an event {uuid.uuid4().hex[:8]}"
    body = {"phoneNumber": ident(customer, "contact"), "mediaType": "voice", "summary": summary}
    code, _, answer = http("POST", est.url("contact", "/v1/interactions"), json.dumps(body).encode(),
                           {"content-type": "application/json", "Idempotency-Key": uuid.uuid4().hex})
    assert code == 201, answer
    until(lambda: any(i["summary"] == summary for i in one(gw, customer["id"])["interactions"]))


def test_a_crm_change_in_sqlite_shows_through_the_polling_feed(est: Estate, gw: Gateway) -> None:
    customer = next(c for c in view(gw, IDS) if c["preferences"] and c["preferences"]["language"] != "fr")
    cached(est, gw, customer["id"], "billing")
    with sqlite3.connect(est.data / "crm.sqlite") as db:
        db.execute("UPDATE customers SET lang = 'fr' WHERE cust_no = ?", (ident(customer, "crm"),))
    until(lambda: one(gw, customer["id"])["preferences"]["language"] == "fr")


def test_a_new_order_and_a_new_link_show_through_the_polling_feed(est: Estate, gw: Gateway) -> None:
    customer = next(c for c in view(gw, IDS) if any(i["system"] == "shop" for i in c["identities"]))
    gid, account = customer["id"], ident(customer, "shop")
    number = f"SO-{uuid.uuid4().hex[:8].upper()}"
    with sqlite3.connect(est.data / "shop.sqlite") as db:
        db.execute("INSERT INTO orders (order_number, account_email, placed_at, channel, status, total, currency) "
                   "VALUES (?, ?, '2026-01-02 10:00:00', 'web', 'placed', 19.5, 'EUR')", (number, account))
        db.execute("INSERT INTO order_lines VALUES (?, 1, 'ACC-100', 'USB-C Charger', 1, 19.5)", (number,))
    until(lambda: any(o["number"] == number for o in one(gw, gid)["orders"]))
    loyalty = f"{uuid.uuid4().int % 10**9:09}"
    assert found_by(gw, "loyalty", loyalty) == []  # cached too: nobody has that id yet
    with sqlite3.connect(est.data / "crosswalk.sqlite") as db:
        db.execute("INSERT INTO xref (golden_id, system, system_key) VALUES (?, 'loyalty', ?)", (gid, loyalty))
    until(lambda: {"system": "loyalty", "id": loyalty} in one(gw, gid)["identities"])
    until(lambda: found_by(gw, "loyalty", loyalty) == [gid])  # the link's lookup entry was dropped too


def found_by(gw: Gateway, system: str, key: str) -> list[str]:
    answer = gw.gql(FIND, {"sys": {"system": system, "id": key}})
    assert "errors" not in answer, answer["errors"]
    return [c["id"] for c in answer["data"]["findCustomers"]]


def signed(events: Any, at: float | None = None, secret: str = HELPDESK_SECRET,
           raw: bytes | None = None) -> tuple[bytes, dict[str, str]]:
    body = raw if raw is not None else json.dumps(events).encode()
    stamp = str(int(time.time() if at is None else at))
    return body, {"content-type": "application/json", TIMESTAMP: stamp, SIGNATURE: sign(secret.encode(), stamp, body)}


def post(gw: Gateway, delivery: tuple[bytes, dict[str, str]]) -> tuple[int, dict[str, Any]]:
    code, _, answer = http("POST", gw.url + "/events", *delivery)
    return code, json.loads(answer)


def deliver(gw: Gateway, events: Any, **how: Any) -> tuple[int, dict[str, Any]]:
    return post(gw, signed(events, **how))


def test_refused_deliveries_drop_nothing(est: Estate, gw: Gateway) -> None:
    customer = blocked_by_ticket(gw)  # the estate sends no webhooks in this test: only ours count
    gid, ticket = customer["id"], ticket_ids(customer)[0]
    cached(est, gw, gid, "helpdesk")
    before = status_of(gw, gid, ticket)
    set_ticket(est, ticket, "pending" if before != "PENDING" else "open")
    event = {"source": "helpdesk", "entity": "tickets", "key": ident(customer, "helpdesk"), "change": "changed"}
    refusals = [
        (deliver(gw, event, secret="not-the-helpdesk-secret-0"), 401, "BAD_SIGNATURE"),
        (deliver(gw, event, at=time.time() - 3600), 401, "STALE_TIMESTAMP"),
        (deliver(gw, {**event, "entity": "accounts"}), 400, "BAD_EVENT"),
        (deliver(gw, {**event, "source": "billing"}), 400, "BAD_EVENT"),
        (deliver(gw, None, raw=b'{"source": "helpdesk", ' + b" " * 300_000 + b"}"), 413, "PAYLOAD_TOO_LARGE"),
    ]
    for (code, answer), status, error in refusals:
        assert (code, answer["code"]) == (status, error), answer
        assert "Traceback" not in answer["error"] and HELPDESK_SECRET not in answer["error"]
    assert status_of(gw, gid, ticket) == before  # the stale value is still served: nothing was dropped

    genuine = signed(event)
    code, answer = post(gw, genuine)
    assert (code, answer["accepted"]) == (202, 1), answer
    changed = status_of(gw, gid, ticket)
    assert changed != before
    set_ticket(est, ticket, before.lower() if before != "ON_HOLD" else "hold")  # and back, still behind its back
    code, answer = post(gw, genuine)  # the same delivery again
    assert (code, answer["code"]) == (409, "REPLAYED")
    assert status_of(gw, gid, ticket) == changed  # the replay dropped nothing either


def test_two_gateways_sharing_redis_are_both_fresh_after_one_webhook(est: Estate, workdir: Path,
                                                                     redis_url: str) -> None:  # noqa: F811
    cfg = events_config(est, redis_url=redis_url, namespace=f"cg-events-{uuid.uuid4().hex[:8]}")
    first = start_gateway(cfg, workdir, "events-redis-a")
    second = start_gateway(cfg, workdir, "events-redis-b")
    try:
        send_events_to(est, first.url + "/events")  # only the first hears from the helpdesk
        customer = blocked_by_ticket(first)
        gid, tickets = customer["id"], ticket_ids(customer)
        for gw in (first, second):
            cached(est, gw, gid, "helpdesk")
        for ticket in tickets:
            set_ticket(est, ticket, "solved")
        for gw in (first, second):
            until(lambda gw=gw: all(status_of(gw, gid, t) == "SOLVED" for t in tickets))  # type: ignore[misc]
        # A delivery one gateway took is a replay at the other: they share the memory of deliveries.
        delivery = signed({"source": "helpdesk", "entity": "tickets", "key": ident(customer, "helpdesk")})
        assert post(first, delivery)[0] == 202
        assert post(second, delivery) == (409, {"error": "this delivery was already accepted", "code": "REPLAYED"})
    finally:
        send_events_to(est, "")
        first.stop()
        second.stop()


async def _sql(dsn: str, statements: list[tuple[str, dict[str, Any]]]) -> None:
    engine = create_async_engine(dsn)
    try:
        async with engine.begin() as conn:
            for sql, params in statements:
                await conn.execute(text(sql), params)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("engine", ["postgresql", "mariadb"])
def test_a_change_in_a_database_server_shows(engine: str, est: Estate, workdir: Path) -> None:
    """PostgreSQL by NOTIFY (the triggers `estate load` installs), MariaDB by polling updated_at."""
    with fresh_database(engine) as dsn:
        load_estate(est, dsn)
        sql = {n: {"dsn": dsn, **TTLS.get(n, {})} for n in ("crm", "shop", "crosswalk")}
        cfg = gateway_config(est, {**TTLS, **sql})
        gw = start_gateway(cfg, workdir, f"events-{engine}")
        try:
            customer = next(c for c in view(gw, IDS) if c["preferences"] and c["preferences"]["language"] != "fr"
                            and any(i["system"] == "shop" for i in c["identities"]))
            gid, crm = customer["id"], ident(customer, "crm")
            cached(est, gw, gid, "billing")
            asyncio.run(_sql(dsn, [("UPDATE customers SET lang = 'fr' WHERE cust_no = :k", {"k": crm})]))
            until(lambda: one(gw, gid)["preferences"]["language"] == "fr")

            # The server cuts the gateway's connections: a LISTEN is made again, and the CRM's entries are
            # dropped since notifications may have been missed meanwhile; a poll goes on where it was.
            assert asyncio.run(kill_connections(engine, dsn)) >= 1
            asyncio.run(_sql(dsn, [("UPDATE customers SET lang = 'de' WHERE cust_no = :k", {"k": crm})]))
            until(lambda: one(gw, gid)["preferences"]["language"] == "de")

            number = f"SO-{uuid.uuid4().hex[:8].upper()}"  # a new order with its line: the line's trigger too
            asyncio.run(_sql(dsn, [
                ("INSERT INTO orders (order_number, account_email, placed_at, channel, status, total, currency) "
                 "VALUES (:n, :a, '2026-01-02 10:00:00', 'web', 'placed', 19.5, 'EUR')",
                 {"n": number, "a": ident(customer, "shop")}),
                ("INSERT INTO order_lines VALUES (:n, 1, 'ACC-100', 'USB-C Charger', 1, 19.5)", {"n": number})]))
            until(lambda: any(o["number"] == number for o in one(gw, gid)["orders"]))
        finally:
            gw.stop()
