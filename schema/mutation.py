"""Writes, through to the system that owns the data."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from resolvers import mutations
from resolvers.audit import audited
from schema.customer import Customer
from schema.graph import enum
from schema.types import types

Channel, Interaction = enum("Channel"), types["Interaction"]


@strawberry.input(description="A contact to record in the contact center.")
class RecordInteractionInput:
    customer_id: strawberry.ID
    channel: Channel = strawberry.field(description="VOICE, CHAT, EMAIL, FAX or SMS.")
    summary: str = strawberry.field(description="1 to 2000 characters.")
    idempotency_key: str = strawberry.field(description="Unique per intended write (8-128 of [A-Za-z0-9._:-]); a "
                                                        "retry with the same key creates nothing twice.")
    agent_id: str | None = None


@strawberry.input
class ConsentInput:
    email: bool | None = None
    sms: bool | None = None
    phone: bool | None = None


@strawberry.input(description="Preferences to set in the CRM; fields left out are unchanged.")
class UpdatePreferencesInput:
    customer_id: strawberry.ID
    preferred_channel: Channel | None = strawberry.field(default=None, description="EMAIL, SMS, VOICE or MAIL.")
    language: str | None = strawberry.field(default=None, description="Two-letter ISO 639-1 code.")
    consent: ConsentInput | None = None


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Record a contact in the contact center; it shows on the timeline at once.")
    async def record_interaction(self, info: Info, input: RecordInteractionInput) -> Interaction | None:
        async with audited(info, "recordInteraction", str(input.customer_id), input.idempotency_key):
            return await mutations.record_interaction(  # type: ignore[return-value]
                info, str(input.customer_id), input.channel, input.summary, input.agent_id, input.idempotency_key)

    @strawberry.mutation(description="Change contact preferences in the CRM (every CRM record of the person).")
    async def update_preferences(self, info: Info, input: UpdatePreferencesInput) -> Customer | None:
        consent = input.consent or ConsentInput()
        change = mutations.PreferenceChange(input.preferred_channel, input.language, consent.email, consent.sms,
                                            consent.phone)
        async with audited(info, "updatePreferences", str(input.customer_id)):
            customer = await mutations.update_preferences(info, str(input.customer_id), change)
        return customer  # type: ignore[return-value]
