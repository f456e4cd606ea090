"""Where a cold full view's CPU goes: the same customers measured layer by layer, with this process
running the gateway's own parts against the benchmark's estate, and one HTTP request's framing
measured on the gateway process."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any

import config
import connectors
from bench.common import cpu_s
from bench.floor import Floor
from connectors.base import Connector
from connectors.http import new_session
from resolvers.context import Context, Sources
from server.app import build_schema
from server.limits import Limits
from server.runtime import tune_gc
from tests.harness import LIVE, Gateway, gateway_config
from tests.queries import CUSTOMER_FULL

LEVEL_1 = ("crm", "accounts", "orders", "tickets", "interactions", "marketing", "loyalty", "warranties",
           "web_sessions")


async def _cpu_ms(view: Callable[[str], Awaitable[Any]], ids: list[str], rounds: int) -> float:
    for g in ids:
        await view(g)
    start = time.process_time()
    for i in range(rounds):
        await view(ids[i % len(ids)])
    return (time.process_time() - start) * 1000 / rounds


def _records(ctx: Context, through_loaders: bool) -> Callable[[str], Awaitable[Any]]:
    """One customer's records of every entity the full view shows, each dependent call after its parent
    (parcels of orders, agents of contacts), straight through the connectors or through the loaders."""
    async def get(c: Connector, entity: str, keys: list[str]) -> list[Any]:
        if not keys:
            return []
        if through_loaders:
            return await ctx.load_many(c, entity, keys)
        found = await c.fetch(entity, keys, ctx.deadline)
        return [found.get(k) for k in keys]

    def flat(values: list[Any]) -> list[Any]:
        return [r for v in values if v for r in (v if isinstance(v, list) else [v])]

    async def view(golden_id: str) -> None:
        [idents] = await get(ctx.source(ctx.config.identity), "identities", [golden_id])

        async def entity(name: str) -> None:
            for c in ctx.providers(name):
                found = flat(await get(c, name, [i.id for i in idents if i.system == c.config.system]))
                if name == "orders":
                    await children("shipments", [o.number for o in found])
                elif name == "interactions":
                    await children("agents", sorted({i.agent_id for i in found if i.agent_id}))

        async def children(name: str, keys: list[str]) -> None:
            for c in ctx.providers(name):
                await get(c, name, keys)

        await asyncio.gather(*(entity(e) for e in LEVEL_1))

    return view


async def _in_process(est: Any, ids: list[str], rounds: int) -> dict[str, float]:
    cfg = config.parse(gateway_config(est))
    session = new_session()
    sources = Sources.build(cfg, connectors.build(cfg.sources, session))
    await sources.start()
    floor = Floor(est.data, est.ports)
    await floor.open()
    schema = build_schema()
    limits = Limits(sources.config.limits, sources.config.max_ids)  # checked per request, as the endpoint does
    thresholds = gc.get_threshold()
    gc.freeze()  # the benchmark's own data stays out of the collector's passes...
    tune_gc()  # ...and the collector is set as the gateway sets it

    async def graphql(golden_id: str, no_cache: bool) -> None:
        result = await schema.execute(CUSTOMER_FULL, variable_values={"id": golden_id},
                                      context_value=Context(sources, no_cache=no_cache, limits=limits))
        assert not result.errors, result.errors

    try:
        return {
            "floor": await _cpu_ms(floor.view, ids, rounds),
            "connectors": await _cpu_ms(lambda g: _records(Context(sources, True), False)(g), ids, rounds),
            "loaders": await _cpu_ms(lambda g: _records(Context(sources, True), True)(g), ids, rounds),
            "graphql_warm": await _cpu_ms(lambda g: graphql(g, False), ids, rounds),
            "view_cold": await _cpu_ms(lambda g: graphql(g, True), ids, rounds),
        }
    finally:
        gc.set_threshold(*thresholds)
        await floor.close()
        await sources.close()
        await session.close()


def _gateway_cpu_ms(gw: Gateway, send: Callable[[int], Any], rounds: int, warm_up: int = 20) -> float:
    """The gateway process's CPU per request, over `rounds` requests after a warm-up."""
    for i in range(warm_up):
        send(i)
    start = cpu_s(gw.proc.pid)
    for i in range(rounds):
        send(i)
    return (cpu_s(gw.proc.pid) - start) * 1000 / rounds


def breakdown(est: Any, gw: Gateway, ids: list[str], rounds: int) -> dict[str, Any]:
    m = asyncio.run(_in_process(est, ids, rounds))
    framing = _gateway_cpu_ms(gw, lambda _: gw.gql("{ __typename }"), max(200, rounds * 5))
    over_http = _gateway_cpu_ms(gw, lambda i: gw.gql(CUSTOMER_FULL, {"id": ids[i % len(ids)]}, LIVE), rounds)
    rows = [
        ("floor script: the sources' raw answers", m["floor"], ""),
        ("gateway connectors: the same calls, mapped to typed records", m["connectors"],
         m["connectors"] - m["floor"]),
        ("+ loaders: batching, single flight, cache writes", m["loaders"], m["loaders"] - m["connectors"]),
        ("GraphQL execution of the view, all records cached", m["graphql_warm"], ""),
        ("the cold view in process (loaders + GraphQL, async)", m["view_cold"], ""),
        ("one HTTP request's framing ({ __typename })", framing, ""),
        ("the cold view over HTTP", over_http, ""),
    ]
    return {"title": "3b. Where a cold full view's CPU goes (ms per view, same customers; this process "
                     "and the gateway process)",
            "header": ("layer", "CPU ms", "added"), "rows": rows, "data": {**m, "http_framing": framing,
                                                                            "view_over_http": over_http}}
