"""Settings for the tests: argon2 at its cheapest, everything else as in production.

Tests hash passwords and secrets by the hundred; at production cost (OWASP's minimum,
about 20-40 ms a hash here) that was most of the suite's time. These are the parameters of
argon2-cffi's ``profiles.CHEAPEST``, "only for testing". ``Settings`` takes them when built
directly (only ``Settings.from_env`` enforces the production minimum), and
``tests/service/test_settings.py`` pins the production cost of the default settings.
"""

from __future__ import annotations

from typing import Any

from wfa_keys.settings import Settings

__all__ = ["CHEAP_ARGON2", "cheap_settings"]

CHEAP_ARGON2: dict[str, int] = {
    "argon2_time_cost": 1,
    "argon2_memory_cost_kib": 8,
    "argon2_parallelism": 1,
}


def cheap_settings(**overrides: Any) -> Settings:
    """``Settings(**overrides)`` with argon2 at its cheapest, for tests only."""
    return Settings(**{**CHEAP_ARGON2, **overrides})
