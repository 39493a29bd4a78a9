"""What a person notices in the console: one-line rows that fit, cards on a phone, keys about
to expire in sight, the audit log's times and filters, and questions before anything is lost.
"""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from support.console import (
    Account,
    close_secret,
    create_account,
    create_key,
    gql,
    key_row,
    seed_key,
    sign_in,
)
from support.serving import Server

pytestmark = pytest.mark.browser

OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
LONG_NAME = "Nightly export of every workflow to the partner's data warehouse in Frankfurt"
DANGER = "rgb(180, 35, 24)"  # console.css --red
PRIMARY = "rgb(31, 95, 191)"  # console.css --blue
DISABLE = "mutation($id: ID!) { setApiKeyEnabled(id: $id, enabled: false) { id } }"
REGENERATE = (
    "mutation($id: ID!) { regenerateApiKey(id: $id, gracePeriodMinutes: 60) { keySecret } }"
)
LIMIT = """mutation($id: ID!, $cidrs: [String!]) {
  updateApiKey(id: $id, input: { allowedCidrs: $cidrs }) { id }
}"""
BOTH_WIDTHS = pytest.mark.parametrize(("width", "height"), [(390, 844), (1280, 800)])


def data_rows(page: Page) -> Locator:
    return page.locator("#keys-body > tr[data-key-id]")


def cell(row: Locator, column: str) -> Locator:
    """A row's cell by its column (on a phone, folded cells leave the accessibility tree)."""
    return row.locator(f'td[data-label="{column}"]')


def is_cut_with_ellipsis(element: Locator) -> bool:
    return bool(
        element.evaluate(
            """(e) => getComputedStyle(e).textOverflow === "ellipsis"
                && e.scrollWidth > e.clientWidth"""
        )
    )


def lines_of(element: Locator) -> int:
    """How many lines the element's text takes on screen."""
    return int(
        element.evaluate(
            """(e) => {
                const range = document.createRange();
                range.selectNodeContents(e);
                const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
                return tops.size;
            }"""
        )
    )


def test_rows_are_one_line_long_text_ends_in_an_ellipsis_and_twelve_fit_at_1280(
    page: Page, console_database_url: str
) -> None:
    email = f"a.rather.long.owner.address.{uuid.uuid4().hex[:8]}@engineering.example.com"
    owner = create_account(console_database_url, email=email)
    sign_in(page, owner)
    for n in range(13):
        seed_key(page, f"key {n:02d}", lifetime_days=[None, 30, 400][n % 3])
    seed_key(page, LONG_NAME, lifetime_days=90)
    # The widest row there is: a grace period in Status, networks under Scopes, a badge.
    widest = seed_key(page, "Widest", lifetime_days=3)
    gql(page, REGENERATE, id=widest)
    gql(page, LIMIT, id=widest, cidrs=["203.0.113.0/24", "2001:db8:abcd:1234::/64"])
    page.reload()
    expect(page.get_by_text("Showing 15 of 15 API keys.")).to_be_visible()

    # At least twelve rows are on the first screen, without scrolling.
    twelfth = data_rows(page).nth(11).bounding_box()  # the widest row is the first
    assert twelfth is not None
    assert twelfth["y"] + twelfth["height"] <= 800
    # Every row is one line high; only a grace period's note and its button take more.
    plain = data_rows(page).filter(has_not=page.locator(".grace-note"))
    expect(plain).to_have_count(14)
    heights = {round(box["height"]) for box in plain.evaluate_all(
        "(rows) => rows.map((r) => r.getBoundingClientRect().toJSON())"
    )}  # fmt: skip
    assert max(heights) <= 40, heights
    assert page.evaluate(OVERFLOW) <= 0
    # ...and the table does not scroll inside its frame either: every column is in sight.
    assert (
        page.evaluate("(e => e.scrollWidth - e.clientWidth)(document.querySelector('.table-wrap'))")
        <= 0
    )
    expect(key_row(page, "Widest").get_by_role("button", name="Delete")).to_be_in_viewport()

    row = key_row(page, LONG_NAME)  # its accessible name is the whole name
    name = row.locator(".key-name")
    assert is_cut_with_ellipsis(name)
    expect(name).to_have_attribute("title", LONG_NAME)
    expect(name).to_have_text(LONG_NAME)  # whole in the page, for screen readers
    owner_cell = cell(row, "Owner").locator(".truncate")
    assert is_cut_with_ellipsis(owner_cell)
    expect(owner_cell).to_have_attribute("title", email)
    expect(owner_cell).to_have_text(email)
    for date in row.locator("time").all():
        assert lines_of(date) == 1, date.inner_text()
    assert lines_of(cell(row, "Name")) == 1


