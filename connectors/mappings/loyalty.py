"""Loyalty (a remote GraphQL API): members keyed by card number."""

from __future__ import annotations

from datetime import date
from typing import Any

from connectors.graphql import GraphQLConnector
from schema.graph import enum, record

LoyaltyMember, Reward, LoyaltyTier = record("LoyaltyMembership"), record("Reward"), enum("LoyaltyTier")

QUERY = """query Members($cards: [ID!]!) {
  members(cardNumbers: $cards) { cardNumber tier points memberSince rewards { rewardId title pointsCost expires } }
}"""


def member(raw: dict[str, Any]) -> LoyaltyMember:
    return LoyaltyMember(card_number=raw["cardNumber"], tier=LoyaltyTier(raw["tier"].lower()), points=int(raw["points"]),
                         member_since=date.fromisoformat(raw["memberSince"]),
                         rewards=[Reward(r["rewardId"], r["title"], int(r["pointsCost"]), date.fromisoformat(r["expires"]))
                                  for r in raw["rewards"]])


async def fetch_members(c: GraphQLConnector, keys: list[str]) -> dict[str, LoyaltyMember]:
    data = await c.query(QUERY, {"cards": keys})
    return {m["cardNumber"]: member(m) for m in data["members"] if m is not None}


ENTITIES = {"loyalty": fetch_members}
