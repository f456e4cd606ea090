"""The GraphQL enums: our record vocabulary, exposed as is."""

from __future__ import annotations

import strawberry

from connectors import records

Channel = strawberry.enum(records.Channel, description="Where a contact, order or message happened. "
                                                       "VOICE is a telephone call (also an order placed by phone).")
Segment = strawberry.enum(records.Segment, description="The CRM's customer segment.")
AccountStatus = strawberry.enum(records.AccountStatus)
InvoiceStatus = strawberry.enum(records.InvoiceStatus)
OrderStatus = strawberry.enum(records.OrderStatus)
ShipmentStatus = strawberry.enum(records.ShipmentStatus)
TicketStatus = strawberry.enum(records.TicketStatus, description="Helpdesk ticket status; NEW, OPEN, PENDING "
                                                                 "and ON_HOLD are unresolved.")
TicketPriority = strawberry.enum(records.TicketPriority)
Outcome = strawberry.enum(records.Outcome, description="How a contact-center interaction ended.")
OfferResponse = strawberry.enum(records.OfferResponse)
LoyaltyTier = strawberry.enum(records.LoyaltyTier)
ClaimStatus = strawberry.enum(records.ClaimStatus)
Availability = strawberry.enum(records.Availability)
