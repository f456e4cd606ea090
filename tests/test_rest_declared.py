"""Declared REST entities (connectors/declaration.py, run by connectors/rest.py): every request and
pagination style against a tiny in-process aiohttp source, the answers' shapes, "not found", bad
answers, declaration errors; and the demo's declarations reproduce the hand-written mappings."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from aiohttp import web
from pydantic import ValidationError

import config
from connectors.base import SOURCE_BAD_RESPONSE, SourceConfig, SourceError
from connectors.http import new_session
from connectors.mapping import compile_mapping
from estate.generate import generate
from schema.graph import record
from tests.handwritten import analytics, billing, contact, helpdesk, marketing, shipping, staff
from tests.handwritten.records import record_class  # the reference's record for a declared type
from tests.local_server import serving

Identity = record("Identity")

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
# Each owner key has this many records; "k0".."k9" exist.
RECORDS = {f"k{i}": [{"id": f"k{i}-{j}", "owner": f"k{i}"} for j in range(i + 1)] for i in range(10)}
IDENTITY = {"fields": {"system": "owner", "id": "id"}}


def _all(keys: list[str]) -> list[dict[str, str]]:
    return [r for k in keys for r in RECORDS.get(k, ())]


def _window(items: list[Any], start: int, size: int) -> list[Any]:
    return items[start:start + size]


def service(calls: list[str]) -> web.Application:
    async def cursor(request: web.Request) -> web.Response:
        key, q = request.match_info["key"], request.query
        if key not in RECORDS:
            return web.json_response({"error": "no such owner"}, status=404)
        size, at = int(q["per_page"]), int(q.get("cursor", "0"))
        page = _window(RECORDS[key], at, size)
        more = at + size < len(RECORDS[key])
        return web.json_response({"items": page, "meta": {"more": more, "next": str(at + size) if more else None}})

    async def offset(request: web.Request) -> web.Response:
        q = request.query
        items = _all(q["ids"].split(","))
        return web.json_response({"items": _window(items, int(q["offset"]), int(q["limit"])), "total": len(items)})

    async def pages(request: web.Request) -> web.Response:
        q = request.query
        items = _all(q.getall("id"))
        size, n = int(q["size"]), int(q["page"])
        count = max(1, -(-len(items) // size))
        return web.json_response({"data": {"items": _window(items, n * size, size)}, "pages": count})

    async def linked(request: web.Request) -> web.Response:
        q = request.query
        items = _all(q["ids"].split(","))
        at = int(q.get("from", "0"))
        nxt = None
        if at + 4 < len(items):  # the link alternates between a path and an absolute URL
            nxt = f"/linked?ids={q['ids']}&from={at + 4}"
            if (at // 4) % 2:
                nxt = str(request.url.with_path("/linked").with_query({"ids": q["ids"], "from": at + 4}))
        return web.json_response({"items": _window(items, at, 4), "links": {"next": nxt}})

    async def elsewhere(_: web.Request) -> web.Response:
        return web.json_response({"items": [], "links": {"next": "http://attacker.invalid/steal"}})

    async def groups(request: web.Request) -> web.Response:
        keys = (await request.json())["owners"]["keys"]
        return web.json_response({"results": [{"k": k, "rows": RECORDS[k]} for k in keys if k in RECORDS]})

    async def one(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if key == "gone":
            return web.json_response({}, status=410)
        if key not in RECORDS:
            return web.json_response({}, status=404)
        return web.json_response({"item": RECORDS[key][0]})

    async def shape(_: web.Request) -> web.Response:
        return web.json_response({"result": "ok", "items": "not a list", "data": None})

    @web.middleware
    async def log(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) \
            -> web.StreamResponse:
        calls.append(request.raw_path)
        return await handler(request)

    app = web.Application(middlewares=[log])
    app.router.add_get("/owners/{key}/items", cursor)
    app.router.add_get("/offset", offset)
    app.router.add_get("/pages", pages)
    app.router.add_get("/linked", linked)
    app.router.add_get("/elsewhere", elsewhere)
    app.router.add_post("/groups", groups)
    app.router.add_get("/one/{key}", one)
    app.router.add_get("/shape", shape)
    return app


ENTITIES: dict[str, Any] = {
    "by_cursor": {"request": {"path": "/owners/{key}/items"}, "many": True, "records": "items", "not_found": [404],
                  "pagination": {"style": "cursor", "cursor": "meta.next", "has_more": "meta.more",
                                 "size_param": "per_page", "page_size": 2}},
    "by_offset": {"request": {"path": "/offset", "params": {"ids": "$keys"}, "join": ","}, "records": "items",
                  "key": "owner", "many": True, "pagination": {"style": "offset", "total": "total"}},
    "by_page": {"request": {"path": "/pages", "params": {"id": "$keys", "extra": "static"}},
                "records": "data.items", "key": "owner", "many": True,
                "pagination": {"style": "page", "param": "page", "first": 0, "total_pages": "pages",
                               "size_param": "size", "page_size": 5}},
    "by_short_page": {"request": {"path": "/pages", "params": {"id": "$keys"}}, "records": "data.items",
                      "key": "owner", "many": True,
                      "pagination": {"style": "page", "first": 0, "size_param": "size", "page_size": 5}},
    "by_link": {"request": {"path": "/linked", "params": {"ids": "$keys"}, "join": ","}, "records": "items",
                "key": "owner", "many": True, "pagination": {"style": "next_link", "next": "links.next"}},
    "elsewhere": {"request": {"path": "/elsewhere", "params": {"ids": "$keys"}, "join": ","}, "records": "items",
                  "key": "owner", "many": True, "pagination": {"style": "next_link", "next": "links.next"}},
    "grouped": {"request": {"method": "POST", "path": "/groups", "body": {"owners": {"keys": "$keys"}, "v": 1}},
                "records": "results", "group": {"key": "k", "records": "rows"}, "many": True,
                "mapping": {"fields": {"system": {"parent": "k"}, "id": "id"}}},
    "one": {"request": {"path": "/one/{key}"}, "records": "item", "not_found": [404, 410]},
    "one_strict": {"request": {"path": "/one/{key}"}, "records": "item"},
    "shape": {"request": {"path": "/shape", "params": {"ids": "$keys"}, "join": ","}, "records": "items",
              "key": "owner"},
    "shape_offset": {"request": {"path": "/shape", "params": {"ids": "$keys"}, "join": ","}, "records": "items",
                     "key": "owner", "pagination": {"style": "offset", "total": "total"}},
}


def declared(url: str, **changes: Any) -> SourceConfig:
    entities = {n: {"record": "Identity", "mapping": IDENTITY, **e} for n, e in ENTITIES.items()}
    return config.source_config("items", {"kind": "rest", "url": url, "retries": 0, "options": {"page_size": 3},
                                          "entities": entities, **changes})


@asynccontextmanager
async def source(**changes: Any) -> AsyncIterator[tuple[Any, list[str]]]:
    from connectors.rest import RestConnector
    calls: list[str] = []
    async with serving(service(calls)) as url:
        session = new_session()
        try:
            yield RestConnector(declared(url, **changes), session), calls
        finally:
            await session.close()


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(scenario())  # type: ignore[arg-type]


def expected(keys: list[str]) -> dict[str, list[Identity]]:
    return {k: [Identity(r["owner"], r["id"]) for r in RECORDS[k]] for k in keys if k in RECORDS}


KEYS = ["k3", "k1", "nobody", "k6"]


@pytest.mark.parametrize(("entity", "calls_made"), [
    ("by_cursor", 2 + 1 + 1 + 4),  # k3: 4 records in pages of 2; k1: 1 page; nobody: a 404; k6: 7 in 4 pages
    ("by_offset", 5),  # 13 records, pages of 3 (options.page_size)
    ("by_page", 3),  # 13 records, pages of 5, the total read from the answer
    ("by_short_page", 3),  # the third page is short: no more asked
    ("by_link", 4),  # 13 records, 4 per page, alternating path and absolute links
    ("grouped", 1),
])
def test_every_style_finds_every_record(entity: str, calls_made: int) -> None:
    async def scenario() -> None:
        async with source() as (c, calls):
            found = await c.fetch(entity, KEYS)
            assert {k: list(v) for k, v in found.items()} == expected(KEYS)
            assert len(calls) == calls_made, calls
            assert c.failures == 0

    run(scenario)


def test_the_requests_carry_the_keys_as_declared() -> None:
    async def scenario() -> None:
        async with source() as (c, calls):
            await c.fetch("by_page", ["k1", "k2"])
            assert calls[0] == "/pages?id=k1&id=k2&extra=static&size=5&page=0" or \
                set(calls[0].split("?")[1].split("&")) == {"id=k1", "id=k2", "extra=static", "size=5", "page=0"}
            calls.clear()
            await c.fetch("by_offset", ["k1", "k2"])
            assert calls == ["/offset?ids=k1,k2&offset=0&limit=3", "/offset?ids=k1,k2&offset=3&limit=3"]
            calls.clear()
            await c.fetch("by_cursor", ["k1@x y/z"])  # quoted into the path; unknown: a 404
            assert calls == ["/owners/k1@x%20y%2Fz/items?per_page=2"]

    run(scenario)


def test_one_call_per_key_and_not_found() -> None:
    async def scenario() -> None:
        async with source() as (c, calls):
            found = await c.fetch("one", ["k2", "gone", "nobody", "k5"])
            assert found == {"k2": Identity("k2", "k2-0"), "k5": Identity("k5", "k5-0")}
            assert sorted(calls) == ["/one/gone", "/one/k2", "/one/k5", "/one/nobody"]
            assert await c.fetch("by_cursor", ["nobody"]) == {}
            assert c.failures == 0

    run(scenario)


@pytest.mark.parametrize("entity", ["shape", "shape_offset", "elsewhere"])
def test_a_bad_answer_is_a_bad_response(entity: str) -> None:
    async def scenario() -> None:
        async with source() as (c, calls):
            with pytest.raises(SourceError) as caught:
                await c.fetch(entity, ["k1"])
            assert caught.value.code == SOURCE_BAD_RESPONSE
            if entity == "elsewhere":
                assert calls == ["/elsewhere?ids=k1"]  # the foreign link was never followed

    run(scenario)


def test_a_status_not_declared_not_found_is_a_failure() -> None:
    async def scenario() -> None:
        async with source() as (c, _):
            with pytest.raises(SourceError) as caught:
                await c.fetch("one_strict", ["k1", "nobody"])
            assert caught.value.code == SOURCE_BAD_RESPONSE and "404" in str(caught.value)
            assert c.failures == 1

    run(scenario)


@pytest.mark.parametrize(("change", "message"), [
    ({"request": {"path": "/x"}}, "the keys go in exactly one place"),
    ({"request": {"path": "/x/{key}", "params": {"ids": "$keys"}}}, "the keys go in exactly one place"),
    ({"request": {"path": "x", "params": {"ids": "$keys"}}}, "String should match pattern"),
    ({"key": None}, "a batch request needs key"),
    ({"record": "Nonesuch"}, "no record class 'Nonesuch'"),
    ({"pagination": {"style": "sideways"}}, "does not match any of the expected tags"),
    ({"records": "items + 1"}, "is not a path"),
    ({"group": {"key": "k", "records": "rows"}}, "give key or group"),
    ({"request": {"path": "/x", "params": {"ids": "$keys"}}, "pagination": {"style": "offset"}},
     "page_size: required"),
])
def test_bad_declarations_are_refused_naming_the_key(change: dict[str, Any], message: str) -> None:
    entity = {"request": {"path": "/x", "params": {"ids": "$keys"}, "join": ","}, "records": "items", "key": "id",
              "record": "Identity", "mapping": IDENTITY, **change}
    with pytest.raises(config.ConfigError) as caught:
        config.source_config("items", {"kind": "rest", "url": "http://x", "entities": {"things": entity}},
                             "items.yaml")
    assert str(caught.value).startswith("items.yaml: entities") and message in str(caught.value), caught.value


def test_entities_are_for_rest_and_a_module_is_imported_only_when_needed() -> None:
    entity = {"request": {"path": "/x/{key}"}, "record": "Identity", "mapping": IDENTITY}
    with pytest.raises(config.ConfigError, match="entities: declared entities are for kind rest"):
        config.source_config("items", {"kind": "graphql", "url": "http://x", "entities": {"a": entity}})
    declared_only = config.source_config("items", {"kind": "rest", "url": "http://x", "entities": {"a": entity}})
    assert list(declared_only.entities) == ["a"]
    with pytest.raises(config.ConfigError, match="mapping: unknown key"):  # no mapping modules any more
        config.source_config("items", {"kind": "rest", "url": "http://x", "mapping": "crm", "entities": {"a": entity}})


# --- the demo's declarations are the hand-written mappings, record for record

HAND = {
    ("billing", "accounts"): (lambda w: [(a, None) for a in w["billing"].values()], lambda r, p: billing.account(r)),
    ("contact", "interactions"): (lambda w: [(i, {"phoneNumber": ph}) for ph, ixs in w["contact"].items() for i in ixs],
                                  lambda r, p: contact.interaction(r, p["phoneNumber"])),
    ("marketing", "marketing"): (lambda w: [(c, None) for c in w["marketing"].values()],
                                 lambda r, p: marketing.contact(r)),
    ("shipping", "shipments"): (lambda w: [(s, None) for g in w["shipping"].values() for s in g],
                                lambda r, p: shipping.shipment(r)),
    ("staff", "agents"): (lambda w: [(a, None) for a in w["staff"].values()], lambda r, p: staff.agent(r)),
    ("staff", "roster"): (lambda w: [(a, None) for a in w["staff"].values()], lambda r, p: staff.agent(r)),
    ("analytics", "web_sessions"): (lambda w: [(s, None) for g in w["analytics"].values() for s in g],
                                    lambda r, p: analytics.session(r)),
    ("helpdesk", "tickets"): (lambda w: [(t, None) for g in w["helpdesk"].values() for t in g],
                              lambda r, p: helpdesk.ticket(r)),
}


@pytest.fixture(scope="module")
def wire() -> dict[str, Any]:
    est = generate(customers=200)
    return json.loads(json.dumps({n: getattr(est, n) for n in (
        "billing", "contact", "marketing", "shipping", "staff", "analytics", "helpdesk")}, default=str))


@pytest.mark.parametrize(("system", "entity"), list(HAND))
def test_the_demo_declarations_reproduce_the_hand_written_mappings(system: str, entity: str,
                                                                   wire: dict[str, Any]) -> None:
    raw = config.expand(yaml.safe_load((ROOT / "sources" / f"{system}.yaml").read_text()))
    decl = config.source_config(system, raw).entities[entity]
    mapped = compile_mapping(decl.mapping, record_class(decl.record))
    items, hand = HAND[(system, entity)]
    pairs = items(wire)
    assert len(pairs) > 20
    for r, p in pairs:
        assert mapped(r, p) == hand(r, p)


def test_no_rest_source_of_the_demo_needs_python_to_read() -> None:
    cfg = config.load(ROOT / "gateway.yaml")
    rest = {n: s for n, s in cfg.sources.items() if s.kind == "rest"}
    assert sorted(rest) == ["analytics", "billing", "contact", "helpdesk", "marketing", "shipping", "staff"]
    assert [n for n, s in rest.items() if s.actions] == ["contact"]  # its write, declared too
    with pytest.raises(ValidationError):
        SourceConfig(name="x", kind="rest", url="http://x", system="x",
                     entities={"a": {"request": {"path": "/a/{key}"}, "record": "Identity", "mapping": {"fields": {}},
                                     "pagination": {"style": "cursor", "cursor": "c"}}})
