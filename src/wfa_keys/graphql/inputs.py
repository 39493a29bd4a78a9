"""Checking GraphQL arguments with the service layer's rules, under GraphQL field names.

The rules and limits live in :mod:`wfa_keys.validation`; these wrappers only name the
offending argument as a GraphQL client spells it (``input.name``, ``keyId``) and raise
BAD_USER_INPUT, so a form can show the message next to the field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from wfa_keys import validation
from wfa_keys.errors import InvalidInput
from wfa_keys.graphql.errors import BadUserInput

T = TypeVar("T")


def _checked(check: Callable[[T, str], T], value: T, field: str) -> T:
    try:
        return check(value, field)
    except InvalidInput as exc:
        raise BadUserInput(exc.field, exc.message) from None


def key_id(value: str, field: str = "id") -> str:
    """A Key ID in the ``wfak_`` format."""
    return _checked(validation.key_id, value, field)


def key_name(value: str, field: str = "input.name") -> str:
    """A key name (see :func:`wfa_keys.validation.key_name`)."""
    return _checked(validation.key_name, value, field)


def lifetime_days(value: int | None, field: str = "input.lifetimeDays") -> int | None:
    """None (never expires) or a number of days within the limit."""
    return _checked(validation.lifetime_days, value, field)


def search_text(value: str | None, field: str = "search") -> str | None:
    """The search text, trimmed; None when empty."""
    return _checked(validation.search_text, value, field)
