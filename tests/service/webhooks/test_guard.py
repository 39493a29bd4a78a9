"""The SSRF guard. No test here sends a packet anywhere but loopback: refusals are proven with
literal addresses and a stub resolver, and the transport records any connection attempted."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from support.webhook_receiver import Receiver
from wfa_keys.webhooks.guard import AddressGuard, RefusedUrl
from wfa_keys.webhooks.sender import Sender

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class StubResolver:
    """Answers from a table, as DNS would; never sends a packet."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError("no such host")
        return self.table[host]


class NoConnections(httpx.AsyncBaseTransport):
    """A transport that records every request: the guard must stop them before it."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(204)


REFUSED = [
    "https://10.0.0.5/hook",
    "https://172.16.3.4/hook",
    "https://192.168.1.1/hook",
    "https://127.0.0.1/hook",
    "https://[::1]/hook",
    "https://169.254.169.254/latest/meta-data",
    "https://[fe80::1]/hook",
    "https://[fd00:ec2::254]/hook",
    "https://100.100.100.200/hook",
    "https://100.64.0.1/hook",
    "https://0.0.0.0/hook",
    "https://224.0.0.1/hook",
    "https://[::ffff:10.0.0.1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "http://93.184.216.34/hook",  # public, but not https
    "ftp://93.184.216.34/hook",
    "https://user:pass@93.184.216.34/hook",
    "https:///hook",
]


@pytest.mark.parametrize("url", REFUSED)
async def test_urls_to_private_or_special_addresses_are_refused_before_any_connection(
    url: str,
) -> None:
    resolver = StubResolver({})
    transport = NoConnections()
    sender = Sender(AddressGuard(resolver=resolver), transport=transport)
    with pytest.raises(RefusedUrl):
        await AddressGuard(resolver=resolver).check(url)
    outcome = await sender.send(url, SECRET, "msg_1", b"{}", timestamp=1)
    assert not outcome.delivered
    assert outcome.status_code is None
    assert transport.requests == []
    assert resolver.asked == []  # literal addresses: not even a DNS question
    await sender.aclose()


@pytest.mark.parametrize(
    "answer",
    [["10.1.2.3"], ["93.184.216.34", "192.168.0.10"], ["169.254.169.254"], ["::1"], []],
)
async def test_a_name_resolving_to_any_private_address_is_refused(answer: list[str]) -> None:
    guard = AddressGuard(resolver=StubResolver({"hooks.example": answer}))
    with pytest.raises(RefusedUrl):
        await guard.check("https://hooks.example/in")


async def test_a_public_name_is_accepted_and_the_checked_address_is_the_target() -> None:
    guard = AddressGuard(resolver=StubResolver({"hooks.example": ["93.184.216.34"]}))
    target = await guard.check("https://hooks.example:8443/in?x=1")
    assert target.address == "93.184.216.34"
    assert target.connect_url == "https://93.184.216.34:8443/in?x=1"
    assert target.host_header == "hooks.example:8443"


async def test_dns_rebinding_is_refused_at_delivery_before_any_connection() -> None:
    table = {"hooks.example": ["93.184.216.34"]}
    resolver = StubResolver(table)
    guard = AddressGuard(resolver=resolver)
    await guard.check("https://hooks.example/in")  # at creation: public
    table["hooks.example"] = ["127.0.0.1"]  # the name now points inside
    transport = NoConnections()
    sender = Sender(guard, transport=transport)
    outcome = await sender.send("https://hooks.example/in", SECRET, "msg_1", b"{}", timestamp=1)
    assert not outcome.delivered
    assert outcome.error is not None
    assert "private" in outcome.error
    assert transport.requests == []
    await sender.aclose()


async def test_loopback_and_http_are_allowed_only_when_insecure_is_on() -> None:
    with pytest.raises(RefusedUrl):
        await AddressGuard().check("http://127.0.0.1:9/hook")
    target = await AddressGuard(allow_insecure=True).check("http://127.0.0.1:9/hook")
    assert target.address == "127.0.0.1"
    # Insecure opens loopback, not the private networks.
    with pytest.raises(RefusedUrl):
        await AddressGuard(allow_insecure=True).check("http://10.0.0.1/hook")
    with pytest.raises(RefusedUrl):
        await AddressGuard(
            allow_insecure=True, resolver=StubResolver({"x.example": ["93.184.216.34"]})
        ).check("http://x.example/hook")


async def test_the_delivery_connects_to_the_checked_address_with_the_name_as_host(
    receiver: Receiver,
) -> None:
    resolver = StubResolver({"receiver.test": ["127.0.0.1"]})
    sender = Sender(AddressGuard(allow_insecure=True, resolver=resolver))
    url = f"http://receiver.test:{receiver.port}/hook?tenant=1"
    outcome = await sender.send(url, SECRET, "msg_1", b'{"a":1}', timestamp=1)
    await sender.aclose()
    assert outcome.delivered, outcome
    [request] = receiver.received()
    assert request["headers"]["host"] == f"receiver.test:{receiver.port}"
    assert request["path"] == "/hook?tenant=1"
    assert json.loads(request["body"]) == {"a": 1}
    assert resolver.asked == ["receiver.test"]


class EndlessBody(httpx.AsyncByteStream):
    """A response body of 10 MiB in 8 KiB chunks, counting what was read."""

    def __init__(self) -> None:
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < 10 * 1024 * 1024:
            self.sent += 8192
            yield b"x" * 8192


async def test_redirects_are_not_followed_and_large_bodies_are_not_read_whole() -> None:
    served: list[str] = []
    body = EndlessBody()

    def answer(request: httpx.Request) -> httpx.Response:
        served.append(str(request.url))
        if request.url.path == "/redirect":
            # A stream, as a real connection gives (a bytes body counts as read already).
            return httpx.Response(
                302, headers={"Location": "http://127.0.0.1/elsewhere"}, stream=EndlessBody()
            )
        return httpx.Response(200, stream=body)

    sender = Sender(AddressGuard(allow_insecure=True), transport=httpx.MockTransport(answer))
    outcome = await sender.send("http://127.0.0.1/redirect", SECRET, "m", b"{}", timestamp=1)
    assert not outcome.delivered
    assert outcome.status_code == 302
    assert served == ["http://127.0.0.1/redirect"]  # once: the Location was not followed
    outcome = await sender.send("http://127.0.0.1/big", SECRET, "m", b"{}", timestamp=1)
    assert outcome.delivered
    assert body.sent <= 64 * 1024 + 8192
    await sender.aclose()
