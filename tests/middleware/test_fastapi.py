"""wfa_auth.fastapi: the dependency protects FastAPI routes and shows the auth in OpenAPI."""

# No ``from __future__ import annotations``: FastAPI would then read ``Annotated[...,
# Security(auth)]`` in the module's globals, where ``auth`` is the fixture, not the local.
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request, Security, WebSocket
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from support.keys import CountingStore, CountingVerifier, basic, bearer
from wfa_auth import ApiKeyAuthMiddleware, KeyRecord, MemoryKeyRecord
from wfa_auth.fastapi import ApiKeySecurity

SCHEMES = ["WfaKeyBasic", "WfaKeyId", "WfaKeySecret", "WfaKeyBearer"]
Key = tuple[MemoryKeyRecord, str]


def build_app(auth: ApiKeySecurity, *, token_prefix: str = "") -> FastAPI:
    app = FastAPI(lifespan=auth.lifespan)
    if auth.middleware is not None:
        app.include_router(auth.token_router, prefix=token_prefix)

    @app.get("/whoami")
    async def whoami(request: Request, key: Annotated[KeyRecord, Security(auth)]) -> dict[str, Any]:
        return {
            "key_id": key.key_id,
            "user": request.user.display_name,
            "scopes": request.auth.scopes,
        }

    @app.get("/members")
    async def members(key: Annotated[KeyRecord, Security(auth, scopes=["authenticated"])]) -> str:
        return key.organization_name

    @app.get("/superpower")
    async def superpower(key: Annotated[KeyRecord, Security(auth, scopes=["superpower"])]) -> str:
        return key.key_id

    @app.get("/healthz")
    async def healthz() -> str:
        return "ok"

    @app.websocket("/ws")
    async def socket(websocket: WebSocket, key: Annotated[KeyRecord, Security(auth)]) -> None:
        await websocket.accept()
        await websocket.send_json({"key_id": key.key_id})
        await websocket.close()

    return app


def client_for(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
def auth(store: CountingStore, verifier: CountingVerifier) -> ApiKeySecurity:
    return ApiKeySecurity(store=store, verifier=verifier)


@pytest.fixture
def app(auth: ApiKeySecurity) -> FastAPI:
    return build_app(auth)


async def token_for(client: httpx.AsyncClient, key: Key, path: str = "") -> str:
    record, secret = key
    response = await client.post(
        f"{path}/v1/auth/api-key/token", json={"key_id": record.key_id, "key_secret": secret}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def test_docs_and_openapi_answer_without_credentials_and_list_the_four_schemes(
    app: FastAPI,
) -> None:
    async with client_for(app) as client:
        docs = await client.get("/docs")
        schema = await client.get("/openapi.json")
    assert docs.status_code == 200
    assert "swagger-ui" in docs.text
    assert schema.status_code == 200
    document = schema.json()
    schemes = document["components"]["securitySchemes"]
    assert schemes == {
        "WfaKeyBasic": {
            "type": "http",
            "scheme": "basic",
            "description": "The Key ID as user name, the Key Secret as password.",
        },
        "WfaKeyId": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key-ID",
            "description": "The Key ID; send X-API-Key-Secret with it.",
        },
        "WfaKeySecret": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key-Secret",
            "description": "The Key Secret; send X-API-Key-ID with it.",
        },
        "WfaKeyBearer": {
            "type": "http",
            "scheme": "bearer",
            "description": schemes["WfaKeyBearer"]["description"],
        },
    }
    whoami = document["paths"]["/whoami"]["get"]
    assert [next(iter(requirement)) for requirement in whoami["security"]] == SCHEMES
    assert "security" not in document["paths"]["/healthz"]["get"]


async def test_openapi_lists_the_token_exchange_with_its_body_and_answer(app: FastAPI) -> None:
    async with client_for(app) as client:
        document = (await client.get("/openapi.json")).json()
    exchange = document["paths"]["/v1/auth/api-key/token"]["post"]
    body = exchange["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["key_id", "key_secret"]
    answer = exchange["responses"]["200"]["content"]["application/json"]["schema"]
    assert sorted(answer["properties"]) == ["access_token", "expires_in", "token_type"]
    assert "security" not in exchange


async def test_protected_route_refuses_a_call_without_credentials(app: FastAPI) -> None:
    async with client_for(app) as client:
        response = await client.get("/whoami")
    assert response.status_code == 401
    assert response.json()["detail"]["error"] == "missing_credentials"
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("form", ["basic", "headers", "bearer"])
async def test_protected_route_answers_each_credential_form(
    app: FastAPI, key: Key, form: str
) -> None:
    record, secret = key
    async with client_for(app) as client:
        if form == "basic":
            headers = basic(record.key_id, secret)
        elif form == "headers":
            headers = {"X-API-Key-ID": record.key_id, "X-API-Key-Secret": secret}
        else:
            headers = bearer(await token_for(client, key))
        response = await client.get("/whoami", headers=headers)
    assert response.status_code == 200
    assert response.json() == {
        "key_id": record.key_id,
        "user": "ada@example.com",
        "scopes": ["authenticated"],
    }


async def test_public_route_needs_no_key(app: FastAPI) -> None:
    async with client_for(app) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [
        ({"Authorization": "Basic not-base64!"}, 401, "invalid_request"),
        ({"Authorization": "Bearer unknown-token"}, 401, "invalid_token"),
        ({"X-API-Key-ID": "wfak_only"}, 401, "invalid_request"),
    ],
)
async def test_bad_credentials_get_the_middleware_codes(
    app: FastAPI, headers: dict[str, str], status: int, error: str
) -> None:
    async with client_for(app) as client:
        response = await client.get("/whoami", headers=headers)
    assert response.status_code == status
    assert response.json()["detail"]["error"] == error
    assert "www-authenticate" in response.headers


