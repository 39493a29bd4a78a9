"""Settings > Webhooks in Chromium against a real ``wfa-keys serve`` and a real receiver.

An admin adds an endpoint (its signing secret shown once, copied with Copy), sends a test
event that the receiver process gets signed with that secret, and sees the delivery in the
endpoint's recent deliveries; a private address is explained at the URL field; the keys
list marks a key due an expiry reminder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from standardwebhooks import Webhook

from support.console import Account, close_secret, create_key, key_row, sign_in
from support.serving import Server, start_server
from support.webhook_receiver import Receiver

pytestmark = pytest.mark.browser

OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


@pytest.fixture(scope="module")
def console_server(
    console_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The console's server, allowed to deliver to a receiver on loopback."""
    server = start_server(
        tmp_path_factory.mktemp("webhooks-console"),
        console_database_url,
        env={"WFA_WEBHOOKS_ALLOW_INSECURE": "on", "WFA_WEBHOOKS_POLL_INTERVAL_MS": "50"},
    )
    yield server
    server.stop()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    running = Receiver.start(tmp_path)
    yield running
    running.stop()


def open_webhooks(page: Page, admin: Account) -> None:
    sign_in(page, admin)
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Webhooks")).to_be_visible()


def test_an_endpoint_is_added_its_secret_copied_and_a_test_event_delivered(
    page: Page, admin: Account, receiver: Receiver
) -> None:
    open_webhooks(page, admin)
    expect(page.get_by_text("No endpoints yet.")).to_be_visible()
    page.get_by_label("URL", exact=True).fill(receiver.url)
    page.get_by_label("Description").fill("ops")
    page.get_by_role("button", name="Add endpoint").click()

    secret_box = page.locator("#webhook-secret")
    expect(secret_box).to_be_visible()
    secret = page.locator("#webhook-secret-value").inner_text()
    assert secret.startswith("whsec_")
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(secret_box.get_by_role("status")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    page.get_by_role("button", name="Done").click()
    expect(secret_box).to_be_hidden()
    assert secret not in page.content()  # shown once: gone from the page

    row = page.get_by_role("row").filter(has_text=receiver.url)
    expect(row).to_contain_text("Enabled")
    row.get_by_role("button", name="Send test").click()
    expect(page.locator("#webhooks-status")).to_contain_text("A test event is on its way")
    [delivery] = receiver.wait_for(1)
    payload = Webhook(secret).verify(delivery["body"], delivery["headers"])
    assert payload["type"] == "webhook.test"

    row.get_by_role("button", name="Deliveries").click()
    deliveries = page.locator("#webhook-deliveries")
    expect(deliveries).to_be_visible()
    expect(deliveries.get_by_role("row").filter(has_text="webhook.test")).to_contain_text(
        "delivered"
    )
    # On a phone the endpoints and deliveries fit the screen too.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate(OVERFLOW) <= 0


def test_a_private_address_is_explained_at_the_url_field(page: Page, admin: Account) -> None:
    open_webhooks(page, admin)
    page.get_by_label("URL", exact=True).fill("https://10.0.0.1/hook")
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.locator("#webhook-url-error")).to_contain_text("private")
    expect(page.get_by_text("No endpoints yet.")).to_be_visible()


def test_the_keys_list_marks_a_key_due_an_expiry_reminder(page: Page, admin: Account) -> None:
    sign_in(page, admin)
    create_key(page, "short-lived", lifetime_days=3)
    close_secret(page)
    create_key(page, "long-lived", lifetime_days=90)
    close_secret(page)
    expect(key_row(page, "short-lived").locator("[data-reminder=expiring]")).to_contain_text(
        "Expires in 3 days"
    )
    expect(key_row(page, "long-lived").locator("[data-reminder=expiring]")).to_have_count(0)
