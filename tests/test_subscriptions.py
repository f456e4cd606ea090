"""Subscriptions end to end, with real clients (aiohttp speaking graphql-transport-ws, and reading GraphQL
over SSE) against a gateway over the demo estate: customerEvents from a gateway write and from a change
made at the source behind the gateway's back; the screen pop for a known, an unknown and a shared
household phone; auth refused on both transports; the limits; two gateways on one Redis."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import config as gateway_settings
from estate.generate import golden_id
from server.auth import issue
from tests.harness import Estate, Gateway, gateway_config, http, running_estate, running_gateway, start_gateway
from tests.live_client import SseStream, WsClient, listening, running
from tests.truth import Truth

EVENTS = """subscription($id: ID!, $kinds: [EventKind!]) {
  customerEvents(id: $id, kinds: $kinds) { kind source channel summary record { ... on Interaction { id channel } } }
}"""
POP = """subscription($channels: [Channel!]) {
  incomingContacts(channels: $channels) {
    channel from source
    customer {
      id name
      accounts { number }
      offers { id campaignName }
      tickets(unresolved: true) { id subject }
      crossSell { eligible blockers { kind reason } }
      bestAgent { score reasons agent { id name } }
    }
    candidates { id }
  }
}"""
RECORD = """mutation($i: RecordInteractionInput!) { recordInteraction(input: $i) { id } }"""
LIMITS = {"max_per_connection": 3, "max_per_instance": 8, "keepalive_s": 0.5}


@pytest.fixture(scope="module")
def live_estate(workdir: Path) -> Iterator[Estate]:
    yield from running_estate(workdir, "live-data", customers=150, seed=13)


@pytest.fixture(scope="module")
def t(live_estate: Estate) -> Truth:
    from estate.generate import generate
    return Truth(generate(live_estate.customers, live_estate.seed, live_estate.as_of))


def _config(estate: Estate, **cache: Any) -> dict[str, Any]:
    cfg = gateway_config(estate)
    cfg["subscriptions"] = dict(LIMITS)
    cfg["auth"]["leeway_s"] = 0  # a token's end is its exp (the expiry test)
    cfg["cache"].update(cache)
    return cfg


def _webhooks_to(estate: Estate, gw: Gateway) -> None:
    """The contact center's webhooks and announcements go to this gateway."""
    status, _, body = http("POST", estate.url("contact", "/__events"), json.dumps({"url": gw.url + "/events"}).encode(),
                           {"content-type": "application/json"})
    assert status == 200, body


@pytest.fixture(scope="module")
def gw(live_estate: Estate, workdir: Path) -> Iterator[Gateway]:
    for g in running_gateway(_config(live_estate), workdir, "live"):
        _webhooks_to(live_estate, g)
        yield g


def phones(t: Truth) -> dict[str, list[str]]:
    """Each phone match key and the golden ids it matches."""
    out: dict[str, list[str]] = {}
    for row in t.est.match_keys:
        if row["kind"] == "phone":
            out.setdefault(row["match_key"], [])
            if row["golden_id"] not in out[row["match_key"]]:
                out[row["match_key"]].append(row["golden_id"])
    return out


def caller(t: Truth) -> tuple[str, str]:
    """A customer known to the contact center by a number that is theirs alone, and that number."""
    shared = {p for p, g in phones(t).items() if len(g) > 1}
    for n in range(1, t.est.customers + 1):
        gid = golden_id(n)
        own = [p for p in t.ids[gid]["contact"] if p not in shared and phones(t).get(p) == [gid]]
        if own and t.ids[gid]["billing"]:
            return gid, own[0]
    raise AssertionError("the estate should hold a customer with a phone of their own")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def at_source(estate: Estate, phone: str, summary: str) -> None:
    """An interaction recorded at the contact center itself, not through the gateway."""
    status, _, body = http("POST", estate.url("contact", "/v1/interactions"),
                           json.dumps({"phoneNumber": phone, "mediaType": "email", "summary": summary}).encode(),
                           {"content-type": "application/json", "idempotency-key": uuid.uuid4().hex})
    assert status == 201, body


def ring(estate: Estate, channel: str, sender: str) -> None:
    status, _, body = http("POST", estate.url("contact", "/__incoming"),
                           json.dumps({"channel": channel, "from": sender}).encode(), {"content-type": "application/json"})
    assert status == 202, body


def record(gw: Gateway, gid: str, summary: str) -> str:
    answer = gw.gql(RECORD, {"i": {"customerId": gid, "channel": "CHAT", "summary": summary,
                                   "idempotencyKey": uuid.uuid4().hex}})
    assert "errors" not in answer, answer
    return answer["data"]["recordInteraction"]["id"]  # type: ignore[no-any-return]


def token(gw: Gateway, role: str = "agent") -> dict[str, str]:
    return {"authorization": f"Bearer {gw.tokens[role]}"}


