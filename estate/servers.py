"""The nine HTTP source systems of the demo estate, each in its own dialect.

The helpdesk (a ticket's status or priority set with PUT /api/v2/tickets/{id}) and the contact center
(an interaction recorded) send a signed webhook for every write (estate/events.py); the contact center
also announces a contact starting (POST /__incoming {"channel": "VOICE", "from": "+31..."}, as its
switch would) to the gateway's /events/contacts, for the screen pop.

billing: REST batch + API key; helpdesk: REST, one requester per call, cursor pages;
contact: REST batch, epoch times; marketing: REST, offset pages, bearer token;
loyalty: GraphQL; warranty: SOAP-style XML, DD/MM/YYYY dates; shipping, staff,
analytics: REST batch.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from datetime import datetime, timezone
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import graphql
from aiohttp import web

from estate.events import WEBHOOK, add_webhooks, emit
from estate.faults import count_keys, source_app
from estate.generate import Estate

BILLING_API_KEY = os.environ.get("BILLING_API_KEY", "demo-billing-key")
MARKETING_TOKEN = os.environ.get("MARKETING_TOKEN", "demo-marketing-token")
WSDL_NS = "urn:acme:warranty:v1"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
MAX_BATCH = 1000
MEDIA = ("voice", "chat", "email", "fax", "sms")
INCOMING = ("VOICE", "CHAT", "EMAIL", "SMS", "FAX")  # what POST /__incoming announces


async def _json_list(request: web.Request, field: str) -> list[str]:
    """The list of ids in a JSON batch body, or a 400 the way these APIs answer."""
    try:
        body = await request.json()
        ids = body[field]
    except (ValueError, KeyError, TypeError):
        raise web.HTTPBadRequest(text=f'{{"error":"body must be {{\\"{field}\\": [...]}}"}}',
                                 content_type="application/json") from None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(ids) > MAX_BATCH:
        raise web.HTTPBadRequest(text=f'{{"error":"{field} must be a list of at most {MAX_BATCH} strings"}}',
                                 content_type="application/json")
    count_keys(request, len(ids))
    return ids


def billing_app(est: Estate) -> web.Application:
    async def lookup(request: web.Request) -> web.Response:
        if request.headers.get("X-Api-Key") != BILLING_API_KEY:
            return web.json_response({"error": "invalid api key"}, status=401)
        ids = await _json_list(request, "accountNumbers")
        found = [est.billing[i] for i in ids if i in est.billing]
        return web.json_response({"accounts": found, "notFound": [i for i in ids if i not in est.billing]})

    return source_app("billing", [web.post("/api/accounts/lookup", lookup)])


def helpdesk_app(est: Estate) -> web.Application:
    async def tickets(request: web.Request) -> web.Response:
        email = request.match_info["email"]
        count_keys(request, 1)
        if email not in est.helpdesk:
            return web.json_response({"error": "RecordNotFound", "description": "Not found"}, status=404)
        per_page = min(int(request.query.get("per_page", "25")), 100)
        cursor = request.query.get("cursor")
        start = int(base64.urlsafe_b64decode(cursor).decode()) if cursor else 0
        items = est.helpdesk[email]
        page = items[start:start + per_page]
        more = start + per_page < len(items)
        after = base64.urlsafe_b64encode(str(start + per_page).encode()).decode() if more else None
        return web.json_response({"tickets": page, "meta": {"has_more": more, "after_cursor": after}})

    async def update(request: web.Request) -> web.Response:
        ticket_id = int(request.match_info["id"])
        body = await request.json()
        for email, items in est.helpdesk.items():
            for t in items:
                if t["id"] == ticket_id:
                    t.update({k: body[k] for k in ("status", "priority") if k in body})
                    t["updated_at"] = datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
                    emit(request, "tickets", email)
                    return web.json_response({"ticket": t})
        return web.json_response({"error": "RecordNotFound"}, status=404)

    app = source_app("helpdesk", [web.get("/api/v2/requesters/{email}/tickets", tickets),
                                  web.put("/api/v2/tickets/{id}", update)])
    add_webhooks(app, "helpdesk")
    return app


def contact_app(est: Estate) -> web.Application:
    async def search(request: web.Request) -> web.Response:
        ids = await _json_list(request, "phoneNumbers")
        return web.json_response({"results": [{"phoneNumber": p, "interactions": est.contact[p]}
                                              for p in ids if p in est.contact]})

    created: dict[str, tuple[str, dict[str, Any]]] = {}  # Idempotency-Key -> (request fingerprint, interaction)

    async def create(request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key", "")
        try:
            body = await request.json()
            phone, media, summary = body["phoneNumber"], body["mediaType"], body["summary"]
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "phoneNumber, mediaType and summary are required"}, status=400)
        if not key:
            return web.json_response({"error": "Idempotency-Key header is required"}, status=400)
        if media not in MEDIA or not isinstance(summary, str) or not summary.strip():
            return web.json_response({"error": "invalid mediaType or summary"}, status=422)
        fingerprint = json.dumps(body, sort_keys=True)
        if key in created:
            seen, interaction = created[key]
            if seen != fingerprint:
                return web.json_response({"error": "Idempotency-Key reused with a different request"}, status=422)
            return web.json_response({"interaction": interaction, "replayed": True})
        now = int(datetime.now(timezone.utc).timestamp())
        interaction = {"interactionId": f"IX-{900000 + len(created) + 1}-{uuid.uuid4().hex[:6]}", "mediaType": media,
                       "startEpoch": now, "endEpoch": now, "agentId": body.get("agentId"),
                       "disposition": "resolved", "summary": summary}
        est.contact.setdefault(phone, []).append(interaction)
        created[key] = (fingerprint, interaction)
        emit(request, "interactions", phone, "created")
        return web.json_response({"interaction": interaction}, status=201)

    async def incoming(request: web.Request) -> web.Response:
        """A call ringing, a chat or an email arriving, as the switch would report it: announced to the
        gateway (the screen pop) before this answers."""
        try:
            body = await request.json()
            channel, sender = body["channel"], body["from"]
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'body must be {"channel": ..., "from": ...}'}, status=400)
        if channel not in INCOMING or not isinstance(sender, str) or not sender.strip():
            return web.json_response({"error": f"channel must be one of {', '.join(INCOMING)}; from a number "
                                               "or address"}, status=400)
        status = await request.app[WEBHOOK].announce(channel, sender)
        if status != 202:
            return web.json_response({"announced": False, "gateway_status": status}, status=502)
        return web.json_response({"announced": True}, status=202)

    app = source_app("contact", [web.post("/v1/interactions/search", search), web.post("/v1/interactions", create),
                                 web.post("/__incoming", incoming)])
    add_webhooks(app, "contact")
    return app


def marketing_app(est: Estate) -> web.Application:
    async def contacts(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {MARKETING_TOKEN}":
            return web.json_response({"message": "Unauthorized"}, status=401)
        ids = [i for i in request.query.get("ids", "").split(",") if i]
        offset, limit = int(request.query.get("offset", "0")), min(int(request.query.get("limit", "50")), 200)
        count_keys(request, len(ids))
        found = [est.marketing[i] for i in ids if i in est.marketing]
        return web.json_response({"total": len(found), "offset": offset, "limit": limit,
                                  "contacts": found[offset:offset + limit]})

    return source_app("marketing", [web.get("/rest/v3/contacts", contacts)])


LOYALTY_SDL = """
enum Tier { BRONZE SILVER GOLD PLATINUM }
type Reward { rewardId: ID! title: String! pointsCost: Int! expires: String! }
type Member { cardNumber: ID! tier: Tier! points: Int! memberSince: String! rewards: [Reward!]! }
type Query { members(cardNumbers: [ID!]!): [Member]! }
"""


def loyalty_app(est: Estate) -> web.Application:
    schema = graphql.build_schema(LOYALTY_SDL)

    async def endpoint(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"errors": [{"message": "body must be JSON"}]}, status=400)

        def members(_info: Any, cardNumbers: list[str]) -> list[dict[str, Any] | None]:  # noqa: N803
            count_keys(request, len(cardNumbers))
            return [est.loyalty.get(c) for c in cardNumbers]

        result = graphql.graphql_sync(schema, body.get("query", ""), root_value={"members": members},
                                      variable_values=body.get("variables"))
        out: dict[str, Any] = {"data": result.data}
        if result.errors:
            out["errors"] = [e.formatted for e in result.errors]
        return web.json_response(out)

    return source_app("loyalty", [web.post("/graphql", endpoint)])


def _ddmmyyyy(d: Any) -> str:
    return d.strftime("%d/%m/%Y")


def _registration_xml(reg: dict[str, Any]) -> str:
    claims = "".join(
        f"<war:Claim><war:ClaimNo>{c['claimNo']}</war:ClaimNo>"
        f"<war:RmaNo>{c['rmaNo'] or ''}</war:RmaNo><war:Opened>{_ddmmyyyy(c['opened'])}</war:Opened>"
        f"<war:Status>{c['status']}</war:Status><war:Reason>{escape(c['reason'])}</war:Reason></war:Claim>"
        for c in reg["claims"])
    return (f"<war:Registration><war:Serial>{reg['serial']}</war:Serial>"
            f"<war:ProductCode>{reg['productCode']}</war:ProductCode>"
            f"<war:ProductName>{escape(reg['productName'])}</war:ProductName>"
            f"<war:PurchaseDate>{_ddmmyyyy(reg['purchaseDate'])}</war:PurchaseDate>"
            f"<war:WarrantyEnd>{_ddmmyyyy(reg['warrantyEnd'])}</war:WarrantyEnd>"
            f"<war:Claims>{claims}</war:Claims></war:Registration>")


def _soap(body: str, status: int = 200) -> web.Response:
    env = (f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP_NS}" '
           f'xmlns:war="{WSDL_NS}"><soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>')
    return web.Response(text=env, status=status, content_type="text/xml")


def warranty_app(est: Estate) -> web.Application:
    async def service(request: web.Request) -> web.Response:
        try:
            root = ElementTree.fromstring(await request.read())
        except ElementTree.ParseError:
            return _soap("<soapenv:Fault><faultcode>soapenv:Client</faultcode>"
                         "<faultstring>Malformed envelope</faultstring></soapenv:Fault>", 500)
        refs = [e.text or "" for e in root.iter(f"{{{WSDL_NS}}}CustomerRef")]
        count_keys(request, len(refs))
        customers = "".join(
            f'<war:Customer ref="{escape(r)}">{"".join(_registration_xml(g) for g in est.warranty[r])}</war:Customer>'
            for r in refs if r in est.warranty)
        return _soap(f"<war:GetRegistrationsResponse>{customers}</war:GetRegistrationsResponse>")

    return source_app("warranty", [web.post("/ws/WarrantyService", service)])


def shipping_app(est: Estate) -> web.Application:
    async def query(request: web.Request) -> web.Response:
        ids = await _json_list(request, "orderNumbers")
        return web.json_response({"shipments": [s for i in ids for s in est.shipping.get(i, ())]})

    return source_app("shipping", [web.post("/v2/shipments/query", query)])


def staff_app(est: Estate) -> web.Application:
    async def agents(request: web.Request) -> web.Response:
        ids = [i for i in request.query.get("ids", "").split(",") if i]
        if not ids:  # the roster: every agent, or those with the status asked
            status = request.query.get("status")
            count_keys(request, 1)
            return web.json_response({"agents": [a for a in est.staff.values() if status in (None, a["status"])]})
        count_keys(request, len(ids))
        return web.json_response({"agents": [est.staff[i] for i in ids if i in est.staff]})

    return source_app("staff", [web.get("/directory/agents", agents)])


def analytics_app(est: Estate) -> web.Application:
    async def batch_get(request: web.Request) -> web.Response:
        ids = await _json_list(request, "visitorIds")
        return web.json_response({"visitors": [{"visitorId": v, "sessions": est.analytics[v]}
                                               for v in ids if v in est.analytics]})

    return source_app("analytics", [web.post("/v1/visitors:batchGet", batch_get)])


APPS = {
    "billing": billing_app, "helpdesk": helpdesk_app, "contact": contact_app, "marketing": marketing_app,
    "loyalty": loyalty_app, "warranty": warranty_app, "shipping": shipping_app, "staff": staff_app,
    "analytics": analytics_app,
}
