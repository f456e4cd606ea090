"""Readiness over the identity source's background probe (server/readiness.py) and the probe itself
(Connector.probe): in process, a scripted source and an injected clock, no sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from connectors.base import PING_KEY, SOURCE_UNAVAILABLE, Connector, Probe, SourceConfig, SourceError, SourceRejected
from connectors.resilience import CircuitBreaker
from server.readiness import STALE_PROBES, Readiness
from telemetry.request import RequestFacts, begin, end

OK, DOWN = Probe(True, 1.0, "identities: not found"), Probe(False, 0.0, "SOURCE_UNAVAILABLE: database unavailable")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def source(answers: list[Callable[[], Awaitable[Any]]], clock: Clock, failures: int = 2) -> Connector:
    """A connector whose one entity answers each call with the next of `answers` (its keys noted)."""
    conn = Connector(SourceConfig(name="crosswalk", kind="sql", system="crosswalk", dsn="sqlite:///unused"))
    conn.circuit = CircuitBreaker(failures, reset_s=5.0, clock=clock)
    conn.asked = []  # type: ignore[attr-defined]

    async def fetch(_: Any, keys: list[str]) -> dict[str, Any]:
        conn.asked.append(keys)  # type: ignore[attr-defined]
        return await answers.pop(0)()
    conn.entities = {"identities": fetch}
    return conn


async def not_found() -> dict[str, Any]:
    return {}


async def unavailable() -> dict[str, Any]:
    raise SourceError("crosswalk", SOURCE_UNAVAILABLE, "crosswalk: database unavailable", "refused")


async def hangs() -> dict[str, Any]:
    await asyncio.Event().wait()
    return {}


def test_not_ready_until_the_identity_source_has_answered_once() -> None:
    clock = Clock()
    ready = Readiness(source([], clock), interval_s=2.0, clock=clock)
    assert ready.reason() == "identity source 'crosswalk' has not answered since start"
    ready.note(DOWN)
    clock.now += 2
    ready.note(DOWN)
    assert ready.reason() == ("identity source 'crosswalk' has not answered since start "
                              "(last probe: SOURCE_UNAVAILABLE: database unavailable)")
    assert ready.status()["probes"] == 2 and ready.status()["last_ok_s_ago"] is None
    ready.note(OK)
    assert ready.reason() is None
    assert ready.status()["last_failure_s_ago"] == 0.0


def test_a_failed_probe_makes_it_unready_and_the_next_answer_ready_again() -> None:
    clock = Clock()
    ready = Readiness(source([], clock), interval_s=2.0, clock=clock)
    ready.note(OK)
    clock.now += 2
    ready.note(DOWN)
    assert ready.reason() == ("identity source 'crosswalk' did not answer its last probe: "
                              "SOURCE_UNAVAILABLE: database unavailable")
    assert ready.status()["last_ok_s_ago"] == 2.0
    clock.now += 2
    ready.note(OK)
    assert ready.reason() is None


def test_an_answer_grows_stale_when_no_probe_follows() -> None:
    clock = Clock()
    ready = Readiness(source([], clock), interval_s=2.0, clock=clock)
    ready.note(OK)
    clock.now += STALE_PROBES * 2.0 + ready.timeout_s  # probes may run late, up to here
    assert ready.reason() is None
    clock.now += 1
    assert ready.reason() == "identity source 'crosswalk' last answered 9 s ago (no probe since)"


@pytest.mark.parametrize("state", ["open", "half_open"])
def test_an_open_or_half_open_circuit_is_not_ready(state: str) -> None:
    clock = Clock()
    conn = source([], clock)
    ready = Readiness(conn, interval_s=2.0, clock=clock)
    ready.note(OK)
    conn.circuit.failure()
    conn.circuit.failure()  # the clients' calls open it
    if state == "half_open":
        clock.now += 5
        assert conn.circuit.allow()  # a client's trial call is in flight
    assert ready.reason() == "identity source 'crosswalk' circuit is " + (
        "open, next trial in 5.0 s" if state == "open" else "half_open")
    ready.note(DOWN)
    assert "circuit is" in str(ready.reason())  # the circuit says it first
    conn.circuit.success()
    ready.note(OK)
    assert ready.reason() is None


def test_a_probe_asks_for_a_key_nobody_has_and_is_not_client_traffic() -> None:
    clock = Clock()
    conn = source([not_found, unavailable], clock)

    async def scenario() -> tuple[Probe, Probe, RequestFacts]:
        facts = RequestFacts("r1", "POST", "/graphql")
        token = begin(facts)  # even inside a request, a probe is not one of its source calls
        try:
            return await conn.probe(1.0), await conn.probe(1.0), facts
        finally:
            end(facts, token)

    answered, failed, facts = asyncio.run(scenario())
    assert answered.up and answered.detail == "identities: not found"
    assert not failed.up and failed.detail == "SOURCE_UNAVAILABLE: database unavailable"
    assert conn.asked == [[PING_KEY], [PING_KEY]]  # type: ignore[attr-defined]
    assert (conn.calls, conn.keys, conn.failures) == (0, 0, 0)
    assert conn.recent.summary(60).calls == 0 and facts.sources == set()


def test_a_refused_key_still_proves_the_source_answers() -> None:
    async def refuses() -> dict[str, Any]:
        raise SourceRejected("crosswalk", "BAD_USER_INPUT", "crosswalk: no such id")

    result = asyncio.run(source([refuses], Clock()).probe(1.0))
    assert result.up and result.detail == "identities: answered, refused the key (BAD_USER_INPUT)"


def test_a_probe_that_gets_no_answer_ends_at_its_timeout() -> None:
    result = asyncio.run(source([hangs], Clock()).probe(0.05))
    assert not result.up and result.detail == "SOURCE_TIMEOUT: no answer within 0.05 s"


def test_probes_never_open_a_closed_circuit() -> None:
    clock = Clock()
    conn = source([unavailable] * 5, clock, failures=2)

    async def scenario() -> None:
        for _ in range(5):
            assert not (await conn.probe(1.0)).up

    asyncio.run(scenario())
    assert conn.circuit.state == "closed" and conn.circuit.opens == 0


def test_an_open_circuit_recovers_through_the_probe_without_client_traffic() -> None:
    clock = Clock()
    conn = source([unavailable, not_found], clock, failures=1)
    conn.circuit.failure()  # the clients' calls opened it

    async def scenario() -> list[Probe]:
        early = await conn.probe(1.0)  # within circuit_reset_s: the source is not asked
        clock.now += 5
        trial_failed = await conn.probe(1.0)  # the half-open trial: its failure re-opens the circuit
        assert conn.circuit.state == "open" and conn.circuit.opens == 2
        clock.now += 5
        return [early, trial_failed, await conn.probe(1.0)]

    early, trial_failed, trial_ok = asyncio.run(scenario())
    assert not early.up and early.detail == "CIRCUIT_OPEN: circuit open, next trial in 5.0 s"
    assert not trial_failed.up and trial_ok.up
    assert conn.circuit.state == "closed"
    assert len(conn.asked) == 2  # type: ignore[attr-defined]


def test_the_probe_loop_probes_every_interval_and_outlives_a_broken_probe() -> None:
    async def bug() -> dict[str, Any]:
        raise RuntimeError("a bug below the probe")

    clock = Clock()
    conn = source([not_found, bug, unavailable, not_found], clock)
    ready = Readiness(conn, interval_s=2.0, clock=clock)
    verdicts: list[str | None] = []

    async def sleep(interval: float) -> None:
        assert interval == 2.0
        verdicts.append(ready.reason())
        clock.now += interval
        if len(verdicts) == 4:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(ready.run(sleep))
    assert verdicts == [None, "identity source 'crosswalk' did not answer its last probe: probe failed (RuntimeError)",
                        "identity source 'crosswalk' did not answer its last probe: "
                        "SOURCE_UNAVAILABLE: database unavailable", None]
