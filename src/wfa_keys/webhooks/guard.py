"""The SSRF guard: webhook URLs may only reach public addresses.

A URL is checked when an endpoint is created or changed and again before each delivery, as
DNS can answer differently later (DNS rebinding): the host is resolved, every address it
resolves to must be public, and the delivery then connects to the address that was checked
(see :mod:`wfa_keys.webhooks.sender`), never resolving the name a second time.

Refused: private (RFC 1918, ULA), loopback, link-local (the cloud metadata address
169.254.169.254 among them), shared (100.64.0.0/10), multicast, reserved and unspecified
addresses, IPv4 addresses mapped into IPv6 that are any of these, and ``http://``. With
``allow_insecure`` (``WFA_WEBHOOKS_ALLOW_INSECURE=on``, for tests and local development)
``http://`` and loopback addresses are allowed, and nothing else more.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["AddressGuard", "RefusedUrl", "Resolver", "Target", "system_resolver"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Resolves a host name to its addresses (textual IPs); injected in tests.
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_URL_LENGTH = 2000
#: Seconds a DNS answer may take; a slow resolver cannot hold a request or the worker.
RESOLVE_TIMEOUT = 5.0
#: Cloud metadata services that are not caught by the classes above on every platform.
_METADATA = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
}


class RefusedUrl(ValueError):
    """A webhook URL the guard refuses; the message says why, for the person who gave it."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a delivery goes: the URL's parts and the checked address to connect to."""

    scheme: str
    host: str
    port: int
    path: str
    address: str

    @property
    def host_header(self) -> str:
        """The ``Host`` header: the name in the URL, with its port when not the default."""
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def connect_url(self) -> str:
        """The URL with the checked address in place of the name."""
        address = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{address}:{self.port}{self.path}"


async def system_resolver(host: str, port: int) -> list[str]:
    """The system's resolver (getaddrinfo), run off the event loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _is_loopback(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _is_public(address.ipv4_mapped)
    return address.is_global and not address.is_multicast and address not in _METADATA


class AddressGuard:
    """Checks webhook URLs and the addresses their hosts resolve to."""

    def __init__(self, *, allow_insecure: bool = False, resolver: Resolver = system_resolver):
        self.allow_insecure = allow_insecure
        self.resolver = resolver

    def parse(self, url: str) -> tuple[str, str, int, str]:
        """(scheme, host, port, path-and-query) of a well-formed URL; else :class:`RefusedUrl`."""
        if len(url) > MAX_URL_LENGTH:
            raise RefusedUrl(f"The URL is longer than {MAX_URL_LENGTH} characters.")
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            raise RefusedUrl("The URL is not valid.") from None
        scheme, host = parts.scheme.lower(), (parts.hostname or "")
        if scheme not in ("https", "http") or not host:
            raise RefusedUrl("The URL must be an https:// URL.")
        if scheme == "http" and not self.allow_insecure:
            raise RefusedUrl("The URL must use https://.")
        if parts.username is not None or parts.password is not None:
            raise RefusedUrl("The URL cannot carry a user name or password.")
        if parts.fragment:
            raise RefusedUrl("The URL cannot have a #fragment.")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return scheme, host, port or (443 if scheme == "https" else 80), path

    async def _resolve(self, host: str, port: int) -> list[IPAddress]:
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT):
                found = await self.resolver(host, port)
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
        except (OSError, ValueError, TimeoutError, UnicodeError):
            addresses = []
        if not addresses:
            raise RefusedUrl(f"The host {host} cannot be resolved.")
        return addresses

    async def check(self, url: str) -> Target:
        """Resolve the URL's host and check every address; the target to connect to."""
        scheme, host, port, path = self.parse(url)
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            addresses = await self._resolve(host, port)
        for address in addresses:
            if _is_public(address) or (self.allow_insecure and _is_loopback(address)):
                continue
            raise RefusedUrl(
                "The URL points at a private, loopback, link-local or reserved address."
            )
        if scheme == "http" and not all(_is_loopback(a) for a in addresses):
            raise RefusedUrl("The URL must use https:// (http:// is allowed to loopback only).")
        return Target(scheme, host, port, path, str(addresses[0]))
