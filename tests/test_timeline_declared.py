"""The timeline's declarations (schema/events.py): each source file's `timeline:` entries, compiled with
the graph. A bad one is one line naming the file and the key; a declared entry makes the expected events;
the demo's declarations write the sentences the timeline always wrote; and in-process, over the demo
estate, the declared timeline answers, with one error for a failing source whose records key another's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

import config
import connectors
from connectors.http import new_session
from resolvers.context import Context, Sources
from schema import graph
from schema.declared import DeclarationError
from schema.events import EventDecl, EventPlan, compile_timeline
from server.app import build_schema
from tests.harness import Estate, gateway_config
from tests.test_config import check
from tests.truth import Truth, timeline

Order, OrderLine, Warranty, Claim = (graph.record(n) for n in ("Order", "OrderLine", "Warranty", "Claim"))
Interaction, WebSession, MarketingStatus, Offer, Shipment = (graph.record(n) for n in (
    "Interaction", "WebSession", "MarketingStatus", "Offer", "Shipment"))
Channel, OrderStatus, ClaimStatus, Outcome, OfferResponse, ShipmentStatus = (graph.enum(n) for n in (
    "Channel", "OrderStatus", "ClaimStatus", "Outcome", "OfferResponse", "ShipmentStatus"))

AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
ENTITIES = {"orders": "Order", "warranties": "Warranty"}
ORDER = {"entity": "orders", "kind": "ORDER_PLACED", "at": "placed_at", "id": "number", "summary": "Order {{number}}"}


def plan(**decl: Any) -> EventPlan:
    built = compile_timeline([("mine.yaml", 0, EventDecl(**decl))], ENTITIES, graph.GRAPH)
    [only] = built.streams[decl["entity"]]
    return only


def refused(**decl: Any) -> str:
    with pytest.raises(DeclarationError) as err:
        plan(**decl)
    return str(err.value)


def order(**change: Any) -> Any:
    fields = {"number": "WO-7", "placed_at": AT, "channel": Channel.VOICE, "status": OrderStatus.SHIPPED,
              "total": 1234.5, "currency": "EUR",
              "lines": [OrderLine(1, "SKU-1", "Kettle", 2, 10.0), OrderLine(2, "SKU-2", None, 1, 5.0)]}
    return Order(**{**fields, **change})


# --- a declared entry makes its events -------------------------------------------------------------

def test_a_declared_entry_makes_its_event() -> None:
    p = plan(**{**ORDER, "channel": "channel",
                "summary": "Order {{number}} ({{channel.lowerAscii()}}): {{sum(lines.map(l, l.quantity))}} items, "
                           "{{money(total, currency)}}"})
    o = order()
    assert list(p.occurrences(o)) == [(AT, Channel.VOICE, "Order WO-7 (voice): 3 items, EUR 1,234.50", o, "WO-7")]
    assert p.kind.name == "ORDER_PLACED" and p.kind.value == "order_placed"  # the value cursors carry


def test_each_item_with_its_parent_a_condition_and_a_date_at_midnight_utc() -> None:
    claims = [Claim("CL-1", None, datetime(2026, 2, 3).date(), ClaimStatus.OPEN, "Cracked"),
              Claim("CL-2", "RMA9", datetime(2026, 2, 4).date(), ClaimStatus.REJECTED, "Scratched")]
    w = Warranty("S-1", "R-1", "P-1", "Kettle", AT.date(), AT.date(), claims)
    p = plan(entity="warranties", each="claims", when="status != 'REJECTED'", kind="CLAIM_OPENED", at="opened_on",
             id="number", summary="{{number}} on {{parent.product_name}}")
    assert list(p.occurrences(w)) == [(datetime(2026, 2, 3, tzinfo=UTC), None, "CL-1 on Kettle",
                                       claims[0], "CL-1")]


def test_a_channel_by_name_and_no_event_without_a_time() -> None:
    p = plan(**ORDER, channel="WEB")
    assert [e[1] for e in p.occurrences(order())] == [Channel.WEB]
    assert plan(**ORDER, channel="'STORE'").channel(order()) is Channel.STORE  # type: ignore[misc]
    parcel = Shipment("P-1", "WO-7", "DHL", "TR1", ShipmentStatus.IN_TRANSIT, AT, None)
    delivered = graph.TIMELINE.streams["shipments"][1]
    assert delivered.kind.name == "DELIVERED" and list(delivered.occurrences(parcel)) == []


def test_the_demo_declarations_write_the_timelines_sentences() -> None:
    streams = graph.TIMELINE.streams
    [placed] = streams["orders"]
    assert next(placed.occurrences(order()))[2] == "Order WO-7 placed (voice): 3 items, EUR 1,234.50, shipped"
    one = order(lines=[OrderLine(1, "S", None, 1, 1.0)])
    assert next(placed.occurrences(one))[2] == "Order WO-7 placed (voice): 1 item, EUR 1,234.50, shipped"
    [contact] = streams["interactions"]
    # minutes rounded half to even, as Python's round() always wrote them: 90 s is 2, 150 s is 2, 210 s is 4
    said = {s: next(contact.occurrences(Interaction("I-1", "+31", Channel.SMS, AT, s, None, Outcome.SALE, "Hi")))[2]
            for s in (59, 60, 89, 90, 150, 210, 3630)}
    assert said == {59: "Sms: Hi (sale)", 60: "Sms, 1 min: Hi (sale)", 89: "Sms, 1 min: Hi (sale)",
                    90: "Sms, 2 min: Hi (sale)", 150: "Sms, 2 min: Hi (sale)", 210: "Sms, 4 min: Hi (sale)",
                    3630: "Sms, 60 min: Hi (sale)"}
    [visit] = streams["web_sessions"]
    assert next(visit.occurrences(WebSession("V-1", AT, 30, "mobile", ["/"], [])))[1:3] == (
        Channel.WEB, "Web visit on mobile, 1 page")
    assert next(visit.occurrences(WebSession("V-1", AT, 30, "mobile", ["/", "/p"], ["A", "B"])))[2] == (
        "Web visit on mobile, 2 pages, viewed A, B")
    sent, response = streams["marketing"]
    offer = Offer("O-1", "C-1", "Spring", "SPR", None, Channel.EMAIL, AT, None, None, AT, None)
    status = MarketingStatus("M-1", False, None, [offer])
    assert [e[2] for p in (sent, response) for e in p.occurrences(status)] == [
        "Offer SPR sent by email: Spring", "Offer SPR responded: Spring"]


def test_the_kinds_and_record_types_in_the_order_declared(tmp_path: Path) -> None:
    entry = {"entity": "orders", "at": "placed_at", "id": "number", "summary": "x"}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"timeline": [{**entry, "kind": "B_FIRST"}]}))
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({
        "entities": {"orders": {"record": "Order"}, "warranties": {"record": "Warranty"}},
        "timeline": [{**entry, "kind": "A_ONE"},
                     {"entity": "warranties", "each": "claims", "kind": "A_TWO", "at": "opened_on", "id": "number",
                      "summary": "y"},
                     {**entry, "kind": "A_ONE"}]}))
    built = graph.load_timeline(tmp_path, graph.GRAPH)
    assert [(k.name, k.value) for k in built.kinds] == [("A_ONE", "a_one"), ("A_TWO", "a_two"), ("B_FIRST", "b_first")]
    assert built.records == ("Order", "Claim") and [len(p) for p in built.streams.values()] == [3, 1]
    assert built.no_channel == ("A_ONE", "A_TWO", "B_FIRST")
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"timeline": [{**entry, "kind": "B", "summary": "{{numbr}}"}]}))
    with pytest.raises(DeclarationError, match=r"^b.yaml: timeline.0.summary: no field 'numbr' here \(fields: "):
        graph.load_timeline(tmp_path, graph.GRAPH)


def test_the_demo_timeline_keeps_its_kinds_and_cursor_values() -> None:
    kinds = {k.name: k.value for k in graph.TIMELINE.kinds}
    assert kinds == {"WEB_SESSION": "web_session", "INVOICE_ISSUED": "invoice_issued", "CONTACT": "contact",
                     "TICKET_OPENED": "ticket_opened", "OFFER_SENT": "offer_sent", "OFFER_RESPONSE": "offer_response",
                     "SHIPPED": "shipped", "DELIVERED": "delivered", "ORDER_PLACED": "order_placed",
                     "CLAIM_OPENED": "claim_opened"}


# --- bad declarations: one line, the file and the key ----------------------------------------------

@pytest.mark.parametrize(("change", "message"), [
    ({"summary": "Order {{numbr}}"}, ("summary: no field 'numbr' here (fields: number, placed_at, channel, status, "
                                      "total, currency, lines)")),
    ({"summary": "Order {{number}"}, "summary: an unclosed {{ in the template"),
    ({"entity": "parcels"}, "entity: no entities: section declares 'parcels' with a record (or give record:)"),
    ({"record": "Parcel"}, "record: no declared type 'Parcel'"),
    ({"at": "status"}, ("at: no DateTime or Date field 'status' in Order (fields: number, placed_at, channel, status, "
                        "total, currency, lines)")),
    ({"channel": "PIGEON"}, "channel: 'PIGEON' is not a Channel (one of WEB, STORE, VOICE, CHAT, EMAIL, FAX, "),
    ({"channel": "status"}, "channel: 'status' is not a Channel field"),
    ({"when": "status == 'SHIPPD'"}, "when: 'SHIPPD' is not a OrderStatus"),
    ({"each": "currency"}, "each: Order has no list field 'currency' of records"),
    ({"id": "numbr"}, "id: no field 'numbr' here"),
])
def test_a_bad_declaration_names_the_file_and_key(change: dict[str, Any], message: str) -> None:
    assert refused(**{**ORDER, **change}).startswith(f"mine.yaml: timeline.0.{message}")


@pytest.mark.parametrize(("entry", "message"), [
    ({**ORDER, "kind": "order placed"}, "timeline.0.kind: String should match pattern '^[A-Z][A-Z0-9_]*$'"),
    ({**ORDER, "colour": "red"}, "timeline.0.colour: Extra inputs are not permitted"),
    ({k: v for k, v in ORDER.items() if k != "summary"}, "timeline.0.summary: Field required"),
])
def test_a_malformed_entry_names_the_file_and_key(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(DeclarationError) as err:
        graph.timeline_of({"timeline": [entry]}, "shop.yaml")
    assert str(err.value) == f"shop.yaml: {message}"


def test_the_configuration_checks_each_files_timeline(copy: Path) -> None:
    shop = copy / "sources" / "shop.yaml"
    raw = yaml.safe_load(shop.read_text())
    raw["timeline"][0]["kind"] = "placed"
    shop.write_text(yaml.safe_dump(raw))
    with pytest.raises(config.ConfigError, match=r"shop.yaml: timeline.0.kind: String should match pattern"):
        config.load(copy / "gateway.yaml")
    raw["timeline"][0]["kind"] = "ORDER_TAKEN"
    shop.write_text(yaml.safe_dump(raw))
    with pytest.raises(config.ConfigError, match=r"shop.yaml: timeline: not as the gateway's timeline was built"):
        config.load(copy / "gateway.yaml")


def test_check_names_the_file_and_key_of_a_broken_timeline(copy: Path) -> None:
    shop = copy / "sources" / "shop.yaml"
    shop.write_text(shop.read_text().replace("Order {{number}} placed", "Order {{numbr}} placed"))
    done = check("--config", str(copy / "gateway.yaml"))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.startswith("config error: shop.yaml: timeline.0.summary: no field 'numbr' here"), done.stderr


# --- in-process, over the demo estate ---------------------------------------------------------------

QUERY = """query($id: ID!) { customer(id: $id) { timeline(first: 100) {
  edges { node { at channel source kind summary record { __typename ... on Order { number } } } } } } }"""


async def _ask(estate: Estate, gid: str, change: dict[str, Any] | None = None) -> tuple[Any, list[dict[str, Any]]]:
    """The answer to QUERY, executed in this process, and the errors of fields that still answered."""
    cfg = config.parse(gateway_config(estate, change))
    cfg.cache.enabled = False
    session = new_session()
    sources = Sources.build(cfg, connectors.build(cfg.sources, session))
    try:
        ctx = Context(sources)
        result = await build_schema().execute(QUERY, variable_values={"id": gid}, context_value=ctx)
        return result, ctx.soft_errors
    finally:
        await sources.close()
        await session.close()


def test_in_process_the_declared_timeline_and_one_error_for_a_failing_source(estate: Estate, truth: Any) -> None:
    t = Truth(truth)
    gid = next(g for g in sorted(t.ids) if any(t.est.shipping.get(o["order_number"]) for o in t.orders(g)))
    result, soft = asyncio.run(_ask(estate, gid))
    assert result.errors is None and soft == []
    edges = [e["node"] for e in result.data["customer"]["timeline"]["edges"]]
    assert [(datetime.fromisoformat(n["at"]).timestamp(), n["source"], n["kind"].lower()) for n in edges] == [
        e[:3] for e in timeline(t, gid)][:100]
    o = t.orders(gid)[0]
    items = sum(line["quantity"] for line in t.lines[o["order_number"]])
    [placed] = [n for n in edges if n["kind"] == "ORDER_PLACED" and n["record"].get("number") == o["order_number"]]
    channel = {"phone": "voice"}.get(o["channel"], o["channel"])
    assert placed == {"at": placed["at"], "channel": channel.upper(), "source": "shop", "kind": "ORDER_PLACED",
                      "record": {"__typename": "Order", "number": o["order_number"]},
                      "summary": f"Order {o['order_number']} placed ({channel}): {items} item{'s' * (items != 1)}, "
                                 f"EUR {o['total']:,.2f}, {o['status']}"}

    # the shop's database is gone; the parcels are keyed by its orders: they fail with them, one error
    gone = {"shop": {"dsn": f"sqlite+aiosqlite:///{estate.data / 'nowhere' / 'shop.sqlite'}"}}
    result, soft = asyncio.run(_ask(estate, gid, gone))
    sources = {n["source"] for n in (e["node"] for e in result.data["customer"]["timeline"]["edges"])}
    assert sources and not sources & {"shop", "shipping"}
    assert [(e["path"], e["extensions"]["source"]) for e in soft] == [(["customer", "timeline"], "shop")]
    assert soft[0]["message"].endswith("(its events are missing from this timeline)")
