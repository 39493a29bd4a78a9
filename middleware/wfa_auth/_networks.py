"""Address allow-lists: which client addresses a key may be used from."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger("wfa_auth")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: The parsed networks of a non-empty allow-list, or None for "anywhere".
Networks = tuple[Network, ...] | None

_MAX_CACHED = 1_024


class AllowLists:
    """Parses each distinct ``allowed_cidrs`` once and tells whether a client is inside.

    Records are re-read from the store on every cache miss; their lists are few and
    repeated, so parsing is cached by the tuple of strings (bounded, in case lists vary).
    """

    def __init__(self) -> None:
        self._parsed: dict[tuple[str, ...], tuple[Network, ...]] = {}

    def networks(self, allowed_cidrs: Sequence[str]) -> Networks:
        """The networks of ``allowed_cidrs``; None when empty (anywhere)."""
        if not allowed_cidrs:
            return None
        key = tuple(allowed_cidrs)
        parsed = self._parsed.get(key)
        if parsed is None:
            parsed = _parse(key)
            if len(self._parsed) >= _MAX_CACHED:
                self._parsed.clear()
            self._parsed[key] = parsed
        return parsed


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


def client_allowed(client: Any, networks: tuple[Network, ...]) -> bool:
    """True when the scope's ``client`` address is in one of ``networks``.

    A missing or unparsable address (a Unix socket, a proxy that passed garbage) is in no
    network. An IPv4-mapped IPv6 address (``::ffff:10.0.0.1``, from a dual-stack socket)
    is checked as the IPv4 address it carries.
    """
    if not client:
        return False
    try:
        address = ipaddress.ip_address(client[0])
    except (ValueError, TypeError):
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        mapped = address.ipv4_mapped
        return any(mapped in network or address in network for network in networks)
    return any(address in network for network in networks)
