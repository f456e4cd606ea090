"""Writes through to the owning system: a contact-center interaction, CRM preferences.

Validation first (nothing is written for bad input); the contact center de-duplicates retries by
idempotency key; the CRM update is one transaction; the cache entries a write affects are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from strawberry.types import Info

from cache.tiers import cache_key
from connectors.base import Connector
from resolvers.context import Context
from resolvers.customer import GOLDEN_ID, CustomerData, load_customers, records
from resolvers.errors import BadUserInput
from schema.graph import enum, record

Channel, Interaction = enum("Channel"), record("Interaction")

CONTACT_CHANNELS = {Channel.VOICE, Channel.CHAT, Channel.EMAIL, Channel.FAX, Channel.SMS}
PREFERRED_CHANNELS = {Channel.EMAIL, Channel.SMS, Channel.VOICE, Channel.MAIL}
MAX_SUMMARY = 2000
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
LANGUAGE = re.compile(r"^[a-z]{2}$")


@dataclass
class PreferenceChange:
    preferred_channel: Channel | None = None
    language: str | None = None
    consent_email: bool | None = None
    consent_sms: bool | None = None
    consent_phone: bool | None = None


async def _customer(info: Info, customer_id: str) -> CustomerData:
    if not GOLDEN_ID.match(customer_id):
        raise BadUserInput(f"malformed customer id {customer_id!r}: expected the form C-000042")
    [found] = await load_customers(info, [customer_id])
    if isinstance(found, Exception):  # NotFound, or the crosswalk failing
        raise found
    return found


def _writer(ctx: Context, entity: str, action: str) -> Connector:
    for c in ctx.providers(entity):
        if action in c.actions:
            return c
    raise BadUserInput(f"no configured source accepts {action}")


async def _drop(ctx: Context, keys: list[str]) -> None:
    if ctx.sources.cache is not None and keys:
        await ctx.sources.cache.tiers.invalidate(keys=keys)


async def record_interaction(info: Info, customer_id: str, channel: Channel, summary: str, agent_id: str | None,
                             idempotency_key: str) -> Interaction:
    ctx: Context = info.context
    if channel not in CONTACT_CHANNELS:
        raise BadUserInput(f"channel must be one of {', '.join(sorted(c.name for c in CONTACT_CHANNELS))}")
    summary = summary.strip()
    if not summary or len(summary) > MAX_SUMMARY:
        raise BadUserInput(f"summary must be 1 to {MAX_SUMMARY} characters")
    if not IDEMPOTENCY_KEY.match(idempotency_key):
        raise BadUserInput("idempotencyKey must be 8 to 128 characters of letters, digits and . _ : -")
    customer = await _customer(info, customer_id)
    if agent_id is not None:
        agents = [a for c in ctx.providers("agents") for a in await ctx.load_many(c, "agents", [agent_id])]
        if not any(agents):
            raise BadUserInput(f"unknown agent {agent_id!r}")
    contact = _writer(ctx, "interactions", "create_interaction")
    phone = await _contact_phone(info, contact, customer)
    created = await contact.write("create_interaction", {"phone": phone, "channel": channel, "summary": summary,
                                                         "agent_id": agent_id, "idempotency_key": idempotency_key},
                                  ctx.deadline)
    await _drop(ctx, [cache_key(contact.name, e, phone) for e in contact.entities])
    return created


async def _contact_phone(info: Info, contact: Connector, customer: CustomerData) -> str:
    """The number the contact center knows the customer by; a first contact links the CRM's number."""
    ctx: Context = info.context
    known = customer.ids_in(contact.config.system)
    if known:
        return known[0]
    phones = [p for r in await records(info, "crm", customer) for p in r.phones]
    if not phones:
        raise BadUserInput(f"customer {customer.id} has no phone number to record the interaction under")
    identity = ctx.source(ctx.config.identity)
    # Linking first is harmless if the write then fails: the person does own that number.
    await identity.write("link", {"golden_id": customer.id, "system": contact.config.system, "id": phones[0]},
                         ctx.deadline)
    await _drop(ctx, [cache_key(identity.name, "identities", customer.id)])
    return phones[0]


async def update_preferences(info: Info, customer_id: str, change: PreferenceChange) -> CustomerData:
    ctx: Context = info.context
    if change.preferred_channel is not None and change.preferred_channel not in PREFERRED_CHANNELS:
        raise BadUserInput(f"preferredChannel must be one of {', '.join(sorted(c.name for c in PREFERRED_CHANNELS))}")
    if change.language is not None and not LANGUAGE.match(change.language):
        raise BadUserInput("language must be a two-letter ISO 639-1 code, e.g. 'fr'")
    if all(v is None for v in vars(change).values()):
        raise BadUserInput("give at least one preference to change")
    customer = await _customer(info, customer_id)
    crm = ctx.source(ctx.config.crm)
    crm_ids = customer.ids_in(crm.config.system)
    if not crm_ids:
        raise BadUserInput(f"customer {customer_id} has no CRM record to update")
    await crm.write("update_preferences", {**vars(change), "crm_ids": crm_ids}, ctx.deadline)
    await _drop(ctx, [cache_key(crm.name, "crm", k) for k in crm_ids])
    customer.memo.clear()  # its fields read back what the CRM now holds
    return customer