def test_at_390_each_key_is_a_compact_card_with_details_on_demand_and_33_fit_in_4000_px(
    page: Page, admin: Account
) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, admin)
    for n in range(33):
        seed_key(page, f"{LONG_NAME} {n}" if n % 4 == 0 else f"key {n:02d}", [None, 2][n % 2])
    page.reload()
    page.get_by_role("button", name="Load more").click()
    expect(page.get_by_text("Showing 33 of 33 API keys.")).to_be_visible()

    height = page.evaluate("document.documentElement.scrollHeight")
    assert height <= 4000, height
    assert page.evaluate(OVERFLOW) <= 0
    row = key_row(page, "key 01")
    expect(cell(row, "Name")).to_be_visible()
    expect(cell(row, "Key ID")).to_be_visible()
    expect(cell(row, "Status")).to_contain_text("Active")
    expect(cell(row, "Expires")).to_contain_text("Expires in 2 days")  # stays in sight
    expect(row.get_by_role("switch", name="Enabled")).to_be_visible()
    owner = cell(row, "Owner")
    expect(owner).to_be_hidden()
    expect(cell(row, "Created")).to_be_hidden()

    details = row.get_by_role("button", name="Details")
    expect(details).to_have_attribute("aria-expanded", "false")
    details.click()
    expect(details).to_have_attribute("aria-expanded", "true")
    expect(owner).to_be_visible()
    expect(owner).to_contain_text(admin.email)
    expect(cell(row, "Created")).to_be_visible()
    assert page.evaluate(OVERFLOW) <= 0
    details.click()
    expect(owner).to_be_hidden()


def test_the_details_button_is_not_shown_at_1280(page: Page, admin: Account) -> None:
    sign_in(page, admin)
    seed_key(page, "Wide")
    page.reload()
    expect(cell(key_row(page, "Wide"), "Owner")).to_be_visible()
    expect(key_row(page, "Wide").get_by_role("button", name="Details")).to_be_hidden()


@BOTH_WIDTHS
def test_keys_about_to_expire_show_a_banner_that_filters_them_and_a_badge_in_their_row(
    page: Page, admin: Account, width: int, height: int
) -> None:
    page.set_viewport_size({"width": width, "height": height})
    sign_in(page, admin)
    banner = page.locator("#keys-expiring-banner")
    expect(page.get_by_text("No API keys yet")).to_be_visible()
    expect(banner).to_be_hidden()
    seed_key(page, "Soon A", 2)
    seed_key(page, "Soon B", 2)
    seed_key(page, "Next week", 5)
    seed_key(page, "Next month", 30)
    seed_key(page, "Forever")
    off = seed_key(page, "Disabled soon", 2)
    gql(page, DISABLE, id=off)
    page.reload()

    expect(banner).to_have_text(re.compile(r"^\s*3 keys expire within 7 days\.\s*Show them\s*$"))
    # The badge, and the date after it for screen readers.
    expect(cell(key_row(page, "Soon A"), "Expires")).to_have_text(
        re.compile(r"^Expires in 2 days, \S")
    )
    expect(key_row(page, "Next week")).to_contain_text("Expires in 5 days")
    expect(key_row(page, "Next month")).not_to_contain_text("Expires in")
    expect(key_row(page, "Disabled soon")).not_to_contain_text("Expires in")

    banner.get_by_role("button", name="Show them").click()

    expect(page.get_by_text("Showing 3 of 3 API keys.")).to_be_visible()
    expect(data_rows(page)).to_have_count(3)
    expect(page.get_by_role("combobox", name="Status")).to_have_value("ACTIVE")
    expect(page.get_by_role("spinbutton", name="Expiring within (days)")).to_have_value("7")


@BOTH_WIDTHS
def test_the_audit_log_shows_date_and_time_and_filters_by_event_and_key(
    page: Page, admin: Account, width: int, height: int
) -> None:
    page.set_viewport_size({"width": width, "height": height})
    sign_in(page, admin)
    first = seed_key(page, "First")
    seed_key(page, "Second")
    gql(page, DISABLE, id=first)
    page.get_by_role("navigation", name="Setup").get_by_role("link", name="Audit Log").click()
    rows = page.locator("#audit-body > tr")
    # The admin's account made, signed in, two keys created, one disabled.
    expect(rows).to_have_count(5)
    expect(rows.filter(has_text="User created")).to_have_count(1)

    when = rows.first.locator("time")
    expected = when.evaluate(
        """(e) => new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" })
            .format(new Date(e.getAttribute("datetime")))"""
    )
    expect(when).to_have_text(expected)
    expect(when).to_have_text(re.compile(r"\d{4}.*\d{1,2}:\d{2}"))  # date and time of day
    assert lines_of(when) == 1

    page.get_by_role("combobox", name="Event").select_option(label="Key disabled")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(first)
    page.get_by_role("combobox", name="Event").select_option(label="All events")
    key = page.get_by_role("searchbox", name="Key ID")
    key.fill(first)
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="Key created")).to_have_count(1)
    expect(rows.filter(has_text="Key disabled")).to_have_count(1)

    key.fill("not a key")
    expect(key).to_have_accessible_description(re.compile("This is not a Key ID"))
    expect(key).to_have_attribute("aria-invalid", "true")
    expect(rows).to_have_count(0)
    expect(page.get_by_text("Nothing is shown until the filter is corrected.")).to_be_visible()
    key.fill("")
    expect(rows).to_have_count(5)
    expect(key).not_to_have_attribute("aria-invalid", "true")


