"""Usage control in the console, in a real browser against a real ``wfa-keys serve``:
limits set in Create and Edit, a refusal counted, the chart and its table matching the API.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from support.console import Account, call_api, close_secret, key_row, sign_in
from support.serving import Server
from wfa_auth import generate_key_secret

pytestmark = pytest.mark.browser

OUTCOMES = [
    "success",
    "rateLimited",
    "quotaExceeded",
    "insufficientScope",
    "ipNotAllowed",
    "disabled",
    "expired",
    "invalidSecret",
]
#: A call shows in usage within 10 s (the batch interval); the wait is bounded.
FLUSH_WAIT = 25.0


def create_limited_key(page: Page, name: str) -> tuple[str, str]:
    page.get_by_role("button", name="Add More").click()
    dialog = page.get_by_role("dialog", name="Create API Key")
    dialog.get_by_role("textbox", name="Name").fill(name)
    rate = dialog.get_by_role("group", name="Rate limit")
    rate.get_by_role("spinbutton", name="Requests").fill("2")
    rate.get_by_role("spinbutton", name="per seconds").fill("3600")
    quota = dialog.get_by_role("group", name="Quota")
    quota.get_by_role("spinbutton", name="Requests").fill("5")
    quota.get_by_role("combobox", name="per").select_option("DAY")
    dialog.get_by_role("button", name="Submit").click()
    shown = page.get_by_role("dialog", name="API Key")
    expect(shown).to_be_visible()
    key_id = shown.locator("#secret-key-id").inner_text()
    secret = shown.locator("#secret-key-secret").inner_text()
    close_secret(page)
    return key_id, secret


def test_limits_are_set_in_create_and_edit_and_the_list_shows_the_quota_used(
    page: Page, admin: Account, console_server: Server
) -> None:
    sign_in(page, admin)
    key_id, secret = create_limited_key(page, "Metered")
    row = key_row(page, "Metered")
    expect(row).to_contain_text("0 of 5 today")
    expect(row).to_contain_text("At most 2 per 3600 s")
    expect(row.get_by_role("meter", name="Quota used")).to_have_attribute("max", "5")

    statuses = [call_api(console_server.base_url, key_id, secret).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]

    # Bad input is explained beside the field, and nothing is saved.
    row.get_by_role("button", name="Edit").click()
    dialog = page.get_by_role("dialog", name="Edit API Key")
    rate = dialog.get_by_role("group", name="Rate limit")
    expect(rate.get_by_role("spinbutton", name="Requests")).to_have_value("2")
    rate.get_by_role("spinbutton", name="Requests").fill("2000000")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_text("A rate limit allows 1 to 1,000,000 requests.")).to_be_visible()
    # Emptied: the rate limit is removed; the quota becomes 10 a month.
    rate.get_by_role("spinbutton", name="Requests").fill("")
    rate.get_by_role("spinbutton", name="per seconds").fill("")
    quota = dialog.get_by_role("group", name="Quota")
    quota.get_by_role("spinbutton", name="Requests").fill("10")
    quota.get_by_role("combobox", name="per").select_option("MONTH")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()

    row = key_row(page, "Metered")
    expect(row).not_to_contain_text("At most")
    expect(row).to_contain_text("of 10 this month")
    assert call_api(console_server.base_url, key_id, secret).status_code == 200


def _chart_counts(chart: Locator) -> dict[str, int]:
    counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
    for bar in chart.locator("rect.bar").all():
        outcome = bar.get_attribute("data-outcome") or ""
        counts[outcome] += int(bar.get_attribute("data-count") or 0)
    return counts


def _api_counts(page: Page, key_id: str, since: str) -> dict[str, Any]:
    """The same query the console asks, from the signed-in page (its session)."""
    fields = " ".join(["total", *OUTCOMES])
    body: dict[str, Any] = page.evaluate(
        """async ([id, since, fields]) => {
          const response = await fetch("graphql", {
            method: "POST", headers: {"Content-Type": "application/json"},
            body: JSON.stringify({query: `query($id: ID!, $since: DateTime!) {
              apiKey(id: $id) { usage(since: $since) { ${fields} } } }`,
              variables: {id, since}})});
          return response.json();
        }""",
        [key_id, since, fields],
    )
    buckets = body["data"]["apiKey"]["usage"]
    return {name: sum(b[name] for b in buckets) for name in ["total", *OUTCOMES]}


def test_a_refusal_is_counted_and_the_chart_and_table_match_the_api(
    page: Page, admin: Account, console_server: Server
) -> None:
    sign_in(page, admin)
    key_id, secret = create_limited_key(page, "Charted")
    base = console_server.base_url
    assert [call_api(base, key_id, secret).status_code for _ in range(3)] == [200, 200, 429]
    assert call_api(base, key_id, generate_key_secret()).status_code == 401

    row = key_row(page, "Charted")
    row.get_by_role("button", name="Usage").click()
    dialog = page.get_by_role("dialog", name="Usage of Charted")
    expect(dialog.get_by_role("button", name="Last 24 hours")).to_have_attribute(
        "aria-pressed", "true"
    )
    table = dialog.get_by_role("table", name="Calls of Charted in the last 24 hours, by outcome")
    totals = table.locator("tfoot tr")
    started = time.monotonic()
    while time.monotonic() - started < FLUSH_WAIT:
        if totals.locator("[data-total]").inner_text() == "4":
            break
        page.wait_for_timeout(1000)
        dialog.get_by_role("button", name="Last 24 hours").click()
    expect(totals.locator("[data-total]")).to_have_text("4")
    expect(totals.locator('[data-outcome="success"]')).to_have_text("2")
    expect(totals.locator('[data-outcome="rateLimited"]')).to_have_text("1")
    expect(totals.locator('[data-outcome="invalidSecret"]')).to_have_text("1")

    since = page.evaluate(
        "(() => { const d = new Date(); d.setUTCMinutes(0, 0, 0);"
        " return new Date(d.getTime() - 23 * 3600e3).toISOString(); })()"
    )
    api = _api_counts(page, key_id, since)
    chart = _chart_counts(dialog.locator("svg.usage-chart"))
    assert chart == {name: api[name] for name in OUTCOMES}
    assert api["total"] == 4

    for name in ("Last 7 days", "Last 30 days"):
        dialog.get_by_role("button", name=name).click()
        expect(dialog.get_by_role("button", name=name)).to_have_attribute("aria-pressed", "true")
        expect(dialog.locator("tfoot [data-total]")).to_have_text("4")
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    expect(row.get_by_role("button", name="Usage")).to_be_focused()

    # Setup > API Management: the organization's calls and its top keys, 7 days.
    page.reload()
    summary = page.locator("#org-usage summary")
    expect(summary).to_contain_text("Calls in the last 7 days: 4")
    summary.click()
    top = page.get_by_role("table", name="Top keys in the last 7 days")
    expect(top.get_by_role("row", name="Charted")).to_contain_text(key_id)
    expect(top.get_by_role("row", name="Charted").get_by_role("cell").nth(1)).to_have_text("4")
    expect(top.get_by_role("row", name="Charted").get_by_role("cell").nth(2)).to_have_text("2")
