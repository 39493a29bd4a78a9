"""The API Keys page in a real browser, found by role and name as a screen-reader user would.

Every flow of the product's help page, end to end against a real ``wfa-keys serve``: the keys
made in the browser are tried against ``/api/v1/whoami``.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from support.console import (
    Account,
    PageProblems,
    close_secret,
    create_account,
    create_key,
    key_row,
    sign_in,
    whoami_status,
)
from support.serving import Server

pytestmark = pytest.mark.browser


def test_wrong_password_is_an_alert_and_signing_in_opens_the_api_keys_page(
    page: Page, admin: Account
) -> None:
    page.goto("/")
    page.get_by_label("Email").fill(admin.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("alert")).to_have_text("The email or the password is wrong.")

    page.get_by_label("Password").fill(admin.password)
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("API Keys")
    setup = page.get_by_role("navigation", name="Setup")
    expect(setup.get_by_role("link", name="API Management")).to_have_attribute(
        "aria-current", "page"
    )
    table = page.get_by_role("table")
    headers = table.get_by_role("columnheader")
    expect(headers).to_have_text(
        [
            "Name",
            "Key ID",
            "Status",
            "Created",
            "Expires",
            "Last Used",
            "Scopes",
            "Owner",
            "Usage",
            "Action",
        ]
    )
    expect(page.get_by_role("searchbox", name="Search")).to_be_visible()
    expect(page.get_by_text("No API keys yet")).to_be_visible()
    # The password went into a POST body only: not the URL, not the browser's storage.
    assert admin.password not in page.url
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    page.reload()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_a_key_without_expiration_is_created_copied_and_works(
    page: Page, admin: Account, console_server: Server
) -> None:
    sign_in(page, admin)
    page.get_by_role("button", name="Add More").click()
    dialog = page.get_by_role("dialog", name="Create API Key")
    expect(dialog.get_by_role("switch", name="Expiration Time")).to_have_attribute(
        "aria-checked", "false"
    )
    expect(dialog.get_by_role("spinbutton", name="Lifetime (days)")).to_be_disabled()
    dialog.get_by_role("textbox", name="Name").fill("CI pipeline")
    dialog.get_by_role("button", name="Submit").click()

    shown = page.get_by_role("dialog", name="API Key")
    expect(shown).to_contain_text("shown only this once")
    key_id = shown.locator("#secret-key-id").inner_text()
    secret = shown.locator("#secret-key-secret").inner_text()
    shown.get_by_role("button", name="Copy Key ID").click()
    expect(shown.get_by_text("Copied")).to_have_count(1)
    assert page.evaluate("navigator.clipboard.readText()") == key_id
    shown.get_by_role("button", name="Copy Key Secret").click()
    expect(shown.get_by_text("Copied")).to_have_count(2)
    assert page.evaluate("navigator.clipboard.readText()") == secret
    assert whoami_status(console_server.base_url, key_id, secret) == 200

    shown.get_by_role("button", name="Done").click()

    expect(shown).to_be_hidden()
    assert secret not in page.content()
    row = key_row(page, "CI pipeline")
    expect(row).to_contain_text(key_id)
    expect(row).to_contain_text("Active")
    expect(row.get_by_role("cell").nth(4)).to_have_text("Never")
    expect(row.get_by_role("cell").nth(7)).to_have_text(admin.email)
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0


def test_a_key_with_expiration_shows_its_date_and_bad_input_is_explained_in_the_dialog(
    page: Page, admin: Account, console_server: Server
) -> None:
    sign_in(page, admin)
    page.get_by_role("button", name="Add More").click()
    dialog = page.get_by_role("dialog", name="Create API Key")
    dialog.get_by_role("button", name="Submit").click()
    expect(dialog).to_contain_text("Enter a name for the key.")

    dialog.get_by_role("textbox", name="Name").fill("x" * 100 + "   ")
    switch = dialog.get_by_role("switch", name="Expiration Time")
    expect(switch).to_have_accessible_description("Off: the key never expires.")
    switch.click()
    # The hint follows the switch.
    expect(switch).to_have_accessible_description(
        "On: the key stops working after the lifetime below."
    )
    lifetime = dialog.get_by_role("spinbutton", name="Lifetime (days)")
    expect(lifetime).to_be_enabled()
    lifetime.fill("4000")
    dialog.get_by_role("button", name="Submit").click()
    # Explained beside its field in a person's words (no "null"); nothing was created.
    expect(lifetime).to_have_accessible_description("Enter a whole number of days from 1 to 3650.")
    expect(lifetime).to_have_attribute("aria-invalid", "true")
    expect(dialog).not_to_contain_text("null")
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.get_by_text("No API keys yet")).to_be_visible()

    key_id, secret = create_key(page, "Nightly export", lifetime_days=30)
    close_secret(page)

    expires = key_row(page, "Nightly export").get_by_role("cell").nth(4).locator("time")
    expect(expires).to_have_attribute("title", re.compile(r"\d{4}"))
    assert expires.get_attribute("datetime")
    assert whoami_status(console_server.base_url, key_id, secret) == 200


def test_the_enabled_switch_disables_and_enables_the_key(
    page: Page, admin: Account, console_server: Server
) -> None:
    sign_in(page, admin)
    key_id, secret = create_key(page, "Toggle me")
    close_secret(page)
    switch = key_row(page, "Toggle me").get_by_role("switch", name="Enabled")
    expect(switch).to_have_attribute("aria-checked", "true")

    switch.click()

    expect(switch).to_have_attribute("aria-checked", "false")
    expect(key_row(page, "Toggle me")).to_contain_text("Disabled")
    assert whoami_status(console_server.base_url, key_id, secret) == 401

    key_row(page, "Toggle me").get_by_role("switch", name="Enabled").click()

    expect(switch).to_have_attribute("aria-checked", "true")
    assert whoami_status(console_server.base_url, key_id, secret) == 200


def test_regenerate_asks_first_no_changes_nothing_yes_replaces_the_secret(
    page: Page, admin: Account, console_server: Server
) -> None:
    sign_in(page, admin)
    key_id, old_secret = create_key(page, "Rotate me")
    close_secret(page)

    regenerate = key_row(page, "Rotate me").get_by_role("button", name="Regenerate")
    regenerate.click()
    confirm = page.get_by_role("alertdialog", name="Regenerate API Key")
    expect(confirm).to_contain_text("Rotate me")
    confirm.get_by_role("button", name="No").click()
    expect(confirm).to_be_hidden()
    expect(regenerate).to_be_focused()
    assert whoami_status(console_server.base_url, key_id, old_secret) == 200

    regenerate.click()
    confirm.get_by_role("button", name="Yes").click()

    shown = page.get_by_role("dialog", name="API Key")
    expect(shown.locator("#secret-key-id")).to_have_text(key_id)
    new_secret = shown.locator("#secret-key-secret").inner_text()
    assert new_secret != old_secret
    close_secret(page)
    expect(key_row(page, "Rotate me").get_by_role("button", name="Regenerate")).to_be_focused()
    assert whoami_status(console_server.base_url, key_id, old_secret) == 401
    assert whoami_status(console_server.base_url, key_id, new_secret) == 200


def test_delete_asks_first_and_yes_removes_the_key(
    page: Page, admin: Account, console_server: Server
) -> None:
    sign_in(page, admin)
    key_id, secret = create_key(page, "Delete me")
    close_secret(page)
    create_key(page, "Keep me")
    close_secret(page)

    key_row(page, "Delete me").get_by_role("button", name="Delete").click()
    confirm = page.get_by_role("alertdialog", name="Delete API Key")
    confirm.get_by_role("button", name="No").click()
    expect(key_row(page, "Delete me")).to_be_visible()
    assert whoami_status(console_server.base_url, key_id, secret) == 200

    key_row(page, "Delete me").get_by_role("button", name="Delete").click()
    confirm.get_by_role("button", name="Yes").click()

    expect(key_row(page, "Delete me")).to_have_count(0)
    expect(key_row(page, "Keep me")).to_be_visible()
    assert whoami_status(console_server.base_url, key_id, secret) == 401


def test_search_filters_and_load_more_shows_the_next_page(page: Page, admin: Account) -> None:
    sign_in(page, admin)
    api = page.request
    for n in range(27):
        response = api.post(
            "/graphql",
            data={
                "query": "mutation($n: String!) { createApiKey(input: {name: $n}) { keySecret } }",
                "variables": {"n": f"bulk {n:02d}"},
            },
        )
        assert "errors" not in response.json()
    page.reload()
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows).to_have_count(26)  # the header and the first page of 25

    page.get_by_role("button", name="Load more").click()

    expect(rows).to_have_count(28)
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    page.get_by_role("searchbox", name="Search").fill("bulk 07")
    expect(rows).to_have_count(2)
    expect(key_row(page, "bulk 07")).to_be_visible()
    page.get_by_role("searchbox", name="Search").fill("nothing like this")
    expect(page.get_by_text("No API key matches this search.")).to_be_visible()


def test_the_audit_log_shows_the_organizations_events(page: Page, admin: Account) -> None:
    sign_in(page, admin)
    key_id, _ = create_key(page, "Audited")
    close_secret(page)

    page.get_by_role("navigation", name="Setup").get_by_role("link", name="Audit Log").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Audit Log")
    created = page.get_by_role("row").filter(has_text="Key created")
    expect(created).to_contain_text(key_id)
    expect(created).to_contain_text(admin.email)
    expect(page.get_by_role("row").filter(has_text="Signed in")).to_have_count(1)


def test_a_member_is_told_that_only_admins_manage_keys(
    page: Page, console_database_url: str
) -> None:
    member = create_account(console_database_url, role="member")
    sign_in(page, member)
    expect(page.get_by_text("Only admins manage API keys")).to_be_visible()
    expect(page.get_by_role("button", name="Add More")).to_have_count(0)
    expect(page.get_by_role("table")).to_have_count(0)


def test_an_admin_without_the_subscription_is_told_it_is_required(
    page: Page, console_database_url: str
) -> None:
    admin = create_account(console_database_url, subscribed=False)
    sign_in(page, admin)
    expect(page.get_by_text("requires a subscription to Workflow Automation")).to_be_visible()
    expect(page.get_by_role("button", name="Add More")).to_have_count(0)


def test_an_ended_session_returns_to_sign_in(page: Page, admin: Account) -> None:
    sign_in(page, admin)
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "wfa_session"]
    # The session ends on the server (as at its timeout); the browser keeps its cookie.
    ended = page.request.post("/graphql", data={"query": "mutation { logout }"})
    assert ended.json() == {"data": {"logout": True}}
    # The cookie read back is a valid cookie to set (Playwright types the two apart).
    page.context.add_cookies([cookie])  # type: ignore[list-item]

    page.get_by_role("searchbox", name="Search").fill("anything")

    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.get_by_text("Your session has ended. Sign in again.")).to_be_visible()


def test_keyboard_only_create_with_focus_trapped_in_the_dialog_and_returned_after(
    page: Page, admin: Account, console_server: Server
) -> None:
    sign_in(page, admin)
    add_more = page.get_by_role("button", name="Add More")
    add_more.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Create API Key")
    name = dialog.get_by_role("textbox", name="Name")
    expect(name).to_be_focused()
    # Escape closes it and focus returns to Add More.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(add_more).to_be_focused()

    page.keyboard.press("Enter")
    expect(name).to_be_focused()
    # The scopes come from the API, asked when the page opened: there as the window opens.
    expect(dialog.get_by_role("checkbox", name="workflows:read")).to_be_visible()
    page.keyboard.type("Keyboard key")
    page.keyboard.press("Tab")
    switch = dialog.get_by_role("switch", name="Expiration Time")
    expect(switch).to_be_focused()
    page.keyboard.press("Space")
    expect(switch).to_have_attribute("aria-checked", "true")
    page.keyboard.press("Tab")
    lifetime = dialog.get_by_role("spinbutton", name="Lifetime (days)")
    expect(lifetime).to_be_focused()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("7")
    # The scopes (Space toggles one) and the networks come next, then the buttons.
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("checkbox", name="workflows:read")).to_be_focused()
    page.keyboard.press("Tab")
    write = dialog.get_by_role("checkbox", name="workflows:write")
    expect(write).to_be_focused()
    page.keyboard.press("Space")
    expect(write).not_to_be_checked()
    page.keyboard.press("Tab")
    # keys:verify, for verifying services, is never ticked by default.
    verify = dialog.get_by_role("checkbox", name="keys:verify")
    expect(verify).to_be_focused()
    expect(verify).not_to_be_checked()
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("textbox", name="Allowed networks")).to_be_focused()
    # Then the rate limit and the quota (empty: none).
    rate = dialog.get_by_role("group", name="Rate limit")
    quota = dialog.get_by_role("group", name="Quota")
    for field in (
        rate.get_by_role("spinbutton", name="Requests"),
        rate.get_by_role("spinbutton", name="per seconds"),
        quota.get_by_role("spinbutton", name="Requests"),
        quota.get_by_role("combobox", name="per"),
    ):
        page.keyboard.press("Tab")
        expect(field).to_be_focused()
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Submit")).to_be_focused()
    # The trap: past the last control comes the first, and back again.
    page.keyboard.press("Tab")
    expect(name).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(dialog.get_by_role("button", name="Submit")).to_be_focused()
    page.keyboard.press("Enter")

    shown = page.get_by_role("dialog", name="API Key")
    expect(shown.get_by_role("button", name="Copy Key Secret")).to_be_focused()
    page.keyboard.press("Enter")
    expect(shown.get_by_text("Copied")).to_be_visible()
    key_id = shown.locator("#secret-key-id").inner_text()
    secret = page.evaluate("navigator.clipboard.readText()")
    shown.get_by_role("button", name="Done").focus()
    page.keyboard.press("Enter")
    expect(shown).to_be_hidden()
    expect(add_more).to_be_focused()
    assert whoami_status(console_server.base_url, key_id, secret) == 200

    # The row's switch, by keyboard: Tab reaches it, Space turns the key off.
    switch_in_row = key_row(page, "Keyboard key").get_by_role("switch", name="Enabled")
    switch_in_row.focus()
    page.keyboard.press("Space")
    expect(switch_in_row).to_have_attribute("aria-checked", "false")
    expect(switch_in_row).to_be_focused()
    assert whoami_status(console_server.base_url, key_id, secret) == 401


@pytest.mark.parametrize("width", [390, 1280])
def test_the_page_and_its_dialogs_fit_the_screen_without_horizontal_scroll(
    page: Page, admin: Account, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 844})
    sign_in(page, admin)
    create_key(page, "A key with a rather long name to wrap on a phone screen", lifetime_days=9)
    overflow = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    assert page.evaluate(overflow) <= 0
    close_secret(page)
    row = key_row(page, "A key with a rather long name to wrap on a phone screen")
    expect(row.get_by_role("switch", name="Enabled")).to_be_in_viewport()
    assert page.evaluate(overflow) <= 0
    page.get_by_role("navigation", name="Setup").get_by_role("link", name="Audit Log").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit Log")
    assert page.evaluate(overflow) <= 0


def test_the_console_has_a_strict_csp_and_a_violation_would_fail_the_test(
    page: Page, admin: Account, problems: PageProblems
) -> None:
    response = page.goto("/")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp
    assert "style-src 'self';" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    sign_in(page, admin)

    # What the page fixture checks after every test: here, an injected inline script.
    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.injected = true";
          document.body.append(script);
        }"""
    )

    page.wait_for_function("window.__cspViolations.length > 0")
    assert page.evaluate("window.injected") is None
    found = problems.all(page)
    assert any(line.startswith("CSP violation: script-src") for line in found), found
    # Seen: what the ``page`` fixture would have failed this test on; clear it for teardown.
    page.evaluate("window.__cspViolations.length = 0")
    problems.console_errors.clear()


