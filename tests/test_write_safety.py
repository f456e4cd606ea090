"""Writes under attack: a first contact raced by concurrent retries links the customer exactly once
(SQLite, PostgreSQL, MariaDB), and a client reusing an idempotency key gets a client error that never
opens the source's circuit for everyone else. A separate estate, so the shared one keeps its truth."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from threading import Barrier
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from estate.generate import generate
from tests.harness import LIVE, Estate, Gateway, gateway_config, http, start_estate, start_gateway
from tests.test_sql_engines import fresh_database, load_estate
from tests.truth import Truth

RECORD = """mutation($input: RecordInteractionInput!) { recordInteraction(input: $input) { id phone } }"""
VIEW = """query($id: ID!) { customer(id: $id) { identities(system: "contact") { id } interactions(first: 100) { id }
  timeline(first: 100) { edges { node { kind record { ... on Interaction { id } } } } } } }"""
ENGINES = ["sqlite", "postgresql", "mariadb"]
RACERS = 20


@pytest.fixture(scope="module")
def est(workdir: Path) -> Iterator[Estate]:
    e = start_estate(workdir / "write-safety", customers=200, seed=11)
    yield e
    e.stop()


@pytest.fixture(scope="module")
def t(est: Estate) -> Truth:
    return Truth(generate(est.customers, est.seed, est.as_of))


@pytest.fixture(scope="module")
def gw(est: Estate, workdir: Path) -> Iterator[Gateway]:
    g = start_gateway(gateway_config(est), workdir, "write-safety")
    yield g
    g.stop()


def first_contacts(t: Truth) -> list[str]:
    """Customers the contact center does not know yet but whose CRM record has a phone number."""
    return [g for g in sorted(t.ids) if not t.ids[g]["contact"] and t.ids[g]["crm"]
            and any(r["phone_home"] or r["phone_mobile"] for r in t.crm(g))]


def key() -> str:
    return f"test-{uuid.uuid4()}"


@contextmanager
def crosswalk_on(engine: str, est: Estate) -> Iterator[str]:
    """The DSN of a crosswalk holding the estate's identities on this engine."""
    if engine == "sqlite":
        yield f"sqlite+aiosqlite:///{(est.data / 'crosswalk.sqlite').resolve()}"
        return
    with fresh_database(engine) as dsn:
        load_estate(est, dsn)
        yield dsn


async def _links(dsn: str, golden_id: str, system: str) -> int:
    engine = create_async_engine(dsn)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(text("SELECT COUNT(*) FROM xref WHERE golden_id = :g AND system = :s"),
                                       {"g": golden_id, "s": system})
            return int(found.scalar_one())
    finally:
        await engine.dispose()


def race(gw: Gateway, fields: dict[str, Any], n: int = RACERS) -> list[dict[str, Any]]:
    """`n` identical mutations released at once from as many threads."""
    start = Barrier(n)

    def one(_: int) -> dict[str, Any]:
        start.wait()
        return gw.gql(RECORD, {"input": fields})

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


@pytest.mark.parametrize("engine", ENGINES)
def test_concurrent_first_contact_links_the_customer_once(engine: str, est: Estate, t: Truth,
                                                         workdir: Path) -> None:
    gid = first_contacts(t)[ENGINES.index(engine)]  # a customer of its own per engine
    with crosswalk_on(engine, est) as dsn:
        g = start_gateway(gateway_config(est, {"crosswalk": {"dsn": dsn}}), workdir, f"first-contact-{engine}")
        try:
            answers = race(g, {"customerId": gid, "channel": "VOICE", "summary": "First call, asked about delivery",
                               "idempotencyKey": key()})
            assert all("errors" not in a for a in answers), [a["errors"] for a in answers if "errors" in a][:3]
            created = {a["data"]["recordInteraction"]["id"] for a in answers}
            assert len(created) == 1, created  # the contact center de-duplicated by key
            [interaction] = created
            assert asyncio.run(_links(dsn, gid, "contact")) == 1
            view = g.gql(VIEW, {"id": gid}, LIVE)["data"]["customer"]
            assert len(view["identities"]) == 1
            assert [i["id"] for i in view["interactions"]] == [interaction]
            on_timeline = [e["node"]["record"]["id"] for e in view["timeline"]["edges"]
                           if e["node"]["kind"] == "CONTACT"]
            assert on_timeline == [interaction]
        finally:
            g.stop()


def circuits(gw: Gateway) -> dict[str, str]:
    return {n: s["circuit"] for n, s in json.loads(http("GET", gw.url + "/readyz")[2])["sources"].items()}


def test_reused_idempotency_key_is_the_clients_error_and_opens_no_circuit(gw: Gateway, est: Estate,
                                                                          t: Truth) -> None:
    gid = next(g for g in sorted(t.ids) if t.ids[g]["contact"])
    k = key()
    first = gw.gql(RECORD, {"input": {"customerId": gid, "channel": "CHAT", "summary": "Original", "idempotencyKey": k}})
    assert "errors" not in first, first
    for n in range(8):  # more than the circuit's five failures in a row
        reused = gw.gql(RECORD, {"input": {"customerId": gid, "channel": "CHAT", "summary": f"Different {n}",
                                           "idempotencyKey": k}})
        assert reused["data"] == {"recordInteraction": None}
        [error] = reused["errors"]
        assert error["extensions"] == {"code": "IDEMPOTENCY_KEY_REUSED", "source": "contact"}, error
        assert "idempotencyKey" in error["message"] and "new key" in error["message"], error["message"]
        assert "http" not in error["message"].lower(), error["message"]  # no source URL or status leaks
    assert circuits(gw)["contact"] == "closed"
    status = json.loads(http("GET", gw.url + "/readyz")[2])["sources"]["contact"]
    assert status["failures"] == 0
    other = next(g for g in sorted(t.ids)[50:] if t.ids[g]["contact"])
    fine = gw.gql(RECORD, {"input": {"customerId": other, "channel": "EMAIL", "summary": "Still works",
                                     "idempotencyKey": key()}})
    assert "errors" not in fine and fine["data"]["recordInteraction"]["id"]
