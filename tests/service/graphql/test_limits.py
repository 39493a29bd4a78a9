"""Hostile queries: depth, aliases, tokens, batches, introspection, suggestions, extra input.

Limits are checked at parsing and validation, so these run through ``schema.execute``
with a context that has no session (no resolver needs the database to refuse them), and
through HTTP where the transport matters.
"""

from __future__ import annotations

from typing import Any

import pytest

from support.gql import Api, errors_of, only_error_code
from support.settings import cheap_settings
from wfa_keys.graphql import build_schema
from wfa_keys.graphql.context import Context, Services
from wfa_keys.models import ApiKey
from wfa_keys.settings import Settings

DEFAULTS = cheap_settings()


async def execute(settings: Settings, query: str) -> tuple[Any, list[str]]:
    """Run ``query`` without a session; return the data and the error codes."""
    schema = build_schema(settings)
    result = await schema.execute(query, context_value=Context(services=Services.create(settings)))
    codes = [error.extensions["code"] for error in result.errors or [] if error.extensions]
    return result.data, codes


def nested(depth: int) -> str:
    """A query ``depth`` levels deep below ``me`` (fields need not exist to be counted)."""
    inner = "id"
    for _ in range(depth - 1):
        inner = f"organization {{ {inner} }}"
    return f"{{ me {{ {inner} }} }}"


def aliases(count: int) -> str:
    return "{ " + " ".join(f"a{n}: me {{ id }}" for n in range(count)) + " }"


def tokens(count: int) -> str:
    """A valid query of exactly ``count`` tokens.

    The skeleton ``{ me { organization { } } }`` has 8; the rest are repeated fields,
    spread over three levels (graphql-core gives up validating ~1000 siblings).
    """
    filler = count - 8
    top, middle = filler // 3, filler // 3
    bottom = filler - top - middle
    return (
        "{ "
        + "__typename " * top
        + "me { "
        + "id " * middle
        + "organization { "
        + "id " * bottom
        + "} } }"
    )


# ------------------------------------------------------------------------ depth


@pytest.mark.parametrize("limit", [1, 2])
async def test_query_at_the_depth_limit_runs(limit: int) -> None:
    data, codes = await execute(cheap_settings(max_query_depth=limit), nested(limit))
    assert codes == []
    assert data == {"me": None}


@pytest.mark.parametrize("limit", [1, 2])
async def test_query_one_level_deeper_is_refused(limit: int) -> None:
    data, codes = await execute(cheap_settings(max_query_depth=limit), nested(limit + 1))
    assert data is None
    assert "QUERY_TOO_DEEP" in codes


async def test_default_depth_limit_is_ten() -> None:
    _, at_limit = await execute(DEFAULTS, nested(DEFAULTS.max_query_depth))
    _, beyond = await execute(DEFAULTS, nested(DEFAULTS.max_query_depth + 1))
    # Beyond the fields this schema has, so both are also invalid; only one is too deep.
    assert "QUERY_TOO_DEEP" not in at_limit
    assert "QUERY_TOO_DEEP" in beyond


async def test_depth_through_fragments_counts() -> None:
    query = "{ me { ...U } } fragment U on User { organization { id } }"
    _, codes = await execute(cheap_settings(max_query_depth=1), query)
    assert codes == ["QUERY_TOO_DEEP"]


# ---------------------------------------------------------------------- aliases


async def test_default_alias_limit_allows_fifteen() -> None:
    data, codes = await execute(DEFAULTS, aliases(15))
    assert codes == []
    assert len(data) == 15


async def test_sixteenth_alias_is_refused() -> None:
    data, codes = await execute(DEFAULTS, aliases(16))
    assert data is None
    assert codes == ["TOO_MANY_ALIASES"]


async def test_aliases_in_fragments_count() -> None:
    query = "{ ...Q } fragment Q on Query { " + aliases(16)[2:-2] + " }"
    _, codes = await execute(DEFAULTS, query)
    assert codes == ["TOO_MANY_ALIASES"]


# ----------------------------------------------------------------------- tokens


@pytest.mark.parametrize("limit", [50, 100])
async def test_query_of_exactly_the_token_limit_runs(limit: int) -> None:
    data, codes = await execute(cheap_settings(max_tokens=limit), tokens(limit))
    assert codes == []
    assert data is not None


@pytest.mark.parametrize("limit", [50, 100])
async def test_one_token_more_is_refused(limit: int) -> None:
    data, codes = await execute(cheap_settings(max_tokens=limit), tokens(limit + 1))
    assert data is None
    assert codes == ["TOO_MANY_TOKENS"]


async def test_default_token_limit_parses_two_thousand() -> None:
    # 2,000 repeated fields are more than graphql-core validates (it answers
    # "Validation aborted"), but the parser takes them: the token limit is not hit.
    _, codes = await execute(DEFAULTS, tokens(2000))
    assert "TOO_MANY_TOKENS" not in codes


