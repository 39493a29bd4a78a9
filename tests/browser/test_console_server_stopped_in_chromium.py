"""A row action that fails because the server stopped mid-session: the failure is said under
its row, announced, and in view, at both widths. Each test stops a server of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from support.console import Account, PageProblems, chromium_or_skip, key_row, seed_key, sign_in
from support.serving import Server, start_server

pytestmark = pytest.mark.browser


@pytest.fixture
def console_server(
    console_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server for this test alone: the test stops it."""
    chromium_or_skip()
    server = start_server(tmp_path_factory.mktemp("stopped-server"), console_database_url)
    yield server
    server.stop()


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1280, 800)])
def test_a_failed_switch_is_explained_under_its_row_announced_and_kept_in_view(
    page: Page,
    admin: Account,
    console_server: Server,
    problems: PageProblems,
    width: int,
    height: int,
) -> None:
    page.set_viewport_size({"width": width, "height": height})
    sign_in(page, admin)
    # The oldest key is the last row of the first page, far below the fold.
    seed_key(page, "Far down")
    for n in range(24):
        seed_key(page, f"filler {n:02d}")
    page.reload()
    row = key_row(page, "Far down")
    switch = row.get_by_role("switch", name="Enabled")
    expect(switch).to_have_attribute("aria-checked", "true")
    switch.scroll_into_view_if_needed()

    console_server.stop()
    switch.click()

    alert = page.get_by_role("alert")
    expect(alert).to_have_text(
        "Disabling “Far down” failed: The service cannot be reached. "
        "Check the connection and try again."
    )
    expect(alert).to_be_in_viewport()
    expect(switch).to_be_in_viewport()
    # Right under its row: the next row of the table is the message's.
    row_box, alert_box = row.bounding_box(), alert.bounding_box()
    assert row_box is not None
    assert alert_box is not None
    assert 0 <= alert_box["y"] - (row_box["y"] + row_box["height"]) < 20
    expect(page.locator("tr[data-key-id] + tr.row-error")).to_have_count(1)
    # The switch did not change and can be tried again.
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(switch).to_be_enabled()
    expect(switch).to_be_focused()
    # The browser logs the refused request itself; that is the point of this test.
    problems.console_errors.clear()
