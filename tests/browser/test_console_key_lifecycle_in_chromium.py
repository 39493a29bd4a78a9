"""Scopes, allow-lists, edits, grace periods, filters and the inactivity setting in Chromium.

Issue 10 through the console, found by role and accessible name, against a real
``wfa-keys serve``: every key made or changed in the browser is then tried against the
Workflow Automation API (``/api/v1/whoami`` and ``/api/v1/workflows``) by the test's own
HTTP client.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, Route, expect

from support.console import (
    Account,
    call_api,
    close_secret,
    create_account,
    create_key,
    disable_inactive_keys,
    gql,
    key_row,
    make_key_older,
    sign_in,
)
from support.serving import Server

pytestmark = pytest.mark.browser

WORKFLOWS = "/api/v1/workflows"
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


def test_a_key_with_only_workflows_read_and_an_allow_list_lists_workflows_but_cannot_create_them(
    page: Page, admin: Account, console_server: Server
) -> None:
    sign_in(page, admin)
    page.get_by_role("button", name="Add More").click()
    dialog = page.get_by_role("dialog", name="Create API Key")
    scopes = dialog.get_by_role("group", name="Scopes")
    # The default scopes are ticked, as the API grants them: never keys:verify.
    expect(scopes.get_by_role("checkbox", name="workflows:read")).to_be_checked()
    expect(scopes.get_by_role("checkbox", name="workflows:write")).to_be_checked()
    expect(scopes.get_by_role("checkbox", name="keys:verify")).not_to_be_checked()
    expect(scopes.get_by_role("checkbox", name="workflows:read")).to_have_accessible_description(
        "List the organization's workflows."
    )
    dialog.get_by_role("button", name="Cancel").click()

    key_id, secret = create_key(
        page, "Reporting", scopes=["workflows:read"], networks=["127.0.0.0/8", "2001:db8::/32"]
    )
    close_secret(page)

    listed = call_api(console_server.base_url, key_id, secret, WORKFLOWS)
    assert listed.status_code == 200
    assert listed.json() == {"workflows": []}
    refused = call_api(
        console_server.base_url, key_id, secret, WORKFLOWS, method="POST", json={"name": "x"}
    )
    assert refused.status_code == 403
    assert refused.json()["error"] == "insufficient_scope"
    assert refused.json()["scope"] == "workflows:write"
    row = key_row(page, "Reporting")
    scopes_cell = row.get_by_role("cell").nth(6)
    expect(scopes_cell).to_contain_text("workflows:read")
    expect(scopes_cell).not_to_contain_text("workflows:write")
    expect(scopes_cell).to_contain_text("Only from 127.0.0.0/8, 2001:db8::/32")
    # Last Used says from where: the test's client at 127.0.0.1.
    page.reload()
    expect(key_row(page, "Reporting").get_by_role("cell").nth(5)).to_contain_text("from 127.0.0.1")


def test_a_key_limited_to_a_network_without_this_address_is_refused_ip_not_allowed(
    page: Page, admin: Account, console_server: Server
) -> None:
    sign_in(page, admin)
    page.get_by_role("button", name="Add More").click()
    dialog = page.get_by_role("dialog", name="Create API Key")
    dialog.get_by_role("textbox", name="Name").fill("Partner")
    networks = dialog.get_by_role("textbox", name="Allowed networks")
    networks.fill("203.0.113.0/24\n10.0.0.1/8")
    dialog.get_by_role("button", name="Submit").click()
    # The server's BAD_USER_INPUT, beside the field; nothing was created.
    expect(dialog).to_contain_text("'10.0.0.1/8' is not an IPv4 or IPv6 network")
    expect(networks).to_have_attribute("aria-invalid", "true")
    expect(networks).to_be_focused()
    expect(page.get_by_role("dialog", name="API Key", exact=True)).to_be_hidden()

    networks.fill("203.0.113.0/24")
    dialog.get_by_role("button", name="Submit").click()
    shown = page.get_by_role("dialog", name="API Key")
    key_id = shown.locator("#secret-key-id").inner_text()
    secret = shown.locator("#secret-key-secret").inner_text()
    close_secret(page)

    refused = call_api(console_server.base_url, key_id, secret)
    assert refused.status_code == 403
    assert refused.json()["error"] == "ip_not_allowed"
    expect(key_row(page, "Partner")).to_contain_text("Only from 203.0.113.0/24")
    expect(page.get_by_role("table").get_by_role("row")).to_have_count(2)


def test_edit_renames_the_key_and_changes_its_scopes_and_networks_and_the_api_honours_it(
    page: Page, admin: Account, console_server: Server
) -> None:
    sign_in(page, admin)
    key_id, secret = create_key(page, "Editable")
    close_secret(page)
    created = call_api(
        console_server.base_url, key_id, secret, WORKFLOWS, method="POST", json={"name": "one"}
    )
    assert created.status_code == 201

    edit = key_row(page, "Editable").get_by_role("button", name="Edit")
    edit.click()
    dialog = page.get_by_role("dialog", name="Edit API Key")
    name = dialog.get_by_role("textbox", name="Name")
    expect(name).to_be_focused()
    expect(name).to_have_value("Editable")
    expect(dialog).to_contain_text(key_id)
    write = dialog.get_by_role("checkbox", name="workflows:write")
    expect(write).to_be_checked()
    networks = dialog.get_by_role("textbox", name="Allowed networks")
    expect(networks).to_have_value("")
    name.fill("Edited")
    write.uncheck()
    networks.fill("not a network")
    dialog.get_by_role("button", name="Save").click()
    # Explained inside the dialog, beside the field; nothing changed.
    expect(dialog).to_contain_text("'not a network' is not an IPv4 or IPv6 network")
    expect(networks).to_have_attribute("aria-invalid", "true")
    expect(key_row(page, "Editable")).to_be_visible()

    networks.fill("")
    dialog.get_by_role("button", name="Save").click()

    expect(dialog).to_be_hidden()
    row = key_row(page, "Edited")
    expect(row).to_contain_text(key_id)
    expect(key_row(page, "Editable")).to_have_count(0)
    expect(row.get_by_role("button", name="Edit")).to_be_focused()
    expect(row.get_by_role("cell").nth(6)).not_to_contain_text("workflows:write")
    refused = call_api(
        console_server.base_url, key_id, secret, WORKFLOWS, method="POST", json={"name": "two"}
    )
    assert refused.status_code == 403
    assert refused.json()["scope"] == "workflows:write"
    whoami = call_api(console_server.base_url, key_id, secret)
    assert whoami.json()["key_name"] == "Edited"
    assert whoami.json()["scopes"] == ["workflows:read"]

    # Cancel changes nothing; then a network elsewhere refuses this address.
    row.get_by_role("button", name="Edit").click()
    expect(dialog.get_by_role("checkbox", name="workflows:write")).not_to_be_checked()
    dialog.get_by_role("textbox", name="Name").fill("Not saved")
    dialog.get_by_role("button", name="Cancel").click()
    expect(key_row(page, "Edited")).to_be_visible()
    row.get_by_role("button", name="Edit").click()
    networks.fill("198.51.100.0/24")
    dialog.get_by_role("button", name="Save").click()
    expect(key_row(page, "Edited")).to_contain_text("Only from 198.51.100.0/24")
    elsewhere = call_api(console_server.base_url, key_id, secret)
    assert elsewhere.status_code == 403
    assert elsewhere.json()["error"] == "ip_not_allowed"


def test_regenerate_with_a_one_day_grace_keeps_both_secrets_until_the_old_one_is_revoked(
    page: Page, admin: Account, console_server: Server
) -> None:
    base = console_server.base_url
    sign_in(page, admin)
    key_id, old_secret = create_key(page, "Rolling")
    close_secret(page)

    regenerate = key_row(page, "Rolling").get_by_role("button", name="Regenerate")
    regenerate.click()
    confirm = page.get_by_role("alertdialog", name="Regenerate API Key")
    grace = confirm.get_by_role("group", name="Keep the old secret working for")
    expect(grace.get_by_role("radio", name="None: it stops at once")).to_be_checked()
    minutes = grace.get_by_role("spinbutton", name="Minutes (0 to 10080)")
    expect(minutes).to_be_disabled()
    grace.get_by_role("radio", name="Other").check()
    minutes.fill("20000")
    confirm.get_by_role("button", name="Yes").click()
    expect(confirm).to_contain_text("Enter a whole number of minutes from 0 to 10080.")
    expect(minutes).to_have_attribute("aria-invalid", "true")
    assert call_api(base, key_id, old_secret).status_code == 200

    grace.get_by_role("radio", name="1 day").check()
    confirm.get_by_role("button", name="Yes").click()

    shown = page.get_by_role("dialog", name="API Key")
    expect(shown).to_contain_text("The old Key Secret keeps working until")
    new_secret = shown.locator("#secret-key-secret").inner_text()
    assert new_secret != old_secret
    close_secret(page)
    expect(regenerate).to_be_focused()
    assert call_api(base, key_id, old_secret).status_code == 200
    assert call_api(base, key_id, new_secret).status_code == 200
    status = key_row(page, "Rolling").get_by_role("cell").nth(2)
    expect(status).to_contain_text("Old secret valid until")

    revoke = key_row(page, "Rolling").get_by_role("button", name="Revoke old secret")
    revoke.click()
    ask = page.get_by_role("alertdialog", name="Revoke Old Secret")
    expect(ask).to_contain_text("Rolling")
    # The grace choice belongs to Regenerate only.
    expect(ask.get_by_role("group", name="Keep the old secret working for")).to_be_hidden()
    ask.get_by_role("button", name="No").click()
    expect(revoke).to_be_focused()
    assert call_api(base, key_id, old_secret).status_code == 200

    revoke.click()
    ask.get_by_role("button", name="Yes").click()

    expect(ask).to_be_hidden()
    expect(status).not_to_contain_text("Old secret")
    expect(key_row(page, "Rolling").get_by_role("button", name="Regenerate")).to_be_focused()
    assert call_api(base, key_id, old_secret).status_code == 401
    assert call_api(base, key_id, new_secret).status_code == 200


def test_the_status_and_expiring_filters_narrow_the_list_with_search_and_load_more(
    page: Page, admin: Account
) -> None:
    sign_in(page, admin)
    create = "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { apiKey { id } } }"
    for n in range(26):
        gql(page, create, i={"name": f"soon {n:02d}", "lifetimeDays": 3})
    gql(page, create, i={"name": "later", "lifetimeDays": 100})
    gql(page, create, i={"name": "forever"})
    off = gql(page, create, i={"name": "switched off", "lifetimeDays": 2})
    off_id = off["createApiKey"]["apiKey"]["id"]  # type: ignore[index]
    gql(page, "mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: false) { id } }", id=off_id)
    page.reload()
    rows = page.get_by_role("table").get_by_role("row")
    status = page.get_by_role("combobox", name="Status")
    expiring = page.get_by_role("spinbutton", name="Expiring within (days)")
    expect(page.get_by_text("Showing 25 of 29 API keys.")).to_be_visible()

    status.select_option(label="Disabled")
    expect(rows).to_have_count(2)
    expect(key_row(page, "switched off")).to_be_visible()

    status.select_option(label="Active")
    expect(page.get_by_text("Showing 25 of 28 API keys.")).to_be_visible()
    expiring.fill("7")
    expect(page.get_by_text("Showing 25 of 26 API keys.")).to_be_visible()
    page.get_by_role("button", name="Load more").click()
    expect(rows).to_have_count(27)
    expect(key_row(page, "later")).to_have_count(0)
    expect(key_row(page, "forever")).to_have_count(0)

    page.get_by_role("searchbox", name="Search").fill("soon 1")
    expect(rows).to_have_count(11)  # soon 10 .. soon 19

    status.select_option(label="Expired")
    expect(page.get_by_text("No API key matches these filters.")).to_be_visible()

    status.select_option(label="All")
    page.get_by_role("searchbox", name="Search").fill("")
    expiring.fill("")
    expect(page.get_by_text("Showing 25 of 29 API keys.")).to_be_visible()
    expiring.fill("9999")
    # Said beside the field, and the list emptied rather than left showing other results.
    expect(expiring).to_have_accessible_description(
        "Enter a whole number of days from 1 to 3650, or leave it empty."
    )
    expect(rows).to_have_count(1)  # the header row
    expect(page.get_by_text("Nothing is shown until the filter is corrected.")).to_be_visible()


def test_the_inactivity_days_cannot_be_typed_before_the_current_value_arrives(
    page: Page, admin: Account
) -> None:
    # Typed before the current value arrived, a value would be overwritten by it: the field
    # waits, disabled, until then (the settings query is held here until the test lets go).
    held: list[Route] = []

    def hold_the_settings_query(route: Route) -> None:
        if "query OrganizationSettings" in (route.request.post_data or ""):
            held.append(route)
        else:
            route.continue_()

    sign_in(page, admin)
    page.route("**/graphql", hold_the_settings_query)
    page.get_by_role("navigation", name="Setup").get_by_role("link", name="Settings").click()
    days = page.get_by_role("spinbutton", name="Disable keys unused for (days)")
    expect(days).to_be_disabled()
    expect(page.get_by_role("button", name="Save")).to_be_disabled()
    for _ in range(100):  # the request reaches the handler while Playwright waits
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1
    held[0].continue_()

    expect(days).to_be_enabled()
    expect(days).to_have_value("")
    days.fill("7")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved: keys unused for 7 days are disabled.")).to_be_visible()


def test_settings_saves_the_inactivity_days_and_a_reload_shows_them(
    page: Page, admin: Account
) -> None:
    sign_in(page, admin)
    page.get_by_role("navigation", name="Setup").get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Settings")
    days = page.get_by_role("spinbutton", name="Disable keys unused for (days)")
    expect(days).to_have_value("")
    expect(page.get_by_role("button", name="Save")).to_be_enabled()

    days.fill("0")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Enter a whole number of days from 1 to 3650")).to_be_visible()
    expect(days).to_have_attribute("aria-invalid", "true")

    days.fill("30")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Saved")).to_have_text(
        "Saved: keys unused for 30 days are disabled."
    )
    page.reload()
    expect(days).to_have_value("30")

    days.fill("")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved: keys are never disabled for inactivity.")).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("Settings")
    expect(days).to_have_value("")


def test_the_audit_log_shows_updates_revoked_old_secrets_and_keys_disabled_for_inactivity(
    page: Page, admin: Account, console_database_url: str
) -> None:
    sign_in(page, admin)
    key_id, _ = create_key(page, "Audited")
    close_secret(page)
    idle_id, _ = create_key(page, "Idle")
    close_secret(page)
    row = key_row(page, "Audited")
    row.get_by_role("button", name="Edit").click()
    dialog = page.get_by_role("dialog", name="Edit API Key")
    dialog.get_by_role("textbox", name="Name").fill("Audited twice")
    dialog.get_by_role("button", name="Save").click()
    row = key_row(page, "Audited twice")
    # Saved unchanged: nothing is sent, so no second "Key updated".
    row.get_by_role("button", name="Edit").click()
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    row.get_by_role("button", name="Regenerate").click()
    confirm = page.get_by_role("alertdialog", name="Regenerate API Key")
    confirm.get_by_role("radio", name="1 hour").check()
    confirm.get_by_role("button", name="Yes").click()
    close_secret(page)
    row.get_by_role("button", name="Revoke old secret").click()
    revoke = page.get_by_role("alertdialog", name="Revoke Old Secret")
    revoke.get_by_role("button", name="Yes").click()
    expect(row).not_to_contain_text("Old secret")
    setup = page.get_by_role("navigation", name="Setup")
    setup.get_by_role("link", name="Settings").click()
    page.get_by_role("spinbutton", name="Disable keys unused for (days)").fill("1")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved: keys unused for")).to_be_visible()
    # "Idle" was made two days ago and never used: the cron job's command disables it.
    make_key_older(console_database_url, idle_id, days=2)
    disable_inactive_keys(console_database_url)

    setup.get_by_role("link", name="Audit Log").click()

    rows = page.get_by_role("row")
    expect(rows.filter(has_text="Key updated")).to_have_count(1)
    expect(rows.filter(has_text="Key updated")).to_contain_text(key_id)
    expect(rows.filter(has_text="Old secret revoked")).to_contain_text(key_id)
    auto = rows.filter(has_text="Key disabled for inactivity")
    expect(auto).to_contain_text(idle_id)
    setup.get_by_role("link", name="API Management").click()
    expect(key_row(page, "Idle")).to_contain_text("Disabled")
    expect(key_row(page, "Audited twice")).to_contain_text("Active")


@pytest.mark.parametrize("width", [390, 1280])
def test_the_new_dialogs_and_the_settings_fit_the_screen_and_work_by_keyboard(
    page: Page, admin: Account, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 844})
    sign_in(page, admin)
    create_key(page, "A key with a long name and networks", networks=["2001:db8:abcd::/48"])
    close_secret(page)
    row = key_row(page, "A key with a long name and networks")
    assert page.evaluate(OVERFLOW) <= 0

    edit = row.get_by_role("button", name="Edit")
    edit.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Edit API Key")
    expect(dialog.get_by_role("textbox", name="Name")).to_be_focused()
    assert page.evaluate(OVERFLOW) <= 0
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(edit).to_be_focused()

    row.get_by_role("button", name="Regenerate").click()
    confirm = page.get_by_role("alertdialog", name="Regenerate API Key")
    expect(confirm.get_by_role("button", name="No")).to_be_focused()
    # Shift+Tab from No reaches the grace choices (Minutes is off); arrows move between them.
    page.keyboard.press("Shift+Tab")
    none = confirm.get_by_role("radio", name="None: it stops at once")
    expect(none).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(confirm.get_by_role("radio", name="1 hour")).to_be_checked()
    assert page.evaluate(OVERFLOW) <= 0
    page.keyboard.press("Escape")
    expect(confirm).to_be_hidden()

    page.get_by_role("navigation", name="Setup").get_by_role("link", name="Settings").click()
    expect(page.get_by_role("spinbutton", name="Disable keys unused for (days)")).to_be_visible()
    assert page.evaluate(OVERFLOW) <= 0


def test_a_member_sees_no_settings_form(page: Page, console_database_url: str) -> None:
    member = create_account(console_database_url, role="member")
    sign_in(page, member)
    page.get_by_role("navigation", name="Setup").get_by_role("link", name="Settings").click()
    expect(page.get_by_text("Only admins change the organization's settings.")).to_be_visible()
    expect(page.get_by_role("spinbutton")).to_have_count(0)
