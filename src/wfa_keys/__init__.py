"""wfa_keys: the Workflow Automation API key-management service.

``create_app`` builds the ASGI application (imported on first use, so that importing a
submodule such as ``wfa_keys.crypto`` does not load the web stack).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wfa_keys.settings import Settings, SettingsError

if TYPE_CHECKING:
    from wfa_keys.app import create_app

__all__ = ["Settings", "SettingsError", "__version__", "create_app"]

# The one place of the distribution's version (pyproject.toml reads it: [tool.hatch.version]).
__version__ = "0.2.0"


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from wfa_keys.app import create_app

        return create_app
    raise AttributeError(f"module 'wfa_keys' has no attribute {name!r}")
