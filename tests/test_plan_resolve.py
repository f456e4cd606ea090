"""The plan calls a plain strawberry field's resolver itself (server/plan_resolve.py): on a toy strawberry
schema, every kind of resolver parameter and argument conversion answers as strawberry's own wrapper does
under graphql-core's executor, and a field with a permission class or a field extension still goes through
strawberry (its permission refuses, its extension rewrites). Numbers at the edges of Int and Float, which the
plan reads without coercing them, answer as graphql-core coerces them."""

from __future__ import annotations

import asyncio
import enum
import math
from typing import Any

import orjson
import pytest
import strawberry
from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from server.execution import PlanExecutor
from server.query_cache import QueryCache


@strawberry.enum
class Tone(enum.Enum):
    LOUD = "loud"
    SOFT = "soft"


@strawberry.input
class Shout:
    words: list[str]
    tone: Tone = Tone.LOUD


class Denied(BasePermission):
    message = "not for you"

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return False


class Upper(FieldExtension):
    def resolve(self, next_: Any, source: Any, info: Any, **kwargs: Any) -> Any:
        return str(next_(source, info, **kwargs)).upper()


@strawberry.type
class Item:
    name: str

    @strawberry.field
    def spoken(self, tone: Tone = Tone.SOFT, times_over: int = 1) -> str:
        text = self.name.upper() if tone is Tone.LOUD else self.name
        return " ".join([text] * times_over)

    @strawberry.field
    def parent_name(self, root: Any, info: strawberry.Info) -> str:
        return f"{root.name} at {'.'.join(str(p) for p in info.path.as_list())}"


@strawberry.type
class Numbers:
    count: int | None
    amount: float | None


# Around the edges of what Int and Float return unchanged (the plan reads those without coercing them).
NUMBERS: list[tuple[Any, Any]] = [(2**31 - 1, 1.5), (2**31, math.inf), (-(2**31), -math.inf), (-(2**31) - 1, 2),
                                  (True, True), (3.0, "2.5")]


@strawberry.type
class Query:
    @strawberry.field
    def items(self, info: strawberry.Info, first: int = 2) -> list[Item]:
        return [Item(name=n) for n in info.context["names"][:first]]

    @strawberry.field
    def shout(self, shout: Shout, shouts: list[Shout] | None = None) -> str:
        every = [shout, *(shouts or [])]
        return "; ".join(f"{s.tone.value}:{'-'.join(s.words)}" for s in every)

    @strawberry.field
    async def later(self, text: str) -> str:
        await asyncio.sleep(0)
        return text

    @strawberry.field
    def fails(self) -> str | None:
        raise ValueError("the resolver failed")

    @strawberry.field
    def appended(self, items: list[int], tone: Tone = Tone.SOFT) -> list[str]:
        items.append(0)  # a resolver that changes its argument must not change the next request's
        return [tone.value, *map(str, items)]

    @strawberry.field
    def numbers(self) -> list[Numbers]:
        return [Numbers(count=c, amount=a) for c, a in NUMBERS]

    @strawberry.field(permission_classes=[Denied])
    def secret(self) -> str | None:
        return "the secret"

    @strawberry.field(extensions=[Upper()])
    def quiet(self) -> str:
        return "whisper"


CASES = [
    ("{ items { name spoken loud: spoken(tone: LOUD, timesOver: 2) parentName } }", {}),
    ("query($n: Int!, $t: Tone!) { items(first: $n) { spoken(tone: $t, timesOver: $n) } }", {"n": 3, "t": "LOUD"}),
    ('{ shout(shout: {words: ["a", "b"]}, shouts: [{words: ["c"], tone: SOFT}]) }', {}),
    ("query($s: Shout!) { shout(shout: $s) }", {"s": {"words": ["x", "y"], "tone": "SOFT"}}),
    ("query($s: Shout!) { shout(shout: $s) }", {"s": {"words": "x", "tone": "LOUDER"}}),
    ('{ later(text: "hi") fails items(first: 1) { name } }', {}),
    ("{ secret quiet later(text: \"ok\") }", {}),
    ("{ numbers { count amount } }", {}),
]


async def answer(executor: type[StrawberryGraphQLCoreExecutionContext], query: str,
                 variables: dict[str, Any]) -> bytes:
    schema = strawberry.Schema(query=Query, execution_context_class=executor)
    result = await schema.execute(query, variable_values=variables,
                                  context_value={"names": ["ada", "bob", "cy"]})
    return orjson.dumps({"data": result.data, "errors": [e.formatted for e in result.errors or []]})


@pytest.mark.parametrize("query,variables", CASES)
def test_direct_resolvers_answer_as_strawberry_does(query: str, variables: dict[str, Any]) -> None:
    expected = asyncio.run(answer(StrawberryGraphQLCoreExecutionContext, query, variables))
    got = asyncio.run(answer(PlanExecutor, query, variables))
    assert got == expected


def test_permissions_and_extensions_still_apply() -> None:
    got = orjson.loads(asyncio.run(answer(PlanExecutor, "{ secret quiet }", {})))
    assert got["data"] == {"secret": None, "quiet": "WHISPER"}
    assert [e["message"] for e in got["errors"]] == ["not for you"]


def test_static_arguments_are_the_same_on_every_request() -> None:
    """Converted once where nothing can change them (numbers, enum members), per call where a resolver
    could (a list it appends to), on one schema whose plan serves both requests (the query cache keeps
    the document, so the plan is the same)."""
    schema = strawberry.Schema(query=Query, extensions=[QueryCache], execution_context_class=PlanExecutor)
    query = "{ appended(items: [1], tone: LOUD) items(first: 1) { spoken(tone: LOUD, timesOver: 2) } }"

    async def twice() -> list[Any]:
        return [(await schema.execute(query, context_value={"names": ["ada"]})).data for _ in range(2)]

    first, second = asyncio.run(twice())
    assert first == second == {"appended": ["loud", "1", "0"], "items": [{"spoken": "ADA ADA"}]}
