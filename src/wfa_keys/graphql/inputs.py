"""Checking what clients send, before anything touches the database.

Each check raises BAD_USER_INPUT naming the offending field, so a form can show the
message next to it.
"""

from __future__ import annotations

import unicodedata

from wfa_auth import is_valid_key_id
from wfa_keys.graphql.errors import BadUserInput

MAX_NAME_LENGTH = 100
MAX_LIFETIME_DAYS = 3650
MAX_SEARCH_LENGTH = 100
MAX_EMAIL_LENGTH = 254


def key_id(value: str, field: str = "id") -> str:
    """A Key ID in the ``wfak_`` format."""
    if not is_valid_key_id(value):
        raise BadUserInput(field, "This is not a Key ID: Key IDs look like wfak_ and 20 letters.")
    return value


def key_name(value: str, field: str = "input.name") -> str:
    """A key name: 1 to 100 characters after trimming, no control characters."""
    name = value.strip()
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise BadUserInput(field, f"The name must have 1 to {MAX_NAME_LENGTH} characters.")
    if _has_control_characters(name):
        raise BadUserInput(field, "The name cannot contain control characters.")
    return name


def _has_control_characters(text: str) -> bool:
    # NUL and lone surrogates cannot even be stored in PostgreSQL text columns.
    return any(unicodedata.category(char) in {"Cc", "Cf", "Cs"} for char in text)


def login_email(value: str) -> str | None:
    """The email to look up at sign-in, or None when it cannot name any user."""
    if len(value) > MAX_EMAIL_LENGTH or _has_control_characters(value):
        return None
    return value


def lifetime_days(value: int | None, field: str = "input.lifetimeDays") -> int | None:
    """None (never expires) or 1 to 3650 days."""
    if value is not None and not 1 <= value <= MAX_LIFETIME_DAYS:
        raise BadUserInput(
            field, f"The lifetime must be between 1 and {MAX_LIFETIME_DAYS} days, or null."
        )
    return value


def search_text(value: str | None, field: str = "search") -> str | None:
    """The search text, trimmed; None when empty."""
    if value is None:
        return None
    text = value.strip()
    if len(text) > MAX_SEARCH_LENGTH:
        raise BadUserInput(field, f"Search for at most {MAX_SEARCH_LENGTH} characters.")
    if _has_control_characters(text):
        raise BadUserInput(field, "The search cannot contain control characters.")
    return text or None