async def test_a_wrong_secret_is_refused_and_never_echoed(app: FastAPI, key: Key) -> None:
    record, _ = key
    async with client_for(app) as client:
        response = await client.get("/whoami", headers=basic(record.key_id, "wfas_guessed"))
    assert response.status_code == 401
    assert response.json()["detail"]["error"] == "invalid_credentials"
    assert "wfas_guessed" not in response.text


async def test_a_disabled_key_is_refused_once_the_middleware_hears_of_it(
    app: FastAPI, auth: ApiKeySecurity, store: CountingStore, key: Key
) -> None:
    record, secret = key
    async with client_for(app) as client:
        assert (await client.get("/whoami", headers=basic(record.key_id, secret))).is_success
        store.update(record.key_id, enabled=False)
        assert auth.middleware is not None
        await auth.middleware.key_changed(record.key_id)
        response = await client.get("/whoami", headers=basic(record.key_id, secret))
    assert response.status_code == 401
    assert response.json()["detail"]["error"] == "key_disabled"


async def test_required_scopes_are_checked_against_the_granted_ones(app: FastAPI, key: Key) -> None:
    record, secret = key
    async with client_for(app) as client:
        granted = await client.get("/members", headers=basic(record.key_id, secret))
        lacking = await client.get("/superpower", headers=basic(record.key_id, secret))
    assert granted.status_code == 200
    assert granted.json() == "Acme"
    assert lacking.status_code == 403
    assert lacking.json()["detail"] == {
        "error": "insufficient_scope",
        "message": "This API key does not have the scope superpower.",
        "scope": "superpower",
    }
    assert 'scope="superpower"' in lacking.headers["www-authenticate"]


async def test_required_scopes_include_the_keys_own_scopes(
    app: FastAPI, store: CountingStore, verifier: CountingVerifier
) -> None:
    record, secret = store.create_key(
        verifier,
        name="Powerful",
        owner_email="ada@example.com",
        organization_name="Acme",
        scopes=["superpower"],
    )
    async with client_for(app) as client:
        response = await client.get("/superpower", headers=basic(record.key_id, secret))
        whoami = await client.get("/whoami", headers=basic(record.key_id, secret))
    assert (response.status_code, response.json()) == (200, record.key_id)
    assert whoami.json()["scopes"] == ["authenticated", "superpower"]


async def test_required_scopes_behind_a_mounted_middleware_are_the_keys_own(
    store: CountingStore, verifier: CountingVerifier
) -> None:
    reader, reader_secret = store.create_key(
        verifier, name="R", owner_email="a@example.com", organization_name="Acme", scopes=["r"]
    )
    auth = ApiKeySecurity()
    app = FastAPI()

    @app.get("/read")
    async def read(key: Annotated[KeyRecord, Security(auth, scopes=["r"])]) -> str:
        return key.key_id

    @app.get("/write")
    async def write(key: Annotated[KeyRecord, Security(auth, scopes=["w"])]) -> str:
        return key.key_id

    mounted = ApiKeyAuthMiddleware(app, store=store, verifier=verifier)
    async with client_for(mounted) as client:
        read_response = await client.get("/read", headers=basic(reader.key_id, reader_secret))
        write_response = await client.get("/write", headers=basic(reader.key_id, reader_secret))
    assert (read_response.status_code, read_response.json()) == (200, reader.key_id)
    assert write_response.status_code == 403
    assert write_response.json()["detail"]["scope"] == "w"


async def test_an_unreachable_store_fails_closed_with_503(verifier: CountingVerifier) -> None:
    class DownStore(CountingStore):
        async def get_key(self, key_id: str) -> MemoryKeyRecord | None:
            raise ConnectionRefusedError("database down")

    store = DownStore()
    record, secret = store.create_key(
        verifier, name="CI", owner_email="ada@example.com", organization_name="Acme"
    )
    app = build_app(ApiKeySecurity(store=store, verifier=verifier))
    async with client_for(app) as client:
        response = await client.get("/whoami", headers=basic(record.key_id, secret))
    assert response.status_code == 503
    assert response.json()["detail"]["error"] == "service_unavailable"
    assert "retry-after" in response.headers
    assert "database down" not in response.text


async def test_the_token_exchange_works_under_a_router_prefix(
    auth: ApiKeySecurity, key: Key
) -> None:
    app = build_app(auth, token_prefix="/api")
    async with client_for(app) as client:
        token = await token_for(client, key, path="/api")
        response = await client.get("/whoami", headers=bearer(token))
    assert response.status_code == 200


