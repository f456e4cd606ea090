"""The physical limit: the same data for one customer fetched by plain asyncio + aiohttp (and aiosqlite
for the SQL systems), straight from the sources, with no GraphQL, no mapping, no gateway."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import aiohttp
import aiosqlite
import orjson

BILLING = {"X-Api-Key": "demo-billing-key"}
MARKETING = {"Authorization": "Bearer demo-marketing-token"}
LOYALTY_QUERY = ("query($cards: [ID!]!) { members(cardNumbers: $cards) { cardNumber tier points memberSince "
                 "rewards { rewardId title pointsCost expires } } }")
SOAP = ('<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:war="urn:acme:warranty:v1"><soapenv:Body><war:GetRegistrationsRequest>{refs}'
        '</war:GetRegistrationsRequest></soapenv:Body></soapenv:Envelope>')


class Floor:
    def __init__(self, data: Path, ports: dict[str, int]) -> None:
        self.data, self.ports = data, ports
        self.db: dict[str, aiosqlite.Connection] = {}
        self.http: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        for name in ("crosswalk", "crm", "shop"):
            self.db[name] = await aiosqlite.connect(self.data / f"{name}.sqlite")
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))

    async def close(self) -> None:
        for db in self.db.values():
            await db.close()
        if self.http:
            await self.http.close()

    def url(self, source: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[source]}{path}"

    async def _json(self, method: str, source: str, path: str, **kw: Any) -> Any:
        assert self.http is not None
        async with self.http.request(method, self.url(source, path), **kw) as resp:
            return orjson.loads(await resp.read())

    async def _rows(self, db: str, sql: str, args: list[Any]) -> list[Any]:
        # aiosqlite's one-hop helper: execute, fetch and close in a single trip to its thread.
        return list(await self.db[db].execute_fetchall(sql, args))

    async def _tickets(self, email: str) -> list[Any]:
        out, cursor = [], None
        while True:
            params = {"per_page": "100", **({"cursor": cursor} if cursor else {})}
            assert self.http is not None
            async with self.http.get(self.url("helpdesk", f"/api/v2/requesters/{email}/tickets"),
                                     params=params) as resp:
                if resp.status == 404:
                    return out
                page = orjson.loads(await resp.read())
            out += page["tickets"]
            cursor = page["meta"]["after_cursor"] if page["meta"]["has_more"] else None
            if not cursor:
                return out

    async def view(self, golden_id: str) -> dict[str, Any]:
        """Every record of the customer, in the sources' own shapes: the crosswalk, then every system at
        once, each dependent call (parcels of orders, agents of contacts) right after its parent."""
        ids: dict[str, list[str]] = {}
        for system, key in await self._rows("crosswalk", "SELECT system, system_key FROM xref WHERE golden_id = ?",
                                            [golden_id]):
            ids.setdefault(system, []).append(key)

        def marks(n: int) -> str:
            return ",".join("?" * n)

        async def nothing() -> Any:
            return None

        async def shop_then_shipping() -> tuple[list[Any], Any]:
            keys = ids.get("shop", [])
            rows = await self._rows("shop", "SELECT * FROM orders o LEFT JOIN order_lines l ON l.order_number = "
                                    f"o.order_number WHERE o.account_email IN ({marks(len(keys))})", keys) if keys else []
            orders = sorted({r[0] for r in rows})
            parcels = await self._json("POST", "shipping", "/v2/shipments/query",
                                       json={"orderNumbers": orders}) if orders else None
            return rows, parcels

        async def contact_then_staff() -> tuple[Any, Any]:
            if "contact" not in ids:
                return None, None
            found = await self._json("POST", "contact", "/v1/interactions/search", json={"phoneNumbers": ids["contact"]})
            agents = sorted({i["agentId"] for r in found["results"] for i in r["interactions"] if i.get("agentId")})
            staff = await self._json("GET", "staff", "/directory/agents",
                                     params={"ids": ",".join(agents)}) if agents else None
            return found, staff

        crm = ids.get("crm", [])
        # Each dependent call starts as soon as what it needs is in: the shortest possible path.
        calls = {
            "crm": self._rows("crm", f"SELECT * FROM customers WHERE cust_no IN ({marks(len(crm))})", crm),
            "shop+shipping": shop_then_shipping(),
            "billing": self._json("POST", "billing", "/api/accounts/lookup", headers=BILLING,
                                  json={"accountNumbers": ids["billing"]}) if "billing" in ids else nothing(),
            "helpdesk": asyncio.gather(*(self._tickets(e) for e in ids.get("helpdesk", []))),
            "contact+staff": contact_then_staff(),
            "marketing": self._json("GET", "marketing", "/rest/v3/contacts", headers=MARKETING,
                                    params={"ids": ",".join(ids["marketing"]), "limit": "200"})
            if "marketing" in ids else nothing(),
            "loyalty": self._json("POST", "loyalty", "/graphql", json={"query": LOYALTY_QUERY,
                                                                       "variables": {"cards": ids["loyalty"]}})
            if "loyalty" in ids else nothing(),
            "warranty": self._soap(ids["warranty"]) if "warranty" in ids else nothing(),
            "analytics": self._json("POST", "analytics", "/v1/visitors:batchGet",
                                    json={"visitorIds": ids["analytics"]}) if "analytics" in ids else nothing(),
        }
        return dict(zip(calls, await asyncio.gather(*calls.values())))

    async def _soap(self, refs: list[str]) -> ElementTree.Element:
        assert self.http is not None
        body = SOAP.format(refs="".join(f"<war:CustomerRef>{r}</war:CustomerRef>" for r in refs))
        async with self.http.post(self.url("warranty", "/ws/WarrantyService"), data=body.encode(),
                                  headers={"Content-Type": "text/xml"}) as resp:
            return ElementTree.fromstring(await resp.read())


