"""Write a PNG of each state of the admin console into a folder.

    python docs/console_screenshots.py [OUTPUT_DIR]   # default: docs/images/console/

Starts ``wfa-keys serve`` on a temporary SQLite file, signs in as the bootstrap admin in
Debian's Chromium (``/usr/bin/chromium``, never downloaded) and captures each state at
1280 px and 390 px wide: the documentation site (docs/console.md) and the README show them.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

CHROMIUM = os.environ.get("WFA_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
EMAIL = "admin@acme.example"
PASSWORD = "a long screenshot password"
KEYS = [("CI pipeline", None), ("Nightly export", 90), ("Partner integration", 365)]
# More keys, made through the API before the tour, so the list looks lived in: two expire
# within a week (the banner and the badges).
SEEDED = [
    ("Billing sync", 2),
    ("Staging smoke tests", 5),
    ("Data warehouse export to the analytics team's Frankfurt cluster", 180),
    ("Support dashboard", None),
    ("Mobile app backend", 365),
    ("Webhook relay", 30),
    ("Quarterly audit script", 60),
]
CREATE = "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { apiKey { id } } }"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFA_")}
    env |= {"WFA_BOOTSTRAP_ADMIN_EMAIL": EMAIL, "WFA_BOOTSTRAP_ADMIN_PASSWORD": PASSWORD}
    wfa_keys = shutil.which("wfa-keys") or str(Path(sys.executable).with_name("wfa-keys"))
    process = subprocess.Popen(
        [wfa_keys, "serve", "--port", str(port), "--database-url",
         f"sqlite://{workdir / 'shots.sqlite3'}"],
        env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1):  # noqa: S310 (local)
                return process, base
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise SystemExit("wfa-keys serve did not start")


def _create(page: Page, name: str, days: int | None) -> None:
    page.get_by_role("button", name="Add More").click()
    dialog = page.get_by_role("dialog", name="Create API Key")
    dialog.get_by_role("textbox", name="Name").fill(name)
    if days:
        dialog.get_by_role("switch", name="Expiration Time").click()
        dialog.get_by_role("spinbutton", name="Lifetime (days)").fill(str(days))
    dialog.get_by_role("button", name="Submit").click()
    expect(page.get_by_role("dialog", name="API Key")).to_be_visible()


def _seed(page: Page) -> None:
    """SEEDED, through the GraphQL API with the page's session."""
    for name, days in SEEDED:
        variables = {"i": {"name": name, "lifetimeDays": days}}
        response = page.request.post("/graphql", data={"query": CREATE, "variables": variables})
        assert "errors" not in response.json(), response.text()


def _done(page: Page) -> None:
    """Done in the API Key window, and Yes when it asks because nothing was copied."""
    page.get_by_role("dialog", name="API Key").get_by_role("button", name="Done").click()
    ask = page.get_by_role("alertdialog", name="Close Without Copying?")
    if ask.is_visible():
        ask.get_by_role("button", name="Yes").click()
    expect(page.get_by_role("dialog", name="API Key")).to_be_hidden()


def _use_key(page: Page, base: str) -> None:
    """One call with the key shown in the API Key window, so Last Used has a time and address."""
    shown = page.get_by_role("dialog", name="API Key", exact=True)
    key_id = shown.locator("#secret-key-id").inner_text()
    secret = shown.locator("#secret-key-secret").inner_text()
    token = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
    request = urllib.request.Request(  # noqa: S310 (our own local server)
        f"{base}/api/v1/whoami", headers={"Authorization": f"Basic {token}"}
    )
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 (local)
        pass


