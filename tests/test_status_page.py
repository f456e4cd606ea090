"""The live status page in a real browser: Playwright (from PyPI) driving Debian's chromium, with one
source down. Skipped when either is missing, except under CI=true, where it must run (.ci/run installs
them)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Estate, Gateway, gateway_config, running_estate, running_gateway, tokens_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
VIEW = "query($id: ID!) { customer(id: $id) { name accounts { number } } }"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser test must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def own_estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    yield from running_estate(tmp_path_factory.mktemp("status"), "estate", customers=60, seed=7)


@pytest.fixture(scope="module")
def gw(own_estate: Estate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    cfg = gateway_config(own_estate)
    for g in running_gateway(cfg, tmp_path_factory.mktemp("status-gw"), "gateway"):
        g.tokens = tokens_for(cfg)
        yield g


def test_the_status_page_shows_the_source_that_is_down(own_estate: Estate, gw: Gateway, tmp_path: Path) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    if CHROMIUM is None:
        _unavailable("Debian's chromium is not installed")
    ids = [f"C-{i:06d}" for i in range(1, 41)]
    for gid in ids[:4]:
        assert "errors" not in gw.gql(VIEW, {"id": gid})
    own_estate.faults("billing", {"down": True})
    try:
        failed = [e["extensions"]["source"] for gid in ids[4:]  # billing calls failing: its circuit opens
                  for e in gw.gql(VIEW, {"id": gid}, headers={"cache-control": "no-cache"}).get("errors", [])]
        assert len(failed) >= 5 and set(failed) == {"billing"}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless=new"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 720})
                page.goto(gw.url + "/status")
                page.wait_for_selector('tr[data-source="billing"].down', timeout=15_000)
                rows = {r.get_attribute("data-source"): r.get_attribute("class")
                        for r in page.query_selector_all("#sources tbody tr")}
                summary = page.inner_text("#summary")
                shot = Path(os.environ.get("STATUS_SCREENSHOT", tmp_path / "status-billing-down.png"))
                page.screenshot(path=str(shot), full_page=True)
            finally:
                browser.close()
    finally:
        own_estate.clear_faults()
    assert rows["billing"] == "down" and rows["crm"] == "up" and rows["crosswalk"] == "up"
    assert len(rows) == 12 and "DOWN: billing" in summary and "requests/s" in summary
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
