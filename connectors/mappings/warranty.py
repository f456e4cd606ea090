"""Warranty and returns (legacy SOAP-style XML, DD/MM/YYYY dates): registrations with claims."""

from __future__ import annotations

from collections import defaultdict
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from connectors.xml import XmlConnector, ddmmyyyy
from schema.graph import enum, record

Claim, Warranty, ClaimStatus = record("Claim"), record("Warranty"), enum("ClaimStatus")

NS = "urn:acme:warranty:v1"
W = f"{{{NS}}}"


def _text(el: Element, tag: str) -> str:
    return (el.findtext(W + tag) or "").strip()


def claim(el: Element) -> Claim:
    return Claim(number=_text(el, "ClaimNo"), rma_number=_text(el, "RmaNo") or None,
                 opened_on=ddmmyyyy(_text(el, "Opened")), status=ClaimStatus(_text(el, "Status").lower()),
                 reason=_text(el, "Reason"))


def registration(el: Element, ref: str) -> Warranty:
    return Warranty(serial=_text(el, "Serial"), customer_ref=ref, product_code=_text(el, "ProductCode"),
                    product_name=_text(el, "ProductName"), purchased_on=ddmmyyyy(_text(el, "PurchaseDate")),
                    warranty_ends_on=ddmmyyyy(_text(el, "WarrantyEnd")),
                    claims=[claim(c) for c in el.iter(W + "Claim")])


async def fetch_registrations(c: XmlConnector, keys: list[str]) -> dict[str, list[Warranty]]:
    body = "<war:GetRegistrationsRequest>" + "".join(
        f"<war:CustomerRef>{escape(k)}</war:CustomerRef>" for k in keys) + "</war:GetRegistrationsRequest>"
    root = await c.call(str(c.config.options.get("path", "/ws/WarrantyService")),
                        f"{NS}#GetRegistrations", body, {"war": NS})
    out: dict[str, list[Warranty]] = defaultdict(list)
    for customer in root.iter(W + "Customer"):
        ref = customer.attrib["ref"]
        out[ref].extend(registration(r, ref) for r in customer.iter(W + "Registration"))
    return out


ENTITIES = {"warranties": fetch_registrations}
