"""The GraphiQL page: Strawberry's, without copying operations into the URL or local storage.

Strawberry's page writes the operation and its variables into the address bar as the admin
types (``?q=...&variables=...``), and GraphiQL keeps its tabs, history and headers in
``localStorage``. A sign-in typed there would leave the password in the browser history, in
local storage and, on a reload, in the server's access log. This page starts empty, keeps
nothing beyond the tab (an in-memory storage), and never touches the URL; admins sign in
through the console and GraphiQL shares that session cookie.

Its scripts and styles are the npm registry's files, shipped in the wheel (``graphiql_assets/``)
and served by the app at ``graphiql-assets/`` beside ``/graphql``, so GraphiQL works without
internet; ``settings.graphiql_assets_url`` may point elsewhere (unpkg.com, your own host). Each
file is pinned by subresource integrity, wherever it comes from.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from strawberry.http.ides import get_graphql_ide_html

__all__ = ["ASSETS_DIR", "ASSETS_PATH", "CDN_URL", "graphiql_html"]

#: Where Strawberry's page loads its files from.
CDN_URL = "https://unpkg.com"
#: The same files, from the npm registry, shipped in the wheel (see its README.md).
ASSETS_DIR = Path(__file__).parent / "graphiql_assets"
#: Where the app serves ASSETS_DIR: beside ``/graphql``, so a relative URL finds it under a
#: root path too.
ASSETS_PATH = "graphiql-assets"

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
def graphiql_html(assets_url: str = "") -> str:
    """The GraphiQL page, loading its assets from ``assets_url`` (a CDN or your own copy);
    empty: from this app (:data:`ASSETS_PATH`, relative to ``/graphql``)."""
    html = get_graphql_ide_html(graphql_ide="graphiql")
    if len(_INLINE_SCRIPT.findall(html)) != 1:  # a Strawberry upgrade changed the page
        raise RuntimeError("Strawberry's GraphiQL page no longer has one inline script")
    html = _INLINE_SCRIPT.sub(lambda _m: f"<script>{_SCRIPT}    </script>", html)
    return html.replace(f"{CDN_URL}/", f"{assets_url.rstrip('/') or ASSETS_PATH}/")
