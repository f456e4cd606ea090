"""The plan's executor on what the gateway's schema does not have or rarely does: interfaces, abstract
types resolved wrongly, async type checks, resolvers that raise, return an error or return coroutines and
futures, non-null root fields failing while siblings still run. Each case answers as graphql-core's
executor does, errors in the same order; what the plan does not run (mutations, @defer, unknown
directives) goes to graphql-core. The `gateway.execution` switch is checked too."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from graphql import ExecutionResult, build_schema, execute, get_introspection_query, parse

import config
from server.app import build_schema as gateway_schema
from server.execution import PlanExecutor, executor_class
from server.plan import plannable

SDL = """
interface Node { id: ID! }
type Person implements Node { id: ID! name: String! friends: [Node] tag: String }
type Robot implements Node { id: ID! model: String }
union Thing = Person | Robot
type Query {
  node(kind: String!): Node
  strict(kind: String!): Node!
  things(kinds: [String!]!): [Thing]
  strictThings(kinds: [String!]!): [Thing!]
  boom: String
  boomStrict: String!
  later(ms: Int = 0): String
  laterStrict: String!
  echo(text: String, n: Int = 3): String
  returned: String
}
type Mutation { poke: String }
"""


class Person:
    def __init__(self, pid: str, name: Any = "Ada", tag: Any = None) -> None:
        self.id, self.name, self.tag = pid, name, tag
        self.friends = [Robot("r1"), None, self]


class Robot:
    def __init__(self, rid: str, model: Any = "T-1") -> None:
        self.id, self.model = rid, model


def make(kind: str) -> Any:
    """A value for `kind`: good, bad or awaitable."""
    loop = asyncio.get_event_loop()
    if kind == "person":
        return Person("p1")
    if kind == "robot":
        return Robot("r1")
    if kind == "nameless":
        return Person("p2", name=None)
    if kind == "future":
        f = loop.create_future()
        loop.call_soon(f.set_result, Person("p3"))
        return f
    if kind == "failing-future":
        f = loop.create_future()
        loop.call_soon(f.set_exception, ValueError("the source failed"))
        return f
    if kind == "coroutine":
        async def later() -> Any:
            await asyncio.sleep(0)
            return Robot("r2", model=None)
        return later()
    if kind == "raises":
        raise ValueError("the resolver failed")
    if kind == "none":
        return None
    return {"kind": kind}  # resolve_type decides what that is


def resolve_type(value: Any, _info: Any, _type: Any) -> Any:
    if isinstance(value, Person):
        return "Person"
    if isinstance(value, Robot):
        return "Robot"
    answers = {"unresolved": None, "number": 7, "ghost": "Ghost", "query": "Query", "async": "async"}
    answer = answers.get(value["kind"], "Person")
    if answer == "async":
        async def later() -> str:
            return "Robot"
        return later()
    return answer


def schema() -> Any:
    built = build_schema(SDL)
    for name in ("Node", "Thing"):
        built.type_map[name].resolve_type = resolve_type
    fields = built.query_type.fields

    async def later(*_: Any, ms: int = 0) -> str:
        await asyncio.sleep(0)
        if ms < 0:
            raise ValueError("negative")
        return f"after {ms}"

    async def later_strict(*_: Any) -> str:
        await asyncio.sleep(0)
        raise ValueError("late and strict")

    def boom(*_: Any) -> str:
        raise RuntimeError("boom")

    fields["node"].resolve = lambda _s, _i, kind: make(kind)
    fields["strict"].resolve = lambda _s, _i, kind: make(kind)
    fields["things"].resolve = lambda _s, _i, kinds: [make(k) for k in kinds]
    fields["strictThings"].resolve = lambda _s, _i, kinds: [make(k) for k in kinds]
    fields["boom"].resolve = boom
    fields["boomStrict"].resolve = boom
    fields["later"].resolve = later
    fields["laterStrict"].resolve = later_strict
    fields["echo"].resolve = lambda _s, _i, text=None, n=3: None if text is None else text * n
    built.mutation_type.fields["poke"].resolve = lambda *_: "poked"
    fields["returned"].resolve = lambda *_: ValueError("returned, not raised")

    async def is_robot(value: Any, _info: Any) -> bool:
        return isinstance(value, Robot)

    built.type_map["Robot"].is_type_of = is_robot
    return built


SCHEMA = schema()
PERSON = "... on Person { id name tag friends { id __typename ... on Robot { model } } }"
CASES = [
    ("{ node(kind: \"person\") { id __typename " + PERSON + " } }", {}),
    ("{ node(kind: \"nameless\") { id " + PERSON + " } later }", {}),
    ("{ strict(kind: \"nameless\") { " + PERSON + " } later }", {}),  # null up to the root: no data
    ("{ a: node(kind: \"future\") { ... N } b: node(kind: \"coroutine\") { ... N ... on Robot { model } } }"
     " fragment N on Node { id __typename }", {}),
    ("{ node(kind: \"failing-future\") { id } boom later(ms: -1) }", {}),
    ("{ node(kind: \"raises\") { id } strict(kind: \"none\") { id } }", {}),
    ("{ things(kinds: [\"person\", \"unresolved\", \"number\", \"ghost\", \"query\", \"async\", \"none\"])"
     " { __typename ... on Robot { id model } ... on Person { name } } }", {}),
    ("{ strictThings(kinds: [\"robot\", \"ghost\"]) { __typename } later }", {}),
    ("{ strictThings(kinds: [\"robot\", \"future\", \"failing-future\"]) { ... on Person { id } } }", {}),
    ("{ boomStrict later laterStrict }", {}),
    ("{ l: later(ms: -1) laterStrict boomStrict }", {}),  # a non-null root field fails, siblings still pending
    ("{ returned node(kind: \"robot\") { id } }", {}),
    ("{ later laterStrict node(kind: \"coroutine\") { id } }", {}),
    ("query($t: String, $n: Int, $s: Boolean!) { e: echo(text: $t, n: $n) f: echo(text: $t) @skip(if: $s)"
     " g: echo(text: \"x\") @include(if: $s) ...on Query @skip(if: $s) { h: echo(text: \"y\") } }",
     {"t": "ab", "n": 2, "s": True}),
    ("query($t: String, $n: Int, $s: Boolean!) { e: echo(text: $t, n: $n) f: echo(text: $t) @skip(if: $s)"
     " g: echo(text: \"x\") @include(if: $s) ...on Query @skip(if: $s) { h: echo(text: \"y\") } }",
     {"t": "ab", "s": False}),
    ("{ node(kind: \"person\") { ... on Person { name } ... on Person { name: tag } } }", {}),
    ("{ __typename __type(name: \"Person\") { name interfaces { name } fields { name type { kind ofType { name } } } }"
     " __schema { queryType { name } types { name possibleTypes { name } } } }", {}),
    (get_introspection_query(), {}),
]


def dumped(result: ExecutionResult) -> bytes:
    return orjson.dumps({"data": result.data, "errors": [e.formatted for e in result.errors or []]})


async def both(query: str, variables: dict[str, Any]) -> tuple[bytes, bytes]:
    document = parse(query)
    answers = []
    for kind in (None, PlanExecutor):
        result = execute(SCHEMA, document, variable_values=variables, executor_class=kind)
        if not isinstance(result, ExecutionResult):
            result = await result
        for _ in range(5):  # what still runs in the background, for errors reported too late
            await asyncio.sleep(0)
        answers.append(dumped(result))
    return answers[0], answers[1]


@pytest.mark.parametrize("query,variables", CASES)
def test_the_plan_answers_as_graphql_core(query: str, variables: dict[str, Any]) -> None:
    expected, got = asyncio.run(both(query, variables))
    assert orjson.loads(expected).get("errors") or orjson.loads(expected)["data"], expected
    assert got == expected


def test_mutations_and_deferred_work_are_not_planned() -> None:
    def operation(text: str) -> Any:
        document = parse(text)
        fragments = {d.name.value: d for d in document.definitions if d.kind == "fragment_definition"}
        return document.definitions[0], fragments

    assert plannable(*operation("{ boom ...F } fragment F on Query { later }"))
    assert not plannable(*operation("mutation { poke }"))
    assert not plannable(*operation("{ boom ...F @defer } fragment F on Query { later }"))
    assert not plannable(*operation("{ boom @custom }"))
    expected, got = asyncio.run(both("mutation { poke }", {}))
    assert got == expected == b'{"data":{"poke":"poked"},"errors":[]}'


def test_the_execution_switch(tmp_path: Any) -> None:
    """`gateway.execution` picks the executor; anything but plan or graphql-core is one clear config error."""
    assert executor_class("plan") is PlanExecutor and executor_class("graphql-core") is not PlanExecutor
    assert config.GatewaySection(execution="graphql-core").execution == "graphql-core"
    assert config.GatewaySection().execution == "plan"
    with pytest.raises(ValueError, match="execution"):
        config.GatewaySection(execution="fast")  # type: ignore[arg-type]
    assert "execution" in config.GatewayConfig.model_fields  # config.parse hands the section's value on
    assert gateway_schema().execution_context_class is PlanExecutor
    assert gateway_schema(execution="graphql-core").execution_context_class is not PlanExecutor
