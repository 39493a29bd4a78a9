"""Checking what callers send, before anything touches the database.

Every face (GraphQL, the console, the command line) goes through these checks, with the
limits of :mod:`wfa_keys.limits`. Each raises :class:`~wfa_keys.errors.InvalidInput` naming
the domain field (``name``, ``lifetime_days``, ``key_id``, ``search``, ``password``,
``scopes``, ``allowed_cidrs``, ``grace_period_minutes``, ``key_inactivity_days``,
``expiring_within_days``); a face renames the field to its own spelling.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from wfa_auth import Quota, RateLimit, is_valid_key_id
from wfa_keys import limits
from wfa_keys.errors import InvalidInput
from wfa_keys.scopes import ScopeError, normalize_cidrs, normalize_scopes

__all__ = [
    "allowed_cidrs",
    "expiring_within_days",
    "grace_period_minutes",
    "has_control_characters",
    "key_id",
    "key_inactivity_days",
    "key_name",
    "lifetime_days",
    "login_email",
    "new_password",
    "quota",
    "rate_limit",
    "scopes",
    "search_text",
]


def has_control_characters(text: str) -> bool:
    """True for text with control, format or lone-surrogate characters.

    NUL and lone surrogates cannot even be stored in PostgreSQL text columns, and a lone
    surrogate cannot be encoded to UTF-8 (for hashing or for a JSON answer).
    """
    return any(unicodedata.category(char) in {"Cc", "Cf", "Cs"} for char in text)


def key_id(value: str, field: str = "key_id") -> str:
    """A Key ID in the ``wfak_`` format."""
    if has_control_characters(value) or not is_valid_key_id(value):
        raise InvalidInput(field, "This is not a Key ID: Key IDs look like wfak_ and 20 letters.")
    return value


def key_name(value: str, field: str = "name") -> str:
    """A key name: 1 to ``MAX_NAME_LENGTH`` characters after trimming, no control characters."""
    name = value.strip()
    if not 1 <= len(name) <= limits.MAX_NAME_LENGTH:
        raise InvalidInput(field, f"The name must have 1 to {limits.MAX_NAME_LENGTH} characters.")
    if has_control_characters(name):
        raise InvalidInput(field, "The name cannot contain control characters.")
    return name


def lifetime_days(value: int | None, field: str = "lifetime_days") -> int | None:
    """None (never expires) or 1 to ``MAX_LIFETIME_DAYS`` days."""
    if value is not None and not 1 <= value <= limits.MAX_LIFETIME_DAYS:
        raise InvalidInput(
            field, f"The lifetime must be between 1 and {limits.MAX_LIFETIME_DAYS} days, or null."
        )
    return value


def scopes(values: Iterable[str] | None, field: str = "scopes") -> list[str]:
    """The scopes to store: the default ones (all but keys:verify) for None, else known names."""
    try:
        return normalize_scopes(values)
    except ScopeError as exc:
        raise InvalidInput(field, str(exc)) from None


def allowed_cidrs(values: Iterable[str] | None, field: str = "allowed_cidrs") -> list[str]:
    """The networks to store in canonical form; None or empty means anywhere."""
    try:
        return normalize_cidrs(values)
    except ScopeError as exc:
        raise InvalidInput(field, str(exc)) from None


def grace_period_minutes(value: int, field: str = "grace_period_minutes") -> int:
    """0 (the old secret stops at once) to ``MAX_GRACE_PERIOD_MINUTES`` minutes."""
    if not 0 <= value <= limits.MAX_GRACE_PERIOD_MINUTES:
        raise InvalidInput(
            field,
            f"The grace period must be between 0 and {limits.MAX_GRACE_PERIOD_MINUTES} minutes.",
        )
    return value


def key_inactivity_days(value: int | None, field: str = "key_inactivity_days") -> int | None:
    """None (never disable unused keys) or 1 to ``MAX_INACTIVITY_DAYS`` days."""
    if value is not None and not 1 <= value <= limits.MAX_INACTIVITY_DAYS:
        raise InvalidInput(
            field,
            f"The inactivity limit must be between 1 and {limits.MAX_INACTIVITY_DAYS} days, "
            "or null.",
        )
    return value


def expiring_within_days(value: int | None, field: str = "expiring_within_days") -> int | None:
    """None (no filter) or 1 to ``MAX_LIFETIME_DAYS`` days."""
    if value is not None and not 1 <= value <= limits.MAX_LIFETIME_DAYS:
        raise InvalidInput(
            field, f"Ask for keys expiring within 1 to {limits.MAX_LIFETIME_DAYS} days."
        )
    return value


def search_text(value: str | None, field: str = "search") -> str | None:
    """The search text, trimmed; None when empty."""
    if value is None:
        return None
    text = value.strip()
    if len(text) > limits.MAX_SEARCH_LENGTH:
        raise InvalidInput(field, f"Search for at most {limits.MAX_SEARCH_LENGTH} characters.")
    if has_control_characters(text):
        raise InvalidInput(field, "The search cannot contain control characters.")
    return text or None


def login_email(value: str) -> str | None:
    """The email to look up at sign-in, or None when it cannot name any user."""
    if len(value) > limits.MAX_EMAIL_LENGTH or has_control_characters(value):
        return None
    return value


def new_password(value: str, field: str = "password") -> str:
    """A password to set: at least ``MIN_PASSWORD_LENGTH`` characters, encodable as UTF-8."""
    if len(value) < limits.MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            field, f"the password must have at least {limits.MIN_PASSWORD_LENGTH} characters"
        )
    if any(unicodedata.category(char) == "Cs" for char in value):
        raise InvalidInput(field, "the password cannot contain unpaired surrogate characters")
    return value


# Usage control (rate limit, quota): one block of its own.


def rate_limit(value: RateLimit | None, field: str = "rate_limit") -> RateLimit | None:
    """None (no limit) or 1 to 1,000,000 requests per 1 to 86,400 seconds."""
    if value is None:
        return None
    if not 1 <= value.requests <= limits.MAX_RATE_LIMIT_REQUESTS:
        raise InvalidInput(
            f"{field}.requests",
            f"A rate limit allows 1 to {limits.MAX_RATE_LIMIT_REQUESTS:,} requests.",
        )
    if not 1 <= value.per_seconds <= limits.MAX_RATE_LIMIT_SECONDS:
        raise InvalidInput(
            f"{field}.per_seconds",
            f"A rate limit's window is 1 to {limits.MAX_RATE_LIMIT_SECONDS:,} seconds.",
        )
    return value


def quota(value: Quota | None, field: str = "quota") -> Quota | None:
    """None (no quota) or 1 to 10^9 requests per UTC ``day`` or ``month``."""
    if value is None:
        return None
    if not 1 <= value.requests <= limits.MAX_QUOTA_REQUESTS:
        raise InvalidInput(
            f"{field}.requests", f"A quota allows 1 to {limits.MAX_QUOTA_REQUESTS:,} requests."
        )
    if value.period not in ("day", "month"):
        raise InvalidInput(f"{field}.period", "A quota's period is a day or a month.")
    return value
