"""Lists of leaf-only objects from a resolver (a key's usage buckets) are completed in one
loop, and answer exactly what Strawberry's own execution answers, errors included."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import strawberry

from wfa_keys.graphql.execution import LeafFastExecutionContext
from wfa_keys.graphql.schema import Schema


@strawberry.type
class Bucket:
    start: datetime
    total: int
    note: str | None
    spare: int | None = None


class Special(Bucket):
    """Another class with the same fields: graphql-core's to complete."""


def bucket(**changes: Any) -> Bucket:
    values: dict[str, Any] = {
        "start": datetime(2026, 1, 2, 3, tzinfo=UTC),
        "total": 7,
        "note": "n",
    }
    values.update(changes)
    return Bucket(**values)


async def later() -> int:
    return 1


#: What the resolvers answer: made again for each execution (a coroutine is awaited once).
ITEMS: list[Callable[[], Any]] = []


@strawberry.type
class Query:
    @strawberry.field
    def buckets(self, since: int = 0) -> list[Bucket]:
        return [make() for make in ITEMS]

    @strawberry.field
    def loose(self) -> list[Bucket | None] | None:
        return [make() for make in ITEMS]


@strawberry.type
class Outer:
    @strawberry.field
    def buckets(self) -> list[Bucket]:
        return [bucket()]


@strawberry.type
class OuterQuery:
    @strawberry.field
    def outers(self) -> list[Outer]:
        return [Outer(), Outer()]


QUERY = """query($skip: Boolean = false) { buckets(since: 1) { __typename total start
  note alias: total spare @skip(if: $skip) ... on Bucket { note } } }"""


def both(query: str = QUERY, variables: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    fast = Schema(query=Query)
    plain = strawberry.Schema(query=Query)
    assert fast.execution_context_class is LeafFastExecutionContext
    results = []
    for schema in (fast, plain):
        result = asyncio.run(schema.execute(query, variable_values=variables))
        results.append(
            {
                "data": result.data,
                "errors": [(error.message, error.path) for error in result.errors or ()],
            }
        )
    return results


def keys_in_order(data: Any) -> Any:
    """The response's keys at every level, in order: what its bytes depend on."""
    if isinstance(data, dict):
        return [(key, keys_in_order(value)) for key, value in data.items()]
    if isinstance(data, list):
        return [keys_in_order(item) for item in data]
    return None


@pytest.mark.parametrize(
    "items",
    [
        [bucket, lambda: bucket(total=0, note=None, spare=3)],
        [],
        [lambda: bucket(total=None)],  # null in a non-null field: the error, with its path
        [bucket, lambda: None],  # a null item in a list of non-null items
        [lambda: bucket(total="many")],  # not an Int
        [lambda: bucket(total=2**31)],  # an int beyond GraphQL's 32 bits
        [lambda: bucket(total=True)],  # a bool, which Int coerces to 1
        [lambda: bucket(spare=later())],  # an awaitable attribute
        [lambda: Special(start=datetime(2026, 1, 1, tzinfo=UTC), total=1, note=None)],
        [lambda: ValueError("no bucket")],  # an error as an item
    ],
    ids=[
        "plain",
        "empty",
        "null",
        "null-item",
        "bad-int",
        "big-int",
        "bool",
        "awaitable",
        "subclass",
        "error-item",
    ],
)
def test_a_list_of_leaf_objects_answers_like_strawberry(items: list[Callable[[], Any]]) -> None:
    ITEMS[:] = items
    fast, plain = both()
    assert fast == plain
    assert keys_in_order(fast["data"]) == keys_in_order(plain["data"])


def test_skipped_fields_and_nullable_lists_answer_like_strawberry() -> None:
    ITEMS[:] = [bucket, lambda: None]
    query = "query($skip: Boolean!) { loose { total note @skip(if: $skip) } }"
    for skip in (True, False):
        fast, plain = both(query, {"skip": skip})
        assert fast == plain
        assert keys_in_order(fast["data"]) == keys_in_order(plain["data"])


async def later_bucket() -> Bucket:
    return bucket()


def test_awaitable_items_are_awaited_like_strawberry_does() -> None:
    ITEMS[:] = [later_bucket, later_bucket]
    for query, item in (
        ("{ buckets { __typename } }", {"__typename": "Bucket"}),
        ("{ buckets { total } }", {"total": 7}),
    ):
        fast, plain = both(query)
        assert fast == plain
        assert fast == {"data": {"buckets": [item, item]}, "errors": []}


def count_object_completions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    completed: list[str] = []
    original = LeafFastExecutionContext.complete_object_value

    def spy(self: Any, return_type: Any, *args: Any, **kwargs: Any) -> Any:
        completed.append(return_type.name)
        return original(self, return_type, *args, **kwargs)

    monkeypatch.setattr(LeafFastExecutionContext, "complete_object_value", spy)
    return completed


def test_the_items_are_completed_without_graphql_cores_per_object_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    completed = count_object_completions(monkeypatch)
    ITEMS[:] = [bucket] * 50

    result = Schema(query=Query).execute_sync(QUERY)

    assert result.errors is None
    assert result.data is not None
    assert len(result.data["buckets"]) == 50
    assert completed == []


def test_a_field_with_a_resolver_leaves_the_list_to_graphql_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    completed = count_object_completions(monkeypatch)

    result = Schema(query=OuterQuery).execute_sync("{ outers { buckets { total } } }")

    assert result.errors is None
    # The outer objects have a field with a resolver: graphql-core completes each of them;
    # the buckets inside are leaf objects again, completed in one loop.
    assert completed == ["Outer", "Outer"]
