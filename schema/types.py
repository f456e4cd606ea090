"""Object types for what the source systems hold. Fields are read straight off the records."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

import strawberry
from strawberry.types import Info

from connectors import records as r
from resolvers.customer import related_now, then


class Backed:
    """A GraphQL type whose objects are records of `connectors.records`: lets unions tell them apart."""

    RECORD: ClassVar[type]

    @classmethod
    def is_type_of(cls, obj: Any, _info: Any) -> bool:
        return isinstance(obj, (cls.RECORD, cls))
from schema.enums import (
    AccountStatus,
    Availability,
    Channel,
    ClaimStatus,
    InvoiceStatus,
    LoyaltyTier,
    OfferResponse,
    OrderStatus,
    Outcome,
    ShipmentStatus,
    TicketPriority,
    TicketStatus,
)


@strawberry.type(description="One record of this person in one system: the 'other accounts'.")
class Identity:
    system: str = strawberry.field(description="The system, as the crosswalk names it (crm, shop, billing, ...).")
    id: str = strawberry.field(description="The person's id in that system, exactly as that system holds it.")


@strawberry.type
class Address:
    line1: str | None
    city: str | None
    postcode: str | None
    country: str | None


@strawberry.type
class Consent:
    email: bool
    sms: bool
    phone: bool


@strawberry.type(description="Contact preferences from the CRM.")
class Preferences:
    preferred_channel: Channel | None
    language: str | None
    consent: Consent


@strawberry.type(description="An invoice in billing.")
class Invoice(Backed):
    RECORD = r.Invoice

    number: str
    account_number: str
    issued_on: date
    due_on: date
    amount: float
    amount_paid: float
    status: InvoiceStatus


@strawberry.type(description="A billing account.")
class BillingAccount:
    number: str
    holder: str | None
    status: AccountStatus
    currency: str
    balance: float
    overdue: bool
    days_past_due: int
    invoices: list[Invoice]


@strawberry.type
class OrderLine:
    line_no: int
    sku: str
    product_name: str | None
    quantity: int
    unit_price: float


@strawberry.type(description="A parcel from the shipping system.")
class Shipment(Backed):
    RECORD = r.Shipment

    id: str
    order_number: str
    carrier: str
    tracking_number: str
    status: ShipmentStatus
    shipped_at: datetime | None
    delivered_at: datetime | None


@strawberry.type(description="An order from the web shop (placed on the web, in a store or by phone).")
class Order(Backed):
    RECORD = r.Order

    number: str
    placed_at: datetime
    channel: Channel
    status: OrderStatus
    total: float
    currency: str
    lines: list[OrderLine]

    @strawberry.field(description="Shipments of this order, live from the shipping system.")
    def shipments(self, info: Info) -> list[Shipment] | None:
        return related_now(info, "shipments", [self.number])  # type: ignore[return-value]


@strawberry.type(description="A helpdesk ticket.")
class Ticket(Backed):
    RECORD = r.Ticket

    id: str
    subject: str
    status: TicketStatus
    priority: TicketPriority
    channel: Channel
    created_at: datetime
    updated_at: datetime


@strawberry.type(description="A contact-center agent from the staff directory.")
class Agent:
    id: str
    name: str
    skills: list[str]
    languages: list[str]
    product_expertise: list[str]
    availability: Availability


@strawberry.type(description="A contact-center interaction: a call, chat, email, fax or SMS.")
class Interaction(Backed):
    RECORD = r.Interaction

    id: str
    phone: str = strawberry.field(description="The number the contact center knows it under (E.164).")
    channel: Channel
    started_at: datetime
    duration_s: int
    agent_id: str | None
    outcome: Outcome
    summary: str

    @strawberry.field(description="The agent who handled it, live from the staff directory.")
    def agent(self, info: Info) -> Agent | None:
        if self.agent_id is None:
            return None
        return then(related_now(info, "agents", [self.agent_id]),  # type: ignore[no-any-return]
                    lambda found: found[0] if found else None)


@strawberry.type(description="An offer sent by marketing automation, with what the customer did with it.")
class Offer(Backed):
    RECORD = r.Offer

    id: str
    campaign_id: str
    campaign_name: str
    offer_code: str
    product_sku: str | None
    channel: Channel
    sent_at: datetime
    opened_at: datetime | None
    clicked_at: datetime | None
    responded_at: datetime | None
    response: OfferResponse | None


@strawberry.type(description="The customer's standing in marketing automation.")
class MarketingStatus:
    contact_id: str
    opted_out: bool
    opted_out_at: datetime | None


@strawberry.type
class Reward:
    id: str
    title: str
    points_cost: int
    expires_on: date


@strawberry.type(description="Loyalty programme membership.")
class LoyaltyMembership:
    card_number: str
    tier: LoyaltyTier
    points: int
    member_since: date
    rewards: list[Reward]


@strawberry.type(description="A warranty claim, with its RMA when goods came back.")
class Claim(Backed):
    RECORD = r.Claim

    number: str
    rma_number: str | None
    opened_on: date
    status: ClaimStatus
    reason: str


@strawberry.type(description="A product registered with warranty and returns.")
class Warranty:
    serial: str
    customer_ref: str
    product_code: str
    product_name: str
    purchased_on: date
    warranty_ends_on: date
    claims: list[Claim]


@strawberry.type(description="A visit to the web site, from web analytics.")
class WebSession(Backed):
    RECORD = r.WebSession

    id: str
    started_at: datetime
    duration_s: int
    device: str
    pages: list[str]
    products_viewed: list[str]
