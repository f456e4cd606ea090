"""Declared mappings (connectors/mapping.py) reproduce the hand-written ones exactly, fail like them,
and refuse bad declarations at compile time naming the key. No servers: the estate's data is built
in-process and sent through JSON, as its servers send it."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.mapping import MappingError, compile_mapping
from estate.generate import generate
from tests.handwritten import analytics, billing, contact, helpdesk, marketing, shipping, staff
from tests.handwritten.records import Account, Agent, Interaction, MarketingContact, Shipment, Ticket, WebSession

BILLING = """
fields:
  number: accountNumber
  holder: {from: holder, optional: true}
  status: {from: status, type: enum, case_insensitive: true}
  currency: currency
  balance: {from: balance, type: float}
  overdue: {from: overdue, type: bool}
  days_past_due: {from: daysPastDue, type: int, default: 0}
  invoices:
    type: list
    default: []
    of:
      fields:
        number: invoiceNumber
        account_number: {parent: accountNumber}
        issued_on: {from: issueDate, type: date}
        due_on: {from: dueDate, type: date}
        amount: {from: amount, type: float}
        amount_paid: {from: amountPaid, type: float}
        status: {from: state, type: enum}
"""

CONTACT = """
fields:
  id: interactionId
  phone: {parent: phoneNumber}
  channel: {from: mediaType, type: enum}
  started_at: {from: startEpoch, type: datetime, format: epoch}
  duration_s: {expr: "endEpoch > startEpoch ? endEpoch - startEpoch : 0", type: int}
  agent_id: {from: agentId, optional: true}
  outcome: {from: disposition, type: enum}
  summary: summary
"""

MARKETING = """
fields:
  contact_id: contactId
  opted_out: {from: unsubscribed, type: bool}
  opted_out_at: {from: unsubscribedAt, type: datetime, optional: true}
  offers:
    from: sends
    type: list
    default: []
    of:
      fields:
        id: sendId
        campaign_id: campaignId
        campaign_name: campaignName
        offer_code: offerCode
        product_sku: {from: productSku, optional: true}
        channel: {type: enum}
        sent_at: {from: sentAt, type: datetime}
        opened_at: {from: openedAt, type: datetime, optional: true}
        clicked_at: {from: clickedAt, type: datetime, optional: true}
        responded_at: {from: respondedAt, type: datetime, optional: true}
        response: {type: enum, optional: true}
"""

SHIPPING = """
fields:
  id: shipmentId
  order_number: orderNumber
  carrier: carrier
  tracking_number: trackingNumber
  status:
    from: statusCode
    type: enum
    by_value: false
    values: {LABEL_CREATED: LBL, IN_TRANSIT: INT, OUT_FOR_DELIVERY: OFD, DELIVERED: DLV, EXCEPTION: EXC, RETURNED: RTN}
  shipped_at: {from: shippedAt, type: datetime, optional: true}
  delivered_at: {from: deliveredAt, type: datetime, optional: true}
"""

STAFF = """
fields:
  id: agentId
  name: displayName
  skills: {type: list, of: string}
  languages: {type: list, of: string}
  product_expertise: {from: productExpertise, type: list, of: string}
  availability: {from: status, type: enum}
"""

ANALYTICS = """
fields:
  id: sessionId
  started_at: {from: startedAt, type: datetime}
  duration_s: {from: durationSec, type: int}
  device: device
  pages: {type: list, of: string}
  products_viewed: {from: productsViewed, type: list, of: string}
"""

HELPDESK = """
fields:
  id: {from: id, type: string}
  subject: subject
  status: {type: enum, values: {ON_HOLD: hold}}
  priority: {type: enum}
  channel: {from: via, type: enum, by_value: false, values: {WEB: web, EMAIL: email, VOICE: voice, CHAT: chat}}
  created_at: {from: created_at, type: datetime}
  updated_at: {type: datetime}
"""


@pytest.fixture(scope="module")
def wire() -> dict[str, Any]:
    """The estate's data as its servers put it on the wire."""
    est = generate(customers=200)
    return json.loads(json.dumps({n: getattr(est, n) for n in (
        "billing", "contact", "marketing", "shipping", "staff", "analytics", "helpdesk")}, default=str))


def _flat(groups: dict[str, list[Any]]) -> list[Any]:
    return [x for g in groups.values() for x in g]


