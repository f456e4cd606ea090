"""CRM (customer master, SQL): table `customers`, keyed by CRM number."""

from __future__ import annotations

from typing import Any

from connectors import normalize
from connectors.sql import SqlConnector
from schema import graph

Address, Consent, CrmRecord = graph.record("Address"), graph.record("Consent"), graph.record("CrmRecord")
Channel, Segment = graph.enum("Channel"), graph.enum("Segment")

SEGMENTS = {"CONS": Segment.CONSUMER, "SMB": Segment.SMALL_BUSINESS, "ENT": Segment.ENTERPRISE, "VIP": Segment.VIP}
CHANNELS = {"E": Channel.EMAIL, "S": Channel.SMS, "P": Channel.VOICE, "M": Channel.MAIL}


def record(row: dict[str, Any], country: str) -> CrmRecord:
    phones = [p for p in (normalize.phone(row[k], country) for k in ("phone_home", "phone_mobile") if row[k]) if p]
    return CrmRecord(
        crm_id=row["cust_no"], first_name=row["given_name"].strip().title(), last_name=row["family_name"].strip(),
        email=normalize.email(row["email_addr"]) if row["email_addr"] else None,
        phones=list(dict.fromkeys(phones)),
        address=Address(row["addr_line1"], row["addr_city"], row["addr_postcode"], row["addr_country"]),
        segment=SEGMENTS.get(row["segment_code"]), language=row["lang"],
        preferred_channel=CHANNELS.get(row["pref_contact"]),
        consent=Consent(bool(row["consent_email"]), bool(row["consent_sms"]), bool(row["consent_phone"])),
        created_on=row["created_on"],
    )


async def fetch_crm(c: SqlConnector, keys: list[str]) -> dict[str, CrmRecord]:
    country = str(c.config.options.get("phone_country", "31"))
    rows = await c.rows("SELECT * FROM customers WHERE cust_no IN :keys", keys)
    return {r["cust_no"]: record(r, country) for r in rows}


ENTITIES = {"crm": fetch_crm}
PREFERENCE_COLUMNS = {"preferred_channel": "pref_contact", "language": "lang", "consent_email": "consent_email",
                      "consent_sms": "consent_sms", "consent_phone": "consent_phone"}
CHANNEL_CODES = {v: k for k, v in CHANNELS.items()}


async def update_preferences(c: SqlConnector, payload: dict[str, Any]) -> int:
    """Set the given preferences on every CRM record of the person, in one transaction."""
    values: dict[str, Any] = {}
    for field, column in PREFERENCE_COLUMNS.items():
        if payload.get(field) is not None:
            value = payload[field]
            values[column] = CHANNEL_CODES[value] if field == "preferred_channel" else (
                int(value) if isinstance(value, bool) else value)
    if not values:
        return 0
    assignments = ", ".join(f"{col} = :{col}" for col in values)
    [count] = await c.execute([(f"UPDATE customers SET {assignments} WHERE cust_no IN :keys",
                                {**values, "keys": list(payload["crm_ids"])})])
    return count


ACTIONS = {"update_preferences": update_preferences}
