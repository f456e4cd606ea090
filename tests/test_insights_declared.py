"""The insights' roles and blockers, declared (schema/roles.py): parsed and compiled in-process, bad ones
refused in one line naming the file and the key path; a declared blocker and the declared roles run by
the framework's rules (resolvers/insights.py) over hand-made records, at an injected time."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import strawberry
import yaml
from pydantic import ValidationError

import config
from resolvers.insights import blockers, suggestions, value_of
from resolvers.roles import Roles
from resolvers.rules import Insights, insights_model
from schema import graph as process_graph
from schema.declared import DeclarationError, Graph
from schema.roles import blocker_kinds, compile_insights, insights_of, load_insights, setting_fields
from tests.harness import ROOT

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)

# A system the demo does not have: support cases and sales, with the insights they feed.
CASES = """
kind: rest
url: http://cases.invalid
entities:
  cases: {request: {path: /cases}, record: Case}
  sales: {request: {path: /sales}, record: Sale}
  ledgers: {request: {path: /ledgers}, record: Ledger}
enums:
  Severity: {values: [LOW, MEDIUM, HIGH]}
  CaseState: {values: [OPEN, CLOSED]}
  Till: {values: [ONLINE, COUNTER]}
types:
  Case:
    conditions: {open: "state == 'OPEN'"}
    fields: {id: String!, title: String!, severity: Severity!, state: CaseState!, opened_at: DateTime!}
  Sale:
    fields: {number: String!, gross: Float!, currency: String!, sold_at: DateTime!, till: Till!, void: Boolean!,
             items: "[String!]!"}
  Ledger:
    fields: {ref: String!, currency: String!, receipts: "[Receipt!]!"}
  Receipt:
    fields: {paid: Float!}
insights:
  purchases: {entity: sales, counted: "!void", amount: gross, currency: currency, at: sold_at, channel: till,
              products: items}
  payments: {entity: ledgers, each: receipts, amount: paid, currency: parent.currency}
  settings:
    severity_at_least: {type: Severity!, default: MEDIUM}
    case_within_days: {type: Int!, default: 30, min: 0}
  blockers:
    OPEN_CASE:
      order: 2
      entity: cases
      when: [open, "rank(severity) >= rank(rules.severity_at_least)", "opened_at >= now - days(rules.case_within_days)"]
      reason: "Open {{severity.lowerAscii()}} case #{{id}}: {{title}} (since {{day(opened_at)}})"
      id: id
    BIG_SPENDER:
      order: 1
      description: A large sale was just made.
      entity: sales
      when: "gross > 1000.0 && !void"
      reason: "Sale {{number}}: {{money(gross, currency)}}"
      id: number
"""


def raw(text: str = CASES, **changes: Any) -> dict[str, Any]:
    """The declaration, with dotted keys under `insights` set (None drops one)."""
    out = yaml.safe_load(text)
    for key, value in changes.items():
        *parents, last = key.split(".")
        node = out["insights"]
        for p in parents:
            node = node[p]
        if value is None:
            node.pop(last)
        else:
            node[last] = value
    return out


class Built:
    """A declaration folder's graph, rules model and compiled roles, as the process builds its own."""

    def __init__(self, folder: Path) -> None:
        decls = yaml.safe_load((folder / "cases.yaml").read_text())
        self.graph = Graph({"enums": decls["enums"], "types": decls["types"]}, register=False)
        self.loaded = load_insights(folder)
        self.model = insights_model(setting_fields(self.loaded, self.graph))
        self.kinds = strawberry.enum(blocker_kinds(self.loaded, __name__))  # as schema/insights.py does
        self.roles: Roles = compile_insights(self.loaded, self.graph, self.model.model_fields["cross_sell"].annotation,
                                             self.kinds)

    def rules(self, **cross_sell: Any) -> Insights:
        return self.model.model_validate({"cross_sell": cross_sell})

    def record(self, name: str, **fields: Any) -> Any:
        rec = self.graph.records[name]
        enums = {f: self.graph.enums[h.__name__] for f, h in rec.__annotations__.items()
                 if isinstance(h, type) and h.__name__ in self.graph.enums}
        return rec(**{k: enums[k][v] if k in enums else v for k, v in fields.items()})


def build(tmp_path: Path, declaration: dict[str, Any] | None = None, **others: dict[str, Any]) -> Built:
    (tmp_path / "cases.yaml").write_text(yaml.safe_dump(declaration or raw(), sort_keys=False))
    for name, more in others.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(more, sort_keys=False))
    return Built(tmp_path)