CASES = {
    "billing": (BILLING, Account, lambda w: [(a, None) for a in w["billing"].values()],
                lambda r, p: billing.account(r)),
    "contact": (CONTACT, Interaction, lambda w: [(i, {"phoneNumber": ph}) for ph, ixs in w["contact"].items()
                                                 for i in ixs],
                lambda r, p: contact.interaction(r, p["phoneNumber"])),
    "marketing": (MARKETING, MarketingContact, lambda w: [(c, None) for c in w["marketing"].values()],
                  lambda r, p: marketing.contact(r)),
    "shipping": (SHIPPING, Shipment, lambda w: [(s, None) for s in _flat(w["shipping"])],
                 lambda r, p: shipping.shipment(r)),
    "staff": (STAFF, Agent, lambda w: [(a, None) for a in w["staff"].values()], lambda r, p: staff.agent(r)),
    "analytics": (ANALYTICS, WebSession, lambda w: [(s, None) for s in _flat(w["analytics"])],
                  lambda r, p: analytics.session(r)),
    "helpdesk": (HELPDESK, Ticket, lambda w: [(t, None) for t in _flat(w["helpdesk"])],
                 lambda r, p: helpdesk.ticket(r)),
}


@pytest.mark.parametrize("system", list(CASES))
def test_declaration_reproduces_the_hand_written_mapping(system: str, wire: dict[str, Any]) -> None:
    spec, make, items, hand = CASES[system]
    mapped = compile_mapping(spec, make, name=system)
    pairs = items(wire)
    assert len(pairs) > 20
    for raw, parent in pairs:
        assert mapped(raw, parent) == hand(raw, parent)


def test_the_variety_is_covered(wire: dict[str, Any]) -> None:
    """The payloads exercise what the declarations claim: nulls, nested lists, the value maps."""
    offers = [o for c in wire["marketing"].values() for o in c["sends"]]
    assert any(o["openedAt"] is None for o in offers) and any(o["openedAt"] for o in offers)
    assert any(o["response"] for o in offers)
    assert any(not a.get("daysPastDue") for a in wire["billing"].values())
    assert {t["status"] for t in _flat(wire["helpdesk"])} >= {"hold", "open"}
    assert any(s["deliveredAt"] is None for s in _flat(wire["shipping"]))


def test_plain_dicts_with_member_names() -> None:
    spec = """
fields:
  number: accountNumber
  status: {from: status, type: enum, case_insensitive: true, values: {ACTIVE: active, CLOSED: closed}}
  due: {from: due, type: date, format: "%d/%m/%Y", optional: true}
  lines: {from: lines, type: list, default: [], of: {fields: {sku: sku, qty: {type: int}}}}
  customer: {from: customer, type: object, fields: {name: {expr: "first + ' ' + last"}}}
"""
    mapped = compile_mapping(spec)
    raw = {"accountNumber": "A1", "status": "Active", "due": "31/12/2026", "lines": [{"sku": "X", "qty": "2"}],
           "customer": {"first": "Ada", "last": "Smith"}}
    assert mapped(raw) == {"number": "A1", "status": "ACTIVE", "due": date(2026, 12, 31),
                           "lines": [{"sku": "X", "qty": 2}], "customer": {"name": "Ada Smith"}}
    assert mapped({**raw, "due": None, "lines": None})["lines"] == []


