"""Declared types (schema/declared.py): one declaration per type gives a record and a GraphQL type that
are equivalent to today's pair (connectors/records.py + schema/types.py, schema/enums.py): the same SDL
type for type, the same record fields; records built by declared mappings resolve through the built
schema, on the executor's one-step path, and in unions."""

from __future__ import annotations

import copy
import dataclasses
import enum
import pickle
import sys
import types
import typing
from datetime import UTC, date, datetime
from typing import Annotated, Any, Union

import pytest
import strawberry
from graphql import GraphQLObjectType, print_type
from pydantic import ValidationError
from strawberry.types import Info

from connectors.mapping import compile_mapping
from schema.declared import DeclarationError, Declarations, Graph, build_types
from server.app import build_schema
from server.execution import PlanExecutor
from server.plan import basic_attribute, leaf_reader
from tests.handwritten import records as r  # today's hand-written records: the reference
from tests.test_mapping import BILLING

# The record types and enums of connectors/records.py and schema/types.py, declared once each.
DECLARATIONS = """
enums:
  Channel:
    description: >-
      Where a contact, order or message happened. VOICE is a telephone call (also an order placed by phone).
    values: [WEB, STORE, VOICE, CHAT, EMAIL, FAX, SMS, MAIL]
  Segment:
    description: The CRM's customer segment.
    values: [CONSUMER, SMALL_BUSINESS, ENTERPRISE, VIP]
  AccountStatus: {values: [ACTIVE, SUSPENDED, CLOSED]}
  InvoiceStatus: {values: [OPEN, PAID, OVERDUE, VOID]}
  OrderStatus: {values: [PLACED, SHIPPED, DELIVERED, CANCELLED]}
  ShipmentStatus: {values: [LABEL_CREATED, IN_TRANSIT, OUT_FOR_DELIVERY, DELIVERED, EXCEPTION, RETURNED]}
  TicketStatus:
    description: Helpdesk ticket status; NEW, OPEN, PENDING and ON_HOLD are unresolved.
    values: [NEW, OPEN, PENDING, ON_HOLD, SOLVED, CLOSED]
  TicketPriority: {values: [LOW, NORMAL, HIGH, URGENT]}
  Outcome:
    description: How a contact-center interaction ended.
    values: [RESOLVED, CALLBACK, ESCALATED, ABANDONED, SALE]
  OfferResponse: {values: [ACCEPTED, DECLINED]}
  LoyaltyTier: {values: [BRONZE, SILVER, GOLD, PLATINUM]}
  ClaimStatus: {values: [OPEN, APPROVED, REJECTED, REPAIRED, REPLACED]}
  Availability: {values: [AVAILABLE, BUSY, OFFLINE]}

types:
  Identity:
    description: "One record of this person in one system: the 'other accounts'."
    fields:
      system: {type: String!, description: "The system, as the crosswalk names it (crm, shop, billing, ...)."}
      id: {type: String!, description: "The person's id in that system, exactly as that system holds it."}
  Address:
    fields: {line1: String, city: String, postcode: String, country: String}
  Consent:
    fields: {email: Boolean!, sms: Boolean!, phone: Boolean!}
  Preferences:
    description: Contact preferences from the CRM.
    fields: {preferred_channel: Channel, language: String, consent: Consent!}
  CrmRecord:
    private: true          # a record only: Customer's fields are composed from it
    fields:
      crm_id: String!
      first_name: String!
      last_name: String!
      email: String
      phones: "[String!]!"
      address: Address!
      segment: Segment
      language: String
      preferred_channel: Channel
      consent: Consent!
      created_on: Date
  Invoice:
    description: An invoice in billing.
    fields:
      number: String!
      account_number: String!
      issued_on: Date!
      due_on: Date!
      amount: Float!
      amount_paid: Float!
      status: InvoiceStatus!
  BillingAccount:
    description: A billing account.
    fields:
      number: String!
      holder: String
      status: AccountStatus!
      currency: String!
      balance: Float!
      overdue: Boolean!
      days_past_due: Int!
      invoices: {type: "[Invoice!]!", default: []}
  OrderLine:
    fields: {line_no: Int!, sku: String!, product_name: String, quantity: Int!, unit_price: Float!}
  Shipment:
    description: A parcel from the shipping system.
    fields:
      id: String!
      order_number: String!
      carrier: String!
      tracking_number: String!
      status: ShipmentStatus!
      shipped_at: DateTime
      delivered_at: DateTime
  Order:
    description: An order from the web shop (placed on the web, in a store or by phone).
    fields:
      number: String!
      placed_at: DateTime!
      channel: Channel!
      status: OrderStatus!
      total: Float!
      currency: String!
      lines: {type: "[OrderLine!]!", default: []}
  Ticket:
    description: A helpdesk ticket.
    fields:
      id: String!
      subject: String!
      status: TicketStatus!
      priority: TicketPriority!
      channel: Channel!
      created_at: DateTime!
      updated_at: DateTime!
  Agent:
    description: A contact-center agent from the staff directory.
    fields:
      id: String!
      name: String!
      skills: "[String!]!"
      languages: "[String!]!"
      product_expertise: "[String!]!"
      availability: Availability!
  Interaction:
    description: "A contact-center interaction: a call, chat, email, fax or SMS."
    fields:
      id: String!
      phone: {type: String!, description: The number the contact center knows it under (E.164).}
      channel: Channel!
      started_at: DateTime!
      duration_s: Int!
      agent_id: String
      outcome: Outcome!
      summary: String!
  Offer:
    description: An offer sent by marketing automation, with what the customer did with it.
    fields:
      id: String!
      campaign_id: String!
      campaign_name: String!
      offer_code: String!
      product_sku: String
      channel: Channel!
      sent_at: DateTime!
      opened_at: DateTime
      clicked_at: DateTime
      responded_at: DateTime
      response: OfferResponse
  MarketingStatus:
    description: The customer's standing in marketing automation.
    fields:
      contact_id: String!
      opted_out: Boolean!
      opted_out_at: DateTime
      offers: {type: "[Offer!]!", private: true}   # served by Customer.offers, not here
  Reward:
    fields: {id: String!, title: String!, points_cost: Int!, expires_on: Date!}
  LoyaltyMembership:
    description: Loyalty programme membership.
    fields:
      card_number: String!
      tier: LoyaltyTier!
      points: Int!
      member_since: Date!
      rewards: "[Reward!]!"
  Claim:
    description: A warranty claim, with its RMA when goods came back.
    fields:
      number: String!
      rma_number: String
      opened_on: Date!
      status: ClaimStatus!
      reason: String!
  Warranty:
    description: A product registered with warranty and returns.
    fields:
      serial: String!
      customer_ref: String!
      product_code: String!
      product_name: String!
      purchased_on: Date!
      warranty_ends_on: Date!
      claims: "[Claim!]!"
  WebSession:
    description: A visit to the web site, from web analytics.
    fields:
      id: String!
      started_at: DateTime!
      duration_s: Int!
      device: String!
      pages: "[String!]!"
      products_viewed: "[String!]!"
"""

