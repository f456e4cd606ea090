"""Where declared types attach (schema/attached.py): `graph:` entries become fields on Customer and on
other types, with standard arguments; entities keyed by another entity's field; conditions of a type;
the checks that name the file and key of a bad declaration."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

import config
from resolvers.errors import BadUserInput
from schema import graph
from schema.attached import AttachDecl, compile_plan
from schema.declared import DeclarationError
from tests.harness import ROOT

Invoice, Account, Ticket, Loyalty = (graph.record(n) for n in ("Invoice", "BillingAccount", "Ticket",
                                                                "LoyaltyMembership"))
InvoiceStatus, TicketStatus, TicketPriority, Channel = (graph.enum(n) for n in (
    "InvoiceStatus", "TicketStatus", "TicketPriority", "Channel"))


def plan(**decl: Any) -> Any:
    return compile_plan("Customer.x", AttachDecl.model_validate(decl), graph.GRAPH)


def invoice(number: str, issued: date, status: Any = None) -> Any:
    return Invoice(number=number, account_number="A", issued_on=issued, due_on=issued, amount=10.0,
                   amount_paid=0.0, status=status or InvoiceStatus.OPEN)


def account(*invoices: Any) -> Any:
    return Account(number="A", holder=None, status=graph.enum("AccountStatus").ACTIVE, currency="EUR", balance=0.0,
                   overdue=False, days_past_due=0, invoices=list(invoices))


def ticket(ident: str, status: Any, day: int) -> Any:
    at = datetime(2026, 1, day, tzinfo=timezone.utc)
    return Ticket(id=ident, subject="s", status=status, priority=TicketPriority.NORMAL, channel=Channel.WEB,
                  created_at=at, updated_at=at)


def test_items_of_each_record_filtered_ordered_and_cut() -> None:
    p = plan(entity="accounts", record="BillingAccount", each="invoices", type="[Invoice!]",
             order={"by": ["issued_on", "number"], "descending": True},
             args={"status": {"equals": "status"}, "first": {"first": 2}})
    records = [account(invoice("I1", date(2026, 1, 1)), invoice("I3", date(2026, 3, 1), InvoiceStatus.PAID)),
               account(invoice("I2", date(2026, 2, 1)))]
    values = {"status": None, "first": 2}
    assert [i.number for i in p.shape(records, values, p.filters(values))] == ["I3", "I2"]
    values = {"status": InvoiceStatus.OPEN, "first": 2}
    assert [i.number for i in p.shape(records, values, p.filters(values))] == ["I2", "I1"]
    with pytest.raises(BadUserInput, match="first must be between 0 and 100"):
        p.filters({"first": 101})


def test_a_named_condition_is_a_boolean_argument() -> None:
    p = plan(entity="tickets", type="[Ticket!]", args={"unresolved": {"when": "unresolved"}})
    records = [ticket("1", TicketStatus.OPEN, 1), ticket("2", TicketStatus.SOLVED, 2), ticket("3", TicketStatus.ON_HOLD, 3)]
    assert [t.id for t in p.shape(records, {"unresolved": True}, p.filters({"unresolved": True}))] == ["1", "3"]
    assert [t.id for t in p.shape(records, {"unresolved": False}, p.filters({"unresolved": False}))] == ["2"]
    assert len(p.shape(records, {}, p.filters({}))) == 3


def test_within_days_refuses_a_negative_count() -> None:
    p = plan(entity="tickets", type="[Ticket!]", args={"within_days": {"within_days": "created_at"}})
    with pytest.raises(BadUserInput, match="withinDays must not be negative"):
        p.filters({"within_days": -1})


def test_pick_the_largest_and_select_unique_values() -> None:
    members = [Loyalty(card_number=c, tier="GOLD", points=p, member_since=date(2020, 1, 1), rewards=[])
               for c, p in (("1", 10), ("2", 30), ("3", 20))]
    best = plan(entity="loyalty", type="LoyaltyMembership", pick={"max": "points"})
    assert best.shape(members, {}, []).card_number == "2"
    assert best.shape([], {}, []) is None
    tiers = plan(entity="loyalty", record="LoyaltyMembership", select="tier.lowerAscii()", unique=True,
                 type="[String!]")
    assert tiers.shape(members, {}, []) == ["gold"]


@pytest.mark.parametrize(("decl", "message"), [
    ({"entity": "tickets", "type": "[Ticket!]", "pick": "first"}, "a list type takes no pick"),
    ({"entity": "tickets", "type": "Ticket"}, "a single value needs pick"),
    ({"entity": "tickets", "type": "[Ticket!]", "args": {"first": {"first": 5, "equals": "id"}}},
     "exactly one of"),
    ({"entity": "tickets", "type": "[Ticket!]", "args": {"First": {"first": 5}}}, "snake_case"),
    ({"entity": "crm", "type": "String", "select": "first_name", "pick": "first"}, "record: required"),
])
def test_a_bad_entry_is_refused(decl: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AttachDecl.model_validate(decl)


@pytest.mark.parametrize(("decl", "message"), [
    ({"entity": "tickets", "type": "[Ticket!]", "order": {"by": ["created"]}}, "no field 'created' in Ticket"),
    ({"entity": "tickets", "type": "[Ticket!]", "args": {"state": {"equals": "state"}}},
     "args.state.equals: no field 'state' in Ticket"),
    ({"entity": "tickets", "type": "[Ticket!]", "args": {"open": {"when": "stauts == 'OPEN'"}}}, "no field 'stauts'"),
    ({"entity": "tickets", "type": "[Ticket!]", "args": {"open": {"when": "status == 'OPNE'"}}},
     "'OPNE' is not a TicketStatus"),
    ({"entity": "accounts", "record": "BillingAccount", "each": "holder", "type": "[String!]"},
     "each: BillingAccount has no list field 'holder'"),
])
def test_a_bad_entry_is_refused_when_compiled(decl: dict[str, Any], message: str) -> None:
    with pytest.raises(DeclarationError, match=message) as err:
        plan(**decl)
    assert str(err.value).startswith("graph.Customer.x: ")


def test_the_process_graph_attaches_fields_to_customer_and_other_types() -> None:
    assert graph.ATTACHED["Customer.tickets"][0] == "helpdesk.yaml"
    assert graph.ATTACHED["Order.shipments"][0] == "shipping.yaml"
    from server.app import build_schema
    sdl = build_schema().as_str()
    assert "tickets(status: TicketStatus = null, unresolved: Boolean = null, first: Int = 20): [Ticket!]" in sdl
    assert "shipments: [Shipment!]" in sdl and "agent: Agent" in sdl


def rewrite(path: Path, fn: Any) -> None:
    raw = yaml.safe_load(path.read_text())
    fn(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def test_keys_from_an_entity_nobody_provides_name_the_file_and_key(copy: Path) -> None:
    folder = copy
    rewrite(folder / "sources" / "shipping.yaml",
            lambda raw: raw["entities"]["shipments"].update(keys={"from": "parcels.number"}))
    with pytest.raises(config.ConfigError) as err:
        config.load(folder / "gateway.yaml")
    assert "shipping.yaml: entities.shipments.keys.from: no source provides an entity 'parcels' (entities: " \
        in str(err.value)
    rewrite(folder / "sources" / "shipping.yaml",
            lambda raw: raw["entities"]["shipments"].update(keys={"from": "orders.numbr"}))
    with pytest.raises(config.ConfigError, match=r"keys.from: Order \(entity orders\) has no field 'numbr' \(fields: number,"):
        config.load(folder / "gateway.yaml")


def check(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "gateway.py", "check", "--config", str(folder / "gateway.yaml")],
                          cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)


def test_check_builds_the_graph_from_the_configs_folder_and_names_a_bad_entry(copy: Path) -> None:
    folder = copy
    rewrite(folder / "sources" / "helpdesk.yaml",
            lambda raw: raw["graph"]["Customer.tickets"]["order"].update(by=["opened_at"]))
    done = check(folder)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip() == ("config error: helpdesk.yaml: graph.Customer.tickets: no field 'opened_at' in "
                                   "Ticket (fields: id, subject, status, priority, channel, created_at, updated_at)")
    rewrite(folder / "sources" / "helpdesk.yaml", lambda raw: raw["graph"]["Customer.tickets"].update(
        entity="tikets", order={"by": ["created_at"]}))
    done = check(folder)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().endswith("helpdesk.yaml: graph.Customer.tickets.entity: no source provides entity "
                                        "'tikets'")


def test_a_field_the_folder_adds_is_in_its_schema(copy: Path) -> None:
    folder = copy
    rewrite(folder / "sources" / "helpdesk.yaml", lambda raw: raw["graph"].update({"Customer.open_tickets": {
        "entity": "tickets", "type": "[Ticket!]", "args": {"first": {"first": 5}}}}))
    sdl = subprocess.run([sys.executable, "gateway.py", "schema", "--config", str(folder / "gateway.yaml")],
                         cwd=ROOT, capture_output=True, text=True, check=True, timeout=120).stdout
    assert "openTickets(first: Int = 5): [Ticket!]" in sdl
    assert "openTickets" not in subprocess.run([sys.executable, "gateway.py", "schema"], cwd=ROOT,
                                               capture_output=True, text=True, check=True, timeout=120).stdout


def test_strawberry_still_keeps_graphql_cores_info_where_the_prefetch_reads_it() -> None:
    """resolvers.customer.graphql_info leans on strawberry's `Info._raw_info` (not public API): the
    root fields read the selected Customer fields off it. Fails loudly when strawberry changes that."""
    import inspect

    from strawberry.types.info import Info
    assert "_raw_info" in inspect.signature(Info.__init__).parameters


def test_the_root_sees_which_entities_the_selection_needs() -> None:
    from types import SimpleNamespace

    from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse

    from resolvers.customer import selected_entities
    doc = parse('query { a: customers(ids: ["x"]) { name emails ...F ... on Customer { tickets { id } } } }'
                ' fragment F on Customer { offers { id } marketing { optedOut } }')
    op = next(d for d in doc.definitions if isinstance(d, OperationDefinitionNode))
    fragments = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}
    info = SimpleNamespace(_raw_info=SimpleNamespace(field_nodes=[op.selection_set.selections[0]], fragments=fragments))
    assert selected_entities(info) == {"crm": 2, "marketing": 2, "tickets": 1}  # type: ignore[arg-type]