async def test_the_token_exchange_refuses_a_wrong_secret_with_the_middleware_answer(
    app: FastAPI, key: Key
) -> None:
    record, _ = key
    async with client_for(app) as client:
        response = await client.post(
            "/v1/auth/api-key/token", json={"key_id": record.key_id, "key_secret": "wfas_x"}
        )
        malformed = await client.post("/v1/auth/api-key/token", content=b"not json")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_credentials"
    assert malformed.status_code == 400


async def test_a_route_with_two_uses_of_the_dependency_checks_the_secret_once(
    auth: ApiKeySecurity, verifier: CountingVerifier, key: Key
) -> None:
    router = APIRouter(dependencies=[Security(auth)])

    @router.get("/twice")
    async def twice(key: Annotated[KeyRecord, Security(auth, scopes=["authenticated"])]) -> str:
        return key.key_id

    app = FastAPI()
    app.include_router(router)
    record, secret = key
    async with client_for(app) as client:
        response = await client.get("/twice", headers=basic(record.key_id, secret))
    assert response.status_code == 200
    assert verifier.verify_calls == 1


async def test_behind_a_mounted_middleware_the_dependency_returns_its_key(
    store: CountingStore, verifier: CountingVerifier, key: Key
) -> None:
    # allow_anonymous keeps /docs reachable without credentials on this branch; the
    # dependency still refuses its routes when no key was authenticated.
    app = build_app(ApiKeySecurity())
    app.add_middleware(ApiKeyAuthMiddleware, store=store, verifier=verifier, allow_anonymous=True)
    record, secret = key
    async with client_for(app) as client:
        docs = await client.get("/openapi.json")
        anonymous = await client.get("/whoami")
        token = await token_for(client, key)
        with_token = await client.get("/whoami", headers=bearer(token))
        with_basic = await client.get("/whoami", headers=basic(record.key_id, secret))
    assert docs.status_code == 200
    assert "WfaKeyBearer" in docs.json()["components"]["securitySchemes"]
    assert anonymous.status_code == 401
    assert anonymous.json()["detail"]["error"] == "missing_credentials"
    assert with_token.status_code == 200
    assert with_basic.json()["key_id"] == record.key_id


async def test_anonymous_calls_let_through_by_the_own_middleware_are_still_refused(
    store: CountingStore, verifier: CountingVerifier
) -> None:
    app = build_app(ApiKeySecurity(store=store, verifier=verifier, allow_anonymous=True))
    async with client_for(app) as client:
        response = await client.get("/whoami")
    assert response.status_code == 401
    assert response.json()["detail"]["error"] == "missing_credentials"


def test_a_websocket_without_credentials_is_closed_with_policy_violation(
    app: FastAPI, key: Key
) -> None:
    record, secret = key
    with TestClient(app) as client:
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws"):
            pass
        with client.websocket_connect("/ws", headers=basic(record.key_id, secret)) as socket:
            accepted = socket.receive_json()
    assert refused.value.code == 1008
    assert accepted == {"key_id": record.key_id}


async def test_the_lifespan_writes_pending_last_used_times_at_shutdown(
    auth: ApiKeySecurity, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert auth.middleware is not None
    flushes: list[str] = []

    async def flush_usage() -> None:
        flushes.append("flushed")

    monkeypatch.setattr(auth.middleware, "flush_usage", flush_usage)
    async with auth.lifespan(app):
        assert flushes == []
    assert flushes == ["flushed"]


def test_middleware_options_without_a_store_are_a_type_error() -> None:
    with pytest.raises(TypeError, match="need a store"):
        ApiKeySecurity(allow_anonymous=True)


def test_the_token_router_needs_the_dependencys_own_middleware() -> None:
    with pytest.raises(RuntimeError, match="token_router"):
        _ = ApiKeySecurity().token_router


def test_an_apps_own_lifespan_around_auth_lifespan_flushes_usage_before_its_resources_close(
    auth: ApiKeySecurity, store: CountingStore, key: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pattern of docs/wfa-auth.md: the app's own resources (a database) wrap auth.lifespan,
    # so pending last-used times are written while the database is still open.
    events: list[str] = []
    record_usage = store.record_usage

    async def recording(last_used: Any) -> None:
        events.append("usage written")
        await record_usage(last_used)

    monkeypatch.setattr(store, "record_usage", recording)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("database opened")
        async with auth.lifespan(app):
            yield
        events.append("database closed")

    app = FastAPI(lifespan=lifespan)

    @app.get("/whoami")
    async def whoami(key: Annotated[KeyRecord, Security(auth)]) -> str:
        return key.key_id

    record, secret = key
    with TestClient(app) as client:
        for _ in range(3):  # the first use is written at once, the others are deferred
            assert client.get("/whoami", headers=basic(record.key_id, secret)).status_code == 200
        assert events == ["database opened", "usage written"]
    assert events == ["database opened", "usage written", "usage written", "database closed"]
    assert record.key_id in store.last_used
