"""axe-core, the accessibility engine, from the npm registry, run in pages under test.

The tests never load it from a CDN: :func:`axe_script` installs the pinned version with npm
into a folder the repository ignores (``.cache/axe-core``), once, and the tests inject the
file with Playwright's ``add_script_tag`` in a context that bypasses the console's CSP.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

AXE_VERSION = "4.14.1"
CACHE = Path(__file__).resolve().parents[2] / ".cache" / "axe-core"
#: WCAG 2.1 levels A and AA: the rules the console promises to pass.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def axe_script() -> Path:
    """``axe.min.js`` of :data:`AXE_VERSION`, installed with npm when missing.

    Without npm (or the registry), the test fails in CI and skips elsewhere.
    """
    prefix = CACHE / AXE_VERSION
    script = prefix / "node_modules" / "axe-core" / "axe.min.js"
    if script.exists():
        return script
    npm = shutil.which("npm")
    problem = "" if npm else "npm is not installed"
    if npm:
        prefix.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-save", "--no-audit", "--no-fund",
             "--ignore-scripts", f"axe-core@{AXE_VERSION}"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if done.returncode == 0 and script.exists():
            return script
        problem = f"npm install axe-core@{AXE_VERSION} failed: {done.stderr[-2000:]}"
    message = f"the accessibility tests need axe-core from the npm registry: {problem}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(f"{message}; CI fails here instead of skipping")


def axe_violations(page: Page, script: Path) -> list[str]:
    """Run axe on the page as it is now (WCAG 2.1 A and AA); one line per violation."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(path=str(script))
    results: dict[str, Any] = page.evaluate(
        """(tags) => axe.run(document, { runOnly: { type: "tag", values: tags } })""",
        WCAG_TAGS,
    )
    lines = []
    for violation in results["violations"]:
        targets = [json.dumps(node["target"]) for node in violation["nodes"]][:5]
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']} at {targets}")
    return lines
