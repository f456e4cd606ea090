"""No N+1: one call per source per nesting level for 100 customers, and independent sources in parallel."""

from __future__ import annotations

import json
import math
from typing import Any

from estate.generate import golden_id
from tests.conftest import HELPDESK_PAGE
from tests.harness import LIVE, Estate, Gateway, http
from tests.queries import CUSTOMERS_FULL
from tests.truth import Truth

BATCH_SOURCES = ("billing", "contact", "marketing", "loyalty", "warranty", "analytics", "shipping", "staff")
LEVEL_ONE = ("billing", "contact", "marketing", "loyalty", "warranty", "analytics", "helpdesk")
IDS = [golden_id(n) for n in range(101, 201)]


def sql_calls(gateway: Gateway) -> dict[str, Any]:
    return json.loads(http("GET", gateway.url + "/readyz")[2])["sources"]


def test_hundred_customers_one_call_per_source_per_level(estate: Estate, gateway: Gateway, truth: Any) -> None:
    t = Truth(truth)
    estate.reset_stats()
    before = sql_calls(gateway)
    answer = gateway.gql(CUSTOMERS_FULL, {"ids": IDS}, LIVE)
    assert "errors" not in answer
    for source in BATCH_SOURCES:
        assert estate.stats(source)["requests"] == 1, source
    # Keys asked = the customers' ids in that system, each once, in that one call.
    assert estate.stats("billing")["keys"] == sum(len(t.ids[g]["billing"]) for g in IDS)
    orders = [o for g in IDS for o in t.orders(g)]
    assert estate.stats("shipping")["keys"] == len(orders)
    # Helpdesk has no batch endpoint: one call per requester (plus its further cursor pages), all concurrent.
    requesters = [e for g in IDS for e in t.ids[g]["helpdesk"]]
    pages = sum(max(1, math.ceil(len(truth.helpdesk[e]) / HELPDESK_PAGE)) for e in requesters)
    helpdesk = estate.stats("helpdesk")
    assert helpdesk["keys"] == pages and helpdesk["requests"] == pages
    after = sql_calls(gateway)
    # The SQL systems: crosswalk and CRM at the root, the shop at the first level; one query each.
    assert {n: after[n]["calls"] - before[n]["calls"] for n in ("crosswalk", "crm", "shop")} == \
           {"crosswalk": 1, "crm": 1, "shop": 1}


def test_independent_sources_are_called_concurrently(estate: Estate, gateway: Gateway) -> None:
    for source in LEVEL_ONE:
        estate.faults(source, {"latency_ms": 300})
    estate.reset_stats()
    answer = gateway.gql(CUSTOMERS_FULL, {"ids": IDS[:20]}, LIVE)
    assert "errors" not in answer
    # Each source's first call (later helpdesk cursor pages must wait for the page before).
    windows = [min(estate.stats(s)["windows"]) for s in LEVEL_ONE]
    # Every first-level source was in flight at one same moment: none waited for another.
    assert max(start for start, _ in windows) < min(end for _, end in windows)
    # The helpdesk's one-requester calls ran side by side too (its configured limit is 32).
    assert estate.stats("helpdesk")["max_in_flight"] > 5


def test_fields_not_asked_for_cost_no_call(estate: Estate, gateway: Gateway) -> None:
    estate.reset_stats()
    before = sql_calls(gateway)
    answer = gateway.gql("query($ids: [ID!]!) { customers(ids: $ids) { id identities { system id } } }",
                         {"ids": IDS}, LIVE)
    assert len(answer["data"]["customers"]) == 100
    assert all(estate.stats(s)["requests"] == 0 for s in estate.ports)
    after = sql_calls(gateway)
    assert after["crm"]["calls"] == before["crm"]["calls"]  # no CRM field selected
    assert after["crosswalk"]["calls"] == before["crosswalk"]["calls"] + 1