# The differences from today's SDL: fields that schema code computes with a resolver (not part of the
# record), to be attached by declarations in a later increment. Nothing else differs.
RESOLVER_FIELDS = {
    ("Order", "shipments"): "live from the shipping system (schema/types.py Order.shipments)",
    ("Interaction", "agent"): "live from the staff directory (schema/types.py Interaction.agent)",
}
# Today's record class for each declared type, where its name differs (None: no record today).
TODAYS_RECORD = {"BillingAccount": "Account", "MarketingStatus": "MarketingContact",
                 "LoyaltyMembership": "LoyaltyMember", "Preferences": None}

GRAPH = build_types(DECLARATIONS, register=False)  # the process's graph keeps the registered names


@pytest.fixture(scope="module")
def today() -> Any:
    return build_schema()._schema


def built_schema(graph: Graph, *, executor: bool = False, **fields: Any) -> strawberry.Schema:
    """A schema with a Query field per `fields` (name -> (annotation, value)) and every built type."""
    ns: dict[str, Any] = {"__annotations__": {}}
    for name, (annotation, value) in fields.items():
        ns[name] = strawberry.field(resolver=_constant(value), graphql_type=annotation)
    if not fields:
        ns["ok"] = strawberry.field(resolver=lambda: True, graphql_type=bool)
    query = strawberry.type(type("Query", (), ns))
    extra = {"execution_context_class": PlanExecutor} if executor else {}
    # enums used by no built type (Segment: only the private CrmRecord) are added like types
    return strawberry.Schema(query=query, types=list(graph.types.values()), **extra)


