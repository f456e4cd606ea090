"""One demo estate and one gateway for the whole test session, as real processes on loopback."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from estate.generate import Estate as EstateData
from estate.generate import generate
from tests.harness import ROOT, Estate, Gateway, gateway_config, start_estate, start_gateway

# A small helpdesk page so that cursor pagination is exercised on every run.
HELPDESK_PAGE = 5


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("customer-graph")


@pytest.fixture(scope="session")
def estate(workdir: Path) -> Iterator[Estate]:
    est = start_estate(workdir / "data", customers=400)
    yield est
    est.stop()


@pytest.fixture(scope="session")
def truth(estate: Estate) -> EstateData:
    """The generator's ground truth: the same estate, regenerated in-process."""
    return generate(estate.customers, estate.seed, estate.as_of)


@pytest.fixture(scope="session")
def gateway(estate: Estate, workdir: Path) -> Iterator[Gateway]:
    gw = start_gateway(gateway_config(estate, {"helpdesk": {"options": {"page_size": HELPDESK_PAGE}}}), workdir)
    yield gw
    gw.stop()


@pytest.fixture(autouse=True)
def _no_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts and ends with healthy sources."""
    yield
    if "estate" in request.fixturenames:
        request.getfixturevalue("estate").clear_faults()


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """gateway.yaml with its sources and operations folders, copied into a temporary folder to break."""
    shutil.copy(ROOT / "gateway.yaml", tmp_path / "gateway.yaml")
    shutil.copytree(ROOT / "sources", tmp_path / "sources")
    shutil.copytree(ROOT / "operations", tmp_path / "operations")
    return tmp_path


def _redis_reachable() -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return None
    except OSError as exc:
        return str(exc)


@pytest.fixture
def redis_url() -> str:
    """Redis on loopback for the tests that share it between gateways: its URL, or a skip saying why (a
    failure under CI=true, where it must run)."""
    problem = _redis_reachable()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at 127.0.0.1:6379 must be reachable under CI: {problem}")
        pytest.skip(f"Redis at 127.0.0.1:6379 is not reachable: {problem}")
    return "redis://127.0.0.1:6379/0"
