"""axe-core finds no WCAG 2.1 A or AA violation anywhere in the console, at both widths.

axe comes from the npm registry (``tests/support/axe.py`` installs the pinned version once)
and is injected into each state of the page: the sign-in page, the list with keys, every
dialog, the audit log and the settings, at 1280x800 and 390x844.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from support.axe import axe_script, axe_violations
from support.console import Account, gql, key_row, seed_key, sign_in
from support.serving import Server

pytestmark = pytest.mark.browser

WIDTHS = {1280: 800, 390: 844}
REGENERATE = (
    "mutation($id: ID!) { regenerateApiKey(id: $id, gracePeriodMinutes: 60) { keySecret } }"
)


@pytest.fixture(scope="module")
def axe() -> Path:
    return axe_script()


@pytest.fixture
def context(browser: Browser, console_server: Server) -> Iterator[BrowserContext]:
    """Like the conftest's, but bypassing the console's CSP so that axe can be injected."""
    ctx = browser.new_context(
        viewport={"width": 1280, "height": 800},
        base_url=console_server.base_url,
        bypass_csp=True,
    )
    ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=console_server.base_url)
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


class Audit:
    """Runs axe in each named state of a page and collects what it finds."""

    def __init__(self, page: Page, script: Path) -> None:
        self.page = page
        self.script = script
        self.found: list[str] = []
        self.states: list[str] = []

    def __call__(self, state: str) -> None:
        self.states.append(state)
        self.found += [f"{state}: {line}" for line in axe_violations(self.page, self.script)]


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_axe_finds_no_wcag_21_a_or_aa_violation_in_any_state(
    page: Page, admin: Account, axe: Path, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": WIDTHS[width]})
    audit = Audit(page, axe)
    page.goto("/")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    audit("sign-in")
    page.get_by_label("Email").fill(admin.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    audit("sign-in with an error")

    sign_in(page, admin)
    seed_key(page, "Forever key")
    seed_key(page, "Soon " + "long name " * 8, lifetime_days=2)
    graced = seed_key(page, "Regenerated with a grace period", lifetime_days=90)
    gql(page, REGENERATE, id=graced)
    page.reload()
    row = key_row(page, "Forever key")
    expect(row).to_be_visible()
    expect(page.get_by_text("1 key expires within 7 days.")).to_be_visible()
    audit("list with keys")
    if width == 390:
        row.get_by_role("button", name="Details").click()
        expect(row.get_by_role("cell").nth(7)).to_be_visible()
        audit("a card's details")

    page.get_by_role("button", name="Add More").click()
    create = page.get_by_role("dialog", name="Create API Key")
    expect(create.get_by_role("checkbox").first).to_be_visible()
    create.get_by_role("switch", name="Expiration Time").click()
    create.get_by_role("spinbutton", name="Lifetime (days)").fill("0")
    create.get_by_role("button", name="Submit").click()
    expect(create.get_by_text("Enter a name for the key.")).to_be_visible()
    audit("create dialog with errors")
    create.get_by_role("textbox", name="Name").fill("Made in the dialog")
    create.get_by_role("spinbutton", name="Lifetime (days)").fill("30")
    create.get_by_role("button", name="Submit").click()
    shown = page.get_by_role("dialog", name="API Key")
    expect(shown).to_be_visible()
    audit("API Key dialog")
    shown.get_by_role("button", name="Done").click()
    expect(page.get_by_role("alertdialog", name="Close Without Copying?")).to_be_visible()
    audit("close without copying question")
    page.get_by_role("button", name="No").click()
    shown.get_by_role("button", name="Copy Key Secret").click()
    expect(shown.get_by_text("Copied")).to_be_visible()
    audit("API Key dialog after a copy")
    shown.get_by_role("button", name="Done").click()
    expect(shown).to_be_hidden()

    row.get_by_role("button", name="Edit").click()
    edit = page.get_by_role("dialog", name="Edit API Key")
    expect(edit.get_by_role("checkbox").first).to_be_visible()
    audit("edit dialog")
    edit.get_by_role("button", name="Cancel").click()
    if width == 390 and not row.get_by_role("button", name="Usage").is_visible():
        row.get_by_role("button", name="Details").click()  # a card's details hold it
    row.get_by_role("button", name="Usage").click()
    usage = page.get_by_role("dialog", name="Usage of Forever key")
    expect(usage.get_by_role("button", name="Last 24 hours")).to_have_attribute(
        "aria-pressed", "true"
    )
    audit("usage dialog")
    page.keyboard.press("Escape")
    expect(usage).to_be_hidden()
    row.get_by_role("button", name="Regenerate").click()
    regenerate = page.get_by_role("alertdialog", name="Regenerate API Key")
    regenerate.get_by_role("radio", name="Other").check()
    audit("regenerate question")
    regenerate.get_by_role("button", name="No").click()
    row.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("alertdialog", name="Delete API Key")).to_be_visible()
    audit("delete question")
    page.get_by_role("button", name="No").click()
    key_row(page, "Regenerated with a grace period").get_by_role(
        "button", name="Revoke old secret"
    ).click()
    expect(page.get_by_role("alertdialog", name="Revoke Old Secret")).to_be_visible()
    audit("revoke question")
    page.get_by_role("button", name="No").click()

    setup = page.get_by_role("navigation", name="Setup")
    setup.get_by_role("link", name="Audit Log").click()
    expect(page.locator("#audit-status")).to_contain_text("Showing")
    audit("audit log")
    page.get_by_role("searchbox", name="Key ID").fill("not a key")
    expect(page.get_by_text("Nothing is shown until the filter is corrected.")).to_be_visible()
    audit("audit log with a bad filter")
    setup.get_by_role("link", name="Settings").click()
    days = page.get_by_role("spinbutton", name="Disable keys unused for (days)")
    expect(days).to_be_enabled()
    expect(page.get_by_role("heading", name="Webhooks")).to_be_visible()
    audit("settings (with webhooks)")
    days.fill("0")
    page.get_by_role("button", name="Save").click()
    expect(days).to_have_attribute("aria-invalid", "true")
    audit("settings with an error")

    assert len(audit.states) >= 16
    assert audit.found == [], "\n".join(audit.found)


def test_axe_reports_a_violation_when_a_field_loses_its_label(
    page: Page, admin: Account, axe: Path
) -> None:
    # The check above can fail: the same run finds a field without a name at once.
    sign_in(page, admin)
    expect(page.get_by_role("spinbutton", name="Expiring within (days)")).to_be_visible()
    page.evaluate("document.querySelector('label[for=keys-expiring]').remove()")

    found = axe_violations(page, axe)

    assert any(line.startswith("label ") for line in found), found