def test_the_audit_log_writes_dates_in_the_browsers_locale(
    browser: Browser, console_server: Server, admin: Account
) -> None:
    context = browser.new_context(locale="de-DE", base_url=console_server.base_url)
    try:
        page = context.new_page()
        sign_in(page, admin)
        page.get_by_role("link", name="Audit Log").click()
        # German: 06.12.2026, 21:04 (day first, 24-hour clock).
        expect(page.locator("#audit-body time").first).to_have_text(
            re.compile(r"^\d{2}\.\d{2}\.\d{4}, \d{2}:\d{2}$")
        )
    finally:
        context.close()


@BOTH_WIDTHS
def test_an_invalid_expiring_filter_empties_the_list_and_says_why_beside_it(
    page: Page, admin: Account, width: int, height: int
) -> None:
    page.set_viewport_size({"width": width, "height": height})
    sign_in(page, admin)
    seed_key(page, "Listed", 3)
    page.reload()
    expiring = page.get_by_role("spinbutton", name="Expiring within (days)")
    expect(data_rows(page)).to_have_count(1)

    for bad in ["0", "-2", "4000", "1.5"]:
        expiring.fill(bad)
        expect(expiring).to_have_accessible_description(
            "Enter a whole number of days from 1 to 3650, or leave it empty."
        )
        expect(expiring).to_have_attribute("aria-invalid", "true")
        expect(data_rows(page)).to_have_count(0)
        expect(page.get_by_text("Nothing is shown until the filter is corrected.")).to_be_visible()
        expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    error = page.locator("#keys-expiring-error")
    error_box, field_box = error.bounding_box(), expiring.bounding_box()
    assert error_box is not None
    assert field_box is not None
    assert 0 <= error_box["y"] - (field_box["y"] + field_box["height"]) < 12  # right under it
    expect(page.get_by_role("main")).not_to_contain_text("null")

    expiring.fill("5")
    expect(data_rows(page)).to_have_count(1)
    expect(expiring).not_to_have_attribute("aria-invalid", "true")


@pytest.mark.parametrize("how", ["Escape", "Done"])
def test_closing_the_api_key_window_before_a_copy_asks_first(
    page: Page, admin: Account, how: str
) -> None:
    sign_in(page, admin)
    create_key(page, "Uncopied")
    shown = page.get_by_role("dialog", name="API Key")
    done = shown.get_by_role("button", name="Done")

    if how == "Escape":
        page.keyboard.press("Escape")
    else:
        done.click()

    ask = page.get_by_role("alertdialog", name="Close Without Copying?")
    expect(ask).to_have_accessible_description(
        "Close without copying the Key Secret? It is shown only this once: once closed, "
        "it cannot be shown again."
    )
    expect(ask.get_by_role("button", name="No")).to_be_focused()
    yes = ask.get_by_role("button", name="Yes")
    expect(yes).to_have_css("background-color", DANGER)
    page.keyboard.press("Escape")  # = No: back to the secret, which is still there
    expect(ask).to_be_hidden()
    expect(shown).to_be_visible()
    expect(done).to_be_focused()
    secret = shown.locator("#secret-key-secret").inner_text()
    assert secret.startswith("wfas_")

    done.click()
    ask.get_by_role("button", name="Yes").click()
    expect(shown).to_be_hidden()
    expect(ask).to_be_hidden()
    assert secret not in page.content()
    expect(page.get_by_role("button", name="Add More")).to_be_focused()


def test_after_a_copy_the_api_key_window_closes_without_asking(page: Page, admin: Account) -> None:
    sign_in(page, admin)
    create_key(page, "Copied")
    shown = page.get_by_role("dialog", name="API Key")
    shown.get_by_role("button", name="Copy Key Secret").click()
    expect(shown.get_by_text("Copied")).to_be_visible()

    page.keyboard.press("Escape")

    expect(shown).to_be_hidden()
    expect(page.get_by_role("alertdialog")).to_have_count(0)


def test_questions_are_alertdialogs_described_by_their_question_and_delete_says_yes_in_red(
    page: Page, admin: Account
) -> None:
    sign_in(page, admin)
    create_key(page, "Asked about")
    close_secret(page)
    row = key_row(page, "Asked about")

    row.get_by_role("button", name="Delete").click()
    delete = page.get_by_role("alertdialog", name="Delete API Key")
    expect(delete).to_have_accessible_description(re.compile(r"^Delete “Asked about” \(wfak_"))
    expect(delete.get_by_role("button", name="Yes")).to_have_css("background-color", DANGER)
    delete.get_by_role("button", name="No").click()

    row.get_by_role("button", name="Regenerate").click()
    regenerate = page.get_by_role("alertdialog", name="Regenerate API Key")
    expect(regenerate).to_have_accessible_description(re.compile("^Regenerate the Key Secret"))
    expect(regenerate.get_by_role("button", name="Yes")).to_have_css("background-color", PRIMARY)
    regenerate.get_by_role("button", name="No").click()
    expect(page.get_by_role("table", name="API Keys")).to_be_visible()
    expect(page.get_by_role("dialog")).to_have_count(0)
