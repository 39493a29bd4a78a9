"""Who the client is and where the service is mounted, when a reverse proxy is in front.

uvicorn believes ``X-Forwarded-For``/``X-Forwarded-Proto`` only from the addresses given
by :attr:`~wfa_keys.settings.Settings.forwarded_allow_ips` (nobody by default, see
:func:`uvicorn_options`); whatever it believed, the client address the service uses for
throttling and the audit log is a parsed IP address, never free text.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from wfa_keys.settings import Settings

__all__ = [
    "ClientAddressMiddleware",
    "RootPathMiddleware",
    "check_client_address",
    "parse_ip",
    "uvicorn_options",
    "with_root_path",
]


def parse_ip(host: object) -> str | None:
    """``host`` as a canonical IP address (``::1``, ``10.0.0.1``), or None when it is not one.

    An IPv6 zone ID (``fe80::1%eth0``) is dropped: it names an interface of the host that
    wrote it, means nothing here, and is free text (``::1%<svg onload=...>``) that must reach
    neither the throttles nor the audit log.
    """
    if not isinstance(host, str) or len(host) > 64:
        return None
    return _parse_ip(host)


# Every request parses its client's address, and a client comes back: the answers are kept
# (a bounded cache: addresses that do not come back only push the others out).
@functools.lru_cache(maxsize=4096)
def _parse_ip(host: str) -> str | None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        address = ipaddress.IPv6Address(address.packed)
    return str(address)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The proxy options of ``uvicorn.run``: trust nobody's forwarded headers unless told to.

    uvicorn's own default believes any loopback client; with an empty allow list its proxy
    middleware is not installed at all.
    """
    allowed = list(settings.forwarded_allow_ips)
    return {
        "proxy_headers": bool(allowed),
        "forwarded_allow_ips": allowed or "",
        "root_path": settings.root_path,
    }


def check_client_address(scope: Scope) -> None:
    """Replace, in place, a client address that is not an IP address with none at all, and
    write one that is in its canonical form."""
    client = scope.get("client")
    if client is not None:
        host = parse_ip(client[0])
        if host is None:
            scope["client"] = None
        elif host != client[0]:
            scope["client"] = (host, client[1])


def with_root_path(scope: Scope, root_path: str) -> Scope:
    """A copy of ``scope`` mounted at ``root_path`` the way uvicorn's ``--root-path`` mounts
    it: the prefix becomes ``root_path`` and is put in front of ``path``."""
    scope = dict(scope)
    scope["root_path"] = root_path
    scope["path"] = root_path + scope["path"]
    return scope


class ClientAddressMiddleware:
    """Replaces a client address that is not an IP address with none at all.

    A proxy that is trusted may still forward what its own client wrote in
    ``X-Forwarded-For``; the throttles and the audit log must never key on, or store, text
    such as ``<img src=x onerror=...>``. ``None`` is what they see for an unknown client.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            check_client_address(scope)
        await self.app(scope, receive, send)


class RootPathMiddleware:
    """Applies ``WFA_ROOT_PATH`` when the server did not (``uvicorn --factory`` without
    ``--root-path``), the way uvicorn does: the prefix becomes ``root_path`` and is put in
    front of ``path``, so that routing strips it again and URLs built by the app carry it."""

    def __init__(self, app: ASGIApp, root_path: str) -> None:
        self.app = app
        self.root_path = root_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not scope.get("root_path"):
            scope = with_root_path(scope, self.root_path)
        await self.app(scope, receive, send)
