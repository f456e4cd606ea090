"""The operation limits in-process (server/limits.py): shapes, counts and errors, no sources and no HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from graphql import get_introspection_query, parse

from config import GatewayConfig
from server.app import build_schema
from server.graphql_http import GRAPHQL_RESPONSE, JSON, _accepted
from server.limits import Disconnected, Limits, PayloadTooLarge, guarded, read_body
from server.settings import LimitSettings
from tests.queries import CUSTOMER_FULL, CUSTOMERS_FULL, FULL_CUSTOMER, POINT_OF_SALE

SCHEMA = build_schema()
IDS = [f"C-{n:06d}" for n in range(1, 101)]


def limits(**settings: Any) -> Limits:
    return Limits(LimitSettings(**settings), max_ids=100)


def check(lim: Limits, query: str, variables: dict[str, Any] | None = None, op: str | None = None) -> list[Any]:
    return [e.formatted for e in lim.check(SCHEMA._schema, parse(query), query, op, variables)]


def refused_by(lim: Limits, query: str, variables: dict[str, Any] | None = None) -> str | None:
    errors = check(lim, query, variables)
    return errors[0]["extensions"].get("limit", {}).get("name") if errors else None


def attack(aliases: int = 200) -> str:
    ids = ", ".join(f'"{i}"' for i in IDS)
    return FULL_CUSTOMER + "query { " + " ".join(f"a{i}: customers(ids: [{ids}]) {{ ...Full }}"
                                                 for i in range(aliases)) + " }"


def test_everyday_queries_pass() -> None:
    lim = limits()
    assert check(lim, CUSTOMERS_FULL, {"ids": IDS}) == []
    assert check(lim, CUSTOMER_FULL, {"id": "C-000001"}) == []
    assert check(lim, POINT_OF_SALE, {"phone": "0612345678"}) == []
    assert check(lim, get_introspection_query(descriptions=True)) == []  # GraphiQL's schema fetch


def test_shape_of_the_full_view() -> None:
    lim = limits()
    shape = lim.shape(SCHEMA._schema, parse(CUSTOMERS_FULL), CUSTOMERS_FULL, None)
    assert shape is not None
    assert (shape.depth, shape.aliases, shape.customers) == (4, 0, 0)
    assert shape.id_lists == (("ids", None),) and isinstance(shape.cost, int) and 1000 < shape.cost <= 5000


def test_the_alias_attack_each_limit_alone() -> None:
    query = attack()
    assert refused_by(limits(), query) == "max_aliases"
    assert refused_by(limits(max_aliases=1000), query) == "max_customers"
    errors = check(limits(max_aliases=1000), query)
    assert errors[0]["extensions"] == {"code": "QUERY_TOO_COMPLEX", "requested": 20000,
                                       "limit": {"name": "max_customers", "value": 100}}
    assert refused_by(limits(max_aliases=1000, max_customers=20000), query) is None


def test_customers_across_root_fields_and_variables() -> None:
    lim = limits()
    q = 'query($ids: [ID!]!) { a: customer(id: "C-1") { id } b: customers(ids: $ids) { id } }'
    assert refused_by(lim, q, {"ids": IDS[:99]}) is None
    assert check(lim, q, {"ids": IDS})[0]["extensions"]["requested"] == 101
    # findCustomers may return up to max_ids
    assert refused_by(lim, '{ a: findCustomers(phone: "1") { id } b: customer(id: "C-1") { id } }') == "max_customers"
    # a variable's default counts when the variable is not sent
    q = 'query($ids: [ID!]! = ["C-1", "C-2"]) { customers(ids: $ids) { id } c: customer(id: "C-3") { id } }'
    assert refused_by(limits(max_customers=2), q) == "max_customers"
    # over max_ids one customers(ids:) is refused by the field itself, touching none: its own clear error
    assert refused_by(lim, "query($ids: [ID!]!) { customers(ids: $ids) { id } }", {"ids": IDS + ["C-000101"]}) is None


def test_cost_follows_first() -> None:
    lim = limits()
    q = 'query($n: Int) { customer(id: "C-1") { orders(first: $n) { lines { sku } } } }'
    assert refused_by(lim, q, {"n": 400}) is None  # 1 + 400 x (1 + 10 lines)
    assert refused_by(lim, q, {"n": 500}) == "max_cost"
    assert refused_by(lim, q, {}) is None  # the schema's default, 20
    assert refused_by(lim, '{ customer(id: "C-1") { orders(first: 1000) { lines { sku } } } }') == "max_cost"
    # a connection's edges are as many as its `first`
    q = '{ customer(id: "C-1") { timeline(first: %d) { edges { node { record { ... on Order { lines { sku } } } } } } } }'
    assert refused_by(lim, q % 100) is None
    assert refused_by(lim, q % 1000) == "max_cost"
    # nested aliases multiply
    many = " ".join(f"o{i}: orders(first: 100) {{ lines {{ sku }} }}" for i in range(5))
    assert refused_by(lim, '{ customer(id: "C-1") { %s } }' % many) == "max_cost"


def test_depth_and_aliases() -> None:
    deep = '{ customer(id: "C-1") { timeline { edges { node { record { ... on Order { lines { sku } } } } } } } }'
    assert refused_by(limits(max_depth=6), deep) == "max_depth"
    assert refused_by(limits(max_depth=7), deep) is None
    aliased = "{ " + " ".join(f'c{i}: customer(id: "C-1") {{ n: name }}' for i in range(16)) + " }"
    assert check(limits(max_aliases=32), aliased) == []
    assert check(limits(max_aliases=31), aliased)[0]["extensions"]["requested"] == 32


def test_fragments_are_walked_once() -> None:
    """A fragment spread many times (a "fragment bomb") is analysed in linear time, counted as executed."""
    frags = ["fragment F0 on Customer { id name }"]
    for i in range(1, 40):
        frags.append(f"fragment F{i} on Customer {{ ...F{i - 1} orders(first: 1) {{ number }} }}")
    q = "\n".join(frags) + '\n{ customer(id: "C-1") { ...F39 } }'
    assert check(limits(), q) == []
    q = "\n".join(frags) + '\n{ customer(id: "C-1") { ...F39 ...F39 } }'  # graphql-core collects it once
    assert check(limits(), q) == []


@pytest.mark.parametrize("query,variables,argument", [
    ('{ customer(id: "C-1") { offers(withinDays: 1000000) { id } } }', None, "Customer.offers.withinDays"),
    ('{ customer(id: "C-1") { orders(first: -1) { number } } }', None, "Customer.orders.first"),
    ('query($d: Int) { customer(id: "C-1") { offers(withinDays: $d) { id } } }', {"d": 1000000},
     "Customer.offers.withinDays"),
    ('query($d: Int = 99999) { customer(id: "C-1") { offers(withinDays: $d) { id } } }', {},
     "Customer.offers.withinDays"),
    ('query($n: Int!) { customer(id: "C-1") { bestAgent(first: $n) { score } } }', {"n": -5},
     "Customer.bestAgent.first"),
])
def test_int_arguments_out_of_range(query: str, variables: dict[str, Any] | None, argument: str) -> None:
    errors = check(limits(), query, variables)
    assert len(errors) == 1 and errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert errors[0]["extensions"]["argument"] == argument and argument in errors[0]["message"]


def test_int_arguments_in_range_and_per_argument_bounds() -> None:
    q = 'query($d: Int) { customer(id: "C-1") { offers(withinDays: $d) { id } bestAgent(first: 4) { score } } }'
    assert check(limits(), q, {"d": 36500}) == []
    assert check(limits(), q, {"d": None}) == []
    assert check(limits(), q, {"d": "not an int"}) == []  # graphql-core's own variable error says why
    strict = limits(int_arg_bounds={"Customer.bestAgent.first": (1, 3)})
    assert check(strict, q, {"d": 1})[0]["extensions"] == {"code": "BAD_USER_INPUT", "min": 1, "max": 3,
                                                          "argument": "Customer.bestAgent.first"}


def test_operations_by_name() -> None:
    lim = limits(max_depth=2)
    doc = 'query Shallow { customer(id: "C-1") { id } } query Deep { customer(id: "C-1") { orders { number } } }'
    assert check(lim, doc, op="Shallow") == []
    assert check(lim, doc, op="Deep")[0]["extensions"]["limit"]["name"] == "max_depth"
    assert check(lim, doc, op="Missing") == []  # graphql-core says the operation is unknown


def test_shapes_are_cached_by_query_text() -> None:
    lim = limits()
    first = lim.shape(SCHEMA._schema, parse(CUSTOMER_FULL), CUSTOMER_FULL, None)
    assert lim.shape(SCHEMA._schema, parse(CUSTOMER_FULL), CUSTOMER_FULL, None) is first


# --- through strawberry: the token limit, operationName -------------------------------------------------
def execute(query: str, op: str | None = None, **settings: Any) -> Any:
    config = GatewayConfig(limits=LimitSettings(**settings))
    context = SimpleNamespace(config=config, limits=Limits(config.limits, config.max_ids))  # as the endpoint sets it
    return asyncio.run(SCHEMA.execute(query, operation_name=op, context_value=context))


def test_token_limit_in_our_parse_and_strawberrys() -> None:
    result = execute("{ " + " ".join("__typename" for _ in range(20)) + " }", max_tokens=15)
    assert result.data is None and result.errors[0].extensions == {
        "code": "QUERY_TOO_COMPLEX", "limit": {"name": "max_tokens", "value": 15}}
    assert execute("{ __typename }", max_tokens=15).data == {"__typename": "Query"}


def test_several_operations_need_a_name() -> None:
    doc = "query A { __typename } query B { __typename }"
    result = execute(doc)
    assert result.data is None and "operationName is required" in result.errors[0].message
    assert result.errors[0].path is None  # a request error
    assert execute(doc, op="B").data == {"__typename": "Query"}


# --- HTTP helpers ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("accept,media", [
    ("application/graphql-response+json;q=0, application/json", JSON),
    ("application/json;q=0.9, application/graphql-response+json;q=0.8", JSON),
    ("application/json, application/graphql-response+json", GRAPHQL_RESPONSE),
    ("application/json;q=0.5, application/graphql-response+json;q=0.5", GRAPHQL_RESPONSE),
    ("*/*", JSON), ("application/*", JSON), ("text/html", None), ("application/json;q=0", None),
    ("application/*;q=0.8, application/json;q=0", GRAPHQL_RESPONSE),
    ("application/json;q=bogus, application/graphql-response+json;q=0.1", GRAPHQL_RESPONSE),
])
def test_accept_negotiation(accept: str, media: str | None) -> None:
    assert _accepted(accept) == media


class FakeRequest:
    def __init__(self, chunks: int, size: int, length: int | None = None) -> None:
        self.headers = {} if length is None else {"content-length": str(length)}
        self.chunks, self.size, self.pulled = chunks, size, 0

    async def stream(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield b"x" * self.size


def test_read_body_stops_at_the_cap() -> None:
    request = FakeRequest(chunks=1600, size=65536)  # 100 MiB offered, no Content-Length
    with pytest.raises(PayloadTooLarge):
        asyncio.run(read_body(request, 1 << 20))
    assert request.pulled == 17  # one chunk past 1 MiB, not the rest
    request = FakeRequest(chunks=1600, size=65536, length=1600 * 65536)
    with pytest.raises(PayloadTooLarge):
        asyncio.run(read_body(request, 1 << 20))
    assert request.pulled == 0  # refused on its Content-Length
    assert asyncio.run(read_body(FakeRequest(chunks=3, size=10), 1 << 20)) == b"x" * 30


def test_guarded_deadline_and_disconnect() -> None:
    cancelled: list[bool] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def never() -> dict[str, Any]:
        await asyncio.sleep(10)
        return {}

    async def gone() -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"type": "http.disconnect"}

    async def run(receive: Any, deadline_s: float) -> str:
        try:
            await guarded(receive, slow(), asyncio.get_running_loop().time() + deadline_s)
        except TimeoutError:
            return "deadline"
        except Disconnected:
            assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
            return "disconnected"
        return "finished"

    assert asyncio.run(run(never, 0.02)) == "deadline"
    assert asyncio.run(run(gone, 5)) == "disconnected"
    assert cancelled == [True, True]


def test_walk_tolerates_what_validation_refuses() -> None:
    """The limits run before validation: unknown fields, fragment cycles and absurd nesting must not break them."""
    lim = limits()
    assert check(lim, '{ customer(id: "C-1") { shoeSize { size } } }') == []
    cycle = 'fragment A on Customer { id ...B } fragment B on Customer { name ...A } { customer(id: "C-1") { ...A } }'
    assert check(lim, cycle) == []
    deep = "{ __schema { types " + "{ fields { type " * 60 + "{ name }" + " } }" * 60 + " } }"
    assert refused_by(lim, deep) == "max_depth"
    assert check(lim, deep)[0]["extensions"]["requested"] == 13  # counting stops one past the limit


def _lexer_tokens(query: str) -> int:
    from graphql.language import Lexer, Source, TokenKind

    lexer, n = Lexer(Source(query)), 0
    while lexer.advance().kind != TokenKind.EOF:
        n += 1
    return n


def test_token_precount_never_exceeds_the_lexer_and_refuses_a_flood_early() -> None:
    from server.limits import Limits
    from server.settings import LimitSettings
    from tests import queries

    tricky = ['query Q($a: [Int!] = [1, -2, 3.5e+3]) { x(s: "a \\" # b", t: """bl"ock "" str""") '
              '@skip(if: true) ...F } # c\n fragment F on T { y }', '{ a(b: "#") c }', '{ a } # ' + "x " * 50]
    texts = [v for v in vars(queries).values() if isinstance(v, str) and "{" in v] + tricky
    for text in texts:
        exact = _lexer_tokens(text)
        for limit in (max(10, exact - 1), max(10, exact)):
            refused = Limits(LimitSettings(max_tokens=limit), 100).over_tokens(text)
            assert not refused or exact > limit  # never refuses what the lexer would pass
            if text not in tricky:  # and on ordinary queries it counts exactly
                assert refused == (exact > limit)
    flood = "{" + " ".join(f"a{i}: name" for i in range(100_000)) + "}"
    assert Limits(LimitSettings(max_tokens=5000), 100).over_tokens(flood)
