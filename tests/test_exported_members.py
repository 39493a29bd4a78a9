"""The public names of the ``wfa_keys`` package are pinned: changing them is a decision."""

from __future__ import annotations

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