def test_customer_events_over_websocket(gw: Gateway, live_estate: Estate, t: Truth) -> None:
    gid, phone = caller(t)

    async def go() -> None:
        async with aiohttp.ClientSession() as s:
            ws = await WsClient.open(s, gw.url, token(gw))
            await ws.subscribe("contacts", EVENTS, {"id": gid, "kinds": ["CONTACT"]})
            await ws.subscribe("tickets", EVENTS, {"id": gid, "kinds": ["TICKET_OPENED"]})
            await listening(s, gw.url, 2)
            written = record(gw, gid, "asked about the refund of order 17")
            first = await ws.receive()
            assert first["id"] == "contacts" and first["type"] == "next"
            event = first["payload"]["data"]["customerEvents"]
            assert event == {"kind": "CONTACT", "source": "contact", "channel": "CHAT",
                             "summary": "Chat: asked about the refund of order 17 (resolved)",
                             "record": {"id": written, "channel": "CHAT"}}
            # The contact center's own webhook for that write changes nothing new: the next message is the
            # interaction recorded at the source behind the gateway's back, once, and no ticket event at all.
            at_source(live_estate, phone, "wrote in about a late parcel")
            second = await ws.receive()
            assert second["id"] == "contacts"
            assert second["payload"]["data"]["customerEvents"]["summary"] == "Email: wrote in about a late parcel (resolved)"
            await ws.complete("contacts")
            await ws.complete("tickets")
            await ws.close()

    run(go())


