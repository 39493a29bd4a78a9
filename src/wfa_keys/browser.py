"""What browsers need from the service: security headers, CORS, and refusing cross-site writes.

The admin API authenticates with a cookie, which a browser attaches to any request to this
host, including one a hostile page makes. :class:`CrossSiteRequestMiddleware` refuses such
requests before any resolver runs; CORS lets only the allow-listed frontends read responses.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Collection, Sequence
from html.parser import HTMLParser

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wfa_auth import route_path
from wfa_keys.logs import REQUEST_ID_HEADER
from wfa_keys.settings import Settings

__all__ = [
    "API_CSP",
    "CrossSiteRequestMiddleware",
    "SecurityHeadersMiddleware",
    "cors_middleware",
    "graphiql_csp",
]

#: For everything but the GraphiQL page: nothing may load, nothing may frame it.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
NONE = "'none'"


def cors_middleware(settings: Settings) -> Middleware:
    """CORS for the allow-listed frontend origins, with credentials (never ``*``)."""
    if "*" in settings.cors_origins:  # Settings refuses it too; a cookie API must never allow it.
        raise ValueError("CORS origins cannot be '*' when credentials are allowed")
    return Middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_credentials=True,
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type", REQUEST_ID_HEADER],
        expose_headers=[REQUEST_ID_HEADER],
    )


class _PageResources(HTMLParser):
    """Collects what an HTML page loads: script and stylesheet URLs, inline scripts and styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.script_urls: list[str] = []
        self.style_urls: list[str] = []
        self.inline_scripts: list[str] = []
        self.inline_styles: list[str] = []
        self._inline: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            src = attributes.get("src")
            if src:
                self.script_urls.append(src)
            else:
                self._inline, self._text = "script", []
        elif tag == "style":
            self._inline, self._text = "style", []
        elif tag == "link" and attributes.get("rel") == "stylesheet" and attributes.get("href"):
            self.style_urls.append(str(attributes["href"]))

    def handle_data(self, data: str) -> None:
        if self._inline is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == self._inline:
            target = self.inline_scripts if tag == "script" else self.inline_styles
            target.append("".join(self._text))
            self._inline = None


def _sha256_source(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def graphiql_csp(html: str) -> str:
    """A Content-Security-Policy that lets exactly this page's scripts and styles load.

    Scripts and stylesheets are allowed by their full URL (the page pins them with subresource
    integrity), inline ones by their SHA-256; the page may talk only to its own origin, may
    show ``data:`` images (its icon) and fonts from the stylesheets' hosts, and may not be
    framed. GraphiQL and React also set style attributes at run time, hence ``'unsafe-inline'``
    for styles only: style injection cannot run code, script injection can.
    """
    page = _PageResources()
    page.feed(html)
    page.close()
    scripts = [*page.script_urls, *(_sha256_source(s) for s in page.inline_scripts)]
    styles = [*page.style_urls, "'unsafe-inline'"]
    font_hosts = sorted({_origin(url) for url in page.style_urls if _origin(url)})
    directives = [
        "default-src 'none'",
        f"script-src {' '.join(scripts) or NONE}",
        f"style-src {' '.join(styles)}",
        f"font-src {' '.join([*font_hosts, 'data:'])}",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ]
    return "; ".join(directives)


def _origin(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return ""
    return f"{scheme}://{rest.split('/', 1)[0]}"


class SecurityHeadersMiddleware:
    """Adds the headers every response needs, and the GraphiQL page's Content-Security-Policy.

    ``nosniff`` keeps browsers from running a JSON answer as script; ``no-referrer`` keeps URLs
    out of other sites' logs; ``no-store`` (unless the app set its own ``Cache-Control``) keeps
    keys and secrets out of caches; the CSP and ``X-Frame-Options`` forbid framing
    (clickjacking the key-management page).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        https = scope.get("scheme") == "https"
        start: Message | None = None
        html_parts: list[bytes] = []

        async def send_with_headers(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                headers["X-Frame-Options"] = "DENY"
                if "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
                if https:
                    headers["Strict-Transport-Security"] = "max-age=31536000"
                if "content-security-policy" in headers:
                    # The response brought its own policy (the console's): keep it.
                    await send(message)
                    return
                if headers.get("content-type", "").startswith("text/html"):
                    # The CSP depends on the page: hold the start until the body is complete.
                    start = message
                    return
                headers["Content-Security-Policy"] = API_CSP
                await send(message)
                return
            if start is not None and message["type"] == "http.response.body":
                html_parts.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = b"".join(html_parts)
                MutableHeaders(scope=start)["Content-Security-Policy"] = graphiql_csp(
                    body.decode("utf-8", errors="replace")
                )
                await send(start)
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            await send(message)

        await self.app(scope, receive, send_with_headers)


class CrossSiteRequestMiddleware:
    """Refuses, with 403, a state-changing request to ``paths`` made from another site.

    ``paths`` are relative to where the app is mounted (``scope["root_path"]``).

    A request is refused when the browser says it is cross-site (``Sec-Fetch-Site``), or when
    its ``Origin`` is neither this server's own nor in the allow-list. Requests without
    ``Origin`` (curl, server-to-server) carry no ambient cookie risk from a browser and pass.
    Safe methods pass: GraphQL over GET runs queries only.
    """

    def __init__(
        self, app: ASGIApp, *, allowed_origins: Collection[str], paths: Sequence[str]
    ) -> None:
        self.app = app
        self.allowed_origins = frozenset(o.rstrip("/") for o in allowed_origins)
        self.paths = tuple(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in _SAFE_METHODS
            or route_path(scope) not in self.paths
            or self._allowed(scope)
        ):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {
                "errors": [
                    {
                        "message": "Cross-site requests are refused.",
                        "extensions": {"code": "CROSS_SITE_REQUEST"},
                    }
                ]
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _allowed(self, scope: Scope) -> bool:
        headers = Headers(scope=scope)
        if headers.get("sec-fetch-site", "").lower() == "cross-site":
            return False
        origin = headers.get("origin")
        if origin is None:
            return True
        origin = origin.rstrip("/")
        return origin in self.allowed_origins or origin == _own_origin(scope, headers)


def _own_origin(scope: Scope, headers: Headers) -> str | None:
    host = headers.get("host")
    if not host:
        return None
    return f"{scope.get('scheme', 'http')}://{host}"
