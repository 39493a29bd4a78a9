"""The documented nginx configuration (docs/deploy/nginx.conf), run by Debian's nginx.

TLS with a self-signed certificate, a port other than 443 and the root path ``/keys``, in
front of a real ``wfa-keys serve --root-path /keys --forwarded-allow-ips 127.0.0.1``: the
console signs in and out in Chromium, creates a key and copies it; the key calls the API
with Basic and with a token; a forged ``X-Forwarded-For`` is replaced; ``/metrics`` is refused
from outside; the session cookie's ``Path`` is the root path.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from support.console import CHROMIUM_ARGS, chromium_or_skip, create_account, create_key
from support.nginx import Nginx, TlsFiles, run_nginx, self_signed_certificate
from support.serving import Server, start_server
from wfa_keys.sessions import COOKIE_NAME

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

DOCUMENTED = Path(__file__).resolve().parents[2] / "docs" / "deploy" / "nginx.conf"
ROOT = "/keys"
FORGED = "203.0.113.9"
AUDIT = "{ auditEvents(first: 20) { nodes { action clientIp } } }"


def documented_block(tls: TlsFiles, upstream: str) -> str:
    """The documented server block, with the test's port, certificate and upstream."""
    text = DOCUMENTED.read_text(encoding="utf-8")
    for old, new in (
        ("listen 8443 ssl;", "listen 127.0.0.1:{port} ssl;"),
        ("/etc/ssl/certs/keys.example.com.pem", str(tls.certificate)),
        ("/etc/ssl/private/keys.example.com.key", str(tls.key)),
        ("proxy_pass http://127.0.0.1:8000/;", f"proxy_pass {upstream}/;"),
    ):
        assert text.count(old) == 1, f"the documented config no longer has {old!r}"
        text = text.replace(old, new)
    return text


@pytest.fixture
def service(tmp_path: Path, e2e_database_url: str) -> Iterator[Server]:
    workdir = tmp_path / "service"
    workdir.mkdir()
    server = start_server(
        workdir,
        e2e_database_url,
        "--root-path",
        ROOT,
        "--forwarded-allow-ips",
        "127.0.0.1",
        env={"WFA_METRICS": "on"},
    )
    yield server
    server.stop()


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return self_signed_certificate(tmp_path)


@pytest.fixture
def nginx(tmp_path: Path, tls: TlsFiles, service: Server) -> Iterator[Nginx]:
    with run_nginx(tmp_path / "nginx", documented_block(tls, service.base_url)) as proxy:
        yield proxy


@pytest.fixture
def browser() -> Iterator[Browser]:
    path = chromium_or_skip()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(path), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_the_documented_nginx_config_serves_console_and_api_under_a_root_path_over_tls(
    nginx: Nginx, tls: TlsFiles, service: Server, e2e_database_url: str, browser: Browser
) -> None:
    account = create_account(e2e_database_url)
    base = nginx.base_url + ROOT
    client = httpx2.Client(verify=tls.client_context(), trust_env=False, timeout=30)

    # /metrics: served by the service on its own port, refused through the proxy.
    assert httpx2.get(f"{service.base_url}/metrics", trust_env=False).status_code == 200
    assert client.get(f"{base}/metrics").status_code == 403
    assert client.get(f"{base}/healthz").json()["status"] == "ok"
    assert client.get(base).headers["location"].endswith(f"{ROOT}/")

    # A sign-in with a forged X-Forwarded-For: nginx replaces it with the real address.
    failed = client.post(
        f"{base}/graphql",
        json={
            "query": "mutation { login(email: $e, password: $p) { email } }".replace(
                "mutation", "mutation($e: String!, $p: String!)"
            ),
            "variables": {"e": account.email, "p": "not the password"},
        },
        headers={"X-Forwarded-For": FORGED},
    )
    assert failed.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 800})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=nginx.base_url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.bring_to_front()
    try:
        page.goto(f"{base}/")
        page.get_by_label("Email").fill(account.email)
        page.get_by_label("Password").fill(account.password)
        page.get_by_role("button", name="Sign in").click()
        # Signed in through a proxy on a port other than 443: the origin check saw the port.
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        (cookie,) = [c for c in context.cookies() if c["name"] == COOKIE_NAME]
        assert cookie["path"] == ROOT
        assert cookie["secure"]
        assert cookie["httpOnly"]

        key_id, secret = create_key(page, "through nginx")
        shown = page.get_by_role("dialog", name="API Key")
        shown.get_by_role("button", name="Copy Key Secret").click()
        assert page.evaluate("navigator.clipboard.readText()") == secret

        audit = page.request.post(f"{base}/graphql", data={"query": AUDIT}).json()
        addresses = {
            (event["action"], event["clientIp"]) for event in audit["data"]["auditEvents"]["nodes"]
        }
        assert ("LOGIN_FAILED", "127.0.0.1") in addresses, addresses
        assert ("LOGIN_SUCCEEDED", "127.0.0.1") in addresses, addresses
        assert FORGED not in str(addresses)

        # The key works through the proxy: Basic, then a token.
        basic = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
        whoami = client.get(f"{base}/api/v1/whoami", headers={"Authorization": f"Basic {basic}"})
        assert whoami.status_code == 200
        assert whoami.json()["key_id"] == key_id
        token = client.post(
            f"{base}/api/v1/auth/api-key/token", json={"key_id": key_id, "key_secret": secret}
        ).json()["access_token"]
        with_token = client.get(
            f"{base}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}
        )
        assert with_token.status_code == 200

        shown.get_by_role("button", name="Done").click()
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        assert [c for c in context.cookies() if c["name"] == COOKIE_NAME] == []
        # The session ended on the server too.
        me = page.request.post(f"{base}/graphql", data={"query": "{ me { email } }"}).json()
        assert me["data"]["me"] is None or me.get("errors"), me
    finally:
        context.close()
        client.close()