def refused(tmp_path: Path, declaration: dict[str, Any] | None = None, **others: dict[str, Any]) -> str:
    with pytest.raises(DeclarationError) as err:
        build(tmp_path, declaration, **others)
    message = str(err.value)
    assert "\n" not in message
    return message


# --- a declared blocker, run ------------------------------------------------------------------------

def cases(b: Built) -> list[tuple[str, Any]]:
    return [("cases", b.record("Case", id=i, title=t, severity=s, state=st, opened_at=NOW - timedelta(days=d)))
            for i, t, s, st, d in (("1", "Broken hinge", "HIGH", "OPEN", 2), ("2", "Question", "LOW", "OPEN", 1),
                                   ("3", "Old one", "HIGH", "OPEN", 40), ("4", "Done", "HIGH", "CLOSED", 1),
                                   ("5", "Slow reply", "MEDIUM", "OPEN", 29))]


def test_a_declared_blocker_cites_its_source_record_with_its_reason(tmp_path: Path) -> None:
    b = build(tmp_path)
    found = blockers(b.roles, {"cases": cases(b)}, b.rules().cross_sell, NOW)
    assert [(x.kind.name, x.source, x.record_id, x.reason) for x in found] == [
        ("OPEN_CASE", "cases", "1", "Open high case #1: Broken hinge (since 2026-11-21)"),
        ("OPEN_CASE", "cases", "5", "Open medium case #5: Slow reply (since 2026-10-25)")]


def test_the_settings_from_gateway_yaml_change_what_blocks(tmp_path: Path) -> None:
    b = build(tmp_path)

    def ids(**settings: Any) -> list[str]:
        return [x.record_id for x in blockers(b.roles, {"cases": cases(b)}, b.rules(**settings).cross_sell, NOW)]

    assert ids(severity_at_least="high") == ["1"]
    assert ids(severity_at_least="LOW") == ["1", "2", "5"]  # a member's name in any case
    assert ids(case_within_days=60) == ["1", "3", "5"]
    assert ids(case_within_days=0) == []


def test_kinds_follow_their_declared_order_and_blockers_group_by_entity(tmp_path: Path) -> None:
    b = build(tmp_path)
    assert [(k.name, k.value) for k in b.kinds] == [("BIG_SPENDER", "big_spender"), ("OPEN_CASE", "open_case")]
    kind = strawberry.Schema(query=strawberry.type(type("Query", (), {
        "__annotations__": {"kind": b.kinds}, "kind": b.kinds.OPEN_CASE})))._schema.type_map["BlockerKind"]
    assert [(n, v.description) for n, v in kind.values.items()] == [("BIG_SPENDER", "A large sale was just made."),
                                                                    ("OPEN_CASE", None)]
    sale = b.record("Sale", number="S-9", gross=1500.0, currency="EUR", sold_at=NOW, till="ONLINE", void=False,
                    items=[])
    found = blockers(b.roles, {"cases": cases(b), "sales": [("shop2", sale)]}, b.rules().cross_sell, NOW)
    assert [(x.kind.name, x.record_id) for x in found] == [("BIG_SPENDER", "S-9"), ("OPEN_CASE", "1"),
                                                             ("OPEN_CASE", "5")]
    assert found[0].source == "shop2" and found[0].reason == "Sale S-9: EUR 1,500.00"


def test_declared_purchases_and_payments_make_the_value(tmp_path: Path) -> None:
    b = build(tmp_path)

    def sale(n: str, gross: float, days: int, till: str, void: bool = False) -> Any:
        return b.record("Sale", number=n, gross=gross, currency="EUR", sold_at=NOW - timedelta(days=days), till=till,
                        void=void, items=[f"P-{n}"])

    sales = [sale("1", 100.0, 10, "ONLINE"), sale("2", 50.0, 400, "COUNTER"), sale("3", 999.0, 5, "ONLINE", True)]
    ledger = b.record("Ledger", ref="L-1", currency="USD", receipts=[b.record("Receipt", paid=10.0)])
    rules = b.model.model_validate({"value": {"rates": {"EUR": 1.0, "USD": 0.5}}})
    v = value_of(b.roles, {"sales": sales, "ledgers": [ledger]}, rules, NOW)
    assert (v.order_total, v.payments_total, v.lifetime_value, v.order_count, v.orders_last_12_months) == \
           (150.0, 5.0, 155.0, 2, 1)
    assert [(c.channel.name, c.orders) for c in v.orders_by_channel] == [("COUNTER", 1), ("ONLINE", 1)]
    assert (v.first_purchase_at, v.last_purchase_at) == (NOW - timedelta(days=400), NOW - timedelta(days=10))
    rules = b.model.model_validate({"catalog": {"P-1": {"name": "One", "category": "c"}},
                                    "complements": {"c": ["P-1", "P-7"]}})
    assert [s.sku for s in suggestions(b.roles, {"sales": sales}, rules, NOW)] == ["P-7"]  # bought: not again


