"""The leaf fast path answers exactly what Strawberry's own execution answers, errors included."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest
import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.permission import BasePermission

from wfa_keys.graphql.execution import DirectExecutionContext
from wfa_keys.graphql.schema import Schema


@strawberry.enum
class Colour(Enum):
    RED = "red"
    BLUE = "blue"


class Never(BasePermission):
    message = "never"

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return False


@strawberry.type
class Inner:
    label: str
    optional: int | None


@strawberry.type
class Thing:
    id: strawberry.ID
    name: str
    maybe: str | None
    count: int
    ratio: float
    flag: bool
    colour: Colour
    when: datetime
    tags: list[str]
    loose_tags: list[str | None] | None
    inner: Inner
    guarded: str = strawberry.field(default="hidden", permission_classes=[Never])

    @strawberry.field
    def shout(self, times: int = 1) -> str:
        return self.name.upper() * times


def thing(**changes: Any) -> Thing:
    values: dict[str, Any] = {
        "id": strawberry.ID("t1"),
        "name": "one",
        "maybe": None,
        "count": 3,
        "ratio": 0.5,
        "flag": True,
        "colour": Colour.BLUE,
        "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "tags": ["a", "b"],
        "loose_tags": ["x", None],
        "inner": Inner(label="in", optional=None),
    }
    values.update(changes)
    return Thing(**values)


async def later() -> str:
    return "awaited"


#: What ``things`` answers: made again for each execution (a coroutine is awaited once).
THINGS: list[Callable[[], Thing]] = []


@strawberry.type
class Query:
    @strawberry.field
    def things(self) -> list[Thing]:
        return [make() for make in THINGS]


QUERY = """{ things { id name maybe count ratio flag colour when tags looseTags
  alias: name inner { label optional } shout(times: 2) ... on Thing { count } } }"""


def both(query: str = QUERY) -> tuple[dict[str, Any], dict[str, Any]]:
    fast = Schema(query=Query)
    plain = strawberry.Schema(query=Query)
    assert fast.execution_context_class is DirectExecutionContext
    results = []
    for schema in (fast, plain):
        result = asyncio.run(schema.execute(query))
        results.append(
            {
                "data": result.data,
                "errors": [(error.message, error.path) for error in result.errors or ()],
            }
        )
    return results[0], results[1]


@pytest.mark.parametrize(
    "things",
    [
        [thing, lambda: thing(name="two", maybe="yes", colour=Colour.RED, tags=[])],
        [lambda: thing(name=None)],  # null in a non-null field: the error, with its path
        [lambda: thing(tags=["a", None])],  # null item in a non-null list
        [lambda: thing(count="many")],  # not an Int
        [lambda: thing(colour="green")],  # not a member of the enum
        [lambda: thing(loose_tags=None), lambda: thing(tags=("t", "u"))],
        [lambda: thing(maybe=later())],  # an awaitable attribute
    ],
    ids=["plain", "null", "null-item", "bad-int", "bad-enum", "lists", "awaitable"],
)
def test_the_fast_path_answers_like_strawberry(things: list[Callable[[], Thing]]) -> None:
    THINGS[:] = things
    fast, plain = both()
    assert fast == plain
    if fast["data"] is not None:  # the same keys in the same order: the response's bytes
        assert [list(t) for t in fast["data"]["things"]] == [
            list(t) for t in plain["data"]["things"]
        ]


def test_permission_classes_still_apply() -> None:
    THINGS[:] = [thing]
    fast, plain = both("{ things { name guarded } }")
    assert fast == plain
    assert fast["errors"] == [("never", ["things", 0, "guarded"])]


def test_direct_fields_lists_only_plain_fields() -> None:
    direct = Schema(query=Query).direct_fields["Thing"]
    assert {"id", "name", "maybe", "colour", "when", "tags", "looseTags", "inner"} <= set(direct)
    assert not {"shout", "guarded"} & set(direct)


class SeesEveryField(SchemaExtension):
    seen: list[str] = []  # noqa: RUF012 - the test reads it once

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        SeesEveryField.seen.append(info.field_name)
        return _next(root, info, *args, **kwargs)


def test_an_extension_with_a_resolve_hook_sees_every_field() -> None:
    THINGS[:] = [thing]
    SeesEveryField.seen = []
    schema = Schema(query=Query, extensions=[SeesEveryField])

    result = schema.execute_sync("{ things { name count } }")

    assert result.errors is None
    assert SeesEveryField.seen == ["things", "name", "count"]
