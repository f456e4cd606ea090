"""The reference: the record classes as they were written by hand before the types were declared.

The gateway's records are the declared types' (schema/graph.py, from the declaration files). These are
kept, with the hand-written mappings beside them, as what the declarations must reproduce:
tests/test_declared_types.py proves each declared record equal to its counterpart here (fields, types,
defaults, slots, enum members), and tests/test_mapping.py and tests/test_rest_declared.py that the
declared mappings give the same records as the hand-written ones.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, is_dataclass
from datetime import date, datetime


class Channel(enum.Enum):
    WEB = "web"
    STORE = "store"
    VOICE = "voice"
    CHAT = "chat"
    EMAIL = "email"
    FAX = "fax"
    SMS = "sms"
    MAIL = "mail"


class Segment(enum.Enum):
    CONSUMER = "consumer"
    SMALL_BUSINESS = "small_business"
    ENTERPRISE = "enterprise"
    VIP = "vip"


class AccountStatus(enum.Enum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class InvoiceStatus(enum.Enum):
    OPEN = "open"
    PAID = "paid"
    OVERDUE = "overdue"
    VOID = "void"


class OrderStatus(enum.Enum):
    PLACED = "placed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class ShipmentStatus(enum.Enum):
    LABEL_CREATED = "label_created"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    EXCEPTION = "exception"
    RETURNED = "returned"


class TicketStatus(enum.Enum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    ON_HOLD = "on_hold"
    SOLVED = "solved"
    CLOSED = "closed"


UNRESOLVED = frozenset({TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.PENDING, TicketStatus.ON_HOLD})


class TicketPriority(enum.Enum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Outcome(enum.Enum):
    RESOLVED = "resolved"
    CALLBACK = "callback"
    ESCALATED = "escalated"
    ABANDONED = "abandoned"
    SALE = "sale"


class OfferResponse(enum.Enum):
    ACCEPTED = "accepted"
    DECLINED = "declined"


class LoyaltyTier(enum.Enum):
    BRONZE = "bronze"
    SILVER = "silver"
    GOLD = "gold"
    PLATINUM = "platinum"


class ClaimStatus(enum.Enum):
    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"
    REPAIRED = "repaired"
    REPLACED = "replaced"


class Availability(enum.Enum):
    AVAILABLE = "available"
    BUSY = "busy"
    OFFLINE = "offline"


@dataclass(slots=True)
class Identity:
    system: str
    id: str


@dataclass(slots=True)
class Address:
    line1: str | None
    city: str | None
    postcode: str | None
    country: str | None


@dataclass(slots=True)
class Consent:
    email: bool
    sms: bool
    phone: bool


@dataclass(slots=True)
class CrmRecord:
    crm_id: str
    first_name: str
    last_name: str
    email: str | None
    phones: list[str]
    address: Address
    segment: Segment | None
    language: str | None
    preferred_channel: Channel | None
    consent: Consent
    created_on: date | None


@dataclass(slots=True)
class Invoice:
    number: str
    account_number: str
    issued_on: date
    due_on: date
    amount: float
    amount_paid: float
    status: InvoiceStatus


@dataclass(slots=True)
class Account:
    number: str
    holder: str | None
    status: AccountStatus
    currency: str
    balance: float
    overdue: bool
    days_past_due: int
    invoices: list[Invoice] = field(default_factory=list)


@dataclass(slots=True)
class OrderLine:
    line_no: int
    sku: str
    product_name: str | None
    quantity: int
    unit_price: float


@dataclass(slots=True)
class Order:
    number: str
    placed_at: datetime
    channel: Channel
    status: OrderStatus
    total: float
    currency: str
    lines: list[OrderLine] = field(default_factory=list)


@dataclass(slots=True)
class Shipment:
    id: str
    order_number: str
    carrier: str
    tracking_number: str
    status: ShipmentStatus
    shipped_at: datetime | None
    delivered_at: datetime | None


@dataclass(slots=True)
class Ticket:
    id: str
    subject: str
    status: TicketStatus
    priority: TicketPriority
    channel: Channel
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True)
class Interaction:
    id: str
    phone: str
    channel: Channel
    started_at: datetime
    duration_s: int
    agent_id: str | None
    outcome: Outcome
    summary: str


@dataclass(slots=True)
class Offer:
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


@dataclass(slots=True)
class MarketingContact:
    contact_id: str
    opted_out: bool
    opted_out_at: datetime | None
    offers: list[Offer]


@dataclass(slots=True)
class Reward:
    id: str
    title: str
    points_cost: int
    expires_on: date


@dataclass(slots=True)
class LoyaltyMember:
    card_number: str
    tier: LoyaltyTier
    points: int
    member_since: date
    rewards: list[Reward]


@dataclass(slots=True)
class Claim:
    number: str
    rma_number: str | None
    opened_on: date
    status: ClaimStatus
    reason: str


@dataclass(slots=True)
class Warranty:
    serial: str
    customer_ref: str
    product_code: str
    product_name: str
    purchased_on: date
    warranty_ends_on: date
    claims: list[Claim]


@dataclass(slots=True)
class Agent:
    id: str
    name: str
    skills: list[str]
    languages: list[str]
    product_expertise: list[str]
    availability: Availability


@dataclass(slots=True)
class WebSession:
    id: str
    started_at: datetime
    duration_s: int
    device: str
    pages: list[str]
    products_viewed: list[str]


# The declared type each record here is, where the names differ.
DECLARED_AS = {"BillingAccount": "Account", "MarketingStatus": "MarketingContact", "LoyaltyMembership": "LoyaltyMember"}


def record_class(name: str) -> type:
    """The reference record of a declared type (by its declared name), or ValueError."""
    found = globals().get(DECLARED_AS.get(name, name))
    if not (isinstance(found, type) and is_dataclass(found)):
        raise ValueError(f"no reference record for {name!r}")
    return found
