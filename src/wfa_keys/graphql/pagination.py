"""Keyset pagination, newest first, over models with ``created_at`` and an integer ``id``.

The cursor is opaque to clients (base64 of the last row's creation time and ID): a page
is found by an indexed range query, not by an offset, so it stays cheap and stable while
rows are added.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

from wfa_keys.graphql.errors import BadUserInput

M = TypeVar("M", bound=Model)

MAX_PAGE_SIZE = 100
_CURSOR_PREFIX = "v1|"
_MAX_CURSOR_LENGTH = 200


@dataclass(frozen=True)
class Page(Generic[M]):
    """One page of rows with what the client needs to ask for the next one."""

    rows: list[M]
    has_next_page: bool
    end_cursor: str | None
    total_count: int


def encode_cursor(created_at: datetime, row_id: int) -> str:
    """The cursor that points just after a row."""
    raw = f"{_CURSOR_PREFIX}{created_at.isoformat()}|{row_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "after") -> tuple[datetime, int]:
    """The (created_at, id) a cursor points after; BAD_USER_INPUT when it is not ours."""
    error = BadUserInput(field, "The cursor is not valid: use a pageInfo.endCursor.")
    if not cursor or len(cursor) > _MAX_CURSOR_LENGTH:
        raise error
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, created, row_id = raw.split("|")
        if prefix + "|" != _CURSOR_PREFIX:
            raise ValueError(prefix)
        created_at = datetime.fromisoformat(created)
        pk = int(row_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise error from None
    if created_at.tzinfo is None or not 0 < pk < 2**63:
        raise error
    return created_at, pk


def check_page_size(first: int, field: str = "first") -> None:
    """Pages hold 1 to 100 rows."""
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise BadUserInput(field, f"{field} must be between 1 and {MAX_PAGE_SIZE}.")


async def newest_first(query: QuerySet[M], *, first: int, after: str | None) -> Page[M]:
    """The page of ``query`` of at most ``first`` rows, newest first, after ``after``."""
    check_page_size(first)
    position = decode_cursor(after) if after is not None else None
    total = await query.count()
    if position is not None:
        created_at, pk = position
        query = query.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=pk))
    rows = await query.order_by("-created_at", "-id").limit(first + 1)
    has_next = len(rows) > first
    rows = rows[:first]
    end = rows[-1] if rows else None
    cursor = encode_cursor(end.created_at, end.id) if end is not None else None  # type: ignore[attr-defined]
    return Page(rows=rows, has_next_page=has_next, end_cursor=cursor, total_count=total)