def test_customer_events_over_sse(gw: Gateway, live_estate: Estate, t: Truth) -> None:
    gid, phone = caller(t)

    async def go() -> None:
        async with aiohttp.ClientSession() as s:
            sse = await SseStream.open(s, gw.url, EVENTS, {"id": gid}, token(gw))
            assert sse.response.status == 200  # answered once it listens
            assert sse.response.headers["content-type"].startswith("text/event-stream")
            at_source(live_estate, phone, "asked for a callback about an invoice")
            kind, data = await sse.next()
            assert kind == "next"
            assert data["data"]["customerEvents"]["summary"] == "Email: asked for a callback about an invoice (resolved)"
            record(gw, gid, "called back about the invoice")
            kind, data = await sse.next()
            assert data["data"]["customerEvents"]["summary"] == "Chat: called back about the invoice (resolved)"
            sse.close()

            unknown = await SseStream.open(s, gw.url, EVENTS, {"id": "C-999999"}, token(gw))
            assert unknown.response.status == 404
            assert (await unknown.response.json())["errors"] == [
                {"message": "no customer with id C-999999", "extensions": {"code": "NOT_FOUND"}}]
            bad = await SseStream.open(s, gw.url, "subscription { customerEvents { kind } }", None, token(gw))
            assert bad.response.status == 400
            assert (await bad.response.json())["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"

    run(go())


def test_screen_pop_known_unknown_and_shared_phones(gw: Gateway, live_estate: Estate, t: Truth) -> None:
    gid, phone = caller(t)
    household, members = next((p, sorted(g)) for p, g in phones(t).items() if len(g) > 1)

    async def go() -> None:
        async with aiohttp.ClientSession() as s:
            ws = await WsClient.open(s, gw.url, token(gw))
            await ws.subscribe("pop", POP, {"channels": ["VOICE", "CHAT"]})
            await listening(s, gw.url, 1)
            ring(live_estate, "EMAIL", "someone@inbox.example")  # not a channel this desk takes
            ring(live_estate, "VOICE", phone)
            known = (await ws.receive())["payload"]
            assert "errors" not in known, known
            pop = known["data"]["incomingContacts"]
            assert (pop["channel"], pop["from"], pop["source"], pop["candidates"]) == ("VOICE", phone, "contact", [])
            customer = pop["customer"]
            assert customer["id"] == gid
            assert {a["number"] for a in customer["accounts"]} == set(t.ids[gid]["billing"])
            assert isinstance(customer["crossSell"]["eligible"], bool)
            assert customer["crossSell"]["eligible"] == (customer["crossSell"]["blockers"] == [])
            agents = customer["bestAgent"]
            assert len(agents) == 3 and all(a["reasons"] for a in agents)
            assert [a["score"] for a in agents] == sorted((a["score"] for a in agents), reverse=True)

            ring(live_estate, "CHAT", "+31 6 0000 0001")  # nobody's number
            unknown = (await ws.receive())["payload"]["data"]["incomingContacts"]
            assert (unknown["customer"], unknown["candidates"]) == (None, [])

            ring(live_estate, "VOICE", household)
            shared = (await ws.receive())["payload"]["data"]["incomingContacts"]
            assert shared["customer"] is None  # never one person picked for a shared phone
            assert sorted(c["id"] for c in shared["candidates"]) == members
            await ws.close()

    run(go())


def test_auth_is_required_on_both_transports(gw: Gateway) -> None:
    async def go() -> None:
        async with aiohttp.ClientSession() as s:
            anonymous = await WsClient.open(s, gw.url, {}, ack=False)
            code, reason = await anonymous.closed()
            assert code == 4401 and "authentication required" in reason
            forged = await WsClient.open(s, gw.url, {"Authorization": "Bearer not.a.jwt"}, ack=False)
            assert (await forged.closed())[0] == 4401
            early = await s.ws_connect(gw.url.replace("http", "ws") + "/graphql", protocols=("graphql-transport-ws",))
            await early.send_json({"id": "1", "type": "subscribe", "payload": {"query": POP}})
            assert (await early.receive(timeout=30)).type == aiohttp.WSMsgType.CLOSE and early.close_code == 4401
            # A role that may not read the field cannot subscribe to it.
            pos = await WsClient.open(s, gw.url, token(gw, "pos"))
            await pos.subscribe("pop", POP)
            refused = await pos.receive()
            assert refused["type"] == "error"
            assert refused["payload"][0]["message"] == "Subscription.incomingContacts is not available to role 'pos'"
            assert refused["payload"][0]["extensions"]["code"] == "FORBIDDEN"
            await pos.ping_pong()  # the connection stays open for what the role may do
            await pos.close()
            pos_sse = await SseStream.open(s, gw.url, POP, None, token(gw, "pos"))
            assert pos_sse.response.status == 403

            for headers, status in (({}, 401), ({"authorization": "Bearer not.a.jwt"}, 401)):
                sse = await SseStream.open(s, gw.url, POP, None, headers)
                assert sse.response.status == status
                assert (await sse.response.json())["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    run(go())


def test_a_subscription_ends_when_its_token_expires(gw: Gateway, live_estate: Estate) -> None:
    settings = gateway_settings.parse(copy.deepcopy(_config(live_estate))).auth
    assert settings is not None
    short = {"authorization": f"Bearer {issue(settings, 'agent', 'test-short', ttl_s=2)}"}

    async def go() -> None:
        async with aiohttp.ClientSession() as s:
            ws = await WsClient.open(s, gw.url, short)
            await ws.subscribe("pop", POP)
            sse = await SseStream.open(s, gw.url, POP, None, short)
            assert sse.response.status == 200
            code, reason = await ws.closed()
            assert code == 4401 and "expired" in reason
            kind, data = await sse.next()
            assert kind == "next" and data["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            assert (await sse.next())[0] == "complete"

    run(go())


def test_limits_per_connection_and_per_instance(gw: Gateway, t: Truth) -> None:
    gid, _ = caller(t)

    async def go() -> None:
        async with aiohttp.ClientSession() as s:
            await running(s, gw.url, 0)
            first = await WsClient.open(s, gw.url, token(gw))
            for i in range(3):
                await first.subscribe(f"s{i}", POP)
            await first.subscribe("s3", POP)
            refused = await first.receive()
            assert refused["id"] == "s3" and refused["type"] == "error"
            assert refused["payload"][0]["extensions"] == {
                "code": "TOO_MANY_SUBSCRIPTIONS", "limit": {"name": "max_per_connection", "value": 3}}
            second = await WsClient.open(s, gw.url, token(gw))
            for i in range(3):
                await second.subscribe(f"s{i}", EVENTS, {"id": gid})
            streams = [await SseStream.open(s, gw.url, POP, None, token(gw)) for _ in range(2)]
            assert [x.response.status for x in streams] == [200, 200]  # 8 now, the instance's limit
            over = await SseStream.open(s, gw.url, POP, None, token(gw))
            assert over.response.status == 503
            assert (await over.response.json())["errors"][0]["extensions"]["limit"] == {
                "name": "max_per_instance", "value": 8}
            third = await WsClient.open(s, gw.url, token(gw))
            await third.subscribe("x", POP)
            assert (await third.receive())["payload"][0]["extensions"]["limit"]["name"] == "max_per_instance"
            await first.close()  # its three end: room again
            await running(s, gw.url, 5)
            again = await SseStream.open(s, gw.url, POP, None, token(gw))
            assert again.response.status == 200
            for x in [*streams, again]:
                x.close()
            await second.close()
            await third.close()
            await running(s, gw.url, 0)

    run(go())


def test_a_subscriber_on_one_gateway_hears_what_another_was_told(live_estate: Estate, workdir: Path, t: Truth,
                                                                  redis_url: str) -> None:  # noqa: F811
    gid, phone = caller(t)
    cfg = _config(live_estate, redis_url=redis_url, namespace=f"cgtest-{uuid.uuid4().hex[:8]}")
    a = start_gateway(cfg, workdir, "live-a")
    b = start_gateway(cfg, workdir, "live-b")
    try:
        async def go() -> None:
            async with aiohttp.ClientSession() as s:
                ws = await WsClient.open(s, b.url, token(b))
                await ws.subscribe("pop", POP)
                sse = await SseStream.open(s, b.url, EVENTS, {"id": gid, "kinds": ["CONTACT"]}, token(b))
                await listening(s, b.url, 2)
                _webhooks_to(live_estate, a)  # the contact center tells gateway A only
                ring(live_estate, "VOICE", phone)
                pop = (await ws.receive())["payload"]["data"]["incomingContacts"]
                assert pop["customer"]["id"] == gid
                record(a, gid, "told gateway A about a broken screen")
                kind, data = await sse.next()
                assert data["data"]["customerEvents"]["summary"] == "Chat: told gateway A about a broken screen (resolved)"
                sse.close()
                await ws.close()

        run(go())
    finally:
        a.stop()
        b.stop()