# --- the demo's own declarations ----------------------------------------------------------------------

def test_the_demo_declares_todays_kinds_settings_and_roles() -> None:
    from schema.insights import ROLES, BlockerKind
    assert [k.name for k in BlockerKind] == ["OPEN_TICKET", "RECENT_OFFER", "OVERDUE_BALANCE", "MARKETING_OPT_OUT"]
    cross_sell = process_graph.RULES().cross_sell
    assert cross_sell.model_dump() == {"suggestions": 3, "block_on_overdue": True,
                                       "ticket_priority_at_least": process_graph.enum("TicketPriority").NORMAL,
                                       "offer_within_days": 14, "block_on_opt_out": True}
    assert ROLES.team is not None and ROLES.language is not None
    assert [len(getattr(ROLES, n)) for n in ("purchases", "payments", "owned", "viewed", "offered", "issues",
                                             "contacts")] == [1] * 7


def test_the_demos_declared_ticket_blocker_reads_as_today() -> None:
    from schema.insights import ROLES
    Ticket, P, S, C = (process_graph.record("Ticket"), process_graph.enum("TicketPriority"),
                       process_graph.enum("TicketStatus"), process_graph.enum("Channel"))
    tickets = [("helpdesk", Ticket("7", "Screen flickers", S.ON_HOLD, P.HIGH, C.WEB, NOW, NOW)),
               ("helpdesk", Ticket("8", "Low one", S.OPEN, P.LOW, C.WEB, NOW, NOW)),
               ("helpdesk", Ticket("9", "Solved", S.SOLVED, P.URGENT, C.WEB, NOW, NOW))]
    rules = process_graph.RULES().cross_sell
    found = blockers(ROLES, {"tickets": tickets}, rules, NOW)
    assert [(x.kind.name, x.reason, x.source, x.record_id) for x in found] == [
        ("OPEN_TICKET", "Unresolved high-priority ticket #7: Screen flickers (on_hold)", "helpdesk", "7")]


# --- refused, in one line naming the file and the key ---------------------------------------------------

PARSE_BAD = [
    ({"purchases.amount": None}, "cases.yaml: insights.purchases.amount: Field required"),
    ({"purchases.colour": "red"}, "cases.yaml: insights.purchases.colour: Extra inputs are not permitted"),
    ({"blockers.OPEN_CASE.when": []}, "cases.yaml: insights.blockers.OPEN_CASE.when: List should have at least 1"),
    ({"blockers.open_case": {"entity": "cases", "when": "true", "reason": "x", "id": "id"}},
     "cases.yaml: insights.blockers: 'open_case': a kind is an enum value name in capitals"),
    ({"settings.suggestions": {"type": "Int!", "default": 1}},
     "cases.yaml: insights.settings: suggestions: the framework's own setting of insights.cross_sell"),
    ({"team": {"entity": "cases", "each": "x", "key": "k", "id": "id", "skills": "[]", "languages": "[]"}},
     "cases.yaml: insights.team.each: team members are whole records: no each"),
]


@pytest.mark.parametrize(("change", "expected"), PARSE_BAD, ids=[p[1].split(": ")[1] for p in PARSE_BAD])
def test_a_bad_section_names_file_and_key(change: dict[str, Any], expected: str) -> None:
    with pytest.raises(DeclarationError) as err:
        insights_of(raw(**change), "cases.yaml")
    assert str(err.value).startswith(expected), err.value


