"""The direct completion of plain fields answers exactly what Strawberry's own execution
answers: the same data, in the same key order, and the same errors (messages, paths,
locations), over leaves, nested objects and lists of them, fragments, aliases, variables and
values graphql-core has to refuse."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import graphql
import httpx2
import pytest
import strawberry
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis_graphql import queries
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.extensions import SchemaExtension
from strawberry.permission import BasePermission
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from tortoise.context import TortoiseContext

from support.gql import OTHER_ORGANIZATION, PASSWORD, UNSUBSCRIBED_ORGANIZATION
from wfa_keys.graphql import create_graphql_app
from wfa_keys.graphql.execution import DirectExecutionContext
from wfa_keys.graphql.mutations import Mutation
from wfa_keys.graphql.queries import Query as ServiceQuery
from wfa_keys.graphql.schema import Schema, export_schema_sdl, schema_extensions
from wfa_keys.models import ApiKey, Role, User
from wfa_keys.settings import Settings
from wfa_keys.users import create_user, set_subscription


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

    @strawberry.field
    def computed(self) -> str:
        return f"<{self.label}>"


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
    friends: list[Inner] = strawberry.field(default_factory=list)
    maybe_inner: Inner | None = None
    loose_friends: list[Inner | None] | None = None
    parent: Thing | None = None
    guarded: str = strawberry.field(default="hidden", permission_classes=[Never])
    guarded_inner: Inner | None = strawberry.field(default=None, permission_classes=[Never])

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


class Later:
    """An awaitable that makes no coroutine unless awaited (queries that skip it warn not)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Any:
        return asyncio.sleep(0, self.value).__await__()


#: What ``things`` answers: made again for each execution (a coroutine is awaited once).
THINGS: list[Callable[[], Thing]] = []


@strawberry.type
class Query:
    @strawberry.field
    def things(self) -> list[Thing]:
        return [make() for make in THINGS]


QUERY = """{ things { id name maybe count ratio flag colour when tags looseTags
  alias: name inner { label optional } shout(times: 2) ... on Thing { count } } }"""