async def test_token_two_thousand_and_one_is_refused() -> None:
    data, codes = await execute(DEFAULTS, tokens(2001))
    assert data is None
    assert codes == ["TOO_MANY_TOKENS"]


# ---------------------------------------------------------- limits over HTTP


async def test_limits_refuse_before_any_resolver_runs(admin: Api) -> None:
    query = (
        "mutation { "
        + " ".join(
            f'k{n}: createApiKey(input: {{name: "k{n}"}}) {{ keySecret }}' for n in range(16)
        )
        + " }"
    )

    body = await admin(query)

    assert only_error_code(body) == "TOO_MANY_ALIASES"
    assert await ApiKey.all().count() == 0


async def test_batched_operations_are_refused(admin: Api) -> None:
    response = await admin.client.post(
        "/graphql",
        json=[
            {"query": 'mutation { createApiKey(input: {name: "a"}) { keySecret } }'},
            {"query": 'mutation { createApiKey(input: {name: "b"}) { keySecret } }'},
        ],
    )

    assert response.status_code == 400
    assert await ApiKey.all().count() == 0


# --------------------------------------------------- introspection, suggestions

INTROSPECTION = "{ __schema { queryType { name } } }"


async def test_introspection_is_refused_to_anonymous_callers_in_production(
    anonymous: Api,
) -> None:
    body = await anonymous(INTROSPECTION)
    assert {code for code, _ in errors_of(body)} == {"INTROSPECTION_DISABLED"}
    assert body.get("data") is None


async def test_introspection_is_refused_to_members_in_production(member: Api) -> None:
    body = await member('{ __type(name: "ApiKey") { name } }')
    assert {code for code, _ in errors_of(body)} == {"INTROSPECTION_DISABLED"}


async def test_signed_in_admin_may_introspect_in_production(admin: Api) -> None:
    body = await admin(INTROSPECTION)
    assert body == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


async def test_introspection_is_open_in_dev_mode() -> None:
    data, codes = await execute(cheap_settings(dev=True), INTROSPECTION)
    assert codes == []
    assert data == {"__schema": {"queryType": {"name": "Query"}}}


async def test_typename_is_not_introspection(anonymous: Api) -> None:
    assert await anonymous("{ __typename }") == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    "query",
    [
        "{ mee { id } }",
        "{ me { emial } }",
        "{ apiKeys(frist: 1) { totalCount } }",
        'mutation { createApiKey(input: {nam: "x"}) { keySecret } }',
    ],
)
async def test_suggestions_are_hidden_from_anyone_but_an_admin(
    anonymous: Api, admin: Api, query: str
) -> None:
    anonymous_body = await anonymous(query)
    admin_body = await admin(query)

    assert all("Did you mean" not in e["message"] for e in anonymous_body["errors"])
    assert any("Did you mean" in e["message"] for e in admin_body["errors"])


async def test_suggestions_are_shown_in_dev_mode() -> None:
    schema = build_schema(cheap_settings(dev=True))
    context = Context(services=Services.create(cheap_settings(dev=True)))
    result = await schema.execute("{ me { emial } }", context_value=context)
    assert result.errors is not None
    assert "Did you mean" in result.errors[0].message


# -------------------------------------------------------------- mass assignment


@pytest.mark.parametrize(
    "extra",
    [
        "enabled: false",
        'owner: "someone"',
        'ownerId: "someone"',
        'organization: "Globex"',
        'organizationId: "x"',
        'secretHash: "$argon2id$v=19$m=19456,t=2,p=1$x$y"',
        'keySecret: "wfas_x"',
        'id: "wfak_00000000000000000000"',
        'createdAt: "2000-01-01T00:00:00+00:00"',
        'expiresAt: "2100-01-01T00:00:00+00:00"',
        'lastUsedAt: "2000-01-01T00:00:00+00:00"',
    ],
)
async def test_no_input_can_set_what_the_service_decides(admin: Api, extra: str) -> None:
    body = await admin(
        f'mutation {{ createApiKey(input: {{name: "x", {extra}}}) {{ keySecret }} }}'
    )

    assert only_error_code(body) == "GRAPHQL_VALIDATION_FAILED"
    assert await ApiKey.all().count() == 0


async def test_extra_fields_in_variables_are_refused_too(admin: Api) -> None:
    body = await admin(
        "mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { keySecret } }",
        input={"name": "x", "enabled": False, "organizationId": "x"},
    )

    assert {code for code, _ in errors_of(body)} == {"GRAPHQL_VALIDATION_FAILED"}
    assert await ApiKey.all().count() == 0


async def test_key_mutations_take_no_other_arguments(admin: Api) -> None:
    key_id = (await admin.create_key("ours"))["apiKey"]["id"]

    body = await admin(
        f'mutation {{ setApiKeyEnabled(id: "{key_id}", enabled: false, name: "x") {{ id }} }}'
    )

    assert only_error_code(body) == "GRAPHQL_VALIDATION_FAILED"
    row = await ApiKey.get(key_id=key_id)
    assert (row.name, row.enabled) == ("ours", True)
