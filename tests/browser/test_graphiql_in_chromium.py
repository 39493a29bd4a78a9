"""GraphiQL in a real browser with no network but the server: it renders from the files the
app ships, answers a query, and keeps the operation and its headers out of the URL and out of
the browser's storage."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect

from support.console import Account, chromium_or_skip, sign_in
from support.serving import Server, start_server

pytestmark = pytest.mark.browser

HEADER_VALUE = "graphiql-header-value-7f3a"


@pytest.fixture(scope="module")
def console_server(
    console_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The module's server, with GraphiQL on (as ``--dev`` turns it on) and its defaults."""
    chromium_or_skip()
    server = start_server(
        tmp_path_factory.mktemp("graphiql-server"),
        console_database_url,
        env={"WFA_GRAPHIQL": "on"},
    )
    yield server
    server.stop()


@pytest.fixture
def offline(context: BrowserContext, console_server: Server) -> list[str]:
    """Every request to anything but the server is aborted, as on a machine without internet;
    the list collects them."""
    refused: list[str] = []

    def only_the_server(route: Route) -> None:
        if route.request.url.startswith(f"{console_server.base_url}/"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_server)
    return refused


def storage_dump(page: Page) -> str:
    return str(
        page.evaluate(
            """() => JSON.stringify([
                Object.entries(localStorage), Object.entries(sessionStorage), document.cookie,
            ])"""
        )
    )


def test_graphiql_runs_a_query_offline_and_writes_nothing_to_the_url_or_storage(
    page: Page, admin: Account, offline: list[str], console_server: Server
) -> None:
    sign_in(page, admin)
    page.goto("/graphql")

    # The editor itself, not the "Loading..." placeholder that shows until the scripts run.
    editor = page.locator(".graphiql-query-editor .CodeMirror")
    expect(editor).to_be_visible()
    page.get_by_role("button", name="Headers").click()
    headers = page.locator(".graphiql-editor-tool .CodeMirror").last
    headers.click()
    page.keyboard.type(f'{{"X-Example": "{HEADER_VALUE}"}}')
    page.get_by_role("button", name=re.compile("Execute query")).click()

    result = page.locator(".graphiql-response")
    expect(result).to_contain_text(admin.email)
    expect(result).to_contain_text('"role": "ADMIN"')
    assert offline == []
    assert page.url == f"{console_server.base_url}/graphql"
    dump = storage_dump(page)
    assert "me {" not in dump, dump
    assert "organization" not in dump, dump
    assert HEADER_VALUE not in dump, dump
    page.reload()
    expect(page.locator(".graphiql-query-editor .CodeMirror")).to_be_visible()
    assert HEADER_VALUE not in page.content()
