"""Address allow-lists: which client addresses a key may be used from."""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger("wfa_auth")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_MAX_CACHED = 1_024
_MAX_REMEMBERED_ADDRESSES = 1_024


class AllowList:
    """The parsed networks of one non-empty ``allowed_cidrs``, and the addresses seen so far.

    Parsing an address costs more than the rest of a warm request: each one's answer is
    remembered (a bounded dict, as the addresses of a key's clients are few).
    """

    __slots__ = ("_seen", "networks")

    def __init__(self, networks: tuple[Network, ...]) -> None:
        self.networks = networks
        self._seen: dict[object, bool] = {}

    def allows(self, client: Any) -> bool:
        """True when the scope's ``client`` address is in one of the networks."""
        host = client[0] if client else None
        allowed = self._seen.get(host)
        if allowed is None:
            allowed = _inside(host, self.networks)
            if len(self._seen) < _MAX_REMEMBERED_ADDRESSES:
                self._seen[host] = allowed
        return allowed


class AllowLists:
    """Parses each distinct ``allowed_cidrs`` once into an :class:`AllowList`.

    Records are re-read from the store on every cache miss; their lists are few and
    repeated, so parsing is cached by the tuple of strings (bounded, in case lists vary).
    """

    def __init__(self) -> None:
        self._parsed: dict[tuple[str, ...], AllowList] = {}

    def get(self, allowed_cidrs: Sequence[str]) -> AllowList | None:
        """The allow-list of ``allowed_cidrs``; None when empty (anywhere)."""
        if not allowed_cidrs:
            return None
        key = tuple(allowed_cidrs)
        parsed = self._parsed.get(key)
        if parsed is None:
            parsed = AllowList(_parse(key))
            if len(self._parsed) >= _MAX_CACHED:
                self._parsed.clear()
            self._parsed[key] = parsed
        return parsed


def canonical_ip(host: object) -> str | None:
    """``host`` as a canonical IP address, its IPv6 zone ID dropped; None when not an IP.

    What a proxy forwarded as the client address may be free text (``::1%<svg ...>``): only
    an address in this form is ever stored (``last_used_ip``).
    """
    if not isinstance(host, str) or len(host) > 64:
        return None
    return _canonical_ip(host)


# A write of last uses puts each key's latest address in this form: 50,000 keys calling from
# a few addresses parsed the same ones 50,000 times (3 microseconds each; cached: 0.1).
@functools.lru_cache(maxsize=4096)
def _canonical_ip(host: str) -> str | None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        address = ipaddress.IPv6Address(address.packed)
    return str(address)


def _parse(allowed_cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    networks: list[Network] = []
    for value in allowed_cidrs:
        try:
            # Not strict: "10.0.0.1/8" means 10.0.0.0/8, as most firewalls read it.
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            # Skipped, never widened: a list of only bad entries lets no address through.
            logger.warning("ignoring an allowed network that is not a CIDR: %r", value[:64])
    return tuple(networks)


def _inside(host: object, networks: tuple[Network, ...]) -> bool:
    """True when ``host`` is an IP address in one of ``networks``.

    A missing or unparsable address (a Unix socket, a proxy that passed garbage) is in no
    network. An IPv4-mapped IPv6 address (``::ffff:10.0.0.1``, from a dual-stack socket)
    is checked as the IPv4 address it carries.
    """
    if not isinstance(host, str):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        mapped = address.ipv4_mapped
        return any(mapped in network or address in network for network in networks)
    return any(address in network for network in networks)
