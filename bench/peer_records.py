"""The peer benchmark's work and its check: one customer's billing accounts (with invoices) and contact-center
interactions, asked of Customer Graph by customer id and of Hive Gateway (Mesh over the OpenAPI documents in
bench/openapi/) by the systems' own keys, both answers mapped to the same plain records so they can be compared.

The two schemas differ in shape: ours normalises (enums upper-case, amounts as floats, epoch times as DateTime,
durations computed), Hive's passes the REST payloads through. `ours` and `hive` map each answer to
{"accounts": [...], "interactions": [...]}, every record a flat dict in one vocabulary, sorted by its key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

Records = dict[str, list[dict[str, Any]]]

OURS_QUERY = """query PeerView($id: ID!) { customer(id: $id) {
  accounts { number holder status currency balance overdue daysPastDue
             invoices { number issuedOn dueOn amount amountPaid status } }
  interactions(first: 100) { id phone channel startedAt durationS agentId outcome summary } } }"""

HIVE_QUERY = """query PeerView($accounts: [String]!, $phones: [String]!) {
  lookupAccounts(input: {accountNumbers: $accounts}) {
    ... on LookupResponse { accounts { accountNumber holder status currency balance overdue daysPastDue
                                       invoices { invoiceNumber issueDate dueDate amount amountPaid state } } }
    ... on Error { error } }
  searchInteractions(input: {phoneNumbers: $phones}) {
    ... on SearchResponse { results { phoneNumber
      interactions { interactionId mediaType startEpoch endEpoch agentId disposition summary } } }
    ... on Error { error } } }"""


class Mismatch(Exception):
    """The two gateways' answers do not hold the same records (or one is not an answer at all)."""


def ours_payload(customer_id: str) -> dict[str, Any]:
    return {"query": OURS_QUERY, "variables": {"id": customer_id}}


def hive_payload(accounts: list[str], phones: list[str]) -> dict[str, Any]:
    return {"query": HIVE_QUERY, "variables": {"accounts": accounts, "phones": phones}}


def _money(value: Any) -> float:
    return round(float(value), 2)


def _sorted(accounts: list[dict[str, Any]], interactions: list[dict[str, Any]]) -> Records:
    for a in accounts:
        a["invoices"].sort(key=lambda i: i["number"])
    return {"accounts": sorted(accounts, key=lambda a: a["number"]),
            "interactions": sorted(interactions, key=lambda i: (i["id"], i["phone"]))}


def _data(answer: dict[str, Any], who: str) -> dict[str, Any]:
    if answer.get("errors") or not isinstance(answer.get("data"), dict):
        raise Mismatch(f"{who} answered with errors: {answer.get('errors')}")
    data: dict[str, Any] = answer["data"]
    return data


def ours(answer: dict[str, Any]) -> Records:
    """Customer Graph's answer to OURS_QUERY as plain records."""
    customer = _data(answer, "Customer Graph").get("customer")
    if customer is None:
        raise Mismatch("Customer Graph found no such customer")
    accounts = [{"number": a["number"], "holder": a["holder"], "status": a["status"], "currency": a["currency"],
                 "balance": _money(a["balance"]), "overdue": a["overdue"], "days_past_due": a["daysPastDue"],
                 "invoices": [{"number": i["number"], "issued_on": i["issuedOn"], "due_on": i["dueOn"],
                               "amount": _money(i["amount"]), "amount_paid": _money(i["amountPaid"]),
                               "status": i["status"]} for i in a["invoices"]]}
                for a in customer["accounts"] or []]
    interactions = [{"id": i["id"], "phone": i["phone"], "channel": i["channel"],
                     "started_at": int(datetime.fromisoformat(i["startedAt"]).timestamp()),
                     "duration_s": i["durationS"], "agent_id": i["agentId"], "outcome": i["outcome"],
                     "summary": i["summary"]} for i in customer["interactions"] or []]
    return _sorted(accounts, interactions)


def _member(data: dict[str, Any], field: str, key: str) -> list[dict[str, Any]]:
    """The list under a union root field's success member; an Error member is a mismatch."""
    value = data.get(field)
    if not isinstance(value, dict) or key not in value:
        raise Mismatch(f"Hive Gateway's {field} is not a success answer: {value}")
    items: list[dict[str, Any]] = value[key]
    return items


def hive(answer: dict[str, Any]) -> Records:
    """Hive Gateway's answer to HIVE_QUERY as plain records, normalised as Customer Graph declares it
    (sources/billing.yaml, sources/contact.yaml)."""
    data = _data(answer, "Hive Gateway")
    accounts = [{"number": a["accountNumber"], "holder": a["holder"], "status": a["status"].upper(),
                 "currency": a["currency"], "balance": _money(a["balance"]), "overdue": a["overdue"],
                 "days_past_due": a["daysPastDue"],
                 "invoices": [{"number": i["invoiceNumber"], "issued_on": i["issueDate"], "due_on": i["dueDate"],
                               "amount": _money(i["amount"]), "amount_paid": _money(i["amountPaid"]),
                               "status": i["state"].upper()} for i in a["invoices"]]}
                for a in _member(data, "lookupAccounts", "accounts")]
    interactions = [{"id": i["interactionId"], "phone": r["phoneNumber"], "channel": i["mediaType"].upper(),
                     "started_at": i["startEpoch"], "duration_s": max(0, i["endEpoch"] - i["startEpoch"]),
                     "agent_id": i["agentId"], "outcome": i["disposition"].upper(), "summary": i["summary"]}
                    for r in _member(data, "searchInteractions", "results") for i in r["interactions"]]
    return _sorted(accounts, interactions)


KEYS = {"accounts": lambda r: r["number"], "interactions": lambda r: f'{r["id"]} on {r["phone"]}'}


def difference(customer: str, a: Records, b: Records) -> str | None:
    """None when both hold the same records; else what differs first, for the failure message."""
    for kind, key_of in KEYS.items():
        left = {key_of(r): r for r in a[kind]}
        right = {key_of(r): r for r in b[kind]}
        if left.keys() != right.keys() or len(a[kind]) != len(b[kind]):
            return (f"{customer}: {kind} only in the first: {sorted(left.keys() - right.keys())}, "
                    f"only in the second: {sorted(right.keys() - left.keys())} "
                    f"({len(a[kind])} vs {len(b[kind])} records)")
        for key, record in left.items():
            if record != right[key]:
                fields = sorted(k for k in record if record[k] != right[key].get(k))
                return f"{customer}: {kind} {key} differs in {fields}: {record} vs {right[key]}"
    return None
