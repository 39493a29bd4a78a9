"""Settings come from WFA_* variables; nonsense is refused with the variable named."""

from __future__ import annotations

import pytest

from wfa_keys.crypto import hasher_for
from wfa_keys.settings import DEFAULT_DATABASE_URL, Settings, SettingsError


def test_defaults_are_production_safe() -> None:
    settings = Settings.from_env({})

    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.production
    assert not settings.graphiql_enabled
    assert settings.argon2_memory_cost_kib >= 19456
    assert settings.argon2_time_cost >= 2
    assert settings.cors_origins == ()


def test_dev_mode_turns_graphiql_on_unless_told_otherwise() -> None:
    assert Settings.from_env({"WFA_DEV": "on"}).graphiql_enabled
    assert not Settings.from_env({"WFA_DEV": "on", "WFA_GRAPHIQL": "off"}).graphiql_enabled


def test_variables_are_parsed_and_overrides_win() -> None:
    settings = Settings.from_env(
        {
            "WFA_DATABASE_URL": "sqlite://other.sqlite3",
            "WFA_CORS_ORIGINS": "https://a.example, https://b.example/",
            "WFA_TOKEN_TTL": "600",
        },
        database_url="sqlite://flag.sqlite3",
    )

    assert settings.database_url == "sqlite://flag.sqlite3"
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.token_ttl == 600


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"WFA_TOKEN_TTL": "soon"}, "WFA_TOKEN_TTL"),
        ({"WFA_ARGON2_MEMORY_COST_KIB": "1024"}, "WFA_ARGON2_MEMORY_COST_KIB"),
        ({"WFA_ARGON2_TIME_COST": "1"}, "WFA_ARGON2_TIME_COST"),
        ({"WFA_DEV": "maybe"}, "WFA_DEV"),
        ({"WFA_CORS_ORIGINS": "*"}, "WFA_CORS_ORIGINS"),
        ({"WFA_LOG_LEVEL": "LOUD"}, "WFA_LOG_LEVEL"),
        ({"WFA_INACTIVITY_CHECK_INTERVAL": "0"}, "WFA_INACTIVITY_CHECK_INTERVAL"),
        ({"WFA_INACTIVITY_CHECK_INTERVAL": "86401"}, "WFA_INACTIVITY_CHECK_INTERVAL"),
        (
            {"WFA_SESSION_IDLE_TIMEOUT": "7200", "WFA_SESSION_ABSOLUTE_TIMEOUT": "3600"},
            "WFA_SESSION_IDLE_TIMEOUT",
        ),
    ],
)
def test_bad_values_are_refused_naming_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(environ)


def test_inactive_keys_are_checked_hourly_unless_told_otherwise() -> None:
    assert Settings.from_env({}).inactivity_check_interval == 3600
    assert Settings.from_env({"WFA_INACTIVITY_CHECK_INTERVAL": "1"}).inactivity_check_interval == 1


def test_every_setting_is_described_with_its_variable() -> None:
    described = dict(Settings.describe())

    assert "WFA_DATABASE_URL" in described
    assert all(name.startswith("WFA_") for name in described)


def test_the_default_hasher_works_at_owasp_minimum_cost_or_more() -> None:
    # The one test at production cost: every other test uses support.settings.cheap_settings.
    hasher = hasher_for(Settings())

    secret_hash = hasher.hash("a production secret")

    assert secret_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert hasher.verify(secret_hash, "a production secret")
    assert not hasher.verify(secret_hash, "another secret")