def both(
    query: str = QUERY, variables: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The answer of the direct completion and of Strawberry's own execution."""
    fast = Schema(query=Query)
    plain = strawberry.Schema(query=Query)
    assert fast.execution_context_class is DirectExecutionContext
    results = []
    for schema in (fast, plain):
        result = asyncio.run(schema.execute(query, variable_values=variables))
        results.append(
            {
                "data": result.data,
                # The bytes of the answer: the same keys in the same order.
                "json": json.dumps(result.data),
                "errors": [
                    (error.message, error.path, error.locations) for error in result.errors or ()
                ],
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


def test_permission_classes_still_apply() -> None:
    THINGS[:] = [thing]
    fast, plain = both("{ things { name guarded } }")
    assert fast == plain
    assert [error[:2] for error in fast["errors"]] == [("never", ["things", 0, "guarded"])]


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


#: Nested objects and lists of them, through every way GraphQL has to select fields.
NESTED = {
    "objects": """{ things { name inner { label optional } friends { label optional }
        maybeInner { label } looseFriends { label } parent { name inner { label } } } }""",
    "aliases-merged": """{ things { a: inner { l: label } inner { label } inner { optional }
        b: friends { __typename label } friends { optional } } }""",
    "fragments": """fragment I on Inner { label ... on Inner { optional } }
        fragment T on Thing { name inner { ...I } }
        { things { ...T friends { ...I __typename } parent { ...T } } }""",
    "typename": "{ things { __typename inner { __typename } friends { __typename } } }",
    "resolver-below": "{ things { friends { label computed } inner { computed } name } }",
    "permission-below": "{ things { name guardedInner { label } inner { label } } }",
    "deep": "{ things { parent { parent { name friends { label } } } } }",
}


def _nested_things() -> list[Callable[[], Thing]]:
    return [
        lambda: thing(
            friends=[Inner(label="f1", optional=1), Inner(label="f2", optional=None)],
            maybe_inner=Inner(label="m", optional=2),
            loose_friends=[None, Inner(label="l", optional=None)],
            parent=thing(name="parent", parent=thing(name="grandparent")),
        ),
        thing,
    ]


#: Values graphql-core refuses or handles its own way somewhere below a plain object field.
ODD_VALUES: dict[str, Callable[[], Thing]] = {
    "null-object": lambda: thing(inner=None),
    "null-leaf-below": lambda: thing(inner=Inner(label=None, optional=None)),  # type: ignore[arg-type]
    "null-item": lambda: thing(friends=[Inner(label="ok", optional=None), None]),
    "tuple": lambda: thing(friends=(Inner(label="t", optional=None),)),
    "not-a-list": lambda: thing(friends=Inner(label="one", optional=None)),
    "dict": lambda: thing(inner={"label": "from a dict", "optional": None}),
    "wrong-type": lambda: thing(inner=thing()),
    "exception": lambda: thing(inner=ValueError("boom")),
    "awaitable": lambda: thing(inner=Later(Inner(label="awaited", optional=1))),
    "bad-int-below": lambda: thing(friends=[Inner(label="x", optional="many")]),  # type: ignore[arg-type]
    "deep-null": lambda: thing(parent=thing(name="p", inner=None)),
}


@pytest.mark.parametrize("query", NESTED.values(), ids=NESTED.keys())
def test_nested_objects_answer_like_strawberry(query: str) -> None:
    THINGS[:] = _nested_things()
    fast, plain = both(query)
    assert fast == plain
    assert fast["data"] is not None


@pytest.mark.parametrize("query", NESTED.values(), ids=NESTED.keys())
@pytest.mark.parametrize("odd", ODD_VALUES.values(), ids=ODD_VALUES.keys())
def test_odd_values_below_objects_get_strawberrys_answer_and_errors(
    odd: Callable[[], Thing], query: str
) -> None:
    THINGS[:] = [*_nested_things(), odd]
    fast, plain = both(query)
    assert fast == plain


SKIP_INCLUDE = """query($yes: Boolean!, $no: Boolean!) { things {
  inner { label @include(if: $yes) optional @skip(if: $yes) }
  friends @include(if: $no) { label }
  ... on Thing @skip(if: $no) { maybeInner { label } }
  parent @include(if: $yes) { name @skip(if: $no) }
} }"""


@pytest.mark.parametrize("yes", [True, False])
@pytest.mark.parametrize("no", [True, False])
def test_skip_and_include_follow_each_requests_variables(yes: bool, no: bool) -> None:
    THINGS[:] = _nested_things()
    fast, plain = both(SKIP_INCLUDE, {"yes": yes, "no": no})
    assert fast == plain


def test_plain_objects_skip_graphql_cores_field_machinery(monkeypatch: pytest.MonkeyPatch) -> None:
    resolved: list[str] = []
    execute_field = DirectExecutionContext.execute_field

    def counting(self: Any, parent_type: Any, *args: Any, **kwargs: Any) -> Any:
        resolved.append(parent_type.name)
        return execute_field(self, parent_type, *args, **kwargs)

    monkeypatch.setattr(DirectExecutionContext, "execute_field", counting)
    THINGS[:] = _nested_things()
    schema = Schema(query=Query)

    result = schema.execute_sync(NESTED["objects"])
    assert result.errors is None
    assert resolved == ["Query"]  # things; every field below it was completed directly

    resolved.clear()
    result = schema.execute_sync(NESTED["resolver-below"])
    assert result.errors is None
    # friends and inner select a resolver: graphql-core resolves them, and computed on each
    # (two friends, then none); label and name are still completed directly.
    assert resolved == [
        *["Query"],
        *["Thing", "Inner", "Inner", "Thing", "Inner"],
        *["Thing", "Thing", "Inner"],
    ]


# -- The service's schema, through the GraphQL app: the same bytes both ways -------------

KEY_FIELDS = """id name enabled status createdAt expiresAt lastUsedAt secretRegeneratedAt
  lastUsedIp previousSecretExpiresAt scopes allowedCidrs
  owner { id email role organization { id name hasWorkflowAutomation keyInactivityDays } }"""
LIST = f"""query Keys($first: Int, $after: String) {{ apiKeys(first: $first, after: $after) {{
  totalCount pageInfo {{ hasNextPage endCursor }} nodes {{ {KEY_FIELDS} }} }} }}"""

#: (query, variables): every shape the console sends, and the ways GraphQL can say it.
SERVICE_QUERIES: list[tuple[str, dict[str, Any]]] = [
    (LIST, {"first": 100}),
    (LIST, {"first": 10}),
    (LIST, {"first": 1}),
    (LIST, {}),
    (LIST, {"first": 0}),
    (LIST, {"first": 101}),
    (LIST, {"first": 5, "after": "not a cursor"}),
    (
        """{ k: apiKeys(first: 3) { n: nodes { i: id id o: owner { e: email }
            owner { role organization { n: name } } } p: pageInfo { e: endCursor } } }""",
        {},
    ),
    (
        """fragment O on Organization { __typename id name }
        fragment U on User { email organization { ...O } }
        fragment K on ApiKey { __typename id status owner { ...U ... on User { role } } }
        { apiKeys(first: 4) { __typename nodes { ...K ... on ApiKey { name } } } }""",
        {},
    ),
    (
        """query($yes: Boolean!, $no: Boolean!) { apiKeys(first: 4) { nodes {
          id name @include(if: $yes) lastUsedIp @skip(if: $yes)
          owner @include(if: $no) { email } ... on ApiKey @skip(if: $no) { scopes } } } }""",
        {"yes": True, "no": False},
    ),
    (
        """query($yes: Boolean!, $no: Boolean!) { apiKeys(first: 4) { nodes {
          id name @include(if: $yes) lastUsedIp @skip(if: $yes)
          owner @include(if: $no) { email } ... on ApiKey @skip(if: $no) { scopes } } } }""",
        {"yes": False, "no": True},
    ),
    (
        """{ apiKeys(first: 20) { nodes { id rateLimit { requests perSeconds }
          quota { requests period resetsAt used } } } }""",
        {},
    ),
    (
        """{ apiKeys(first: 3) { nodes { id name
          usage(since: "2026-01-01T00:00:00+00:00", granularity: DAY) { start total } } } }""",
        {},
    ),
    ("{ apiKeys(first: 5, status: DISABLED) { totalCount nodes { id status enabled } } }", {}),
    ("{ apiKeys(first: 5, status: EXPIRED) { nodes { id status expiresAt } } }", {}),
    ('{ apiKeys(first: 5, search: "key 1") { totalCount nodes { name } } }', {}),
    ("{ apiKeys(first: 5, expiringWithinDays: 0) { nodes { id } } }", {}),
    ("{ me { id email role organization { id name hasWorkflowAutomation } } }", {}),
    ("{ apiKeys(first: 2) { nodes { id nope } } }", {}),
    ("{ apiKeys(first: 2) { nodes { id owner } } }", {}),
    ("{ apiKeys { totalCount } me { __typename email } apiScopes { name } }", {}),
]


class FixedRequestId:
    """Gives every request the same ID, so that two answers can be compared byte for byte."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {})["request_id"] = "compared"
        await self.app(scope, receive, send)


class TwoApps:
    """The GraphQL app as served, and the same app on Strawberry's own execution."""

    def __init__(self, settings: Settings) -> None:
        direct = create_graphql_app(settings)
        reference = create_graphql_app(settings)
        reference.schema = Schema(
            query=ServiceQuery,
            mutation=Mutation,
            extensions=schema_extensions(settings),
            execution_context_class=StrawberryGraphQLCoreExecutionContext,
        )
        assert isinstance(direct.schema, Schema)
        assert direct.schema.execution_context_class is DirectExecutionContext
        self.clients = [
            httpx2.AsyncClient(
                transport=httpx2.ASGITransport(app=FixedRequestId(app)),
                base_url="http://testserver",
            )
            for app in (direct, reference)
        ]
        self.compared = 0

    async def cookie(self, email: str) -> str:
        response = await self.clients[0].post(
            "/graphql",
            json={
                "query": "mutation($e: String!, $p: String!) { login(email: $e, password: $p) "
                "{ email } }",
                "variables": {"e": email, "p": PASSWORD},
            },
        )
        assert "errors" not in response.json(), response.text
        self.clients[0].cookies.clear()  # each request names its session itself
        return response.headers["set-cookie"].split(";", 1)[0]

    async def same(self, cookie: str | None, query: str, **variables: Any) -> bytes:
        """Sends the same request to both apps; their status, headers and bytes must match."""
        body = json.dumps({"query": query, "variables": variables}).encode()
        headers = {"content-type": "application/json"}
        if cookie is not None:
            headers["cookie"] = cookie
        answers = [
            await client.post("/graphql", content=body, headers=headers) for client in self.clients
        ]
        direct, reference = answers
        assert direct.status_code == reference.status_code, query
        assert direct.headers.multi_items() == reference.headers.multi_items(), query
        assert direct.content == reference.content, query
        self.compared += 1
        return direct.content

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()


async def _seed_keys(owner: User, prefix: str, count: int, start: datetime) -> None:
    """Keys of every kind: disabled, expired, expiring, used, in a grace period, limited."""
    rows = []
    for n in range(count):
        expires_at = None
        if n % 5 == 0:
            expires_at = start + timedelta(days=30)  # long past: EXPIRED
        elif n % 7 == 0:
            expires_at = start + timedelta(days=4000)
        rows.append(
            ApiKey(
                key_id=f"wfa_{prefix}{n:04d}compared",
                name=f"key {n} of {owner.email}",
                secret_hash="$argon2id$v=19$m=8,t=1,p=1$unused",
                enabled=n % 3 != 0,
                created_at=start + timedelta(minutes=n % 9),  # equal times: ties broken by ID
                expires_at=expires_at,
                last_used_at=start + timedelta(minutes=n) if n % 2 else None,
                last_used_ip=f"192.0.2.{n}" if n % 2 else None,
                previous_secret_hash="$argon2id$old" if n % 4 == 1 else None,
                previous_secret_expires_at=(
                    start + timedelta(days=4000 if n % 8 == 1 else 1) if n % 4 == 1 else None
                ),
                scopes=["workflows:read"] if n % 2 else [],
                allowed_cidrs=["203.0.113.0/24"] if n % 6 == 0 else [],
                rate_limit_requests=10 if n % 4 == 2 else None,
                rate_limit_per_seconds=60 if n % 4 == 2 else None,
                quota_requests=1000 if n % 4 == 3 else None,
                quota_period="day" if n % 4 == 3 else None,
                owner=owner,
                organization_id=owner.organization_id,
            )
        )
    await ApiKey.bulk_create(rows)


def generated_service_queries(count: int) -> list[str]:
    """``count`` queries of ``apiKeys``, ``apiKey`` and ``me`` made up by hypothesis-graphql
    from the committed schema (any selection, alias-free, with made-up arguments)."""
    found: list[str] = []
    moment = st.just(graphql.StringValueNode(value="2026-01-01T00:00:00+00:00"))

    @hypothesis_settings(
        max_examples=count,
        database=None,
        deadline=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        query=queries(
            export_schema_sdl(),
            fields=["apiKeys", "apiKey", "me"],
            custom_scalars={"DateTime": moment},
        )
    )
    def collect(query: Any) -> None:
        found.append(str(query))

    collect()
    return found


async def test_the_service_answers_the_same_bytes_as_strawberrys_own_execution(
    db: TortoiseContext, settings: Settings
) -> None:
    del db
    users = {}
    for email, organization, role in [
        ("admin@acme.example", "Acme", Role.ADMIN),
        ("second@acme.example", "Acme", Role.ADMIN),
        ("member@acme.example", "Acme", Role.MEMBER),
        ("admin@globex.example", OTHER_ORGANIZATION, Role.ADMIN),
        ("admin@initech.example", UNSUBSCRIBED_ORGANIZATION, Role.ADMIN),
    ]:
        users[email] = await create_user(
            settings, email=email, password=PASSWORD, organization=organization, role=role
        )
    start = datetime.now(UTC) - timedelta(days=400)
    await _seed_keys(users["admin@acme.example"], "adm", 30, start)
    await _seed_keys(users["second@acme.example"], "sec", 12, start)
    await _seed_keys(users["admin@globex.example"], "glo", 6, start)
    await set_subscription(UNSUBSCRIBED_ORGANIZATION, workflow_automation=False)

    apps = TwoApps(settings)
    try:
        cookies = {email: await apps.cookie(email) for email in users}
        admin = cookies["admin@acme.example"]
        for cookie in [*cookies.values(), None]:
            for query, variables in SERVICE_QUERIES:
                await apps.same(cookie, query, **variables)

        # Every page, following the cursors; then one key, and the other organization's.
        after, pages = None, 0
        while pages < 10:
            body = json.loads(await apps.same(admin, LIST, first=7, after=after))
            page = body["data"]["apiKeys"]
            pages += 1
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert pages == 6  # 42 keys of Acme, 7 a page: Globex's are never counted
        one = f"query($id: ID!) {{ apiKey(id: $id) {{ {KEY_FIELDS} }} }}"
        for key_id in ["wfa_adm0001compared", "wfa_sec0002compared", "wfa_adm0003missing"]:
            for cookie in cookies.values():
                await apps.same(cookie, one, id=key_id)

        # A deleted owner takes its keys along, on both paths.
        await users["second@acme.example"].delete()
        body = json.loads(await apps.same(admin, LIST, first=100))
        assert body["data"]["apiKeys"]["totalCount"] == 30
        assert {node["owner"]["email"] for node in body["data"]["apiKeys"]["nodes"]} == {
            "admin@acme.example"
        }

        for query in generated_service_queries(60):
            await apps.same(admin, query)
    finally:
        await apps.close()
    assert apps.compared >= 200
