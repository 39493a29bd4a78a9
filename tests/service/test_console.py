"""The console as the app serves it: its files, its CSP, the setting that turns it off.

The flows themselves are proven in Chromium (tests/browser); these check what a browser
cannot see cheaply: every file it ships, and the rules those files must keep.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import httpx2
import pytest
from tortoise.context import TortoiseContext

from wfa_keys.app import create_app
from wfa_keys.browser import API_CSP
from wfa_keys.console import CONSOLE_CSP, STATIC_DIR
from wfa_keys.settings import Settings

SCRIPTS = sorted((STATIC_DIR / "assets" / "js").glob("*.js"))


def client(settings: Settings) -> httpx2.AsyncClient:
    transport = httpx2.ASGITransport(app=create_app(settings))
    return httpx2.AsyncClient(transport=transport, base_url="http://testserver")


async def test_the_console_page_and_its_assets_are_served_with_the_strict_csp(
    db: TortoiseContext,
) -> None:
    del db
    async with client(Settings(database_url="unused")) as c:
        page = await c.get("/")
        style = await c.get("/assets/console.css")
        script = await c.get("/assets/js/main.js")
        missing = await c.get("/assets/js/nothing.js")
        health = await c.get("/healthz")

    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1" in page.text
    for response in (page, style, script):
        assert response.headers["Content-Security-Policy"] == CONSOLE_CSP
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
    assert script.headers["content-type"].startswith("text/javascript")
    assert style.headers["content-type"].startswith("text/css")
    assert missing.status_code == 404
    # The other routes keep the API's own policy.
    assert health.headers["Content-Security-Policy"] == API_CSP


def test_the_console_csp_allows_nothing_inline_and_nothing_from_elsewhere() -> None:
    policy = dict(directive.split(" ", 1) for directive in CONSOLE_CSP.split("; "))

    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"


async def test_wfa_console_off_serves_no_console(db: TortoiseContext) -> None:
    del db
    settings = Settings.from_env({"WFA_DATABASE_URL": "unused", "WFA_CONSOLE": "off"})
    async with client(settings) as c:
        page = await c.get("/")
        asset = await c.get("/assets/js/main.js")
        alive = await c.get("/livez")

    assert settings.console is False
    assert page.status_code == 404
    assert asset.status_code == 404
    assert alive.status_code == 200


class _Markup(HTMLParser):
    """Everything in a page that a strict CSP would refuse."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "style" or "style" in names:
            self.refused.append(f"inline style on <{tag}>")
        if tag == "script" and "src" not in names:
            self.refused.append("inline <script>")
        self.refused += [f"{name} handler on <{tag}>" for name in names if name.startswith("on")]
        for name, value in attrs:
            if name in {"src", "href"} and value and "//" in value:
                self.refused.append(f"{name}={value} from another origin")


def test_index_html_has_no_inline_script_style_or_handler_and_loads_nothing_from_elsewhere() -> (
    None
):
    markup = _Markup()
    markup.feed((STATIC_DIR / "index.html").read_text(encoding="utf-8"))

    assert markup.refused == []


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: Path(path).name)
def test_no_script_evaluates_code_stores_data_or_writes_html(script: Path) -> None:
    source = script.read_text(encoding="utf-8")

    for forbidden in (
        "eval(",
        "new Function",
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "localStorage",
        "sessionStorage",
        "indexedDB",
        "document.cookie",
        "history.pushState",
        "history.replaceState",
        ".style.",
    ):
        assert forbidden not in source, f"{script.name} uses {forbidden}"


def test_the_console_ships_in_the_package_data() -> None:
    names = {path.relative_to(STATIC_DIR).as_posix() for path in STATIC_DIR.rglob("*")}

    assert {"index.html", "assets/console.css", "assets/favicon.svg", "assets/js/main.js"} <= names
