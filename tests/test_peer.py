"""The peer benchmark's pure logic (bench.peer is run by hand, never by a test): the record comparison
(bench/peer_records.py), where Customer Graph's and Hive Gateway's answers, different in shape, map to the same
records when they hold the same data and any difference is named; and how its table judges the targets."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bench.peer import Contestant, Sample, ratios, verdict
from bench.peer_records import Mismatch, difference, hive, ours

# One customer as the REST systems hold it (estate/generate.py's shapes), Hive passing them through...
ACCOUNT = {"accountNumber": "BA-20000004", "holder": "DOE, Jane", "status": "SUSPENDED", "currency": "EUR",
           "balance": "49.90", "overdue": True, "daysPastDue": 17,
           "invoices": [{"invoiceNumber": "INV-7", "issueDate": "2026-10-01", "dueDate": "2026-10-15",
                         "amount": "49.90", "amountPaid": "0.00", "state": "overdue"},
                        {"invoiceNumber": "INV-6", "issueDate": "2026-09-01", "dueDate": "2026-09-15",
                         "amount": "19.99", "amountPaid": "19.99", "state": "paid"}]}
CALL = {"interactionId": "IX-11", "mediaType": "voice", "startEpoch": 1790000000, "endEpoch": 1790000150,
        "agentId": "AG-007", "disposition": "resolved", "summary": "Explained warranty terms"}
SMS = {"interactionId": "IX-12", "mediaType": "sms", "startEpoch": 1790003600, "endEpoch": 1790003600,
       "agentId": None, "disposition": "callback", "summary": "Updated contact details"}
HIVE_ANSWER = {"data": {"lookupAccounts": {"accounts": [ACCOUNT]},
                        "searchInteractions": {"results": [{"phoneNumber": "+15550100001",
                                                            "interactions": [CALL, SMS]}]}}}

# ...and as Customer Graph declares them (sources/billing.yaml, sources/contact.yaml), newest first.
OURS_ANSWER = {"data": {"customer": {
    "accounts": [{"number": "BA-20000004", "holder": "DOE, Jane", "status": "SUSPENDED", "currency": "EUR",
                  "balance": 49.9, "overdue": True, "daysPastDue": 17,
                  "invoices": [{"number": "INV-6", "issuedOn": "2026-09-01", "dueOn": "2026-09-15", "amount": 19.99,
                                "amountPaid": 19.99, "status": "PAID"},
                               {"number": "INV-7", "issuedOn": "2026-10-01", "dueOn": "2026-10-15", "amount": 49.9,
                                "amountPaid": 0.0, "status": "OVERDUE"}]}],
    "interactions": [{"id": "IX-12", "phone": "+15550100001", "channel": "SMS", "startedAt": "2026-09-21T15:13:20Z",
                      "durationS": 0, "agentId": None, "outcome": "CALLBACK", "summary": "Updated contact details"},
                     {"id": "IX-11", "phone": "+15550100001", "channel": "VOICE",
                      "startedAt": "2026-09-21T14:13:20+00:00", "durationS": 150, "agentId": "AG-007",
                      "outcome": "RESOLVED", "summary": "Explained warranty terms"}]}}}


def both() -> tuple[dict[str, Any], dict[str, Any]]:
    return copy.deepcopy(OURS_ANSWER), copy.deepcopy(HIVE_ANSWER)


def test_the_same_data_in_both_shapes_is_the_same_records() -> None:
    a, b = both()
    assert ours(a) == hive(b)
    assert difference("G-1", ours(a), hive(b)) is None


def test_a_changed_amount_is_named_with_its_record_and_field() -> None:
    a, b = both()
    b["data"]["lookupAccounts"]["accounts"][0]["invoices"][0]["amountPaid"] = "49.90"
    said = difference("G-1", ours(a), hive(b))
    assert said is not None and said.startswith("G-1: accounts BA-20000004 differs in ['invoices']")


def test_a_missing_interaction_is_named() -> None:
    a, b = both()
    b["data"]["searchInteractions"]["results"][0]["interactions"].pop()
    said = difference("G-1", ours(a), hive(b))
    assert said is not None and "IX-12 on +15550100001" in said and "2 vs 1 records" in said


def test_the_same_interaction_on_two_numbers_counts_twice() -> None:
    """A household's shared phone carries both people's calls: listed under each number the customer has."""
    a, b = both()
    b["data"]["searchInteractions"]["results"].append({"phoneNumber": "+15550100002", "interactions": [CALL]})
    said = difference("G-1", ours(a), hive(b))
    assert said is not None and "IX-11 on +15550100002" in said
    a["data"]["customer"]["interactions"].append({**a["data"]["customer"]["interactions"][1],
                                                  "phone": "+15550100002"})
    assert difference("G-1", ours(a), hive(b)) is None


def test_a_different_start_time_or_duration_differs() -> None:
    a, b = both()
    b["data"]["searchInteractions"]["results"][0]["interactions"][0]["endEpoch"] = 1790000151
    said = difference("G-1", ours(a), hive(b))
    assert said is not None and "['duration_s']" in said


def test_an_end_before_the_start_is_no_duration_as_ours_declares() -> None:
    _, b = both()
    b["data"]["searchInteractions"]["results"][0]["interactions"][0]["endEpoch"] = 1789999999
    calls = {r["id"]: r for r in hive(b)["interactions"]}
    assert calls["IX-11"]["duration_s"] == 0


def test_an_error_answer_is_a_mismatch_not_empty_records() -> None:
    a, b = both()
    b["data"]["lookupAccounts"] = {"error": "invalid api key"}
    with pytest.raises(Mismatch, match="lookupAccounts is not a success answer"):
        hive(b)
    a["errors"] = [{"message": "billing is unavailable", "path": ["customer", "accounts"]}]
    with pytest.raises(Mismatch, match="Customer Graph answered with errors"):
        ours(a)
    with pytest.raises(Mismatch, match="no such customer"):
        ours({"data": {"customer": None}})


def sample(requests: int, cpu_s: float, rss_mb: float) -> Sample:
    return Sample(seconds=1.0, latencies_ms=[1.0] * requests, failed=0, cpu_s=cpu_s, rss_mb=rss_mb, source_calls=0,
                  client_cpu_s=0.0)


def test_throughput_and_cpu_are_paired_per_round_and_rss_is_the_largest_each_side_reached() -> None:
    ours_side = Contestant("ours", "", 0, [], {}, ours, [sample(300, 0.3, 120), sample(600, 0.3, 130)])
    peer_side = Contestant("peer", "", 0, [], {}, hive, [sample(200, 0.4, 600), sample(300, 0.6, 350)])
    r = ratios(ours_side, peer_side)
    assert r["throughput"] == [1.5, 2.0]
    assert r["CPU per request"] == pytest.approx([0.5, 0.25])
    assert r["RSS"] == [130 / 600]  # not round 2's 130 / 350: node's heap had shrunk by then


def test_a_target_is_judged_on_the_median_and_says_when_rounds_straddle_it() -> None:
    assert verdict([1.6, 1.7, 1.9], 1.5, at_least=True) == "yes"
    assert verdict([1.2, 1.6, 1.7], 1.5, at_least=True) == "yes (rounds straddle it)"
    assert verdict([1.2, 1.3, 1.6], 1.5, at_least=True) == "no (rounds straddle it)"
    assert verdict([0.7, 0.8], 0.6, at_least=False) == "no"
    assert verdict([0.21], 0.25, at_least=False) == "yes"
