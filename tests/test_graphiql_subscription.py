"""GraphiQL (served offline) runs a subscription over WebSocket in a real browser: Playwright driving
Debian's chromium, the token from GraphiQL's header editor sent in connection_init. Skipped when either
is missing, except under CI=true, where it must run (.ci/run installs them)."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Estate, Gateway, gateway_config, http, running_estate, running_gateway
from tests.test_status_page import CHROMIUM, _unavailable

SUBSCRIPTION = """subscription Timeline($id: ID!) {
  customerEvents(id: $id, kinds: [CONTACT]) {
    at kind channel summary
  }
}"""
RECORD = "mutation($i: RecordInteractionInput!) { recordInteraction(input: $i) { id } }"


@pytest.fixture(scope="module")
def own_estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    yield from running_estate(tmp_path_factory.mktemp("graphiql"), "estate", customers=40, seed=5)


@pytest.fixture(scope="module")
def gw(own_estate: Estate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from running_gateway(gateway_config(own_estate), tmp_path_factory.mktemp("graphiql-gw"), "gateway")


def listening(gw: Gateway, at_least: int) -> None:
    """Until the gateway has this many subscriptions listening (its /status.json)."""
    deadline = time.monotonic() + 30
    while json.loads(http("GET", gw.url + "/status.json")[2])["subscriptions"]["listening"] < at_least:
        assert time.monotonic() < deadline, "the subscription never started listening"
        time.sleep(0.05)


def test_graphiql_runs_a_subscription_over_websocket(gw: Gateway, tmp_path: Path) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    if CHROMIUM is None:
        _unavailable("Debian's chromium is not installed")
    gid = "C-000001"
    stored = {"graphiql:query": SUBSCRIPTION, "graphiql:variables": json.dumps({"id": gid}),
              "graphiql:headers": json.dumps({"Authorization": f"Bearer {gw.tokens['agent']}"})}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless=new"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 800})
            page.add_init_script(f"for (const [k, v] of Object.entries({json.dumps(stored)})) localStorage.setItem(k, v);")
            page.goto(gw.url + "/graphql")
            page.wait_for_selector(".graphiql-execute-button", timeout=15_000)
            page.click(".graphiql-execute-button")
            listening(gw, 1)
            summary = f"asked in GraphiQL {uuid.uuid4().hex[:6]}"
            answer = gw.gql(RECORD, {"i": {"customerId": gid, "channel": "CHAT", "summary": summary,
                                           "idempotencyKey": uuid.uuid4().hex}})
            assert "errors" not in answer, answer
            page.wait_for_function(f"document.querySelector('.result-window').innerText.includes({json.dumps(summary)})",
                                   timeout=15_000)
            result = page.inner_text(".result-window")
            shot = Path(os.environ.get("GRAPHIQL_SCREENSHOT", tmp_path / "graphiql-subscription.png"))
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert '"kind": "CONTACT"' in result and f"Chat: {summary} (resolved)" in result
    assert shot.stat().st_size > 10_000
