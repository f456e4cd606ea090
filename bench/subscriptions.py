"""Subscriptions: how fast an event reaches a subscriber, and what 500 SSE subscribers cost (a script,
not a test; prints tables).

  python -m bench.subscriptions [--rounds 200] [--subscribers 500] [--fanouts 20]

Its own estate and gateway on loopback. Latency, one WebSocket subscriber:
- change at the source: an interaction written at the contact center itself (not through the gateway),
  until its customerEvents message arrives (the source's webhook, the invalidation, the re-read);
- gateway write: the recordInteraction mutation sent, until the subscriber's message arrives;
- screen pop: a contact announced (a signed POST /events/contacts), until the incomingContacts message
  with the identified customer, its crossSell and bestAgent arrives.
Fan-out: N SSE subscribers to incomingContacts on one gateway process; the gateway's RSS before and after
they subscribe (memory per subscriber), and per announcement the time until each subscriber has it.
Client and gateway share the machine's cores: the figures include the client's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from bench.common import pct, rss_mb, table
from tests.harness import Estate, Gateway, gateway_config, http, start_estate, start_gateway
from tests.live_client import SseStream, WsClient, listening

EVENTS = "subscription($id: ID!) { customerEvents(id: $id, kinds: [CONTACT]) { at summary } }"
POP = """subscription { incomingContacts { channel from customer { id name crossSell { eligible }
  bestAgent { score agent { name } } } candidates { id } } }"""
LIGHT_POP = "subscription { incomingContacts { channel from customer { id name } } }"
RECORD = "mutation($i: RecordInteractionInput!) { recordInteraction(input: $i) { id } }"
SECRET = b"demo-contact-events-secret"


def announce(gw: Gateway, phone: str) -> None:
    body = json.dumps({"source": "contact", "channel": "VOICE", "from": phone, "at": time.time()}).encode()
    stamp = str(int(time.time()))
    signature = "sha256=" + hmac.new(SECRET, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    status, _, answer = http("POST", gw.url + "/events/contacts", body,
                             {"content-type": "application/json", "x-cg-timestamp": stamp, "x-cg-signature": signature})
    assert status == 202, answer


def write_at_source(est: Estate, phone: str, summary: str) -> None:
    status, _, body = http("POST", est.url("contact", "/v1/interactions"),
                           json.dumps({"phoneNumber": phone, "mediaType": "email", "summary": summary}).encode(),
                           {"content-type": "application/json", "idempotency-key": uuid.uuid4().hex})
    assert status == 201, body


def row(name: str, ms: list[float]) -> list[object]:
    return [name, len(ms), pct(ms, 0.5), pct(ms, 0.99), max(ms)]


async def latencies(est: Estate, gw: Gateway, gid: str, phone: str, rounds: int) -> list[list[object]]:
    auth = {"authorization": f"Bearer {gw.tokens['agent']}"}
    source, write, pop = [], [], []
    async with aiohttp.ClientSession() as s:
        ws = await WsClient.open(s, gw.url, auth)
        await ws.subscribe("events", EVENTS, {"id": gid})
        await ws.subscribe("pop", POP)
        await listening(s, gw.url, 2)
        loop = asyncio.get_running_loop()
        for i in range(rounds):
            start = time.perf_counter()
            await loop.run_in_executor(None, write_at_source, est, phone, f"bench source {i}")
            assert (await ws.receive())["id"] == "events"
            source.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            await loop.run_in_executor(None, lambda: gw.gql(RECORD, {"i": {
                "customerId": gid, "channel": "CHAT", "summary": f"bench write {i}", "idempotencyKey": uuid.uuid4().hex}}))
            assert (await ws.receive())["id"] == "events"
            write.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            await loop.run_in_executor(None, announce, gw, phone)
            message = await ws.receive()
            assert message["id"] == "pop" and message["payload"]["data"]["incomingContacts"]["customer"]["id"] == gid
            pop.append((time.perf_counter() - start) * 1000)
        await ws.close()
    return [row("change at the source -> customerEvents", source), row("gateway write -> customerEvents", write),
            row("contact announced -> screen pop", pop)]


async def fan_out(gw: Gateway, phone: str, subscribers: int, fanouts: int) -> tuple[list[list[object]], float]:
    auth = {"authorization": f"Bearer {gw.tokens['agent']}"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        await asyncio.sleep(1)
        before = rss_mb(gw.proc.pid)
        streams = await asyncio.gather(*(SseStream.open(s, gw.url, LIGHT_POP, None, auth) for _ in range(subscribers)))
        assert all(x.response.status == 200 for x in streams)
        await listening(s, gw.url, subscribers)
        await asyncio.sleep(1)
        per_subscriber_kb = (rss_mb(gw.proc.pid) - before) * 1024 / subscribers
        loop = asyncio.get_running_loop()
        every, last = [], []
        for _ in range(fanouts):
            start = time.perf_counter()
            arrived: list[float] = []

            async def one(stream: SseStream) -> None:
                kind, data = await stream.next()
                assert kind == "next" and data["data"]["incomingContacts"]["from"] == phone, data
                arrived.append((time.perf_counter() - start) * 1000)

            waiting = asyncio.gather(*(one(x) for x in streams))
            await loop.run_in_executor(None, announce, gw, phone)
            await waiting
            every += arrived
            last.append(max(arrived))
        for x in streams:
            x.close()
    rows = [row(f"announcement -> each of {subscribers} SSE subscribers", every),
            row(f"announcement -> the last of {subscribers}", last)]
    return rows, per_subscriber_kb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--fanouts", type=int, default=20)
    parser.add_argument("--customers", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        est = start_estate(work / "data", customers=args.customers)
        cfg = gateway_config(est)
        cfg["subscriptions"] = {"max_per_instance": max(5000, args.subscribers + 10)}
        gw = start_gateway(cfg, work, "bench-subscriptions")
        try:
            http("POST", est.url("contact", "/__events"), json.dumps({"url": gw.url + "/events"}).encode(),
                 {"content-type": "application/json"})
            gid, phone = own_number(gw, args.customers)
            rows = asyncio.run(latencies(est, gw, gid, phone, args.rounds))
            header = ["path", "events", "p50 ms", "p99 ms", "max ms"]
            print(table(f"Event to subscriber, one WebSocket subscriber, {args.rounds} rounds", header, rows))
            fan, kb = asyncio.run(fan_out(gw, phone, args.subscribers, args.fanouts))
            print(table(f"Fan-out: {args.subscribers} SSE subscribers on one gateway process, {args.fanouts} "
                        f"announcements", header, fan))
            print(table("Memory", ["figure", "value"],
                        [[f"gateway RSS per SSE subscriber (KiB, {args.subscribers} subscribed)", kb],
                         ["gateway RSS now (MiB)", rss_mb(gw.proc.pid)]]))
        finally:
            gw.stop()
            est.stop()


def own_number(gw: Gateway, customers: int) -> tuple[str, str]:
    """A customer and a contact-center number that finds only them (asked of the gateway itself)."""
    query = "query($id: ID!) { customer(id: $id) { identities(system: \"contact\") { id } } }"
    find = "query($p: String!) { findCustomers(phone: $p) { id } }"
    for n in range(1, customers + 1):
        gid = f"C-{n:06d}"
        for ident in (gw.gql(query, {"id": gid})["data"]["customer"] or {}).get("identities") or []:
            if [c["id"] for c in gw.gql(find, {"p": ident["id"]})["data"]["findCustomers"]] == [gid]:
                return gid, ident["id"]
    raise AssertionError("no customer with a number of their own")


if __name__ == "__main__":
    main()
