"""An ASGI app in front of another that records each HTTP call's path and headers."""

from __future__ import annotations

from typing import Any

from starlette.types import Receive, Scope, Send


class Counted:
    """Passes every call to ``app`` and remembers ``(path, headers)`` of the HTTP ones."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: list[tuple[str, dict[str, str]]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            self.calls.append((scope["path"], headers))
        await self.app(scope, receive, send)

    def count(self, path: str) -> int:
        """How many HTTP calls went to ``path``."""
        return sum(1 for called, _ in self.calls if called == path)
