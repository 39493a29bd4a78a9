"""Client addresses, the root path and uvicorn's proxy options."""

from __future__ import annotations

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from wfa_keys.proxy import ClientAddressMiddleware, RootPathMiddleware, parse_ip, uvicorn_options
from wfa_keys.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("2001:DB8::0001", "2001:db8::1"),
        # A zone ID names an interface of whoever wrote it, and is free text: dropped.
        ("::1%<svg onload=alert(1)>", "::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("[fe80::1%25eth0]", "fe80::1"),
        ("<img src=x onerror=alert(1)>", None),
        ("10.0.0.1, 10.0.0.2", None),
        ("", None),
        ("1" * 100, None),
        (None, None),
    ],
)
def test_only_an_ip_address_is_a_client_address(host: object, expected: str | None) -> None:
    assert parse_ip(host) == expected


async def echo(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "client": request.client.host if request.client else None,
            "root_path": request.scope.get("root_path"),
            "url": str(request.url_for("echo")),
        }
    )


def app_with(*middleware: object) -> Starlette:
    app = Starlette(routes=[Route("/echo", echo, name="echo")])
    wrapped = app
    for factory in middleware:
        wrapped = factory(wrapped)  # type: ignore[operator]
    return wrapped


async def test_a_client_address_that_is_not_an_ip_becomes_none() -> None:
    app = app_with(ClientAddressMiddleware)
    transport = httpx2.ASGITransport(app=app, client=("<script>", 1))
    async with httpx2.AsyncClient(transport=transport, base_url="http://t") as c:
        body = (await c.get("/echo")).json()
    assert body["client"] is None


async def test_the_root_path_is_applied_when_the_server_did_not() -> None:
    app = app_with(lambda inner: RootPathMiddleware(inner, "/keys"))
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://t") as c:
        body = (await c.get("/echo")).json()
    assert body["root_path"] == "/keys"
    assert body["url"] == "http://t/keys/echo"


def test_uvicorn_trusts_no_proxy_unless_configured() -> None:
    assert uvicorn_options(Settings()) == {
        "proxy_headers": False,
        "forwarded_allow_ips": "",
        "root_path": "",
    }
    configured = Settings.from_env(
        {"WFA_FORWARDED_ALLOW_IPS": "127.0.0.1, 10.0.0.0/8", "WFA_ROOT_PATH": "/keys"}
    )
    assert uvicorn_options(configured) == {
        "proxy_headers": True,
        "forwarded_allow_ips": ["127.0.0.1", "10.0.0.0/8"],
        "root_path": "/keys",
    }


@pytest.mark.parametrize(
    "environ",
    [
        {"WFA_FORWARDED_ALLOW_IPS": "proxy.internal"},
        {"WFA_ROOT_PATH": "keys"},
        {"WFA_ROOT_PATH": "/keys/"},
        {"WFA_THROTTLE_STORE": "memcached://x"},
        {"WFA_DATABASE_POOL_SIZE": "0"},
        {"WFA_METRICS": "maybe"},
    ],
)
def test_bad_deployment_settings_are_refused(environ: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(environ))):
        Settings.from_env(environ)
