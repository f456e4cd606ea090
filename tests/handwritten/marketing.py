"""The hand-written mapping of Marketing automation (REST/JSON, offset pages, bearer token): contacts with offers sent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.handwritten.records import Channel, MarketingContact, Offer, OfferResponse


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def offer(raw: dict[str, Any]) -> Offer:
    return Offer(id=raw["sendId"], campaign_id=raw["campaignId"], campaign_name=raw["campaignName"],
                 offer_code=raw["offerCode"], product_sku=raw.get("productSku"), channel=Channel(raw["channel"]),
                 sent_at=datetime.fromisoformat(raw["sentAt"]), opened_at=_when(raw.get("openedAt")),
                 clicked_at=_when(raw.get("clickedAt")), responded_at=_when(raw.get("respondedAt")),
                 response=OfferResponse(raw["response"]) if raw.get("response") else None)


def contact(raw: dict[str, Any]) -> MarketingContact:
    return MarketingContact(contact_id=raw["contactId"], opted_out=bool(raw["unsubscribed"]),
                            opted_out_at=_when(raw.get("unsubscribedAt")),
                            offers=[offer(s) for s in raw.get("sends", ())])
