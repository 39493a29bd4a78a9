"""The GraphiQL page: Strawberry's, without copying operations into the URL or local storage.

Strawberry's page writes the operation and its variables into the address bar as the admin
types (``?q=...&variables=...``), and GraphiQL keeps its tabs, history and headers in
``localStorage``. A sign-in typed there would leave the password in the browser history, in
local storage and, on a reload, in the server's access log. This page starts empty, keeps
nothing beyond the tab (an in-memory storage), and never touches the URL; admins sign in
through the console and GraphiQL shares that session cookie.

Its scripts and styles come from ``settings.graphiql_assets_url`` (default: unpkg.com), each
pinned by subresource integrity: a copy of the same files served from your own host keeps the
same hashes and works without internet.
"""

from __future__ import annotations

import re
from functools import cache

from strawberry.http.ides import get_graphql_ide_html

__all__ = ["CDN_URL", "graphiql_html"]

CDN_URL = "https://unpkg.com"

# Replaces Strawberry's inline script: same GraphiQL, no URL parameters, memory storage.
_SCRIPT = """
      const fetchURL = window.location.href.split("?")[0].split("#")[0];
      const headers = {};
      const csrfToken = Cookies.get("csrftoken");
      if (csrfToken) {
        headers["x-csrftoken"] = csrfToken;
      }
      // GraphiQL's storage, kept in memory: queries, variables, headers and history
      // (a sign-in's password among them) never reach the browser's storage.
      const memory = new Map();
      const storage = {
        getItem: (key) => (memory.has(key) ? memory.get(key) : null),
        setItem: (key, value) => { memory.set(key, String(value)); },
        removeItem: (key) => { memory.delete(key); },
        clear: () => { memory.clear(); },
        get length() { return memory.size; },
      };
      const fetcher = GraphiQL.createFetcher({ url: fetchURL, headers });
      const explorerPlugin = GraphiQLPluginExplorer.explorerPlugin();
      const root = ReactDOM.createRoot(document.getElementById("graphiql"));
      root.render(
        React.createElement(GraphiQL, {
          fetcher,
          storage,
          defaultQuery: [
            "# Sign in through the console at / first: GraphiQL uses its session.",
            "{ me { email role organization { name } } }",
            "",
          ].join("\\n"),
          defaultEditorToolsVisibility: true,
          plugins: [explorerPlugin],
          inputValueDeprecation: true,
          isHeadersEditorEnabled: true,
          shouldPersistHeaders: false,
        }),
      );
"""

_INLINE_SCRIPT = re.compile(r"<script>.*?</script>", re.DOTALL)


@cache
def graphiql_html(assets_url: str = CDN_URL) -> str:
    """The GraphiQL page, loading its assets from ``assets_url`` (a CDN or your own copy)."""
    html = get_graphql_ide_html(graphql_ide="graphiql")
    if len(_INLINE_SCRIPT.findall(html)) != 1:  # a Strawberry upgrade changed the page
        raise RuntimeError("Strawberry's GraphiQL page no longer has one inline script")
    html = _INLINE_SCRIPT.sub(lambda _m: f"<script>{_SCRIPT}    </script>", html)
    return html.replace(f"{CDN_URL}/", f"{assets_url.rstrip('/')}/")
