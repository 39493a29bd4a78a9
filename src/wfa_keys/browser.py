"""What browsers need from the service: security headers, CORS, and refusing cross-site writes.

The admin API authenticates with a cookie, which a browser attaches to any request to this
host, including one a hostile page makes. :class:`CrossSiteRequestMiddleware` refuses such
requests before any resolver runs; CORS lets only the allow-listed frontends read responses.

The key-authenticated API needs none of that (no cookie, no page): :class:`BrowserOnly` runs
these middlewares for every path but the API's, and :func:`add_security_headers` gives every
response, API calls included, its security headers in the request log's own pass.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Collection, Iterable, Sequence
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
    "BrowserOnly",
    "CrossSiteRequestMiddleware",
    "SecurityHeadersMiddleware",
    "add_security_headers",
    "cors_middleware",
    "graphiql_csp",
]

#: For everything but the GraphiQL page: nothing may load, nothing may frame it.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
NONE = "'none'"
SELF = "'self'"

# The same on every response, whatever the app set: built once, as raw ASGI headers.
_ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
_HSTS = (b"strict-transport-security", b"max-age=31536000")
_FORCED_NAMES = frozenset({name for name, _ in _ALWAYS} | {_HSTS[0]})
_NO_STORE = (b"cache-control", b"no-store")
_API_CSP = (b"content-security-policy", API_CSP.encode())


_LOOKED_AT = _FORCED_NAMES | {_NO_STORE[0], _API_CSP[0]}
# What a response that sets none of them gets, in the order the general case adds them.
_ADDED = (*_ALWAYS, _NO_STORE, _API_CSP)
_ADDED_HTTPS = (*_ALWAYS, _NO_STORE, _HSTS, _API_CSP)


def add_security_headers(scope: Scope, headers: list[tuple[bytes, bytes]]) -> None:
    """Add the headers every response needs to a response's raw ``headers``, in place.

    ``nosniff`` keeps browsers from running a JSON answer as script; ``no-referrer`` keeps URLs
    out of other sites' logs; ``no-store`` (unless the app set its own ``Cache-Control``) keeps
    keys and secrets out of caches; the CSP and ``X-Frame-Options`` forbid framing
    (clickjacking the key-management page), and over https HSTS keeps browsers on https.
    A response that has a Content-Security-Policy keeps it (an HTML page's own, computed by
    :class:`SecurityHeadersMiddleware`); any other gets :data:`API_CSP`, which loads nothing.
    """
    # Nearly every response sets none of the names looked at: a loop (no set, no frame of a
    # comprehension) finds that, and the rest is added in one go.
    for name, _value in headers:
        if name.lower() in _LOOKED_AT:
            break
    else:
        headers.extend(_ADDED_HTTPS if scope.get("scheme") == "https" else _ADDED)
        return
    names = {name.lower() for name, _ in headers}
    if not names.isdisjoint(_FORCED_NAMES):
        headers[:] = [(n, v) for n, v in headers if n.lower() not in _FORCED_NAMES]
    headers.extend(_ALWAYS)
    if b"cache-control" not in names:
        headers.append(_NO_STORE)
    if scope.get("scheme") == "https":
        headers.append(_HSTS)
    if b"content-security-policy" not in names:
        headers.append(_API_CSP)


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
    scripts = [
        *_sources(page.script_urls),
        *(_sha256_source(s) for s in page.inline_scripts),
    ]
    styles = [*_sources(page.style_urls), "'unsafe-inline'"]
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


def _sources(urls: list[str]) -> list[str]:
    """CSP sources for these URLs: each absolute one by itself, relative ones as ``'self'``
    (a CSP source cannot name a path without a host; the page pins each file by SRI)."""
    sources = [url for url in urls if "://" in url]
    if len(sources) < len(urls):
        sources.append(SELF)
    return sources


def _origin(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return ""
    return f"{scheme}://{rest.split('/', 1)[0]}"


class SecurityHeadersMiddleware:
    """Adds the security headers (:func:`add_security_headers`), and an HTML page's CSP.

    An HTML page without a Content-Security-Policy of its own gets one that lets exactly its
    scripts and styles load (:func:`graphiql_csp`); a response that already has one keeps it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        start: Message | None = None
        html_parts: list[bytes] = []

        async def send_with_headers(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "content-security-policy" not in headers and headers.get(
                    "content-type", ""
                ).startswith("text/html"):
                    # The CSP depends on the page: hold the start until the body is complete.
                    start = message
                    return
                add_security_headers(scope, message["headers"])
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
                add_security_headers(scope, start["headers"])
                await send(start)
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BrowserOnly:
    """Runs ``middleware`` around the app for every path except those under ``skip``.

    For the protections only a browser needs (CORS, the cross-site check, an HTML page's
    CSP): the key-authenticated API under ``/api`` carries no cookie and serves no page, and
    each layer costs every API call a pass. ``skip`` paths are relative to where the app is
    mounted; ``/api`` skips ``/api`` and everything below it, not ``/apiary``.
    """

    def __init__(
        self, app: ASGIApp, *, middleware: Iterable[Middleware], skip: Sequence[str]
    ) -> None:
        self.app = app
        wrapped = app
        for cls, args, kwargs in reversed(list(middleware)):
            wrapped = cls(wrapped, *args, **kwargs)
        self.browser_app = wrapped
        self.skip = tuple(prefix.rstrip("/") for prefix in skip)
        self._below = tuple(prefix + "/" for prefix in self.skip)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path = route_path(scope)
            if path in self.skip or path.startswith(self._below):
                await self.app(scope, receive, send)
                return
        await self.browser_app(scope, receive, send)


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