def _constant(value: Any) -> Any:
    return lambda: value


def without(t: GraphQLObjectType, names: set[str]) -> GraphQLObjectType:
    return GraphQLObjectType(t.name, {k: v for k, v in t.fields.items() if k not in names},
                             description=t.description)


# --- the SDL, type for type ------------------------------------------------------------------------

def test_resolver_fields_are_exactly_todays_computed_fields(today: Any) -> None:
    """The list of differences is complete: every field with a resolver on a declared type, and no other."""
    computed = set()
    for name in GRAPH.types:
        for fname, f in today.type_map[name].fields.items():
            if basic_attribute(f) is None:
                computed.add((name, fname))
    assert computed == set(RESOLVER_FIELDS)


@pytest.mark.parametrize("name", sorted(GRAPH.types))
def test_type_sdl_equals_todays(today: Any, name: str) -> None:
    built = built_schema(GRAPH)._schema.type_map[name]
    skip = {f for t, f in RESOLVER_FIELDS if t == name}
    assert print_type(built) == print_type(without(today.type_map[name], skip))


@pytest.mark.parametrize("name", sorted(GRAPH.enums))
def test_enum_sdl_equals_todays(today: Any, name: str) -> None:
    schema = built_schema(GRAPH, segment=(GRAPH.annotation("Segment"), None))._schema
    assert print_type(schema.type_map[name]) == print_type(today.type_map[name])


def test_attached_fields_give_todays_sdl_exactly(today: Any) -> None:
    """With the two computed fields added through the extension point, Order and Interaction print as today."""
    def shipments(root: Any, info: Info) -> Any:
        return []

    def agent(root: Any, info: Info) -> Any:
        return None

    graph = build_types(DECLARATIONS, fields=lambda g: {
        "Order": {"shipments": strawberry.field(
            resolver=shipments, graphql_type=g.annotation("[Shipment!]"),
            description="Shipments of this order, live from the shipping system.")},
        "Interaction": {"agent": strawberry.field(
            resolver=agent, graphql_type=g.annotation("Agent"),
            description="The agent who handled it, live from the staff directory.")},
    })
    built = built_schema(graph)._schema
    for name in ("Order", "Interaction"):
        assert print_type(built.type_map[name]) == print_type(today.type_map[name])


# --- the records --------------------------------------------------------------------------------------

