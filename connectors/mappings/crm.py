"""CRM: the updatePreferences write (writes are not declared yet; the reads are declared in
sources/crm.yaml)."""

from __future__ import annotations

from typing import Any

from connectors.sql import SqlConnector
from schema import graph

Channel = graph.enum("Channel")

ENTITIES: dict[str, Any] = {}  # every read is declared

PREFERENCE_COLUMNS = {"preferred_channel": "pref_contact", "language": "lang", "consent_email": "consent_email",
                      "consent_sms": "consent_sms", "consent_phone": "consent_phone"}
CHANNEL_CODES = {Channel.EMAIL: "E", Channel.SMS: "S", Channel.VOICE: "P", Channel.MAIL: "M"}


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
