"""Drive the admin console in Debian's Chromium with Playwright, against a real server.

The browser is never downloaded: tests launch ``/usr/bin/chromium`` (``apt-get install
chromium``). Each page records what would show a broken console: CSP violations, console
errors and uncaught exceptions; the ``page`` fixture fails the test on any of them.
"""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

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


def whoami_status(base_url: str, key_id: str, secret: str) -> int:
    """The status ``/api/v1/whoami`` answers to this Key ID and Key Secret."""
    token = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
    response = httpx2.get(
        f"{base_url}/api/v1/whoami",
        headers={"Authorization": f"Basic {token}"},
        trust_env=False,
        timeout=30,
    )
    return response.status_code


def sign_in(page: Page, account: Account) -> None:
    """Open the console and sign in through its form."""
    page.goto("/")
    page.get_by_label("Email").fill(account.email)
    page.get_by_label("Password").fill(account.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
