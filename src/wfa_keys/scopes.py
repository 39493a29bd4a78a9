"""What an API key may do: the scopes of the Workflow Automation API, and address allow-lists.

A key grants a list of scopes; the middleware puts them in ``request.auth.scopes`` (with
``authenticated``), so routes declare what they need with Starlette's ``@requires``. A key may
also be restricted to networks (CIDR): a call from elsewhere is refused once its secret matched.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from wfa_keys.limits import MAX_ALLOWED_CIDRS

__all__ = [
    "KNOWN_SCOPES",
    "VERIFY_SCOPE",
    "Scope",
    "ScopeError",
    "all_scope_names",
    "default_scope_names",
    "normalize_cidrs",
    "normalize_scopes",
]


@dataclass(frozen=True, slots=True)
class Scope:
    """One permission of the Workflow Automation API."""

    name: str
    description: str
    #: Granted to a key created without a list of scopes.
    default: bool = True


#: Verifying other keys of the organization and following their changes
#: (``POST /api/v1/keys/verify``, ``GET /api/v1/keys/changes``): what a service that checks
#: keys on this one's behalf needs. Never a default: a verifying service is a deliberate choice.
VERIFY_SCOPE = "keys:verify"

KNOWN_SCOPES: tuple[Scope, ...] = (
    Scope("workflows:read", "List the organization's workflows."),
    Scope("workflows:write", "Create workflows."),
    Scope(
        VERIFY_SCOPE,
        "Verify the organization's keys and follow their changes (for services that check "
        "keys remotely); never granted by default.",
        default=False,
    ),
)


class ScopeError(ValueError):
    """A scope or a network is not acceptable; the message says why, for the person who sent it."""


def all_scope_names() -> list[str]:
    """Every known scope, in the order they are documented."""
    return [scope.name for scope in KNOWN_SCOPES]


def default_scope_names() -> list[str]:
    """The scopes a key gets when created without a list: every known one but ``keys:verify``."""
    return [scope.name for scope in KNOWN_SCOPES if scope.default]


def normalize_scopes(names: Iterable[str] | None) -> list[str]:
    """The scopes to store: the default ones for None, else the known names given, deduplicated.

    Raises ScopeError naming the first unknown scope.
    """
    if names is None:
        return default_scope_names()
    known = all_scope_names()
    chosen: set[str] = set()
    for name in names:
        if name not in known:
            shown = (
                name
                if len(name) <= 50 and name.isprintable()
                else name[:50].encode("unicode_escape").decode()
            )
            raise ScopeError(f"Unknown scope {shown!r}: the scopes are {', '.join(known)}.")
        chosen.add(name)
    # Stored in the documented order, so equal sets compare and display the same.
    return [name for name in known if name in chosen]


def normalize_cidrs(values: Iterable[str] | None) -> list[str]:
    """The networks to store, in canonical form (``10.0.0.0/8``, ``2001:db8::/32``).

    A bare address is a network of one (``/32`` or ``/128``). Host bits set below the prefix
    (``10.0.0.1/8``) are refused rather than silently widened or narrowed. Raises ScopeError.
    """
    if values is None:
        return []
    networks: list[str] = []
    for value in values:
        text = value.strip()
        try:
            network = ipaddress.ip_network(text, strict=True)
        except ValueError:
            shown = text[:50].encode("unicode_escape").decode()
            raise ScopeError(
                f"{shown!r} is not an IPv4 or IPv6 network in CIDR notation "
                "(like 203.0.113.0/24 or 2001:db8::/32)."
            ) from None
        if str(network) not in networks:
            networks.append(str(network))
    if len(networks) > MAX_ALLOWED_CIDRS:
        raise ScopeError(f"A key allows at most {MAX_ALLOWED_CIDRS} networks.")
    return networks
