"""The hand-written mapping of Shipping (REST/JSON batch query): shipments keyed by order number."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.handwritten.records import Shipment, ShipmentStatus

CODES = {"LBL": ShipmentStatus.LABEL_CREATED, "INT": ShipmentStatus.IN_TRANSIT, "OFD": ShipmentStatus.OUT_FOR_DELIVERY,
         "DLV": ShipmentStatus.DELIVERED, "EXC": ShipmentStatus.EXCEPTION, "RTN": ShipmentStatus.RETURNED}


def shipment(raw: dict[str, Any]) -> Shipment:
    return Shipment(id=raw["shipmentId"], order_number=raw["orderNumber"], carrier=raw["carrier"],
                    tracking_number=raw["trackingNumber"], status=CODES[raw["statusCode"]],
                    shipped_at=datetime.fromisoformat(raw["shippedAt"]) if raw.get("shippedAt") else None,
                    delivered_at=datetime.fromisoformat(raw["deliveredAt"]) if raw.get("deliveredAt") else None)
