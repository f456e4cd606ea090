"""Deterministic generator of one fictional company's customer estate.

Every golden customer (C-000001 upward) is spread over up to twelve systems, each
with its own ids, field names and quirks. The output is a plain `Estate` object:
the servers in `estate/` serve it, `estate/sqlfiles.py` writes its SQL systems, and
tests regenerate it (same seed, customer count and as-of date) as ground truth.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

SQL_SYSTEMS = ("crm", "crosswalk", "shop")
HTTP_SYSTEMS = (
    "billing", "helpdesk", "contact", "marketing", "loyalty",
    "warranty", "shipping", "staff", "analytics",
)
# Port offset of each HTTP system: it listens on port_base + offset.
PORT_OFFSETS = {name: i + 1 for i, name in enumerate(HTTP_SYSTEMS)}

FIRST = ("Ada Alan Beatriz Carlos Chloe Dmitri Elena Farah Gustav Hana Ines Jamal Karin Liam Mei "
         "Noor Olga Pablo Quinn Rosa Sven Tariq Uma Viktor Wen Yara Zoe Omar Lena Marco").split()
LAST = ("Smith Garcia Muller Rossi Dubois Jansen Kowalski Nguyen Okafor Silva Tanaka Varga "
        "Berg Costa Haddad Ivanova Larsen Moreau Novak Petit Quispe Sato Weber Young").split()
CITIES = (("Amsterdam", "NL"), ("Lyon", "FR"), ("Berlin", "DE"), ("Madrid", "ES"), ("Leeds", "GB"),
          ("Utrecht", "NL"), ("Munich", "DE"), ("Bordeaux", "FR"), ("Valencia", "ES"), ("York", "GB"))
LANG_OF = {"NL": "nl", "FR": "fr", "DE": "de", "ES": "es", "GB": "en"}
DOMAINS = ("example.com", "mail.test", "inbox.example", "post.example.org")
STREETS = ("Main St", "Canal Rd", "Station Ave", "Market Sq", "Park Lane", "Mill Rd")

# (sku, name, category, unit price)
PRODUCTS = (
    ("LAP-100", "Aero 13 Laptop", "laptops", 1099.0), ("LAP-200", "Aero 15 Pro Laptop", "laptops", 1599.0),
    ("PHN-100", "Nova Phone", "phones", 699.0), ("PHN-200", "Nova Phone Max", "phones", 999.0),
    ("TAB-100", "Slate Tablet", "tablets", 449.0), ("AUD-100", "Quiet Headphones", "audio", 249.0),
    ("AUD-200", "Pocket Earbuds", "audio", 129.0), ("TV-100", "Vista 55 TV", "tv", 799.0),
    ("CAM-100", "Snap Camera", "cameras", 549.0), ("WAT-100", "Pulse Watch", "wearables", 299.0),
    ("ACC-100", "USB-C Charger", "accessories", 29.0), ("ACC-200", "Laptop Sleeve", "accessories", 39.0),
    ("ACC-300", "Screen Protector", "accessories", 15.0), ("ACC-400", "Wireless Mouse", "accessories", 35.0),
    ("SRV-100", "Care+ Extended Warranty", "services", 99.0), ("SRV-200", "Setup Service", "services", 49.0),
)
WARRANTABLE = tuple(p for p in PRODUCTS if p[2] not in ("accessories", "services"))
CATEGORIES = sorted({p[2] for p in PRODUCTS})
TICKET_SUBJECTS = ("Order not received", "Refund request", "Device will not charge", "Screen flickers",
                   "Change delivery address", "Invoice question", "Cannot log in", "Battery drains fast",
                   "Return label needed", "Warranty claim status")
SUMMARIES = ("Asked about delivery date", "Billing question answered", "Troubleshot charging issue",
             "Discussed upgrade options", "Requested return label", "Complained about delay",
             "Updated contact details", "Explained warranty terms", "Placed an order by phone")
CAMPAIGNS = (("CMP-SPRING", "Spring Sale"), ("CMP-LOYAL", "Loyalty Bonus"), ("CMP-UPG", "Upgrade Offer"),
             ("CMP-AUDIO", "Audio Week"), ("CMP-CARE", "Care+ Promotion"), ("CMP-BACK", "Back to School"))
CLAIM_REASONS = ("Does not power on", "Cracked screen", "Battery swelling", "Dead pixels", "No sound")
SKILLS = ("billing", "returns", "technical", "sales", "delivery", "warranty")


@dataclass
class Estate:
    """Everything the fictional company's systems hold, in each system's own shape."""

    seed: int
    customers: int
    as_of: date
    crm: list[dict[str, Any]] = field(default_factory=list)
    crosswalk: list[dict[str, Any]] = field(default_factory=list)
    match_keys: list[dict[str, Any]] = field(default_factory=list)
    shop_accounts: list[dict[str, Any]] = field(default_factory=list)
    shop_orders: list[dict[str, Any]] = field(default_factory=list)
    shop_lines: list[dict[str, Any]] = field(default_factory=list)
    billing: dict[str, dict[str, Any]] = field(default_factory=dict)
    helpdesk: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    contact: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    marketing: dict[str, dict[str, Any]] = field(default_factory=dict)
    loyalty: dict[str, dict[str, Any]] = field(default_factory=dict)
    warranty: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    shipping: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    staff: dict[str, dict[str, Any]] = field(default_factory=dict)
    analytics: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def identities(self, golden_id: str) -> list[tuple[str, str]]:
        """(system, system id) pairs of one golden customer: the ground truth."""
        return [(r["system"], r["system_key"]) for r in self.crosswalk if r["golden_id"] == golden_id]

    def manifest(self) -> dict[str, Any]:
        return {"seed": self.seed, "customers": self.customers, "as_of": self.as_of.isoformat()}


def golden_id(n: int) -> str:
    return f"C-{n:06d}"


def email_hash(email: str) -> str:
    """The analytics system's visitor id: sha256 of the trimmed, lower-cased email."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def e164(digits: str) -> str:
    return "+" + digits


