"""The one-step path for plain leaf fields answers exactly as graphql-core's standard path does:
the same data, the same errors at the same paths, the same nulls propagated, for good and bad values."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import pytest
import strawberry

from server.execution import PlanExecutor
from server.plan import plan_for
from server.query_cache import QueryCache, _documents


@strawberry.enum
class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Raises:
    @property
    def boom(self) -> str:
        raise ValueError("the record cannot say")


@strawberry.type
class Item:
    name: str
    note: str | None
    count: int
    ratio: float
    flag: bool
    ident: strawberry.ID
    color: Color
    maybe_color: Color | None
    at: datetime
    on: date | None
    tags: list[str]
    sparse: list[str | None]
    scores: list[int] | None


@dataclass
class TagRecord:
    label: str


@strawberry.type
class Tag:
    label: str

    @classmethod
    def is_type_of(cls, obj: Any, _info: Any) -> bool:  # as schema.types.Backed does
        return isinstance(obj, (TagRecord, cls))


@strawberry.type
class Holder:
    item: Item | None
    strict: Item
    items: list[Item | None]
    boom: str | None
    strict_items: list[Item] = strawberry.field(default_factory=list)
    tags: list[Tag] | None = None


def item(**changes: Any) -> Any:
    base = {"name": "a", "note": None, "count": 3, "ratio": 0.5, "flag": True, "ident": "7", "color": Color.RED, "maybe_color": None,
                "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "on": date(2026, 1, 2), "tags": ["x", "y"],
                "sparse": ["x", None], "scores": [1, 2]}
    return Item(**{**base, **changes})


@dataclass
class Root:
    holder: Any = field(default_factory=lambda: Holder(item=item(), strict=item(), items=[item(), None], boom=None,
                                                       strict_items=[item(), item(name="b")],
                                                       tags=[TagRecord("x"), TagRecord("y")]))


@strawberry.type
class Query:
    @strawberry.field
    def holder(self, root: strawberry.Parent[Root]) -> Holder:
        return root.holder  # type: ignore[no-any-return]


FIELDS = "name note count ratio flag ident color maybeColor at on tags sparse scores"
QUERIES = [
    f"{{ holder {{ item {{ {FIELDS} }} strict {{ {FIELDS} }} items {{ {FIELDS} }} strictItems {{ {FIELDS} }} }} }}",
    "{ holder { strictItems { __typename name k: count } tags { label __typename } } }",
    "{ holder { item { a: name b: name name __typename ...F } } } fragment F on Item { count tags }",
    "query($skip: Boolean!) { holder { item { name @skip(if: $skip) count @include(if: $skip) } } }",
]
BAD = {
    "null in a non-null leaf": {"name": None},
    "null in a non-null list": {"tags": None},
    "null item in a list of non-null": {"tags": ["x", None]},
    "int out of range": {"count": 2**40},
    "float that is no number": {"ratio": float("nan")},
    "wrong enum value": {"color": "green"},
    "string for a list": {"tags": "xy"},
    "object for a scalar": {"note": object()},
}


def run(schema: strawberry.Schema, query: str, root: Root, skip: bool = True) -> dict[str, Any]:
    result = schema.execute_sync(query, root_value=root, variable_values={"skip": skip})
    return {"data": result.data, "errors": sorted((e.formatted for e in result.errors or []), key=str)}


@pytest.fixture(scope="module")
def schemas() -> tuple[strawberry.Schema, strawberry.Schema]:
    # As in the gateway: documents cached by query text, so requests share one parsed operation.
    return (strawberry.Schema(query=Query),
            strawberry.Schema(query=Query, execution_context_class=PlanExecutor, extensions=[QueryCache]))


@pytest.mark.parametrize("query", QUERIES)
def test_same_answers_for_good_records(schemas: Any, query: str) -> None:
    standard, fast = schemas
    expected = run(standard, query, Root())
    assert not expected["errors"] and expected["data"]["holder"]
    assert run(fast, query, Root()) == expected


@pytest.mark.parametrize("case", sorted(BAD))
def test_same_errors_and_nulls_for_bad_records(schemas: Any, case: str) -> None:
    standard, fast = schemas
    root = Root(Holder(item=item(**BAD[case]), strict=item(**BAD[case]), items=[item(**BAD[case]), item()],
                       boom=None, strict_items=[item(), item(**BAD[case])]))
    query = QUERIES[0]
    expected = run(standard, query, root)
    assert expected["errors"], case  # the bad value is reported...
    assert run(fast, query, root) == expected  # ...in the same words, at the same paths, with the same nulls


def test_an_attribute_that_raises_is_a_located_error(schemas: Any) -> None:
    standard, fast = schemas
    root = Root(Raises())  # type: ignore[arg-type]
    expected = run(standard, "{ holder { boom } }", root)
    assert expected["errors"][0]["path"] == ["holder", "boom"]
    assert run(fast, "{ holder { boom } }", root) == expected


def test_plain_fields_take_the_short_path(schemas: Any) -> None:
    """Guards the speed-up itself: if strawberry stopped marking basic fields, this would fail."""
    _, fast = schemas
    run(fast, QUERIES[0], Root())
    operation = _documents[QUERIES[0]].definitions[0]  # the cached document the plan was built for
    plan = plan_for(fast._schema, operation, {}, None)
    assert plan is not None
    (holder,) = plan.root(None)
    item = next(f for f in holder.sub(holder.return_type.of_type) if f.key == "item")
    readers = {f.key: f.read for f in item.sub(item.return_type)}
    assert all(readers[f] is not None for f in ("name", "count", "color", "at", "tags", "sparse"))


def test_collections_shared_between_requests_still_follow_the_variables(schemas: Any) -> None:
    """Sub-field collection is reused for a document only where no directive makes it depend on variables."""
    standard, fast = schemas
    nested = "query($skip: Boolean!) { holder { items { name @skip(if: $skip) tags } item { count } } }"
    for skip in (True, False, True, False):
        for query in (nested, QUERIES[2], QUERIES[1]):
            expected = run(standard, query, Root(), skip)
            assert run(fast, query, Root(), skip) == expected
    assert run(fast, nested, Root(), False)["data"]["holder"]["items"][0]["name"] == "a"
    assert "name" not in run(fast, nested, Root(), True)["data"]["holder"]["items"][0]


@pytest.mark.parametrize("tags,strict_items", [
    ([TagRecord("x"), SimpleNamespace(label="z")], None),  # a record of the wrong type: is_type_of says no
    ([TagRecord("x"), None], None),  # null in a list of non-null objects
    (None, [item(), None]),
])
def test_lists_of_objects_with_a_bad_item_answer_as_the_standard_path(schemas: Any, tags: Any, strict_items: Any) -> None:
    standard, fast = schemas
    holder = Root().holder
    holder.tags = tags if tags is not None else holder.tags
    holder.strict_items = strict_items if strict_items is not None else holder.strict_items
    query = "{ holder { tags { label } strictItems { name } item { name } } }"
    expected = run(standard, query, Root(holder))
    assert expected["errors"]
    assert run(fast, query, Root(holder)) == expected
