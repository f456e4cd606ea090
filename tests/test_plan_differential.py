"""The compiled plan answers exactly as graphql-core's own executor: generated queries over the gateway's
real schema (hypothesis-graphql, reshaped with fragments, aliases, @skip/@include and variables), over
records of the demo estate fetched once and then served from memory, some of them spoiled (nulls in
non-null fields, bad enum values, values of the wrong type) or their source failing. Each example runs
under both executors, as the agent and as the point-of-sale role (masks, forbidden fields), and the two
answers (data, errors with message, path, locations and extensions, in order, and our soft errors,
stale and masked extensions) must be the same bytes. A fixed seed and a bounded number of examples."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import enum
import functools
import os
import random
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

if os.environ.get("CI") == "true":  # CI installs the test extras: there it must run
    import hypothesis
    import hypothesis_graphql
else:
    hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the test extras (pip install -e .[test])")
    hypothesis_graphql = pytest.importorskip("hypothesis_graphql", reason="hypothesis-graphql is in the test extras")

import graphql  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import config  # noqa: E402
import connectors  # noqa: E402
from connectors.http import new_session  # noqa: E402
from estate.generate import golden_id  # noqa: E402
from resolvers.context import Context, Sources  # noqa: E402
from server import execution as executors  # noqa: E402
from server.app import build_schema  # noqa: E402
from server.auth import Principal  # noqa: E402
from server.policy import Policies  # noqa: E402
from tests.harness import Estate, gateway_config  # noqa: E402

EXAMPLES = 300
ROOTS = ("customer", "customers", "findCustomers")
BAD_VALUES: list[Any] = [None, "NOT_A_MEMBER", 2**40, ["a", "list"], float("nan"), {"an": "object"}]
SCALARS = {"DateTime": st.just(graphql.StringValueNode(value="2026-01-02T03:04:05+00:00")),
           "Date": st.just(graphql.StringValueNode(value="2026-01-02"))}


class Recorded:
    """Every connector's answers (or failures), fetched from the estate once per key and then served from
    memory, so that the compared runs wait on nothing but each other; a request's `fault` spoils them (the
    same way for both executors) or fails one source."""

    def __init__(self, built: dict[str, Any]) -> None:
        self.answers: dict[tuple[str, str, str], Any] = {}
        self.fault: tuple[str, str, int] | None = None  # (kind, source, seed)
        for connector in built.values():
            connector.fetch = self._fetch(connector, connector.fetch)

    def _fetch(self, connector: Any, real: Any) -> Any:
        async def fetch(entity: str, keys: list[str], deadline: float | None = None) -> dict[str, Any]:
            missing = [k for k in keys if (connector.name, entity, k) not in self.answers]
            if missing:
                try:
                    found = await real(entity, missing, deadline)
                except Exception as exc:  # noqa: BLE001 - kept, to fail the same way again
                    found = {k: exc for k in missing}
                for k in missing:
                    self.answers[(connector.name, entity, k)] = found.get(k)
            for k in keys:
                if isinstance(self.answers[(connector.name, entity, k)], Exception):
                    raise self.answers[(connector.name, entity, k)]
            fault = self.fault
            if fault is not None and fault[1] == connector.name and fault[0] == "fail":
                raise connector.error("unavailable", "the source is down (a fault of the test)")
            out = {}
            for k in keys:
                record = self.answers[(connector.name, entity, k)]
                if record is not None:
                    out[k] = spoil(record, fault[2]) if fault is not None and fault[1] == connector.name else record
            return out

        return fetch


def _attributes(record: Any) -> list[str]:
    if dataclasses.is_dataclass(record):
        return sorted(f.name for f in dataclasses.fields(record))
    return sorted(k for k in getattr(record, "__dict__", {}) if not k.startswith("_"))


def spoil(record: Any, seed: int) -> Any:
    """A copy of the record with one attribute (maybe of each item of a list of records) made bad."""
    if isinstance(record, list):
        return [spoil(r, seed) for r in record]
    names = _attributes(record)
    if not names:
        return record
    rng = random.Random(seed)
    name = rng.choice(names)
    out = copy.copy(record)
    value = getattr(record, name)
    if isinstance(value, list) and value and _attributes(value[0]):
        setattr(out, name, [spoil(v, seed + 1) for v in value])
    elif isinstance(value, enum.Enum) or rng.random() < 0.5:
        setattr(out, name, rng.choice(BAD_VALUES))
    else:
        setattr(out, name, None)
    return out


@pytest.fixture(scope="module")
def world(estate: Estate) -> Iterator[dict[str, Any]]:
    loop = asyncio.new_event_loop()
    cfg = config.parse(gateway_config(estate))
    cfg.cache.enabled = False

    async def start() -> tuple[Any, Sources, Recorded]:
        session = new_session()
        built = connectors.build(cfg.sources, session)
        return session, Sources.build(cfg, built), Recorded(built)

    session, sources, recorded = loop.run_until_complete(start())
    schemas = {}
    for execution in ("plan", "graphql-core"):
        base = build_schema(execution=execution)  # type: ignore[arg-type]
        policies = Policies(base, cfg.roles, functools.partial(build_schema, execution=execution))
        schemas[execution] = {None: base, "pos": policies.schema("pos")}
    ids = [golden_id(n) for n in range(1, 25)] + ["C-999999"]
    yield {"loop": loop, "sources": sources, "recorded": recorded, "schemas": schemas, "ids": ids, "cfg": cfg}

    async def stop() -> None:
        await sources.close()
        await session.close()

    loop.run_until_complete(stop())
    loop.close()


# --- reshaping hypothesis-graphql's documents ---------------------------------------------------------

class Reshaper:
    """Turns a generated query into one that uses the rest of the language: its root argument from a
    variable (a real customer's id), literal arguments moved into variables, fields under @skip/@include
    of Boolean variables, selections moved into named and inline fragments, and duplicated under aliases."""

    def __init__(self, schema: graphql.GraphQLSchema, rng: random.Random, ids: list[str]) -> None:
        self.schema, self.rng, self.ids = schema, rng, ids
        self.definitions: list[graphql.VariableDefinitionNode] = []
        self.variables: dict[str, Any] = {}
        self.fragments: list[graphql.FragmentDefinitionNode] = []

    def variable(self, type_node: graphql.TypeNode, value: Any) -> graphql.VariableNode:
        name = f"v{len(self.definitions)}"
        self.definitions.append(graphql.VariableDefinitionNode(variable=graphql.VariableNode(
            name=graphql.NameNode(value=name)), type=type_node, directives=()))
        self.variables[name] = value
        return graphql.VariableNode(name=graphql.NameNode(value=name))

    def root(self, field: graphql.FieldNode) -> graphql.FieldNode:
        name, rng = field.name.value, self.rng
        if name == "customer":
            args = [_arg("id", self.variable(_type("ID!"), rng.choice(self.ids)))]
        elif name == "customers":
            args = [_arg("ids", self.variable(_type("[ID!]!"), rng.sample(self.ids, rng.randint(0, 3))))]
        else:
            args = [_arg("systemId", self.variable(_type("SystemIdInput"),
                                                   {"system": "billing", "id": f"BA-2000{rng.randint(10, 40):04d}"}))]
        return self.field(field, self.schema.query_type, args)  # type: ignore[arg-type]

    def field(self, field: graphql.FieldNode, parent: Any, args: list[Any] | None = None) -> graphql.FieldNode:
        rng = self.rng
        definition = parent.fields.get(field.name.value) if hasattr(parent, "fields") else None
        if args is None:
            args = [self.argument(a, definition) for a in field.arguments or ()]
        directives: list[Any] = []
        if rng.random() < 0.15:
            which = rng.choice(("skip", "include"))
            directives.append(graphql.DirectiveNode(name=graphql.NameNode(value=which), arguments=(
                _arg("if", self.variable(_type("Boolean!"), rng.random() < 0.5)),)))
        selection_set = field.selection_set
        if selection_set is not None and definition is not None:
            selection_set = self.selections(selection_set, graphql.get_named_type(definition.type))
        return graphql.FieldNode(alias=field.alias, name=field.name, arguments=tuple(args),
                                 directives=tuple(directives), selection_set=selection_set)

    def argument(self, arg: graphql.ArgumentNode, definition: Any) -> graphql.ArgumentNode:
        arg_def = definition.args.get(arg.name.value) if definition is not None else None
        if isinstance(arg.value, graphql.IntValueNode) and self.rng.random() < 0.7:
            arg = _arg(arg.name.value, graphql.IntValueNode(value=str(self.rng.randint(0, 5))))  # mostly in range
        if arg_def is None or self.rng.random() < 0.5 or isinstance(arg.value, graphql.NullValueNode):
            return arg
        type_node = graphql.parse_type(str(arg_def.type))
        return _arg(arg.name.value, self.variable(type_node, graphql.value_from_ast_untyped(arg.value)))

    def selections(self, selection_set: graphql.SelectionSetNode, parent: Any) -> graphql.SelectionSetNode:
        rng, out = self.rng, []
        for selection in selection_set.selections:
            if isinstance(selection, graphql.FieldNode):
                node: Any = self.field(selection, parent)
                if rng.random() < 0.1 and node.alias is None:
                    out.append(graphql.FieldNode(alias=graphql.NameNode(value=f"a{rng.randint(0, 9)}_{node.name.value}"),
                                                 name=node.name, arguments=node.arguments, directives=(),
                                                 selection_set=node.selection_set))
            else:  # an inline fragment on a member of a union
                on = self.schema.get_type(selection.type_condition.name.value) if selection.type_condition else parent
                node = graphql.InlineFragmentNode(type_condition=selection.type_condition, directives=(),
                                                  selection_set=self.selections(selection.selection_set, on))
            roll = rng.random()
            if roll < 0.1 and isinstance(parent, graphql.GraphQLObjectType):
                name = f"F{len(self.fragments)}"
                self.fragments.append(graphql.FragmentDefinitionNode(
                    name=graphql.NameNode(value=name), type_condition=_named(parent.name), directives=(),
                    selection_set=graphql.SelectionSetNode(selections=(node,))))
                node = graphql.FragmentSpreadNode(name=graphql.NameNode(value=name), directives=())
                if rng.random() < 0.3:
                    out.append(node)  # the same fragment spread twice: its fields once
            elif roll < 0.2 and isinstance(parent, graphql.GraphQLObjectType):
                node = graphql.InlineFragmentNode(type_condition=_named(parent.name) if roll < 0.15 else None,
                                                  directives=(), selection_set=graphql.SelectionSetNode(
                                                      selections=(node,)))
            out.append(node)
        return graphql.SelectionSetNode(selections=tuple(out))

    def document(self, generated: graphql.DocumentNode) -> str:
        (operation,) = generated.definitions
        roots = [self.root(f) for f in operation.selection_set.selections]  # type: ignore[attr-defined]
        query = graphql.OperationDefinitionNode(
            operation=graphql.OperationType.QUERY, name=graphql.NameNode(value="Q"),
            variable_definitions=tuple(self.definitions), directives=(),
            selection_set=graphql.SelectionSetNode(selections=tuple(roots)))
        return graphql.print_ast(graphql.DocumentNode(definitions=(query, *self.fragments)))


def _arg(name: str, value: Any) -> graphql.ArgumentNode:
    return graphql.ArgumentNode(name=graphql.NameNode(value=name), value=value)


def _type(text: str) -> graphql.TypeNode:
    return graphql.parse_type(text)


def _named(name: str) -> graphql.NamedTypeNode:
    return graphql.NamedTypeNode(name=graphql.NameNode(value=name))


# --- running one example under both executors ---------------------------------------------------------

def answer(world: dict[str, Any], execution: str, role: str | None, query: str, variables: dict[str, Any]) -> bytes:
    schema = world["schemas"][execution][role]
    principal = None if role is None else Principal("differential", role, world["cfg"].roles[role])

    async def run() -> bytes:
        context = Context(world["sources"], principal=principal)
        result = await schema.execute(query, variable_values=variables, context_value=context)
        return orjson.dumps({"data": result.data, "errors": [e.formatted for e in result.errors or []],
                             "soft": context.soft_errors, "stale": context.stale, "masked": context.masked})

    return world["loop"].run_until_complete(run())  # type: ignore[no-any-return]


SOURCES = ("analytics", "billing", "contact", "crm", "crosswalk", "helpdesk", "loyalty", "marketing", "shipping",
           "shop", "staff", "warranty")
faults = st.one_of(st.none(), st.tuples(st.sampled_from(("fail", "spoil", "spoil")), st.sampled_from(SOURCES),
                                        st.integers(0, 10_000)))


@pytest.fixture(scope="module")
def generated(world: dict[str, Any]) -> Any:
    schema = world["schemas"]["graphql-core"][None]._schema
    return hypothesis_graphql.queries(schema, fields=ROOTS, custom_scalars=SCALARS, print_ast=lambda d: d,
                                      allow_x00=False, allow_null=True)


def test_plan_answers_byte_for_byte_as_graphql_core(world: dict[str, Any], generated: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    counts = {"examples": 0, "with_errors": 0, "with_data": 0, "executed": 0, "planned": 0}

    def counting(cls: Any, method: str, key: str) -> None:
        real = getattr(cls, method)

        def counted(self: Any, *args: Any) -> Any:
            counts[key] += 1
            return real(self, *args)

        monkeypatch.setattr(cls, method, counted)

    counting(executors.PlanExecutor, "execute_operation", "executed")
    counting(executors.Run, "run", "planned")

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(document=generated, seed=st.integers(0, 2**32), fault=faults, role=st.sampled_from((None, "pos")))
    def check(document: graphql.DocumentNode, seed: int, fault: Any, role: str | None) -> None:
        reshaper = Reshaper(world["schemas"]["graphql-core"][None]._schema, random.Random(seed), world["ids"])
        query = reshaper.document(document)
        hypothesis.assume(not graphql.validate(reshaper.schema, graphql.parse(query)))  # execution, not validation
        world["recorded"].fault = fault
        try:
            answer(world, "graphql-core", role, query, reshaper.variables)  # fetches what is not in memory yet
            expected = answer(world, "graphql-core", role, query, reshaper.variables)
            got = answer(world, "plan", role, query, reshaper.variables)
        finally:
            world["recorded"].fault = None
        assert got == expected, query
        counts["examples"] += 1
        counts["with_errors"] += b'"errors":[{' in expected
        counts["with_data"] += b'"data":{' in expected

    check()
    # The examples exercised both sides of the spec: answers with data, answers with errors.
    assert counts["examples"] >= EXAMPLES // 2 and counts["with_errors"] and counts["with_data"], counts
    # Every operation the plan's executor was given (all but those whose variables do not coerce), the plan
    # answered, not its fall-back.
    assert counts["planned"] == counts["executed"] >= EXAMPLES * 0.9, counts
