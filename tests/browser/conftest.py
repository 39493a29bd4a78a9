"""Fixtures of the browser tests: one ``wfa-keys serve`` and one Chromium per module.

Tests do not interfere: each signs in as a user of an organization of its own. SQLite runs
use a new file per module; PostgreSQL runs (``WFA_TEST_DATABASE_URL``) use the test database.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from support.console import CHROMIUM_ARGS, Account, PageProblems, chromium_or_skip, create_account
from support.serving import Server, start_server

VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def console_database_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    if database_url.startswith("sqlite"):
        return f"sqlite://{tmp_path_factory.mktemp('console') / 'console.sqlite3'}"
    return database_url


@pytest.fixture(scope="module")
def console_server(
    console_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    chromium_or_skip()
    server = start_server(tmp_path_factory.mktemp("console-server"), console_database_url)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = chromium_or_skip()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(path), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser, console_server: Server) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport=VIEWPORT, base_url=console_server.base_url)  # type: ignore[arg-type]
    ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=console_server.base_url)
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(context: BrowserContext, problems: PageProblems, console_server: Server) -> Iterator[Page]:
    """A console tab; the test fails on a CSP violation, a console error or a request
    to any host but the server (the console must work without internet)."""
    tab = context.new_page()
    # Focus assertions need the tab to have the window's focus (document.hasFocus()).
    tab.bring_to_front()
    problems.watch(tab, console_server.base_url)
    yield tab
    found = problems.all(tab)
    assert not found, "\n".join(found)


@pytest.fixture
def admin(console_database_url: str, console_server: Server) -> Account:
    return create_account(console_database_url)
