"""Declared SQL, GraphQL and SOAP/XML entities (connectors/declaration.py, run by connectors/sql.py,
graphql.py and xml.py), each against an in-process source; the mapping's built-in normalisations; the
escape hatch (a function outside the framework's packages, by dotted path); and the demo's reads,
declared for every system."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from xml.etree import ElementTree

import pytest
import yaml
from aiohttp import web

import config
from connectors.base import SOURCE_BAD_RESPONSE, Connector, SourceError
from connectors.graphql import GraphQLConnector
from connectors.http import new_session
from connectors.mapping import MappingError, compile_mapping
from connectors.sql import SqlConnector
from connectors.xml import SOAP_NS, XmlConnector, element_dict
from schema.graph import record
from tests.local_server import serving

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
IDENTITY = {"fields": {"system": "owner", "id": "id"}}
Identity = record("Identity")


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(scenario())  # type: ignore[arg-type]


# --- SQL ------------------------------------------------------------------------------------------

@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "items.sqlite"
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE items (id TEXT PRIMARY KEY, owner TEXT, kind TEXT, note TEXT);
        INSERT INTO items VALUES ('a1', 'k1', 'x', NULL), ('a2', 'k1', 'y', 'n'), ('b1', 'k2', 'x', NULL),
                                 ('c1', 'K3', 'x', NULL);
    """)
    con.commit()
    con.close()
    return path


def sql_source(db: Path, entities: dict[str, Any]) -> SqlConnector:
    cfg = config.source_config("items", {"kind": "sql", "dsn": f"sqlite+aiosqlite:///{db}", "retries": 0,
                                         "entities": entities})
    return SqlConnector(cfg)


def test_a_sql_table_is_read_by_its_key_column(db: Path) -> None:
    async def scenario() -> None:
        c = sql_source(db, {"by_id": {"table": "items", "key_column": "id", "columns": ["id", "owner"],
                                      "record": "Identity", "mapping": IDENTITY},
                            "by_owner": {"table": "items", "key_column": "owner", "many": True,
                                         "record": "Identity", "mapping": IDENTITY}})
        try:
            assert await c.fetch("by_id", ["a2", "b1", "zz"]) == {"a2": Identity("k1", "a2"), "b1": Identity("k2", "b1")}
            many = await c.fetch("by_owner", ["k1", "k2", "k9"])
            assert many == {"k1": [Identity("k1", "a1"), Identity("k1", "a2")], "k2": [Identity("k2", "b1")]}
            assert c.failures == 0
        finally:
            await c.close()

    run(scenario)


def test_a_sql_select_with_a_bound_part_of_the_key_and_plain_values(db: Path) -> None:
    async def scenario() -> None:
        c = sql_source(db, {"pairs": {"sql": "SELECT DISTINCT owner, kind, id FROM items WHERE kind IN :keys "
                                             "ORDER BY id",
                                      "bind": "key.split(':', 2)[1]", "key": "owner + ':' + kind",
                                      "many": True, "value": "id"}})
        try:
            found = await c.fetch("pairs", ["k1:x", "k1:y", "k2:x", "k2:y"])
            assert found == {"k1:x": ["a1"], "k1:y": ["a2"], "k2:x": ["b1"]}  # K3:x was not asked
        finally:
            await c.close()

    run(scenario)


def test_rows_for_keys_not_asked_are_dropped(db: Path) -> None:
    """A case-insensitive comparison (as a MariaDB collation makes it) answers other spellings too."""
    async def scenario() -> None:
        c = sql_source(db, {"by_owner": {"sql": "SELECT * FROM items WHERE lower(owner) IN :keys", "key": "owner",
                                         "many": True, "record": "Identity", "mapping": IDENTITY}})
        try:
            assert await c.fetch("by_owner", ["k3"]) == {}
        finally:
            await c.close()

    run(scenario)


