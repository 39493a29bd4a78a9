"""Reading: ``me``, ``apiKeys`` (pages, search) and ``apiKey``."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from tortoise.context import TortoiseContext
from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from support.gql import Api, errors_of
from wfa_keys.graphql import pagination
from wfa_keys.models import ApiKey

PAGE = """
query Page($first: Int, $after: String, $search: String) {
  apiKeys(first: $first, after: $after, search: $search) {
    nodes { id name }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}
"""
ONE = "query($id: ID!) { apiKey(id: $id) { id name owner { email organization { name } } } }"


async def page(api: Api, **variables: Any) -> dict[str, Any]:
    return await api.connection(PAGE, "apiKeys", **variables)


async def test_me_is_null_when_not_signed_in(anonymous: Api) -> None:
    assert await anonymous("{ me { id } }") == {"data": {"me": None}}


async def test_me_shows_the_signed_in_user_and_organization(member: Api) -> None:
    body = await member("{ me { id email role organization { id name hasWorkflowAutomation } } }")

    me = body["data"]["me"]
    assert me["email"] == "member@acme.example"
    assert me["role"] == "MEMBER"
    assert me["organization"]["name"] == "Acme"
    assert me["organization"]["hasWorkflowAutomation"] is True


async def test_api_keys_are_listed_newest_first(admin: Api) -> None:
    names = [f"key {n}" for n in range(3)]
    for name in names:
        await admin.create_key(name)

    connection = await page(admin)

    assert [node["name"] for node in connection["nodes"]] == list(reversed(names))
    assert connection["totalCount"] == 3
    assert connection["pageInfo"]["hasNextPage"] is False


async def test_pages_follow_each_other_without_gaps_or_repeats(admin: Api) -> None:
    created = [(await admin.create_key(f"key {n}"))["apiKey"]["id"] for n in range(5)]

    seen: list[str] = []
    after = None
    pages = 0
    while pages < 10:
        connection = await page(admin, first=2, after=after)
        pages += 1
        assert connection["totalCount"] == 5
        seen += [node["id"] for node in connection["nodes"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]

    assert pages == 3
    assert seen == list(reversed(created))


async def test_first_defaults_to_50_when_null(admin: Api) -> None:
    await admin.create_key()
    assert len((await page(admin, first=None))["nodes"]) == 1


async def test_empty_list_has_no_cursor(admin: Api) -> None:
    connection = await page(admin)
    assert connection == {
        "nodes": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
        "totalCount": 0,
    }


@pytest.mark.parametrize("first", [1, 100])
async def test_first_within_bounds_is_accepted(admin: Api, first: int) -> None:
    await admin.create_key()
    assert len((await page(admin, first=first))["nodes"]) == 1


@pytest.mark.parametrize("first", [0, -1, 101, 2**31 - 1])
async def test_first_out_of_bounds_is_bad_user_input(admin: Api, first: int) -> None:
    body = await admin(PAGE, first=first)
    assert errors_of(body) == [("BAD_USER_INPUT", "first")]


def garbage(_: str) -> str:
    return "not a cursor"


def base64_of_garbage(_: str) -> str:
    return base64.urlsafe_b64encode(b"v1|yesterday|1").decode()


def without_timezone(_: str) -> str:
    return base64.urlsafe_b64encode(b"v1|2024-01-01T00:00:00|1").decode()


def negative_id(_: str) -> str:
    return base64.urlsafe_b64encode(b"v1|2024-01-01T00:00:00+00:00|-1").decode()


def beyond_year_9999_in_utc(_: str) -> str:
    # Valid in its own offset, year 10000 in UTC: PostgreSQL answered it with a masked 500.
    return base64.urlsafe_b64encode(b"v1|9999-12-31T23:59:59-14:00|1").decode()


def before_year_1_in_utc(_: str) -> str:
    return base64.urlsafe_b64encode(b"v1|0001-01-01T00:00:00+14:00|1").decode()


def truncated(cursor: str) -> str:
    # Half of it: cutting only a few characters off left a shorter row ID, a valid cursor,
    # once the database's IDs had four digits (PostgreSQL sequences outlive the emptied tables).
    return cursor[: len(cursor) // 2]


def empty(_: str) -> str:
    return ""


def huge(cursor: str) -> str:
    return cursor * 50


@pytest.mark.parametrize(
    "corrupt",
    [
        garbage,
        base64_of_garbage,
        without_timezone,
        negative_id,
        beyond_year_9999_in_utc,
        before_year_1_in_utc,
        truncated,
        empty,
        huge,
    ],
)
async def test_malformed_cursor_is_bad_user_input(
    admin: Api, corrupt: Callable[[str], str]
) -> None:
    for n in range(2):
        await admin.create_key(f"key {n}")
    cursor = (await page(admin, first=1))["pageInfo"]["endCursor"]

    body = await admin(PAGE, first=1, after=corrupt(cursor))

    assert errors_of(body) == [("BAD_USER_INPUT", "after")]


async def test_search_matches_name_ignoring_case(admin: Api) -> None:
    await admin.create_key("Production deploy")
    await admin.create_key("staging")

    connection = await page(admin, search="DEPLOY")

    assert [node["name"] for node in connection["nodes"]] == ["Production deploy"]
    assert connection["totalCount"] == 1


async def test_search_matches_key_id(admin: Api) -> None:
    wanted = (await admin.create_key("one"))["apiKey"]["id"]
    await admin.create_key("two")

    connection = await page(admin, search=wanted.upper())

    assert [node["id"] for node in connection["nodes"]] == [wanted]


async def test_search_treats_wildcards_literally(admin: Api) -> None:
    await admin.create_key("100% uptime")
    await admin.create_key("plain")

    assert [n["name"] for n in (await page(admin, search="%"))["nodes"]] == ["100% uptime"]
    # As a wildcard "la_n" would match "plain".
    assert (await page(admin, search="la_n"))["nodes"] == []


async def test_total_count_is_given_through_fragments_and_aliases(admin: Api) -> None:
    for n in range(3):
        await admin.create_key(f"key {n}")
    query = """
    query { apiKeys(first: 1) { ...Total all: totalCount nodes { id } } }
    fragment Total on ApiKeyConnection { totalCount }
    """

    connection = (await admin(query))["data"]["apiKeys"]

    assert (connection["totalCount"], connection["all"], len(connection["nodes"])) == (3, 3, 1)


async def test_a_page_without_total_count_runs_no_count(
    admin: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    await admin.create_key("one")
    counts: list[str] = []
    count = pagination.count_rows

    async def counting(query: QuerySet[Any]) -> int:
        counts.append(query.model.__name__)
        return await count(query)

    # The total is counted by count_rows (exact, or estimated on PostgreSQL above 10,000).
    monkeypatch.setattr(pagination, "count_rows", counting)

    without = await admin("query { apiKeys(first: 5) { nodes { id } } }")
    assert counts == []
    with_total = await admin("query { apiKeys(first: 5) { totalCount } }")

    assert len(without["data"]["apiKeys"]["nodes"]) == 1
    assert with_total["data"]["apiKeys"]["totalCount"] == 1
    assert counts == ["ApiKey"]


async def test_search_can_use_the_trigram_indexes_on_postgresql(
    db: TortoiseContext, database_url: str
) -> None:
    del db
    if not database_url.startswith("postgres"):
        pytest.skip("the trigram indexes exist on PostgreSQL only (migration 0004)")
    # The search filter exactly as apiKeys writes it (the organization filter aside, which
    # an empty table would rightly serve by its own index).
    query = ApiKey.filter(Q(name__icontains="deploy") | Q(key_id__icontains="deploy"))

    async with in_transaction() as transaction:
        # Forbid the sequential scan that a near-empty table would rightly prefer.
        await transaction.execute_script("SET LOCAL enable_seqscan = off")
        plan = await transaction.execute_query_dict("EXPLAIN " + query.sql(params_inline=True))

    text = "\n".join(row["QUERY PLAN"] for row in plan)
    assert "Bitmap Index Scan on api_key_name_trgm" in text
    assert "Bitmap Index Scan on api_key_key_id_trgm" in text


async def test_overlong_search_is_bad_user_input(admin: Api) -> None:
    body = await admin(PAGE, search="x" * 101)
    assert errors_of(body) == [("BAD_USER_INPUT", "search")]


@pytest.mark.parametrize("search", ["a\x00b", "\x1b[31m"])
async def test_search_with_control_characters_is_bad_user_input(admin: Api, search: str) -> None:
    body = await admin(PAGE, search=search)
    assert errors_of(body) == [("BAD_USER_INPUT", "search")]


async def test_search_with_a_lone_surrogate_is_bad_user_input(admin: Api) -> None:
    # JSON can carry "\ud800", which no database can store; httpx2 cannot encode it itself.
    raw = '{"query": "query($s: String) { apiKeys(search: $s) { totalCount } }", '
    raw += '"variables": {"s": "\\ud800"}}'
    response = await admin.client.post(
        "/graphql", content=raw, headers={"content-type": "application/json"}
    )
    # Refused as a body, before the argument is read (docs/limits.md).
    assert response.status_code == 400
    assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["BAD_USER_INPUT"]


async def test_api_key_is_found_by_its_key_id(admin: Api) -> None:
    key_id = (await admin.create_key("CI"))["apiKey"]["id"]

    body = await admin(ONE, id=key_id)

    assert body["data"]["apiKey"] == {
        "id": key_id,
        "name": "CI",
        "owner": {"email": "admin@acme.example", "organization": {"name": "Acme"}},
    }


async def test_api_key_is_null_when_there_is_no_such_key(admin: Api) -> None:
    assert await admin(ONE, id="wfak_" + "a" * 20) == {"data": {"apiKey": None}}