def _states(page: Page, snap: Callable[[str], None], base: str, *, phone: bool) -> None:
    page.goto("/")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    snap("sign-in-error")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="API Keys")).to_be_visible()
    expect(page.locator("#keys-status")).to_contain_text(("No API keys yet", "Showing")[phone])
    snap("keys-empty" if not phone else "keys-before")
    if not phone:
        _seed(page)
    for name, days in KEYS[:-1]:
        _create(page, name, days)
        _use_key(page, base)
        _done(page)
    page.get_by_role("button", name="Add More").click()
    dialog = page.get_by_role("dialog", name="Create API Key")
    dialog.get_by_role("textbox", name="Name").fill(KEYS[-1][0])
    dialog.get_by_role("switch", name="Expiration Time").click()
    dialog.get_by_role("spinbutton", name="Lifetime (days)").fill(str(KEYS[-1][1]))
    snap("create-dialog")
    dialog.get_by_role("button", name="Submit").click()
    page.get_by_role("dialog", name="API Key").get_by_role("button", name="Done").click()
    snap("close-without-copying")
    page.get_by_role("alertdialog", name="Close Without Copying?").get_by_role(
        "button", name="No"
    ).click()
    page.get_by_role("dialog", name="API Key").get_by_role("button", name="Copy Key Secret").click()
    expect(page.get_by_text("Copied")).to_be_visible()
    snap("api-key-dialog")
    page.get_by_role("button", name="Done").click()
    page.get_by_role("row", name=KEYS[0][0], exact=True).get_by_role(
        "switch", name="Enabled"
    ).click()
    expect(page.get_by_role("row", name=KEYS[0][0], exact=True)).to_contain_text("Disabled")
    partner = page.get_by_role("row", name=KEYS[2][0], exact=True)
    partner.get_by_role("button", name="Edit").click()
    edit = page.get_by_role("dialog", name="Edit API Key")
    edit.get_by_role("checkbox", name="workflows:write").uncheck()
    edit.get_by_role("textbox", name="Allowed networks").fill("203.0.113.0/24\n2001:db8::/32")
    snap("edit-dialog")
    edit.get_by_role("button", name="Save").click()
    expect(edit).to_be_hidden()
    page.get_by_role("row", name=KEYS[1][0], exact=True).get_by_role(
        "button", name="Regenerate"
    ).click()
    confirm = page.get_by_role("alertdialog", name="Regenerate API Key")
    confirm.get_by_role("radio", name="1 day").check()
    snap("regenerate-confirm")
    confirm.get_by_role("button", name="Yes").click()
    expect(page.get_by_role("dialog", name="API Key")).to_contain_text("keeps working until")
    snap("api-key-dialog-grace")
    _done(page)
    expect(page.get_by_role("row", name=KEYS[1][0], exact=True)).to_contain_text("Old secret")
    page.evaluate("window.scrollTo(0, 0)")
    snap("keys")
    page.get_by_role("row", name=KEYS[0][0], exact=True).get_by_role(
        "button", name="Delete"
    ).click()
    snap("delete-confirm")
    page.get_by_role("alertdialog", name="Delete API Key").get_by_role("button", name="No").click()
    if phone:
        billing = page.get_by_role("row", name=SEEDED[0][0], exact=True)
        billing.get_by_role("button", name="Details").click()
        billing.scroll_into_view_if_needed()
        snap("card-details")
        billing.get_by_role("button", name="Details").click()
    page.get_by_role("button", name="Show them").click()
    expect(page.get_by_text("Showing 2 of 2 API keys.")).to_be_visible()
    snap("keys-expiring")
    page.get_by_role("link", name="Audit Log").click()
    expect(page.get_by_role("row").nth(1)).to_be_visible()
    snap("audit-log")
    page.get_by_role("combobox", name="Event").select_option(label="Secret regenerated")
    expect(page.locator("#audit-body > tr").last).to_contain_text("Secret regenerated")
    snap("audit-log-filtered")
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("spinbutton", name="Disable keys unused for (days)").fill("90")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved: keys unused for")).to_be_visible()
    snap("settings")
    page.get_by_role("link", name="API Management").click()


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "images" / "console")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        process, base = _serve(Path(tmp))
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                for width, height in ((1280, 800), (390, 844)):
                    context = browser.new_context(
                        viewport={"width": width, "height": height}, base_url=base
                    )
                    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
                    page = context.new_page()
                    if width == 390:  # a second pass: the keys exist already
                        KEYS[:] = [(f"{name} (phone)", days) for name, days in KEYS]

                    def snap(state: str, page: Page = page, width: int = width) -> None:
                        page.screenshot(path=out / f"{state}-{width}.png")

                    _states(page, snap, base, phone=width == 390)
                    context.close()
                browser.close()
        finally:
            process.terminate()
            process.wait(timeout=20)
    print(f"Screenshots in {out}/")


if __name__ == "__main__":
    main()