def messy_phone(rng: random.Random, digits: str) -> str:
    """The same number as people type it: one of several formats."""
    cc, rest = digits[:2], digits[2:]
    style = rng.randrange(5)
    if style == 0:
        return f"+{cc} {rest[:3]} {rest[3:6]} {rest[6:]}"
    if style == 1:
        return f"00{cc}-{rest[:3]}-{rest[3:]}"
    if style == 2:
        return f"(0{rest[:3]}) {rest[3:6]}-{rest[6:]}"  # national format, no country code
    if style == 3:
        return f"+{cc}.{rest[:3]}.{rest[3:6]}.{rest[6:]}"
    return f"+{digits}"


def messy_email(rng: random.Random, email: str) -> str:
    """Case and whitespace differences, as typed into different systems."""
    local, domain = email.split("@")
    style = rng.randrange(4)
    if style == 0:
        return email
    if style == 1:
        return f"{local.title()}@{domain}"
    if style == 2:
        return f" {email.upper()}"
    return f"{local}@{domain.upper()}  "


class _Gen:
    def __init__(self, seed: int, customers: int, as_of: date) -> None:
        self.rng = random.Random(seed)
        self.est = Estate(seed=seed, customers=customers, as_of=as_of)
        self.now = datetime.combine(as_of, time(12, 0), tzinfo=timezone.utc)
        self.order_seq = 100000
        self.ticket_seq = 500000
        self.ix_seq = 700000
        self.inv_seq = 300000

    def ago(self, max_days: float, min_days: float = 0.0) -> datetime:
        secs = self.rng.uniform(min_days * 86400, max_days * 86400)
        return (self.now - timedelta(seconds=secs)).replace(microsecond=0)

    def link(self, gid: str, system: str, key: str) -> None:
        """One record of this person in one system: a crosswalk row."""
        self.est.crosswalk.append({"golden_id": gid, "system": system, "system_key": key})

    def match(self, gid: str, kind: str, key: str) -> None:
        """A standardised identifier (the MDM's match key) that finds this person."""
        row = {"golden_id": gid, "kind": kind, "match_key": key}
        if row not in self.est.match_keys[-6:]:
            self.est.match_keys.append(row)

    def run(self) -> Estate:
        self.make_staff()
        household: tuple[str, str, str] | None = None  # (phone digits, last name, street) to share
        for n in range(1, self.est.customers + 1):
            household = self.make_customer(n, household)
        return self.est

    def make_staff(self) -> None:
        rng = self.rng
        for i in range(1, 61):
            aid = f"AG-{i:03d}"
            self.est.staff[aid] = {
                "agentId": aid,
                "displayName": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                "skills": sorted(rng.sample(SKILLS, rng.randint(1, 3))),
                "languages": sorted({"en", *rng.sample(("nl", "fr", "de", "es"), rng.randint(0, 2))}),
                "productExpertise": sorted(rng.sample(CATEGORIES, rng.randint(1, 3))),
                "status": rng.choice(("available", "available", "busy", "offline")),
            }

    def make_customer(self, n: int, household: tuple[str, str, str] | None) -> tuple[str, str, str] | None:
        rng, gid = self.rng, golden_id(n)
        first, last = rng.choice(FIRST), rng.choice(LAST)
        city, country = rng.choice(CITIES)
        street = f"{rng.randint(1, 250)} {rng.choice(STREETS)}"
        email = f"{first}.{last}{n}@{rng.choice(DOMAINS)}".lower()
        digits = f"31{rng.randint(600000000, 699999999)}"
        shared = household is not None and rng.random() < 0.02
        if shared and household:
            digits, last, street = household  # a family sharing the landline
        profile = {"gid": gid, "first": first, "last": last, "email": email, "digits": digits,
                   "city": city, "country": country, "street": street, "n": n}
        self.make_crm(profile)
        phones = [digits]
        if rng.random() < 0.3:
            phones.append(f"31{rng.randint(600000000, 699999999)}")
        orders = self.make_shop(profile) if rng.random() < 0.85 else []
        if rng.random() < 0.7:
            self.make_billing(profile, orders)
        if rng.random() < 0.55:
            self.make_helpdesk(profile)
        if rng.random() < 0.8:
            self.make_contact(profile, phones)
        if rng.random() < 0.75:
            self.make_marketing(profile)
        if rng.random() < 0.4:
            self.make_loyalty(profile)
        if orders and rng.random() < 0.6:
            self.make_warranty(profile, orders)
        if rng.random() < 0.6:
            self.make_analytics(profile)
        return (digits, last, street) if not shared else household

    def make_crm(self, p: dict[str, Any]) -> None:
        rng = self.rng
        copies = 2 if rng.random() < 0.02 else 1  # a few people were entered twice
        for copy in range(copies):
            cust_no = f"{1000000 + p['n'] * 3 + copy}"
            self.est.crm.append({
                "cust_no": cust_no,
                "given_name": p["first"] if copy == 0 else p["first"].upper(),
                "family_name": p["last"],
                "email_addr": messy_email(rng, p["email"]),
                "phone_home": messy_phone(rng, p["digits"]),
                "phone_mobile": None if rng.random() < 0.5 else messy_phone(rng, p["digits"]),
                "addr_line1": p["street"], "addr_city": p["city"],
                "addr_postcode": f"{rng.randint(1000, 9999)} {rng.choice('ABCDEFGHJK')}{rng.choice('LMNPRSTVWX')}",
                "addr_country": p["country"],
                "segment_code": rng.choice(("CONS", "CONS", "CONS", "SMB", "ENT", "VIP")),
                "lang": LANG_OF[p["country"]] if rng.random() < 0.85 else "en",
                "pref_contact": rng.choice("ESPM"),
                "consent_email": int(rng.random() < 0.7), "consent_sms": int(rng.random() < 0.4),
                "consent_phone": int(rng.random() < 0.5),
                "created_on": self.ago(3000, 400).date().isoformat(),
            })
            self.link(p["gid"], "crm", cust_no)
        self.match(p["gid"], "email", p["email"])
        self.match(p["gid"], "phone", e164(p["digits"]))

    def make_shop(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        rng, est = self.rng, self.est
        account = messy_email(rng, p["email"]).strip()  # the shop trims, but keeps the case typed
        est.shop_accounts.append({"account_email": account, "display_name": f"{p['first']} {p['last'][0]}.",
                                  "created_at": self.ago(2000, 300).isoformat()})
        self.link(p["gid"], "shop", account)
        orders = []
        for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 4, 6, 9))):
            self.order_seq += 1
            placed = self.ago(720)
            channel = rng.choice(("web", "web", "web", "store", "phone"))
            lines, total = [], 0.0
            for ln in range(1, rng.randint(1, 4) + 1):
                sku, name, _cat, price = rng.choice(PRODUCTS)
                qty = rng.choice((1, 1, 1, 2))
                total += qty * price
                lines.append({"order_number": f"WO-{self.order_seq}", "line_no": ln, "sku": sku,
                              "description": name, "quantity": qty, "unit_price": price})
            age = (self.now - placed).days
            status = "cancelled" if rng.random() < 0.05 else (
                "delivered" if age > 10 else rng.choice(("placed", "shipped")))
            order = {"order_number": f"WO-{self.order_seq}", "account_email": account,
                     "placed_at": placed.isoformat(), "channel": channel, "status": status,
                     "total": round(total, 2), "currency": "EUR"}
            est.shop_orders.append(order)
            est.shop_lines.extend(lines)
            orders.append(order)
            if channel != "store" and status != "cancelled":
                self.make_shipments(order, placed, lines)
        return orders

    def make_shipments(self, order: dict[str, Any], placed: datetime, lines: list[dict[str, Any]]) -> None:
        rng = self.rng
        parcels = 2 if len(lines) > 2 and rng.random() < 0.4 else 1
        out = []
        for i in range(parcels):
            shipped = min(self.now, placed + timedelta(hours=rng.randint(4, 60)))
            delivered = order["status"] == "delivered"
            code = "DLV" if delivered else ("LBL" if order["status"] == "placed" else rng.choice(("INT", "OFD", "EXC")))
            out.append({"orderNumber": order["order_number"], "shipmentId": f"SH-{order['order_number'][3:]}-{i + 1}",
                        "carrier": rng.choice(("PostNL", "DHL", "DPD", "UPS")),
                        "trackingNumber": f"TRK{rng.randint(10**9, 10**10 - 1)}", "statusCode": code,
                        "shippedAt": shipped.isoformat().replace("+00:00", "Z"),
                        "deliveredAt": (shipped + timedelta(days=rng.randint(1, 4))).isoformat().replace("+00:00", "Z")
                        if delivered else None})
        self.est.shipping[order["order_number"]] = out

    def make_billing(self, p: dict[str, Any], orders: list[dict[str, Any]]) -> None:
        rng = self.rng
        for k in range(1 if rng.random() < 0.85 else 2):
            acct = f"BA-{20000000 + p['n'] * 2 + k}"
            invoices, balance = [], 0.0
            for m in range(rng.randint(0, 8)):
                self.inv_seq += 1
                issued = (self.now - timedelta(days=30 * m + rng.randint(0, 5))).date()
                amount = round(rng.choice((19.99, 29.99, 49.9, 89.0, 120.5)), 2)
                due = issued + timedelta(days=14)
                overdue = m >= 1 and rng.random() < 0.08
                state = "void" if rng.random() < 0.03 else ("overdue" if overdue else (
                    "open" if due >= self.now.date() else "paid"))
                paid = amount if state == "paid" else 0.0
                if state in ("open", "overdue"):
                    balance += amount
                invoices.append({"invoiceNumber": f"INV-{self.inv_seq}", "issueDate": issued.isoformat(),
                                 "dueDate": due.isoformat(), "amount": f"{amount:.2f}",
                                 "amountPaid": f"{paid:.2f}", "state": state})
            overdue_days = max([(self.now.date() - date.fromisoformat(i["dueDate"])).days
                                for i in invoices if i["state"] == "overdue"], default=0)
            self.est.billing[acct] = {
                "accountNumber": acct, "holder": f"{p['last'].upper()}, {p['first']}",
                "status": rng.choice(("ACTIVE", "ACTIVE", "ACTIVE", "SUSPENDED")) if k == 0 else "CLOSED",
                "currency": "EUR", "balance": f"{balance:.2f}", "overdue": overdue_days > 0,
                "daysPastDue": overdue_days, "invoices": invoices,
            }
            self.link(p["gid"], "billing", acct)

    def make_helpdesk(self, p: dict[str, Any]) -> None:
        rng = self.rng
        requester = p["email"]  # the helpdesk lower-cases every address
        tickets = []
        for _ in range(rng.choice((0, 1, 1, 2, 3, 5, 12))):
            self.ticket_seq += 1
            created = self.ago(400)
            status = rng.choice(("new", "open", "pending", "hold", "solved", "solved", "closed", "closed"))
            tickets.append({"id": self.ticket_seq, "subject": rng.choice(TICKET_SUBJECTS), "status": status,
                            "priority": rng.choice(("low", "normal", "normal", "high", "urgent")),
                            "via": rng.choice(("email", "web", "voice", "chat")),
                            "created_at": created.isoformat().replace("+00:00", "Z"),
                            "updated_at": min(self.now, created + timedelta(hours=rng.randint(1, 300))).isoformat().replace("+00:00", "Z")})
        self.est.helpdesk[requester] = tickets
        self.link(p["gid"], "helpdesk", requester)

    def make_contact(self, p: dict[str, Any], phones: list[str]) -> None:
        rng = self.rng
        for digits in phones:
            number = e164(digits)
            items = self.est.contact.setdefault(number, [])  # a shared phone carries both people's calls
            for _ in range(rng.choice((0, 1, 2, 3, 4, 7))):
                self.ix_seq += 1
                start = self.ago(365)
                media = rng.choice(("voice", "voice", "chat", "email", "fax", "sms"))
                dur = rng.randint(30, 1800) if media in ("voice", "chat") else 0
                items.append({"interactionId": f"IX-{self.ix_seq}", "mediaType": media,
                              "startEpoch": int(start.timestamp()), "endEpoch": int(start.timestamp()) + dur,
                              "agentId": f"AG-{rng.randint(1, 60):03d}" if media != "sms" or rng.random() < 0.5 else None,
                              "disposition": rng.choice(("resolved", "resolved", "callback", "escalated", "abandoned", "sale")),
                              "summary": rng.choice(SUMMARIES)})
            self.link(p["gid"], "contact", number)
            self.match(p["gid"], "phone", number)

    def make_marketing(self, p: dict[str, Any]) -> None:
        rng = self.rng
        cid = f"MKT-{hashlib.md5(p['gid'].encode()).hexdigest()[:10]}"
        unsub = rng.random() < 0.1
        sends = []
        for i in range(rng.choice((0, 1, 2, 3, 4, 6))):
            camp, cname = rng.choice(CAMPAIGNS)
            sent = self.ago(180)
            opened = sent + timedelta(hours=rng.randint(1, 48)) if rng.random() < 0.5 else None
            clicked = opened + timedelta(minutes=rng.randint(1, 30)) if opened and rng.random() < 0.4 else None
            responded = clicked + timedelta(hours=rng.randint(1, 24)) if clicked and rng.random() < 0.5 else None
            opened, clicked, responded = (d if d and d <= self.now else None for d in (opened, clicked, responded))
            iso = lambda d: d.isoformat().replace("+00:00", "Z") if d else None  # noqa: E731
            sends.append({"sendId": f"{cid}-S{i}", "campaignId": camp, "campaignName": cname,
                          "offerCode": f"{camp[4:]}{rng.randint(10, 99)}", "productSku": rng.choice(PRODUCTS)[0],
                          "channel": rng.choice(("email", "email", "sms")), "sentAt": iso(sent),
                          "openedAt": iso(opened), "clickedAt": iso(clicked), "respondedAt": iso(responded),
                          "response": rng.choice(("accepted", "declined")) if responded else None})
        self.est.marketing[cid] = {"contactId": cid, "email": p["email"], "unsubscribed": unsub,
                                   "unsubscribedAt": self.ago(200).isoformat().replace("+00:00", "Z") if unsub else None,
                                   "sends": sends}
        self.link(p["gid"], "marketing", cid)

    def make_loyalty(self, p: dict[str, Any]) -> None:
        rng = self.rng
        card = f"4410{p['n']:09d}"
        points = rng.randint(0, 40000)
        tier = "PLATINUM" if points > 30000 else "GOLD" if points > 15000 else "SILVER" if points > 5000 else "BRONZE"
        rewards = [{"rewardId": f"RW-{p['n']}-{i}", "title": rng.choice(("Free delivery", "10% off audio", "Care+ month")),
                    "pointsCost": rng.choice((500, 1000, 2500)),
                    "expires": (self.now + timedelta(days=rng.randint(5, 120))).date().isoformat()}
                   for i in range(rng.randint(0, 2))]
        self.est.loyalty[card] = {"cardNumber": card, "tier": tier, "points": points,
                                  "memberSince": self.ago(2500, 30).date().isoformat(), "rewards": rewards}
        self.link(p["gid"], "loyalty", card)
        self.match(p["gid"], "loyalty_card", card)

    def make_warranty(self, p: dict[str, Any], orders: list[dict[str, Any]]) -> None:
        rng = self.rng
        ref = f"WR-{p['n']:07d}"
        regs = []
        for i, sku_row in enumerate(rng.sample(WARRANTABLE, rng.randint(1, 3))):
            bought = date.fromisoformat(rng.choice(orders)["placed_at"][:10])
            claims = []
            for c in range(rng.choice((0, 0, 0, 1, 2))):
                opened = min(self.now.date(), bought + timedelta(days=rng.randint(10, 300)))
                claims.append({"claimNo": f"CL-{p['n']}-{i}{c}", "rmaNo": f"RMA{p['n']:06d}{i}{c}" if rng.random() < 0.7 else None,
                               "opened": opened, "status": rng.choice(("OPEN", "APPROVED", "REJECTED", "REPAIRED", "REPLACED")),
                               "reason": rng.choice(CLAIM_REASONS)})
            regs.append({"serial": f"SN{p['n']:06d}{i}{rng.randint(100, 999)}", "productCode": sku_row[0],
                         "productName": sku_row[1], "purchaseDate": bought,
                         "warrantyEnd": bought + timedelta(days=365 * rng.choice((1, 2, 3))), "claims": claims})
        self.est.warranty[ref] = regs
        self.link(p["gid"], "warranty", ref)

    def make_analytics(self, p: dict[str, Any]) -> None:
        rng = self.rng
        visitor = email_hash(p["email"])
        sessions = []
        for i in range(rng.choice((0, 1, 2, 4, 8))):
            viewed = rng.sample(PRODUCTS, rng.randint(0, 3))
            sessions.append({"sessionId": f"{visitor[:8]}-{i}", "startedAt": self.ago(90).isoformat().replace("+00:00", "Z"),
                             "durationSec": rng.randint(20, 1500), "device": rng.choice(("desktop", "mobile", "tablet")),
                             "pages": ["/"] + [f"/p/{v[0].lower()}" for v in viewed],
                             "productsViewed": [v[0] for v in viewed]})
        self.est.analytics[visitor] = sessions
        self.link(p["gid"], "analytics", visitor)


def generate(customers: int = 2000, seed: int = 42, as_of: date | None = None) -> Estate:
    """Build the estate; the same arguments always give the same data."""
    return _Gen(seed, customers, as_of or datetime.now(timezone.utc).date()).run()
