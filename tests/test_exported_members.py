"""The public names of the ``wfa_keys`` package are pinned: changing them is a decision."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import wfa_keys
from wfa_keys.app import create_app
from wfa_keys.settings import Settings, SettingsError


def test_the_package_exports_exactly_its_public_names() -> None:
    assert sorted(wfa_keys.__all__) == ["Settings", "SettingsError", "__version__", "create_app"]


def test_every_exported_name_is_the_real_object() -> None:
    assert wfa_keys.create_app is create_app
    assert wfa_keys.Settings is Settings
    assert wfa_keys.SettingsError is SettingsError
    assert wfa_keys.__version__.count(".") >= 1


def test_exported_names_are_documented() -> None:
    for name in wfa_keys.__all__:
        member = getattr(wfa_keys, name)
        if callable(member):
            assert member.__doc__, name


def test_an_unknown_name_is_an_attribute_error() -> None:
    assert not hasattr(wfa_keys, "no_such_name")


def test_the_version_is_the_installed_distributions_and_the_commands() -> None:
    shown = subprocess.run(
        [str(Path(sys.executable).with_name("wfa-keys")), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout

    assert wfa_keys.__version__ == importlib.metadata.version("wfa-keys")
    assert shown == f"wfa-keys {wfa_keys.__version__}\n"


def test_the_service_requires_the_middleware_by_a_version_range_it_satisfies() -> None:
    import wfa_auth

    requires = importlib.metadata.requires("wfa-keys") or []
    (wfa_auth_requirement,) = [r for r in requires if r.startswith("wfa-auth")]

    assert wfa_auth_requirement == "wfa-auth<0.4,>=0.3"
    assert wfa_auth.__version__.startswith("0.3.")
