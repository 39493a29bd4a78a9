"""The admin console: the API Keys page, a frontend of the public GraphQL API.

The page is static: ``index.html``, plain ES modules and CSS shipped in this package and
served by the app itself, so the console works on a machine without internet and with
nothing to build. It talks only to ``/graphql`` on its own origin with the session cookie,
like any other client of the API; it has no endpoint of its own.

Every response carries :data:`CONSOLE_CSP`: scripts and styles only from this origin, no
inline script or style, no ``eval``, no framing. :class:`wfa_keys.browser.SecurityHeadersMiddleware`
keeps a policy a response already carries, so this one is not replaced by GraphiQL's.
"""

from __future__ import annotations

from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONSOLE_CSP", "STATIC_DIR", "create_console_app"]

#: The files of the console, shipped in the wheel.
STATIC_DIR = Path(__file__).parent / "static"

#: Only this origin's scripts, styles, images and GraphQL; nothing inline, nothing framed.
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


async def _index(_request: Request) -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")


class _ConsolePolicy:
    """Puts the console's Content-Security-Policy on every response of the console."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["Content-Security-Policy"] = CONSOLE_CSP
            await send(message)

        await self.app(scope, receive, send_with_policy)


def create_console_app() -> ASGIApp:
    """The console as an ASGI app; mount it last, at ``/`` (``Mount("/", app=...)``)."""
    router = Router(
        routes=[
            Route("/", _index, methods=["GET", "HEAD"]),
            Mount("/assets", app=StaticFiles(directory=STATIC_DIR / "assets")),
        ]
    )
    return _ConsolePolicy(router)
