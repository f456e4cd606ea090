"""The hand-written mapping of Billing (REST/JSON, batch lookup, API key): accounts with invoices, keyed by account number."""

from __future__ import annotations

from datetime import date
from typing import Any

from tests.handwritten.records import Account, AccountStatus, Invoice, InvoiceStatus


def invoice(raw: dict[str, Any], account: str) -> Invoice:
    return Invoice(number=raw["invoiceNumber"], account_number=account, issued_on=date.fromisoformat(raw["issueDate"]),
                   due_on=date.fromisoformat(raw["dueDate"]), amount=float(raw["amount"]),
                   amount_paid=float(raw["amountPaid"]), status=InvoiceStatus(raw["state"]))


def account(raw: dict[str, Any]) -> Account:
    number = raw["accountNumber"]
    return Account(number=number, holder=raw.get("holder"), status=AccountStatus(raw["status"].lower()),
                   currency=raw["currency"], balance=float(raw["balance"]), overdue=bool(raw["overdue"]),
                   days_past_due=int(raw.get("daysPastDue") or 0),
                   invoices=[invoice(i, number) for i in raw.get("invoices", ())])
