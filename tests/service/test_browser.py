"""Browser protections of the full app: security headers, the GraphiQL CSP, CORS and CSRF."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount
from tortoise.context import TortoiseContext

from support.gql import CREATE_KEY, LOGIN, PASSWORD, Api
from support.settings import cheap_settings
from wfa_keys.app import create_app
from wfa_keys.browser import API_CSP, SecurityHeadersMiddleware, cors_middleware
from wfa_keys.models import ApiKey, AuditEvent, Session
from wfa_keys.settings import Settings

FRONTEND = "https://keys.acme.example"
ADMIN = "admin@acme.example"

if TYPE_CHECKING:
    from service.conftest import UserFactory


@pytest.fixture
def settings() -> Settings:
    """Production settings with one allowed frontend origin."""
    return cheap_settings(database_url="unused", cors_origins=(FRONTEND,))


@pytest.fixture
async def client(settings: Settings, make_user: UserFactory) -> AsyncIterator[httpx2.AsyncClient]:
    """A client of the full app, with an admin of Acme in the database."""
    await make_user(ADMIN)
    transport = httpx2.ASGITransport(app=create_app(settings), client=("127.0.0.1", 50000))
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def admin(client: httpx2.AsyncClient) -> Api:
    """The client, signed in as the admin (its cookie jar holds the session)."""
    api = Api(client)
    assert "errors" not in await api.login(ADMIN)
    return api


def login_request(**headers: str) -> dict[str, Any]:
    return {
        "json": {"query": LOGIN, "variables": {"email": ADMIN, "password": PASSWORD}},
        "headers": headers,
    }


# -- Security headers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/healthz"), ("POST", "/graphql"), ("GET", "/nowhere"), ("GET", "/api/v1/whoami")],
)
async def test_every_response_carries_the_security_headers(
    client: httpx2.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, json={"query": "{ me { email } }"})

    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Content-Security-Policy"] == API_CSP
    assert response.headers["Cache-Control"] == "no-store"
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    assert "Strict-Transport-Security" not in response.headers


async def test_api_responses_carry_no_cors_headers(client: httpx2.AsyncClient) -> None:
    # The key-authenticated API skips the browser-only layers (not the security headers).
    response = await client.get("/api/v1/whoami", headers={"Origin": FRONTEND})

    assert response.status_code == 401
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_headers_an_app_sets_are_replaced_once_but_its_own_csp_and_cache_are_kept() -> None:
    async def page(scope: Any, receive: Any, send: Any) -> None:
        headers = [
            (b"content-type", b"text/html"),
            (b"x-frame-options", b"SAMEORIGIN"),
            (b"cache-control", b"max-age=60"),
            (b"content-security-policy", b"default-src 'self'"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"<script>x()</script>"})

    transport = httpx2.ASGITransport(app=SecurityHeadersMiddleware(page))
    async with httpx2.AsyncClient(transport=transport, base_url="https://testserver") as c:
        response = await c.get("/")

    assert response.headers.get_list("X-Frame-Options") == ["DENY"]
    assert response.headers.get_list("Content-Security-Policy") == ["default-src 'self'"]
    assert response.headers["Cache-Control"] == "max-age=60"
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


async def test_https_responses_ask_browsers_to_stay_on_https(db: TortoiseContext) -> None:
    del db
    transport = httpx2.ASGITransport(app=create_app(cheap_settings(database_url="unused")))
    async with httpx2.AsyncClient(transport=transport, base_url="https://keys.example") as c:
        response = await c.get("/healthz")

    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


@pytest.mark.parametrize("assets_url", ["", "https://unpkg.com"], ids=["own-copy", "cdn"])
async def test_graphiql_page_csp_allows_exactly_what_the_page_loads(
    db: TortoiseContext, assets_url: str
) -> None:
    del db
    transport = httpx2.ASGITransport(
        app=create_app(
            cheap_settings(database_url="unused", dev=True, graphiql_assets_url=assets_url)
        )
    )
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as c:
        response = await c.get("/graphql", headers={"Accept": "text/html"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    policy = dict(
        directive.split(" ", 1)
        for directive in response.headers["Content-Security-Policy"].split("; ")
    )
    assert policy["frame-ancestors"] == "'none'"
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    script_sources = policy["script-src"].split()
    external = re.findall(r'<script[^>]*\ssrc="([^"]+)"', html)
    inline = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    assert external
    assert inline
    # The app's own copy is at a relative URL: a CSP names it as 'self' (SRI pins each file).
    expected = [*external] if assets_url else ["'self'"]
    assert all(("://" in url) == bool(assets_url) for url in external)
    for body in inline:
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        expected.append(f"'sha256-{digest}'")
    assert sorted(script_sources) == sorted(expected)
    stylesheets = re.findall(r'rel="stylesheet"\s+href="([^"]+)"', html)
    assert stylesheets
    assert set(stylesheets if assets_url else ["'self'"]) <= set(policy["style-src"].split())
    for forbidden in ("*", "'unsafe-eval'", "'unsafe-inline'", "https:", "http:"):
        assert forbidden not in script_sources


# -- CORS ---------------------------------------------------------------------------------


async def test_preflight_from_the_allowed_frontend_is_answered_with_credentials(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.options(
        "/graphql",
        headers={
            "Origin": FRONTEND,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert response.headers["Access-Control-Allow-Credentials"] == "true"


async def test_the_api_answers_no_preflight_since_browsers_do_not_call_it_with_cookies(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.options(
        "/api/v1/whoami",
        headers={"Origin": FRONTEND, "Access-Control-Request-Method": "GET"},
    )

    assert "Access-Control-Allow-Origin" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_preflight_from_another_origin_is_refused(client: httpx2.AsyncClient) -> None:
    response = await client.options(
        "/graphql",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )

    assert response.status_code == 400
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_responses_name_the_allowed_origin_never_a_wildcard(
    client: httpx2.AsyncClient,
) -> None:
    allowed = await client.post("/graphql", **login_request(Origin=FRONTEND))
    other = await client.get("/healthz", headers={"Origin": "https://evil.example"})

    assert allowed.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert "Access-Control-Allow-Origin" not in other.headers


def test_cors_with_credentials_never_allows_every_origin() -> None:
    middleware = cors_middleware(cheap_settings(cors_origins=(FRONTEND,)))
    assert middleware.cls is CORSMiddleware  # type: ignore[comparison-overlap]
    assert middleware.kwargs["allow_origins"] == [FRONTEND]
    assert middleware.kwargs["allow_credentials"] is True
    with pytest.raises(ValueError, match="cannot be"):
        cors_middleware(cheap_settings(cors_origins=("*",)))


# -- Cross-site requests ------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-site"},
        {"Origin": "null"},
        {"Origin": "http://testserver.evil.example"},
        {"Origin": FRONTEND, "Sec-Fetch-Site": "cross-site"},
    ],
    ids=["fetch-metadata", "origin", "same-site-other-origin", "opaque", "lookalike", "both"],
)
async def test_cross_site_login_is_refused_before_the_resolver(
    client: httpx2.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post("/graphql", **login_request(**headers))

    assert response.status_code == 403
    assert response.json()["errors"][0]["extensions"]["code"] == "CROSS_SITE_REQUEST"
    assert "set-cookie" not in response.headers
    assert await Session.all().count() == 0
    assert await AuditEvent.all().count() == 0


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl and other non-browser clients send no Origin
        {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
        {"Origin": FRONTEND, "Sec-Fetch-Site": "same-site"},
        {"Origin": FRONTEND + "/"},
    ],
    ids=["no-origin", "same-origin", "allowed-frontend", "allowed-with-slash"],
)
async def test_same_origin_and_allowed_frontends_can_sign_in(
    client: httpx2.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post("/graphql", **login_request(**headers))

    assert response.status_code == 200
    assert response.json()["data"]["login"]["email"] == ADMIN
    assert await Session.all().count() == 1


async def test_a_signed_in_admin_cannot_be_made_to_create_a_key_from_another_site(
    admin: Api,
) -> None:
    response = await admin.client.post(
        "/graphql",
        json={"query": CREATE_KEY, "variables": {"name": "attacker's key"}},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )

    assert response.status_code == 403
    assert await ApiKey.all().count() == 0
    assert await AuditEvent.filter(action="key_created").count() == 0


async def test_graphiql_can_still_be_opened_from_a_link_on_another_site(
    db: TortoiseContext,
) -> None:
    del db
    transport = httpx2.ASGITransport(
        app=create_app(cheap_settings(database_url="unused", dev=True))
    )
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as c:
        response = await c.get(
            "/graphql", headers={"Accept": "text/html", "Sec-Fetch-Site": "cross-site"}
        )

    assert response.status_code == 200


# -- Mutations only as JSON POSTs ---------------------------------------------------------

MUTATION = 'mutation { createApiKey(input: {name: "sneaky"}) { keySecret } }'
JSON_MUTATION = json.dumps({"query": MUTATION})


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"method": "GET", "url": "/graphql", "params": {"query": MUTATION}},
        {
            "method": "POST",
            "url": "/graphql",
            "content": JSON_MUTATION,
            "headers": {"Content-Type": "text/plain"},
        },
        {"method": "POST", "url": "/graphql", "data": {"query": MUTATION}},
        {
            "method": "POST",
            "url": "/graphql",
            "files": {"operations": (None, JSON_MUTATION)},
        },
    ],
    ids=["get", "text-plain", "form", "multipart"],
)
async def test_mutations_are_accepted_only_as_json_posts(
    admin: Api, request_kwargs: dict[str, Any]
) -> None:
    response = await admin.client.request(**request_kwargs)

    assert 400 <= response.status_code < 500
    assert "wfas_" not in response.text
    assert await ApiKey.all().count() == 0


async def test_cross_site_requests_are_refused_when_the_app_is_mounted_under_a_prefix(
    db: TortoiseContext, settings: Settings
) -> None:
    del db
    outer = Starlette(routes=[Mount("/keys", app=create_app(settings))])
    transport = httpx2.ASGITransport(app=outer)
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as c:
        refused = await c.post("/keys/graphql", **login_request(Origin="https://evil.example"))
        allowed = await c.post("/keys/graphql", json={"query": "{ me { email } }"})

    assert refused.status_code == 403
    assert allowed.json() == {"data": {"me": None}}


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize(
    "own",
    [
        [],
        [(b"content-type", b"application/json")],
        [(b"Cache-Control", b"max-age=60")],
        [(b"content-security-policy", b"default-src 'self'")],
        [(b"X-Frame-Options", b"SAMEORIGIN"), (b"content-length", b"2")],
    ],
)
def test_security_headers_are_added_once_in_a_fixed_order(
    scheme: str, own: list[tuple[bytes, bytes]]
) -> None:
    from wfa_keys.browser import add_security_headers

    headers = list(own)
    add_security_headers({"type": "http", "scheme": scheme}, headers)

    names = [name.lower() for name, _ in own]
    expected = [(n, v) for n, v in own if n.lower() != b"x-frame-options"]
    expected += [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
    ]
    if b"cache-control" not in names:
        expected.append((b"cache-control", b"no-store"))
    if scheme == "https":
        expected.append((b"strict-transport-security", b"max-age=31536000"))
    if b"content-security-policy" not in names:
        expected.append((b"content-security-policy", API_CSP.encode()))
    assert headers == expected