def _shape(hint: Any) -> Any:
    """A hint with classes replaced by names (today's record names mapped to the declared ones)."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        return frozenset(_shape(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        return ("list", _shape(typing.get_args(hint)[0]))
    renamed = {v: k for k, v in TODAYS_RECORD.items() if v}
    return renamed.get(hint.__name__, hint.__name__)


@pytest.mark.parametrize("name", sorted(n for n in GRAPH.records if TODAYS_RECORD.get(n, n)))
def test_record_fields_equal_todays(name: str) -> None:
    declared, old = GRAPH.records[name], getattr(r, TODAYS_RECORD.get(name) or name)
    assert [f.name for f in dataclasses.fields(declared)] == [f.name for f in dataclasses.fields(old)]
    new_hints, old_hints = typing.get_type_hints(declared), typing.get_type_hints(old)
    assert {k: _shape(v) for k, v in new_hints.items()} == {k: _shape(v) for k, v in old_hints.items()}
    defaults = [(f.name, f.default, f.default_factory) for f in dataclasses.fields(declared)]
    assert defaults == [(f.name, f.default, f.default_factory) for f in dataclasses.fields(old)]
    assert "__dict__" not in dir(declared) and declared.__slots__ == old.__slots__


@pytest.mark.parametrize("name", sorted(GRAPH.enums))
def test_enum_members_equal_todays(name: str) -> None:
    declared, old = GRAPH.enums[name], getattr(r, name)
    assert [(m.name, m.value) for m in declared] == [(m.name, m.value) for m in old]


def test_record_defaults_are_fresh_and_records_are_slotted() -> None:
    Account = GRAPH.records["BillingAccount"]
    status = GRAPH.enums["AccountStatus"]
    a, b = (Account("BA-1", None, status.ACTIVE, "EUR", 0.0, False, 0) for _ in range(2))
    a.invoices.append("x")
    assert b.invoices == [] and a.invoices is not b.invoices
    with pytest.raises(AttributeError):
        a.anything = 1  # type: ignore[attr-defined]
    assert repr(b) == "BillingAccount(number='BA-1', holder=None, status=<AccountStatus.ACTIVE: 'active'>, " \
                      "currency='EUR', balance=0.0, overdue=False, days_past_due=0, invoices=[])"
    assert "CrmRecord" in GRAPH.records and "CrmRecord" not in GRAPH.types  # private: a record only


@pytest.fixture(autouse=True)
def registry() -> Any:
    """The registered names as they were: the process's graph (schema/graph.py) keeps its own after each test
    here (building a graph registers its classes)."""
    from schema import registered
    saved = dict(vars(registered))
    yield
    for name in [n for n in vars(registered) if n not in saved]:
        delattr(registered, name)
    for name, value in saved.items():
        setattr(registered, name, value)


def test_records_and_enums_pickle_by_their_registered_name(registry: Any) -> None:
    graph = build_types(DECLARATIONS)
    account = compile_mapping(ACCOUNT_MAPPING, make=graph.records["BillingAccount"])(PAYLOAD)
    back = pickle.loads(pickle.dumps(account, protocol=pickle.HIGHEST_PROTOCOL))
    assert back == account and type(back) is graph.records["BillingAccount"]
    assert back.invoices[0].status is graph.enums["InvoiceStatus"].OVERDUE
    assert graph.records["BillingAccount"].__module__ == "schema.registered"
    assert copy.deepcopy(account) == account


# --- mapped records through the built schema ----------------------------------------------------------

ACCOUNT_MAPPING = BILLING  # the billing declaration tests/test_mapping.py proves equal to the hand-written one
PAYLOAD = {"accountNumber": "BA-100042", "holder": "DOE, Jane", "status": "ACTIVE", "currency": "EUR",
           "balance": "120.50", "overdue": True, "daysPastDue": 12,
           "invoices": [{"invoiceNumber": "INV-7", "issueDate": "2024-05-01", "dueDate": "2024-05-31",
                         "amount": "120.50", "amountPaid": "0.00", "state": "overdue"},
                        {"invoiceNumber": "INV-6", "issueDate": "2024-04-01", "dueDate": "2024-04-30",
                         "amount": "80.00", "amountPaid": "80.00", "state": "paid"}]}
ACCOUNT_QUERY = """{ account { number holder status currency balance overdue daysPastDue
                     invoices { number accountNumber issuedOn dueOn amount amountPaid status } } }"""
EXPECTED = {"account": {
    "number": "BA-100042", "holder": "DOE, Jane", "status": "ACTIVE", "currency": "EUR", "balance": 120.5,
    "overdue": True, "daysPastDue": 12,
    "invoices": [{"number": "INV-7", "accountNumber": "BA-100042", "issuedOn": "2024-05-01",
                  "dueOn": "2024-05-31", "amount": 120.5, "amountPaid": 0.0, "status": "OVERDUE"},
                 {"number": "INV-6", "accountNumber": "BA-100042", "issuedOn": "2024-04-01",
                  "dueOn": "2024-04-30", "amount": 80.0, "amountPaid": 80.0, "status": "PAID"}]}}


@pytest.mark.parametrize("executor", [False, True], ids=["graphql-core", "one-step executor"])
def test_mapped_records_resolve_through_the_built_schema(executor: bool) -> None:
    account = compile_mapping(ACCOUNT_MAPPING, make=GRAPH.records["BillingAccount"])(PAYLOAD)
    assert type(account.invoices[0]) is GRAPH.records["Invoice"]  # nested records from the annotations
    assert account.invoices[0].status is GRAPH.enums["InvoiceStatus"].OVERDUE  # enum table from the annotation
    schema = built_schema(GRAPH, executor=executor, account=(GRAPH.annotation("BillingAccount"), account))
    result = schema.execute_sync(ACCOUNT_QUERY)
    assert result.errors is None
    assert result.data == EXPECTED


def test_same_mapping_same_answer_as_todays_record() -> None:
    """The declaration maps the payload to the same values as today's record class does."""
    new = compile_mapping(ACCOUNT_MAPPING, make=GRAPH.records["BillingAccount"])(PAYLOAD)
    old = compile_mapping(ACCOUNT_MAPPING, make=r.Account)(PAYLOAD)

    def plain(x: Any) -> Any:
        if dataclasses.is_dataclass(x):
            return {f.name: plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
        if isinstance(x, list):
            return [plain(i) for i in x]
        return (type(x).__name__, x.name, x.value) if isinstance(x, enum.Enum) else x

    assert plain(new) == plain(old)


def test_plain_declared_fields_take_the_one_step_path() -> None:
    def agent(root: Any, info: Info) -> Any:
        return None

    graph = build_types(DECLARATIONS, fields=lambda g: {"Interaction": {"agent": strawberry.field(
        resolver=agent, graphql_type=g.annotation("Agent"))}})
    type_map = built_schema(graph, executor=True)._schema.type_map
    for type_name, field in [("Invoice", "number"), ("Invoice", "status"), ("Invoice", "issuedOn"),
                             ("BillingAccount", "holder"), ("WebSession", "pages"), ("Interaction", "agentId")]:
        assert leaf_reader(type_map[type_name].fields[field]) is not None, (type_name, field)
    assert leaf_reader(type_map["Interaction"].fields["agent"]) is None  # a resolver: the standard path
    assert leaf_reader(type_map["BillingAccount"].fields["invoices"]) is None  # objects: the standard path


@pytest.mark.parametrize("executor", [False, True], ids=["graphql-core", "one-step executor"])
def test_records_in_a_union_by_is_type_of(executor: bool) -> None:
    R, E = GRAPH.records, GRAPH.enums
    at = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    items = [R["Ticket"]("T-1", "Broken", E["TicketStatus"].OPEN, E["TicketPriority"].HIGH, E["Channel"].EMAIL,
                         at, at),
             R["Invoice"]("INV-1", "BA-1", date(2024, 5, 1), date(2024, 5, 31), 10.0, 0.0, E["InvoiceStatus"].OPEN),
             R["Shipment"]("S-1", "O-1", "DHL", "TR-1", E["ShipmentStatus"].IN_TRANSIT, at, None)]
    T = GRAPH.types
    ticket, invoice, shipment = T["Ticket"], T["Invoice"], T["Shipment"]
    Record = Annotated[ticket | invoice | shipment, strawberry.union("Record")]
    schema = built_schema(GRAPH, executor=executor, records=(list[Record], items))
    result = schema.execute_sync("""{ records { __typename ... on Ticket { subject status createdAt }
        ... on Invoice { number invoiceStatus: status } ... on Shipment { trackingNumber deliveredAt } } }""")
    assert result.errors is None
    assert result.data == {"records": [
        {"__typename": "Ticket", "subject": "Broken", "status": "OPEN", "createdAt": "2024-05-01T09:30:00+00:00"},
        {"__typename": "Invoice", "number": "INV-1", "invoiceStatus": "OPEN"},
        {"__typename": "Shipment", "trackingNumber": "TR-1", "deliveredAt": None}]}
    assert T["Ticket"].is_type_of(items[0], None) and not T["Ticket"].is_type_of(items[1], None)
    assert T["Ticket"].RECORD is R["Ticket"]


# --- declarations: notation, names, errors -----------------------------------------------------------

def test_forward_references_cycles_and_enum_value_descriptions() -> None:
    graph = build_types("""
        enums:
          Mood: {description: How it feels., values: {HAPPY: {description: Smiles.}, SAD: blue}}
        types:
          Node:
            fields:
              parent: Node
              children: "[Node!]!"
              tags: "[String]"
              mood: {type: Mood!, default: HAPPY}
              born_on: {type: Date, default: 2024-01-02}
              weight: {type: Float!, default: 1}
    """)
    Node, Mood = graph.records["Node"], graph.enums["Mood"]
    assert [(m.name, m.value) for m in Mood] == [("HAPPY", "happy"), ("SAD", "blue")]
    assert typing.get_type_hints(Node)["parent"] == Node | None
    assert typing.get_type_hints(Node)["tags"] == list[str | None] | None
    root = Node(None, [], None)
    child = Node(root, [], ["a", None], Mood.SAD)
    root.children.append(child)
    assert (root.mood, root.born_on, root.weight) == (Mood.HAPPY, date(2024, 1, 2), 1.0)
    schema = built_schema(graph, root=(graph.annotation("Node!"), root))
    sdl = str(schema)
    assert '"""How it feels."""\nenum Mood {\n  """Smiles."""\n  HAPPY\n  SAD\n}' in sdl
    assert "type Node {\n  parent: Node\n  children: [Node!]!\n  tags: [String]\n  mood: Mood!\n" \
           "  bornOn: Date\n  weight: Float!\n}" in sdl
    result = schema.execute_sync("{ root { mood children { mood tags parent { weight } } } }")
    assert result.data == {"root": {"mood": "HAPPY", "children": [
        {"mood": "SAD", "tags": ["a", None], "parent": {"weight": 1.0}}]}}


@pytest.mark.parametrize("decl, message", [
    ({"types": {"A": {"fields": {"x": "Strin"}}}}, "types.A.fields.x.type: unknown type 'Strin'"),
    ({"types": {"A": {"fields": {"x": "[String!"}}}}, "is not a GraphQL type reference"),
    ({"types": {"A": {"fields": {"fooBar": "String"}}}}, "names are snake_case"),
    ({"types": {"A": {"fields": {"x": {"type": "Int", "default": 1}, "y": "Int"}}}}, "fields with a default come last"),
    ({"types": {"A": {"fields": {"x": {"type": "Int!", "default": None}}}}}, "types.A.fields.x.default: null for"),
    ({"types": {"A": {"fields": {"x": {"type": "Int", "default": "1"}}}}}, "'1' is not a Int"),
    ({"enums": {"E": {"values": ["A"]}}, "types": {"A": {"fields": {"x": {"type": "E", "default": "B"}}}}},
     "'B' is not a value of E (A)"),
    ({"types": {"A": {"private": True, "fields": {"x": "Int"}}, "B": {"fields": {"a": "A"}}}},
     "types.B.fields.a.type: A is private"),
    ({"types": {"Int": {"fields": {"x": "Int"}}}}, "types.Int: Int is a built-in scalar"),
    ({"enums": {"E": {"values": {"A": "x", "B": "x"}}}}, "two values are 'x'"),
    ({"types": {"A": {"fields": {"x": "Int"}, "extra": 1}}}, "Extra inputs are not permitted"),
])
def test_bad_declarations_are_refused_with_their_key_path(decl: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        Declarations.load(decl)
    assert message in str(err.value)


def test_merge_names_the_files_of_a_duplicate() -> None:
    a = Declarations.load({"types": {"Invoice": {"fields": {"number": "String!"}}}})
    b = Declarations.load({"types": {"Invoice": {"fields": {"id": "String!"}}}})
    with pytest.raises(DeclarationError, match=r"^shop.yaml: types.Invoice: already declared in billing.yaml$"):
        Declarations.merge({"billing.yaml": a, "shop.yaml": b})


def test_add_field_checks() -> None:
    graph = Graph("types: {A: {fields: {x: Int}}}")
    with pytest.raises(DeclarationError, match="already has this field"):
        graph.add_field("A", "x", strawberry.field(resolver=lambda: 1, graphql_type=int))
    with pytest.raises(DeclarationError, match="no GraphQL type 'B'"):
        graph.add_field("B", "y", strawberry.field(resolver=lambda: 1, graphql_type=int))
    graph.finish()
    with pytest.raises(DeclarationError, match="before finish"):
        graph.add_field("A", "y", strawberry.field(resolver=lambda: 1, graphql_type=int))


# --- cost --------------------------------------------------------------------------------------------

def test_declared_records_are_built_like_todays() -> None:
    """A declared record is the same kind of object as today's: a slotted dataclass (no per-instance
    __dict__), built from positional arguments. Its cost is measured by bench, never timed in a test."""
    new, old = GRAPH.records["Invoice"], r.Invoice
    d = date(2024, 5, 1)
    a = new("INV-1", "BA-1", d, d, 1.0, 0.0, GRAPH.enums["InvoiceStatus"].OPEN)
    b = old("INV-1", "BA-1", d, d, 1.0, 0.0, r.InvoiceStatus.OPEN)
    assert not hasattr(a, "__dict__") and not hasattr(b, "__dict__")
    assert new.__slots__ == old.__slots__ and sys.getsizeof(a) == sys.getsizeof(b)
