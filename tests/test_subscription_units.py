"""The subscriptions' logic in-process: the bounded memory of events sent, the token in connection_init,
the contact announcements' checks (with an injected clock), the refusals' statuses, the local fan-out,
the configuration refusing a contact lookup the identity source does not offer, and an SSE subscription
released when its client leaves before the first byte."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

import config
from cache.broadcast import Broadcast
from connectors.events import Contacts, Events, Webhook
from resolvers.live import Seen
from server.contacts import announcement
from server.events import Refused, Webhooks, sign
from server.settings import EventSettings, SubscriptionSettings
from server.subscriptions import EventStream, Live, _authorization, status_of
from tests.test_config import edit, refused

SECRET = "contact-secret-0123456789"
NOW = 1_800_000_000.0
CHANNELS = ["VOICE", "CHAT", "EMAIL"]


def test_seen_remembers_a_bounded_number_of_events() -> None:
    seen = Seen(3)
    assert [seen.add(("contact", "CONTACT", str(i), "s")) for i in range(4)] == [True] * 4
    assert len(seen) == 3
    assert not seen.add(("contact", "CONTACT", "3", "s"))  # still remembered
    assert seen.add(("contact", "CONTACT", "0", "s"))  # the oldest was forgotten: sent again, never lost
    assert seen.add(("contact", "CONTACT", "3", "changed summary"))  # the same record, changed: news


def test_the_token_is_read_from_connection_init_in_any_case() -> None:
    assert _authorization({"authorization": "Bearer a"}) == "Bearer a"
    assert _authorization({"Authorization": "Bearer b"}) == "Bearer b"  # GraphiQL's header editor
    assert _authorization({"headers": {"AUTHORIZATION": "Bearer c"}}) == "Bearer c"
    assert _authorization({"authorization": 7}) is None and _authorization({}) is None


def test_refusals_before_a_stream_have_the_status_of_their_code() -> None:
    def errors(code: str) -> list[dict[str, object]]:
        return [{"message": "m", "extensions": {"code": code}}]

    assert [status_of(errors(c)) for c in ("FORBIDDEN", "NOT_FOUND", "GRAPHQL_VALIDATION_FAILED",
                                           "SOURCE_UNAVAILABLE")] == [403, 404, 400, 503]


def _sources() -> dict[str, SimpleNamespace]:
    hook = Events(webhook=Webhook(secret=SECRET), contacts=Contacts(lookups=["email", "phone"]))
    return {"contact": SimpleNamespace(events=hook, entities={"interactions": None}),
            "helpdesk": SimpleNamespace(events=Events(webhook=Webhook(secret=SECRET)), entities={"tickets": None})}


def _signed(body: dict[str, object], at: float = NOW, secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    raw = json.dumps(body).encode()
    stamp = str(int(at))
    return {"x-cg-timestamp": stamp, "x-cg-signature": sign(secret.encode(), stamp, raw)}, raw


def test_a_contact_announcement_is_checked_before_it_is_told() -> None:
    sources = _sources()
    hooks = Webhooks(sources, EventSettings(), clock=lambda: NOW)  # type: ignore[arg-type]

    def announce(body: dict[str, object], **kw: object) -> dict[str, object]:
        headers, raw = _signed(body, **kw)  # type: ignore[arg-type]
        return announcement(hooks, sources, CHANNELS, headers, raw, clock=lambda: NOW)

    def code(body: dict[str, object], **kw: object) -> str:
        with pytest.raises(Refused) as err:
            announce(body, **kw)
        return err.value.code

    call = {"source": "contact", "channel": "VOICE", "from": " +31 6 1234 5678 "}
    assert announce(call) == {"source": "contact", "channel": "VOICE", "from": "+31 6 1234 5678", "at": NOW}
    assert code(call) == "REPLAYED"  # the same delivery again
    assert code({**call, "from": "+31 6 1"}, secret="another-secret-0123456") == "BAD_SIGNATURE"
    assert code({**call, "from": "+31 6 2"}, at=NOW - 3600) == "STALE_TIMESTAMP"
    assert code({**call, "source": "helpdesk"}) == "BAD_EVENT"  # takes webhooks, announces no contacts
    assert code({**call, "channel": "PIGEON"}) == "BAD_EVENT"
    assert code({**call, "from": ""}) == "BAD_EVENT"
    assert code({**call, "from": "x", "caller_name": "Ann"}) == "BAD_EVENT"
    at = announce({**call, "from": "ann@inbox.example", "at": "2027-01-15T08:00:00Z"})["at"]
    assert at == datetime(2027, 1, 15, 8, tzinfo=timezone.utc).timestamp()  # when it started, as the source says


def test_broadcast_fans_out_to_bounded_listeners_without_redis() -> None:
    async def go() -> None:
        bus = Broadcast()
        with bus.listen(2) as slow, bus.listen(10) as fast:
            for i in range(3):
                await bus.publish({"n": i})
            got = []
            async for message in fast:
                got.append(message["n"])
                if len(got) == 3:
                    break
            assert got == [0, 1, 2]
            assert slow.missed == 1  # the slow one lost its oldest, the publisher never waited
            assert [m["n"] async for m in _take(slow, 2)] == [1, 2]
        assert not len(bus.local)

    asyncio.run(go())


async def _take(listener: object, n: int):  # type: ignore[no-untyped-def]
    async for message in listener:  # type: ignore[attr-defined]
        yield message
        n -= 1
        if n == 0:
            return


def test_a_contact_lookup_the_identity_source_lacks_is_refused(copy: Path) -> None:
    edit(copy / "sources" / "contact.yaml", {"events.contacts": {"lookups": ["email", "fax_number"]}})
    message = refused(copy / "gateway.yaml")
    assert "contact.yaml: events.contacts.lookups.1: 'fax_number' is not a lookup of the identity source" in message
    edit(copy / "sources" / "contact.yaml", {"events.contacts": {"lookups": ["phone"]}})
    assert config.load(copy / "gateway.yaml").sources["contact"].events.contacts.lookups == ["phone"]


def test_an_sse_subscription_is_released_when_its_client_leaves_before_the_first_byte() -> None:
    """The stream's generator never starts (so its own `finally` never runs): the response still frees the
    slot, stops waiting for the first event and closes the subscription's results, once."""
    closed: list[str] = []

    async def results() -> object:
        try:
            await asyncio.Future()  # a subscription waiting for its first event
            yield b""
        finally:
            closed.append("results")

    async def scenario() -> tuple[int, bool]:
        live = Live(SimpleNamespace(), SubscriptionSettings())
        live._take()
        stream = results()
        pending = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)  # the first event's wait is under way, as in Live.sse
        release = live._releaser(stream, pending)
        started: list[bool] = []

        async def events() -> object:
            started.append(True)
            yield b""

        async def gone(_message: dict) -> None:
            raise OSError("the client has gone")  # what the server says when it cannot send the head

        async def receive() -> dict:
            return {"type": "http.disconnect"}

        with pytest.raises(Exception):
            await EventStream(events(), release)({"type": "http", "asgi": {"spec_version": "2.4"}}, receive, gone)
        after = (live.running, pending.cancelled(), list(closed), bool(started))
        await release()  # a second release (the generator's own) changes nothing
        return after + (live.running, list(closed))

    running, cancelled, closed_then, started, running_later, closed_later = asyncio.run(scenario())
    assert (running, cancelled, closed_then, started) == (0, True, ["results"], False)
    assert (running_later, closed_later) == (0, ["results"])