def test_a_failing_sql_entity_is_a_bad_response(db: Path) -> None:
    async def scenario() -> None:
        c = sql_source(db, {"gone": {"table": "nonesuch", "key_column": "id", "record": "Identity",
                                     "mapping": IDENTITY}})
        try:
            with pytest.raises(SourceError) as caught:
                await c.fetch("gone", ["a1"])
            assert caught.value.code == SOURCE_BAD_RESPONSE
        finally:
            await c.close()

    run(scenario)


@pytest.mark.parametrize(("entity", "message"), [
    ({"sql": "SELECT * FROM items WHERE id = 1", "key": "id"}, "IN :keys"),
    ({"table": "items"}, "table needs key_column"),
    ({"table": "items; DROP TABLE x", "key_column": "id"}, "String should match pattern"),
    ({"table": "items", "key_column": "id", "request": {"path": "/x/{key}"}}, "give one of request"),
    ({"table": "items", "key_column": "id", "document": "{ x }"}, "give one of request"),
    ({"table": "items", "key_column": "id", "envelope": "<x/>"}, "give one of request"),
    ({"sql": "SELECT * FROM items WHERE id IN :keys"}, "key: required"),
    ({"table": "items", "key_column": "id", "records": "rows"}, "the rows are the records"),
    ({"table": "items", "key_column": "id", "bind": "key +"}, "not valid CEL"),
    ({"table": "items", "key_column": "id", "value": "id", "record": "Identity"}, "give value"),
    ({"table": "items", "key_column": "id", "namespaces": {"a": "urn:a"}}, "namespaces: not a setting of a sql"),
])
def test_bad_sql_declarations_are_refused_naming_the_key(entity: dict[str, Any], message: str) -> None:
    entity = {"record": "Identity", "mapping": IDENTITY, **entity}
    if "value" in entity:
        entity.pop("mapping")
    with pytest.raises(config.ConfigError) as caught:
        config.source_config("items", {"kind": "sql", "dsn": "sqlite://", "entities": {"things": entity}},
                             "items.yaml")
    assert str(caught.value).startswith("items.yaml: entities") and message in str(caught.value), caught.value
    assert "\n" not in str(caught.value)


def test_an_entity_of_another_kind_is_refused() -> None:
    sql = {"table": "items", "key_column": "id", "record": "Identity", "mapping": IDENTITY}
    with pytest.raises(config.ConfigError, match="declared entities are for kind sql when they give sql"):
        config.source_config("items", {"kind": "graphql", "url": "http://x", "entities": {"a": sql}})


# --- an in-process HTTP source for GraphQL and XML --------------------------------------------------

MEMBERS = {"c1": {"card": "c1", "tier": "GOLD", "perks": [{"name": "p1"}, {"name": "p2"}]},
           "c2": {"card": "c2", "tier": "silver", "perks": []}}
NS = "urn:test:things"


def _soap(body: str, status: int = 200) -> web.Response:
    return web.Response(text=f'<?xml version="1.0"?><s:Envelope xmlns:s="{SOAP_NS}" xmlns:t="{NS}"><s:Body>{body}'
                             f"</s:Body></s:Envelope>", status=status, content_type="text/xml")


def http_service(seen: list[Any]) -> web.Application:
    async def graphql(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body)
        cards = body["variables"]["cards"]
        if "broken" in cards:
            return web.json_response({"data": None, "errors": [{"message": "boom"}]})
        return web.json_response({"data": {"members": [MEMBERS.get(c) for c in cards]}})

    async def soap(request: web.Request) -> web.Response:
        raw = await request.read()
        seen.append((request.headers.get("SOAPAction"), raw.decode()))
        root = ElementTree.fromstring(raw)
        refs = [e.text or "" for e in root.iter(f"{{{NS}}}Ref")]
        if "fault" in refs:
            return _soap("<s:Fault><faultcode>s:Server</faultcode><faultstring>down</faultstring></s:Fault>", 500)
        if "garbage" in refs:
            return web.Response(text="<not xml", content_type="text/xml")
        owners = "".join(
            f'<t:Owner id="{r}" xmlns:t="{NS}"><t:Thing code="{r}-1"><t:Name> one </t:Name><t:Note/>'
            f"<t:Tags><t:Tag>a</t:Tag></t:Tags></t:Thing>"
            + (f'<t:Thing code="{r}-2"><t:Name>two</t:Name><t:Note>n</t:Note><t:Tags/></t:Thing>' if r == "k2" else "")
            + "</t:Owner>" for r in refs if r.startswith("k"))
        return _soap(f"<t:Answer>{owners}</t:Answer>")

    app = web.Application()
    app.router.add_post("/graphql", graphql)
    app.router.add_post("/ws/things", soap)
    return app


