"""wfa_keys: the Workflow Automation API key-management service.

``create_app`` builds the ASGI application (imported on first use, so that importing a
submodule such as ``wfa_keys.crypto`` does not load the web stack).
"""

from __future__ import annotations

from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from wfa_keys.settings import Settings, SettingsError

if TYPE_CHECKING:
    from wfa_keys.app import create_app

__all__ = ["Settings", "SettingsError", "__version__", "create_app"]

__version__ = version("wfa-keys")


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from wfa_keys.app import create_app

        return create_app
    raise AttributeError(f"module 'wfa_keys' has no attribute {name!r}")