def test_datetime_formats_and_naive_utc() -> None:
    spec = """
fields:
  a: {type: datetime, format: epoch_ms}
  b: {type: datetime, format: "%Y%m%d %H%M", naive: utc}
  c: {type: datetime, naive: utc}
  d: {type: datetime, default: "2026-01-01T00:00:00Z"}
"""
    out = compile_mapping(spec)({"a": 1_700_000_000_500, "b": "20260102 0304", "c": datetime(2026, 1, 1)})
    assert out["a"] == datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)
    assert out["b"] == datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    assert out["c"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert out["d"] == datetime(2026, 1, 1, tzinfo=UTC)


# --- run-time errors: the KeyError/ValueError/TypeError family the connector reports as SOURCE_BAD_RESPONSE

def _account(**changes: Any) -> dict[str, Any]:
    raw = {"accountNumber": "BA-1", "holder": None, "status": "ACTIVE", "currency": "EUR", "balance": "1.50",
           "overdue": False, "daysPastDue": None,
           "invoices": [{"invoiceNumber": "I-1", "issueDate": "2026-01-02", "dueDate": "2026-01-16",
                         "amount": "1.50", "amountPaid": "0", "state": "open"}]}
    raw.update(changes)
    return raw


def test_a_good_record_then_errors_naming_the_field() -> None:
    mapped = compile_mapping(BILLING, Account, name="account")
    assert mapped(_account()) == billing.account(_account())
    bad = _account()
    del bad["currency"]
    with pytest.raises(KeyError, match="account.currency"):
        mapped(bad)
    with pytest.raises(KeyError, match="account.status"):
        mapped(_account(status="FROZEN"))
    with pytest.raises(ValueError, match="account.balance"):
        mapped(_account(balance="lots"))
    with pytest.raises(TypeError, match="account.currency"):
        mapped(_account(currency=None))  # a required field that is null is no value either
    invoice = dict(_account()["invoices"][0], issueDate="02/01/2026")
    with pytest.raises(ValueError, match="account.invoices"):
        mapped(_account(invoices=[invoice]))


def test_contact_errors() -> None:
    mapped = compile_mapping(CONTACT, Interaction)
    raw = {"interactionId": "IX-1", "mediaType": "voice", "startEpoch": 10, "endEpoch": 5, "agentId": None,
           "disposition": "sale", "summary": "s"}
    assert mapped(raw, {"phoneNumber": "+31"}).duration_s == 0
    with pytest.raises(KeyError, match="duration_s"):
        mapped({k: v for k, v in raw.items() if k != "endEpoch"}, {"phoneNumber": "+31"})
    with pytest.raises(TypeError):
        mapped(dict(raw, startEpoch="soon"), {"phoneNumber": "+31"})


# --- declaration errors, at compile time, naming the key path

@pytest.mark.parametrize(("spec", "where"), [
    ("fields: {a: {from: x, type: money}}", "fields.a.type"),
    ("fields: {a: {expr: 'x +'}}", "fields.a.expr"),
    ("fields: {a: {expr: 'frobnicate(x)'}}", "fields.a.expr"),
    ("fields: {a: {from: 'x + 1'}}", "fields.a.from"),
    ("fields: {a: {from: x, type: list}}", "fields.a"),
    ("fields: {a: {from: x, type: int, format: epoch}}", "fields.a"),
    ("fields: {a: {from: x, colour: red}}", "fields.a.colour"),
    ("fields: {a: {from: x, expr: y}}", "fields.a"),
])
def test_bad_declarations_are_refused_with_the_key(spec: str, where: str) -> None:
    with pytest.raises(ValidationError) as info:
        compile_mapping(spec)
    locs = [".".join(str(p) for p in e["loc"]) for e in info.value.errors()]
    assert any(loc.startswith(where.replace(".from", ".from")) or loc == where for loc in locs), locs


def test_declaration_errors_against_the_record_type() -> None:
    with pytest.raises(MappingError, match=r"fields.invoices.of.fields.status.values: 'LATE' is not a member"):
        compile_mapping(BILLING.replace("status: {from: state, type: enum}",
                                        "status: {from: state, type: enum, values: {LATE: late}}"), Account)
    with pytest.raises(MappingError, match="fields.colour: Account has no field 'colour'"):
        compile_mapping(BILLING + "  colour: colour\n", Account)
    with pytest.raises(MappingError, match="Account's field 'currency' is not mapped"):
        compile_mapping(BILLING.replace("  currency: currency\n", ""), Account)
    with pytest.raises(MappingError, match="fields.days_past_due.default"):
        compile_mapping(BILLING.replace("default: 0", "default: none"), Account)
    with pytest.raises(MappingError, match="fields.s: an enum needs values"):
        compile_mapping("fields: {s: {type: enum}}")


# --- CEL: the translation means what CEL means

@pytest.mark.parametrize(("expr", "expected"), [
    ("a.b + 1", 3),
    ("-7 / 2", -3),
    ("-7 % 2", -1),
    ("xs.map(x, x * 2)", [2, 4, 6]),
    ("xs.filter(x, x > 1).size()", 2),
    ("xs.exists(x, x == 3) && xs.all(x, x > 0)", True),
    ("xs.exists_one(x, x > 2)", True),
    ("has(a.b) && !has(a.c)", True),
    ("name.startsWith('Ad') ? name.upperAscii() : 'x'", "ADA"),
    ("string(flag) + '/' + string(a.b)", "true/2"),
    ("'b' in a", True),
    ("max(1, a.b) + math.least(5, 4)", 6),
    ("[name, 'Smith'].join(' ')", "Ada Smith"),
    ("{'k': a.b}", {"k": 2}),
    ("size(name) == 3 && double(a.b) == 2.0", True),
])
def test_cel_translation_agrees_with_cel_python(expr: str, expected: Any) -> None:
    import celpy
    raw = {"a": {"b": 2}, "xs": [1, 2, 3], "name": "Ada", "flag": True}
    assert compile_mapping({"fields": {"v": {"expr": expr, "type": "any"}}})(raw)["v"] == expected
    if "math." in expr or "join" in expr or "max(" in expr or "upperAscii" in expr:
        return  # extensions cel-python does not ship by default
    if "string(flag)" in expr:
        return  # cel-python says "True"; CEL's spec (and we) say "true"
    env = celpy.Environment()
    reference = env.program(env.compile(expr)).evaluate(celpy.json_to_cel(raw))
    assert json.loads(json.dumps(reference, cls=celpy.CELJSONEncoder)) == expected