COMPILE_BAD = [
    ({"blockers.OPEN_CASE.when": ["open", "sevrity != 'LOW'"]},
     ("cases.yaml: insights.blockers.OPEN_CASE.when.1: no field 'sevrity' here (fields: id, title, severity, "
      "state, opened_at)")),
    ({"blockers.BIG_SPENDER.when": "gross > rules.threshold"},
     ("cases.yaml: insights.blockers.BIG_SPENDER.when: no field 'threshold' in CrossSellRules (fields: "
      "suggestions, severity_at_least, case_within_days)")),
    ({"blockers.OPEN_CASE.when": "state == 'SHUT'"},
     "cases.yaml: insights.blockers.OPEN_CASE.when: 'SHUT' is not a CaseState (one of OPEN, CLOSED)"),
    ({"blockers.OPEN_CASE.reason": "Case {{titel}}"}, "cases.yaml: insights.blockers.OPEN_CASE.reason: no field 'titel'"),
    ({"payments.currency": "currency"}, "cases.yaml: insights.payments.currency: no field 'currency' here (fields: paid)"),
    ({"payments.each": "ref"}, "cases.yaml: insights.payments.each: Ledger has no list field of records 'ref'"),
    ({"purchases.record": "Nope"}, "cases.yaml: insights.purchases.record: no declared type 'Nope'"),
    ({"settings.severity_at_least.default": "SOMETIMES"},
     ("cases.yaml: insights.settings.severity_at_least.default: Input should be 'low', 'medium' or 'high', "
      "got 'SOMETIMES'")),
    ({"settings.case_within_days.default": -1},
     "cases.yaml: insights.settings.case_within_days.default: Input should be greater than or equal to 0, got -1"),
    ({"settings.severity_at_least.type": "Case!"},
     "cases.yaml: insights.settings.severity_at_least.type: a scalar or a declared enum, not Case!"),
]


@pytest.mark.parametrize(("change", "expected"), COMPILE_BAD, ids=[c[1].split(": ")[1] for c in COMPILE_BAD])
def test_a_declaration_that_does_not_compile_names_file_and_key(tmp_path: Path, change: dict[str, Any],
                                                                 expected: str) -> None:
    assert refused(tmp_path, raw(**change)).startswith(expected)


def test_declared_twice_names_both_files(tmp_path: Path) -> None:
    other = {"insights": {"settings": {"case_within_days": {"type": "Int!", "default": 1}}}}
    assert refused(tmp_path, other=other) == "other.yaml: insights.settings.case_within_days: already declared in " \
                                             "cases.yaml"
    (tmp_path / "other.yaml").unlink()
    other = {"insights": {"blockers": {"OPEN_CASE": {"entity": "cases", "record": "Case", "when": "open",
                                                     "reason": "x", "id": "id"}}}}
    assert refused(tmp_path, other=other) == "other.yaml: insights.blockers.OPEN_CASE: already declared in cases.yaml"
    (tmp_path / "other.yaml").unlink()
    team = {"entity": "cases", "record": "Case", "key": "all", "id": "id", "skills": "[]", "languages": "[]"}
    assert refused(tmp_path, raw(team=team), other={"insights": {"team": team}}) == \
           "other.yaml: insights.team: already declared in cases.yaml"


def test_a_bad_setting_in_gateway_yaml_is_refused_at_its_key(tmp_path: Path) -> None:
    b = build(tmp_path)
    for settings, expected in (({"severity_at_least": "sometimes"},
                                ("insights.cross_sell.severity_at_least: Input should be 'low', 'medium' or "
                                 "'high', got 'sometimes'")),
                               ({"case_within_days": -2},
                                "insights.cross_sell.case_within_days: Input should be greater than or equal to 0"),
                               ({"offer_within_days": 2}, "insights.cross_sell.offer_within_days: unknown key")):
        with pytest.raises(ValidationError) as err:
            b.rules(**settings)
        assert config.describe(err.value, "gateway.yaml", ["insights"]).startswith(f"gateway.yaml: {expected}")


def test_the_configuration_refuses_insights_other_than_built(copy: Path) -> None:
    billing = copy / "sources" / "billing.yaml"
    declared = yaml.safe_load(billing.read_text())
    declared["insights"]["blockers"]["OVERDUE_BALANCE"]["order"] = 9
    billing.write_text(yaml.safe_dump(declared))
    with pytest.raises(config.ConfigError) as err:
        config.load(copy / "gateway.yaml")
    assert str(err.value).startswith(f"{billing}: insights: not as the gateway's insights were built"), err.value


def test_check_names_the_file_and_key_of_a_broken_blocker(copy: Path) -> None:
    billing = copy / "sources" / "billing.yaml"
    billing.write_text(billing.read_text().replace('when: "overdue && ', 'when: "overdew && '))
    done = subprocess.run([sys.executable, "gateway.py", "check", "--config", str(copy / "gateway.yaml")], cwd=ROOT,
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip() == ("config error: billing.yaml: insights.blockers.OVERDUE_BALANCE.when: no field "
                                   "'overdew' here (fields: number, holder, status, currency, balance, overdue, "
                                   "days_past_due, invoices)")