def test_a_failed_request_is_shown_as_an_alert_and_the_next_one_recovers(
    page: Page, admin: Account, problems: PageProblems
) -> None:
    sign_in(page, admin)
    create_key(page, "Still here")
    close_secret(page)
    page.route("**/graphql", lambda route: route.abort())

    page.get_by_role("searchbox", name="Search").fill("Still")

    expect(page.get_by_role("alert")).to_have_text(
        "The service cannot be reached. Check the connection and try again."
    )
    # The browser logs the aborted request itself; that is the point of this test.
    problems.console_errors.clear()
    page.unroute("**/graphql")
    page.get_by_role("searchbox", name="Search").fill("Still her")
    expect(key_row(page, "Still here")).to_be_visible()
    expect(page.get_by_role("alert")).to_be_hidden()


def test_escape_closes_the_yes_no_question_without_deleting(
    page: Page, admin: Account, console_server: Server
) -> None:
    sign_in(page, admin)
    key_id, secret = create_key(page, "Escape me")
    close_secret(page)
    delete = key_row(page, "Escape me").get_by_role("button", name="Delete")
    delete.focus()
    page.keyboard.press("Enter")
    confirm = page.get_by_role("alertdialog", name="Delete API Key")
    expect(confirm.get_by_role("button", name="No")).to_be_focused()

    page.keyboard.press("Escape")

    expect(confirm).to_be_hidden()
    expect(delete).to_be_focused()
    expect(key_row(page, "Escape me")).to_be_visible()
    assert whoami_status(console_server.base_url, key_id, secret) == 200


def test_too_many_failed_sign_ins_say_when_to_try_again(page: Page, admin: Account) -> None:
    page.goto("/")
    page.get_by_label("Email").fill(admin.email)
    alert = page.get_by_role("alert")
    for _ in range(5):  # WFA_LOGIN_MAX_FAILURES_PER_EMAIL_IP
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        expect(alert).to_have_text("The email or the password is wrong.")
        expect(page.get_by_role("button", name="Sign in")).to_be_enabled()

    page.get_by_label("Password").fill(admin.password)
    page.get_by_role("button", name="Sign in").click()

    expect(alert).to_have_text(re.compile(r"^Too many attempts\. Try again in \d+ seconds\.$"))
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