@asynccontextmanager
async def http_source(kind: str, entities: dict[str, Any]) -> AsyncIterator[tuple[Connector, list[Any]]]:
    seen: list[Any] = []
    async with serving(http_service(seen)) as url:
        session = new_session()
        cfg = config.source_config("things", {"kind": kind, "url": url, "retries": 0, "entities": entities})
        try:
            yield (GraphQLConnector if kind == "graphql" else XmlConnector)(cfg, session), seen
        finally:
            await session.close()


MEMBER = {"document": "query M($cards: [ID!]!) { members(cardNumbers: $cards) { card tier perks { name } } }",
          "variables": {"cards": "$keys", "first": 10}, "records": "members", "key": "card", "record": "Identity",
          "mapping": {"fields": {"system": {"from": "tier", "normalize": "lower"},
                                 "id": {"expr": "card + '/' + perks.map(p, p.name).join(',')"}}}}


def test_a_graphql_document_carries_the_keys_and_null_members_are_skipped() -> None:
    async def scenario() -> None:
        async with http_source("graphql", {"members": MEMBER}) as (c, seen):
            found = await c.fetch("members", ["c1", "c2", "c9"])
            assert found == {"c1": Identity("gold", "c1/p1,p2"), "c2": Identity("silver", "c2/")}
            assert seen == [{"query": MEMBER["document"], "variables": {"cards": ["c1", "c2", "c9"], "first": 10}}]

    run(scenario)


def test_graphql_errors_in_the_answer_are_a_bad_response() -> None:
    async def scenario() -> None:
        async with http_source("graphql", {"members": MEMBER}) as (c, _):
            with pytest.raises(SourceError) as caught:
                await c.fetch("members", ["c1", "broken"])
            assert caught.value.code == SOURCE_BAD_RESPONSE and caught.value.source == "things"

    run(scenario)


THINGS = {"path": "/ws/things", "action": f"{NS}#GetThings", "namespaces": {"t": NS},
          "envelope": "<t:GetThings>{keys}<t:Ref>{key}</t:Ref>{/keys}</t:GetThings>",
          "elements": ".//t:Owner", "lists": ["Thing", "Tag"], "group": {"key": "id", "records": "Thing"},
          "many": True, "record": "Identity",
          "mapping": {"fields": {"system": {"parent": "id"},
                                 "id": {"expr": "code + ':' + Name + ':' + (Note == null ? '-' : Note) + ':' + "
                                                "string(size(Tags == null ? [] : Tags.Tag))"}}}}


def test_an_xml_envelope_repeats_each_key_and_elements_become_dicts() -> None:
    async def scenario() -> None:
        async with http_source("xml", {"things": THINGS}) as (c, seen):
            found = await c.fetch("things", ["k1", "k2", "x&y"])
            assert found == {"k1": [Identity("k1", "k1-1:one:-:1")],
                             "k2": [Identity("k2", "k2-1:one:-:1"), Identity("k2", "k2-2:two:n:0")]}
            action, sent = seen[0]
            assert action == f"{NS}#GetThings"
            assert "<t:GetThings><t:Ref>k1</t:Ref><t:Ref>k2</t:Ref><t:Ref>x&amp;y</t:Ref></t:GetThings>" in sent

    run(scenario)


@pytest.mark.parametrize("key", ["fault", "garbage"])
def test_a_soap_fault_or_broken_xml_is_a_bad_response(key: str) -> None:
    async def scenario() -> None:
        async with http_source("xml", {"things": THINGS}) as (c, _):
            with pytest.raises(SourceError) as caught:
                await c.fetch("things", [key])
            assert caught.value.code in (SOURCE_BAD_RESPONSE, "SOURCE_UNAVAILABLE")
            if key == "garbage":
                assert caught.value.code == SOURCE_BAD_RESPONSE

    run(scenario)


