"""Drive the admin console in Debian's Chromium with Playwright, against a real server.

The browser is never downloaded: tests launch ``/usr/bin/chromium`` (``apt-get install
chromium``). Each page records what would show a broken console: CSP violations, console
errors and uncaught exceptions; the ``page`` fixture fails the test on any of them.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from playwright.sync_api import ConsoleMessage, Locator, Page, expect

from support.serving import WFA_KEYS, server_env

CHROMIUM = Path(os.environ.get("WFA_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "a long console password"

# Runs in every page before its own scripts: collects CSP violations where a test can read them.
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def chromium_or_skip() -> Path:
    """Debian's Chromium; missing, the test fails in CI and skips elsewhere."""
    if CHROMIUM.exists():
        return CHROMIUM
    message = f"the browser tests need Chromium at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(f"{message}; CI fails here instead of skipping")


@dataclass
class PageProblems:
    """What went wrong in a page: each entry is one line for the failure message."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)

    def watch(self, page: Page, origin: str) -> None:
        page.add_init_script(WATCH_CSP)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        # The console must work without internet: it asks nothing of any other host.
        page.on(
            "request",
            lambda request: (
                None
                if request.url.startswith((f"{origin}/", "data:"))
                else self.elsewhere.append(request.url)
            ),
        )

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def all(self, page: Page) -> list[str]:
        violations: list[str] = []
        if not page.is_closed():
            violations = page.evaluate("window.__cspViolations ?? []")
        return [
            *(f"CSP violation: {v}" for v in violations),
            *(f"console error: {e}" for e in self.console_errors),
            *(f"page error: {e}" for e in self.page_errors),
            *(f"request to another host: {url}" for url in self.elsewhere),
        ]


@dataclass
class Account:
    """A user made for one test, in an organization of its own."""

    email: str
    organization: str
    password: str = PASSWORD


def create_account(
    database_url: str, *, role: str = "admin", subscribed: bool = True, email: str | None = None
) -> Account:
    """A new user (and organization) through the ``wfa-keys`` command, as an operator would."""
    tag = uuid.uuid4().hex[:10]
    account = Account(email or f"{role}-{tag}@example.com", f"Org {tag}")
    env = server_env()
    subprocess.run(
        [str(WFA_KEYS), "create-user", "--email", account.email, "--organization",
         account.organization, "--role", role, "--database-url", database_url],
        input=PASSWORD.encode(), check=True, capture_output=True, env=env, timeout=60,
    )  # fmt: skip
    if not subscribed:
        subprocess.run(
            [str(WFA_KEYS), "set-subscription", "--organization", account.organization,
             "--workflow-automation", "off", "--database-url", database_url],
            check=True, capture_output=True, env=env, timeout=60,
        )  # fmt: skip
    return account


def call_api(
    base_url: str,
    key_id: str,
    secret: str,
    path: str = "/api/v1/whoami",
    *,
    method: str = "GET",
    json: Any = None,
) -> httpx2.Response:
    """One call to the Workflow Automation API with this Key ID and Key Secret (Basic)."""
    token = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
    return httpx2.request(
        method,
        f"{base_url}{path}",
        headers={"Authorization": f"Basic {token}"},
        json=json,
        trust_env=False,
        timeout=30,
    )


def whoami_status(base_url: str, key_id: str, secret: str) -> int:
    """The status ``/api/v1/whoami`` answers to this Key ID and Key Secret."""
    return call_api(base_url, key_id, secret).status_code


def make_key_older(database_url: str, key_id: str, days: int) -> None:
    """Move a key's creation ``days`` into the past, as if nobody had used it since then.

    Runs in a thread of its own: Playwright's sync API owns this thread's event loop.
    """
    from wfa_keys.db import database
    from wfa_keys.models import ApiKey

    async def work() -> None:
        async with database(database_url, migrate=False):
            changed = await ApiKey.filter(key_id=key_id).update(
                created_at=datetime.now(UTC) - timedelta(days=days)
            )
            assert changed == 1

    failures: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(work())
        except BaseException as exc:  # re-raised in the test's thread
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    if failures:
        raise failures[0]


def disable_inactive_keys(database_url: str) -> str:
    """Run ``wfa-keys disable-inactive-keys`` as a cron job would; its standard output."""
    done = subprocess.run(
        [str(WFA_KEYS), "disable-inactive-keys", "--database-url", database_url],
        check=True, capture_output=True, env=server_env(), timeout=60, text=True,
    )  # fmt: skip
    return done.stdout


def create_key(
    page: Page,
    name: str,
    *,
    lifetime_days: int | None = None,
    scopes: Sequence[str] | None = None,
    networks: Sequence[str] = (),
) -> tuple[str, str]:
    """Add More > Create API Key > Submit; return the Key ID and Key Secret shown once.

    ``scopes``: the boxes left ticked (None: all of them, the default); ``networks``: the
    lines of Allowed networks.
    """
    page.get_by_role("button", name="Add More").click()
    dialog = page.get_by_role("dialog", name="Create API Key")
    dialog.get_by_role("textbox", name="Name").fill(name)
    if lifetime_days is not None:
        dialog.get_by_role("switch", name="Expiration Time").click()
        dialog.get_by_role("spinbutton", name="Lifetime (days)").fill(str(lifetime_days))
    if scopes is not None:
        boxes = dialog.get_by_role("group", name="Scopes").get_by_role("checkbox")
        expect(boxes.first).to_be_visible()
        for box in boxes.all():
            box.set_checked((box.get_attribute("value") or "") in scopes)
    if networks:
        dialog.get_by_role("textbox", name="Allowed networks").fill("\n".join(networks))
    dialog.get_by_role("button", name="Submit").click()
    shown = page.get_by_role("dialog", name="API Key")
    expect(shown).to_be_visible()
    key_id = shown.locator("#secret-key-id").inner_text()
    secret = shown.locator("#secret-key-secret").inner_text()
    return key_id, secret


def close_secret(page: Page) -> None:
    """Done in the API Key window, and Yes to "Close Without Copying?" when it asks."""
    page.get_by_role("dialog", name="API Key").get_by_role("button", name="Done").click()
    # The window asks synchronously, in Done's click handler: no wait is needed to know.
    ask = page.get_by_role("alertdialog", name="Close Without Copying?")
    if ask.is_visible():
        ask.get_by_role("button", name="Yes").click()
    expect(page.get_by_role("dialog", name="API Key")).to_be_hidden()


def key_row(page: Page, name: str) -> Locator:
    """The row of the keys table named after the key."""
    return page.get_by_role("row", name=name, exact=True)


def gql(page: Page, query: str, **variables: object) -> dict[str, object]:
    """One GraphQL operation with the page's session (for setting up many keys fast)."""
    body = page.request.post("/graphql", data={"query": query, "variables": variables}).json()
    assert "errors" not in body, body
    data: dict[str, object] = body["data"]
    return data


CREATE_KEY = "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { apiKey { id } } }"


def seed_key(page: Page, name: str, lifetime_days: int | None = None) -> str:
    """A key made through the API with the page's session; its Key ID."""
    data = gql(page, CREATE_KEY, i={"name": name, "lifetimeDays": lifetime_days})
    return str(data["createApiKey"]["apiKey"]["id"])  # type: ignore[index]


def sign_in(page: Page, account: Account) -> None:
    """Open the console and sign in through its form."""
    page.goto("/")
    page.get_by_label("Email").fill(account.email)
    page.get_by_label("Password").fill(account.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
