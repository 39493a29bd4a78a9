"""GraphiQL keeps operations out of the URL and out of local storage; its assets ship in the
wheel and can move."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import httpx2
import pytest
from tortoise.context import TortoiseContext

from wfa_keys.app import create_app
from wfa_keys.graphql.graphiql import ASSETS_DIR, CDN_URL, graphiql_html
from wfa_keys.settings import Settings, SettingsError

SELF_HOSTED = "https://assets.acme.example/graphiql"


async def graphiql_page(settings: Settings) -> httpx2.Response:
    transport = httpx2.ASGITransport(app=create_app(settings))
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as c:
        return await c.get("/graphql", headers={"Accept": "text/html"})


async def test_graphiql_never_writes_the_operation_into_the_url_or_local_storage(
    db: TortoiseContext,
) -> None:
    del db
    response = await graphiql_page(Settings(database_url="unused", dev=True))

    assert response.status_code == 200
    (script,) = re.findall(r"<script>(.*?)</script>", response.text, flags=re.DOTALL)
    # Strawberry's page copies q= and variables= into the address bar; this one has no URL
    # parameters at all, and GraphiQL's storage is a Map in memory.
    assert "replaceState" not in script
    assert "location.search" not in script
    assert "parameters" not in script
    assert "localStorage" not in script
    assert "storage," in script
    assert "new Map()" in script
    assert "shouldPersistHeaders: false" in script
    assert "Sign in through the console" in script


ASSET_TAG = re.compile(
    r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"[^>]*\bintegrity="(sha384-[^"]+)"'
)


async def graphiql_asset(path: str) -> httpx2.Response:
    transport = httpx2.ASGITransport(app=create_app(Settings(database_url="unused", dev=True)))
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as c:
        return await c.get(f"/{path}")


async def test_graphiql_assets_come_from_the_app_itself_by_default(db: TortoiseContext) -> None:
    del db
    response = await graphiql_page(Settings(database_url="unused", dev=True))

    assets = ASSET_TAG.findall(response.text)
    assert len(assets) == 7
    assert "unpkg.com" not in response.text
    for url, integrity in assets:
        # Relative to /graphql: the page finds them under a root path too.
        assert url.startswith("graphiql-assets/")
        served = await graphiql_asset(url)
        assert served.status_code == 200
        # The browser refuses a file whose hash differs from the page's pin.
        digest = base64.b64encode(hashlib.sha384(served.content).digest()).decode()
        assert integrity == f"sha384-{digest}"


def test_every_shipped_graphiql_asset_has_its_licence_beside_it() -> None:
    # One folder per package and version: react@18.2.0, @graphiql/plugin-explorer@1.0.2, ...
    packages = [p for p in ASSETS_DIR.rglob("*@*") if p.is_dir() and not p.name.startswith("@")]
    assert len(packages) == 5
    for package in packages:
        assert (package / "LICENSE").read_text(encoding="utf-8").count("MIT License") == 1


def test_the_wheel_ships_every_file_the_graphiql_page_loads() -> None:
    # The packages' dist/ folders match the repository's "dist/" ignore pattern: hatchling
    # (and git) would leave them out but for the exception in .gitignore.
    from hatchling.builders.wheel import WheelBuilder

    root = Path(__file__).resolve().parents[3]
    shipped = {f.distribution_path for f in WheelBuilder(str(root)).recurse_included_files()}
    page = graphiql_html()
    loaded = {url for url, _integrity in ASSET_TAG.findall(page)}
    assert len(loaded) == 7
    for url in loaded:
        assert f"wfa_keys/graphql/graphiql_assets/{url.removeprefix('graphiql-assets/')}" in shipped


async def test_graphiql_assets_are_not_served_without_graphiql(db: TortoiseContext) -> None:
    del db
    transport = httpx2.ASGITransport(app=create_app(Settings(database_url="unused")))
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as c:
        response = await c.get("/graphiql-assets/react@18.2.0/umd/react.production.min.js")
    assert response.status_code == 404


async def test_wfa_graphiql_assets_url_loads_them_from_a_cdn_pinned_with_sri(
    db: TortoiseContext,
) -> None:
    del db
    settings = Settings.from_env(
        {"WFA_DATABASE_URL": "unused", "WFA_DEV": "on", "WFA_GRAPHIQL_ASSETS_URL": CDN_URL}
    )
    response = await graphiql_page(settings)

    tags = re.findall(r"<(?:script|link)\b[^>]*\b(?:src|href)=\"https://[^>]*>", response.text)
    assert len(tags) == 7
    for tag in tags:
        assert f'"{CDN_URL}/' in tag
        assert 'integrity="sha384-' in tag


async def test_wfa_graphiql_assets_url_self_hosts_them_with_the_same_hashes(
    db: TortoiseContext,
) -> None:
    del db
    settings = Settings.from_env(
        {
            "WFA_DATABASE_URL": "unused",
            "WFA_DEV": "on",
            "WFA_GRAPHIQL_ASSETS_URL": SELF_HOSTED + "/",
        }
    )
    response = await graphiql_page(settings)

    assert CDN_URL not in response.text
    assert f"{SELF_HOSTED}/graphiql@3.8.3/graphiql.min.js" in response.text
    assert response.text.count('integrity="sha384-') == 7
    # The page's CSP names the new host, so the browser loads the copies.
    policy = response.headers["Content-Security-Policy"]
    assert f"{SELF_HOSTED}/graphiql@3.8.3/graphiql.min.js" in policy
    assert "unpkg.com" not in policy


@pytest.mark.parametrize("value", ["/static/graphiql", "assets.acme.example", "ftp://x"])
def test_wfa_graphiql_assets_url_must_be_an_absolute_http_url_or_empty(value: str) -> None:
    with pytest.raises(SettingsError, match="WFA_GRAPHIQL_ASSETS_URL"):
        Settings.from_env({"WFA_GRAPHIQL_ASSETS_URL": value})


def test_graphiql_html_is_built_once_per_assets_url() -> None:
    assert graphiql_html(SELF_HOSTED) is graphiql_html(SELF_HOSTED)