def test_element_dict() -> None:
    el = ElementTree.fromstring('<a x="1"><b>t</b><c/><d k="v">text</d><e>1</e><e>2</e><f><g> h </g></f></a>')
    assert element_dict(el) == {"x": "1", "b": "t", "c": None, "d": {"k": "v", "#text": "text"}, "e": ["1", "2"],
                                "f": {"g": "h"}}
    assert element_dict(ElementTree.fromstring("<a><e>1</e></a>"), lists=["e"]) == {"e": ["1"]}


@pytest.mark.parametrize(("entity", "message"), [
    ({"envelope": "<t:Get><t:Ref>{key}</t:Ref></t:Get>"}, "{keys}...{key}...{/keys}"),
    ({"elements": None}, "elements: required"),
    ({"group": None}, "key: required"),
])
def test_bad_xml_declarations_are_refused(entity: dict[str, Any], message: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.source_config("things", {"kind": "xml", "url": "http://x", "entities": {"t": {**THINGS, **entity}}},
                             "things.yaml")
    assert str(caught.value).startswith("things.yaml: entities.t") and message in str(caught.value), caught.value


# --- the mapping's built-in normalisations ------------------------------------------------------

def test_built_in_normalisations() -> None:
    m = compile_mapping({"fields": {
        "email": {"from": "e", "optional": True, "normalize": "email"},
        "phones": {"expr": "[a, b, c]", "type": "list", "of": "string", "normalize": "e164", "unique": True},
        "name": {"from": "n", "normalize": ["trim", "title"]},
        "visitor": {"from": "e", "normalize": ["email", "sha256"]},
        "card": {"from": "card", "normalize": "digits"},
    }}, options={"phone_country": "31"})
    out = m({"e": " Ann@Example.COM ", "a": "06-1234 5678", "b": "+31 6 12345678", "c": None, "n": " aNN ",
             "card": "6001 2345"})
    assert out == {"email": "ann@example.com", "phones": ["+31612345678"], "name": "Ann",
                   "visitor": hashlib.sha256(b"ann@example.com").hexdigest(), "card": "60012345"}
    assert m({"e": "", "a": "12", "b": "", "c": None, "n": "x", "card": "1"})["email"] is None  # nothing: null
    assert m({"e": "", "a": "12", "b": "", "c": None, "n": "x", "card": "1"})["phones"] == []  # no phone number


def test_e164_needs_the_sources_country_and_normalize_is_for_strings() -> None:
    with pytest.raises(MappingError, match=r"fields\.p\.normalize: e164 needs the source's options.phone_country"):
        compile_mapping({"fields": {"p": {"normalize": "e164"}}})
    with pytest.raises(ValueError, match="normalize is for a string"):
        compile_mapping({"fields": {"p": {"type": "int", "normalize": "trim"}}})
    with pytest.raises(ValueError, match="Input should be 'trim'"):
        compile_mapping({"fields": {"p": {"normalize": "soundex"}}})


def test_a_day_first_date_format_is_parsed_without_strptime() -> None:
    m = compile_mapping({"fields": {"d": {"type": "date", "format": "%d/%m/%Y"},
                                    "e": {"type": "date", "format": "%Y.%m.%d"}}})
    from datetime import date
    assert m({"d": "31/12/2026", "e": "2026.01.02"}) == {"d": date(2026, 12, 31), "e": date(2026, 1, 2)}
    with pytest.raises(ValueError, match="fields.d|d:"):
        m({"d": "2026-12-31", "e": "2026.01.02"})


# --- the escape hatch ---------------------------------------------------------------------------

def _shop_like(tmp: Path, python: str) -> dict[str, Any]:
    return {"kind": "sql", "dsn": f"sqlite+aiosqlite:///{tmp / 'x.sqlite'}",
            "entities": {"orders": {"sql": "SELECT * FROM t WHERE k IN :keys", "group": {"python": python},
                                    "many": True, "record": "Identity", "mapping": IDENTITY}}}


@pytest.mark.parametrize(("python", "message"), [
    ("connectors.sql:SqlConnector", "is inside the framework's packages"),
    ("resolvers.customer.something", "is inside the framework's packages"),
    ("extensions.nonesuch:fn", "cannot import extensions.nonesuch (No module named 'extensions.nonesuch')"),
    ("extensions.shop:nonesuch", "module extensions.shop has no 'nonesuch'"),
    ("not a path", "is not an importable dotted path"),
])
def test_an_escape_hatch_is_outside_the_framework_and_importable(tmp_path: Path, python: str, message: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.source_config("shop", _shop_like(tmp_path, python), "sources/shop.yaml")
    text = str(caught.value)
    assert text.startswith("sources/shop.yaml: entities.orders.group.python: ") and message in text, text
    assert "\n" not in text


def test_an_escape_hatch_groups_rows_and_the_mapping_maps_them(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "x.sqlite")
    con.executescript("CREATE TABLE t (k TEXT, owner TEXT, id TEXT); "
                      "INSERT INTO t VALUES ('a', 'o1', 'i1'), ('a', 'o1', 'i2'), ('b', 'o2', 'i3');")
    con.commit()
    con.close()
    (tmp_path / "hatch_for_test.py").write_text(
        "def by_k(rows, keys):\n"
        "    out = {}\n"
        "    for r in rows:\n"
        "        out.setdefault(r['k'], []).append({'owner': r['owner'], 'id': r['id'].upper()})\n"
        "    return out\n")
    sys.path.insert(0, str(tmp_path))
    try:
        cfg = config.source_config("shop", _shop_like(tmp_path, "hatch_for_test:by_k"))

        async def scenario() -> None:
            c = SqlConnector(cfg)
            try:
                assert await c.fetch("orders", ["a", "b", "c"]) == {
                    "a": [Identity("o1", "I1"), Identity("o1", "I2")], "b": [Identity("o2", "I3")]}
            finally:
                await c.close()
        run(scenario)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("hatch_for_test", None)


def test_check_names_the_file_and_key_of_a_broken_escape_hatch(tmp_path: Path) -> None:
    shutil.copy(ROOT / "gateway.yaml", tmp_path / "gateway.yaml")
    shutil.copytree(ROOT / "sources", tmp_path / "sources")
    shutil.copytree(ROOT / "operations", tmp_path / "operations")
    shop = tmp_path / "sources" / "shop.yaml"
    raw = yaml.safe_load(shop.read_text())
    raw["entities"]["orders"]["group"]["python"] = "extensions.shop:orders_from_nowhere"
    shop.write_text(yaml.safe_dump(raw, sort_keys=False))
    done = subprocess.run([sys.executable, "gateway.py", "check", "--config", str(tmp_path / "gateway.yaml")],
                          cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (f"config error: {shop}: entities.orders.group.python: module extensions.shop "
                                   f"has no 'orders_from_nowhere'")


# --- the demo: every system's reads declared ------------------------------------------------------

def test_every_demo_system_reads_through_declarations() -> None:
    cfg = config.load(ROOT / "gateway.yaml")
    assert len(cfg.sources) == 12 and all(s.entities for s in cfg.sources.values())
    # The writes are declared too (connectors/actions.py); the shop's one escape hatch lives in
    # extensions/, outside the framework.
    actions = {n: sorted(s.actions) for n, s in cfg.sources.items() if s.actions}
    assert actions == {"contact": ["create_interaction"], "crm": ["update_preferences"], "crosswalk": ["link"]}
    hatches = {n: e.group.python for n, s in cfg.sources.items() for e in s.entities.values()
               if e.group is not None and e.group.python}
    assert hatches == {"shop": "extensions.shop:orders_from_rows"}
    assert not list((ROOT / "connectors" / "mappings").glob("*.py"))  # no Python per system
