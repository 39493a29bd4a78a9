"""The change feed's position: what a stream's ``id`` promises (every change up to it sent)."""

from __future__ import annotations

from wfa_keys.stream import GAP_SECONDS, ChangeFeed


def test_the_position_moves_over_contiguous_changes_only() -> None:
    feed = ChangeFeed()
    feed.position = 10
    feed._seen = {11, 12, 14}
    feed._advance(0.0)
    # 13 may be a transaction that took its ID earlier and commits later: not passed yet.
    assert feed.position == 12
    feed._seen.add(13)
    feed._advance(1.0)
    assert feed.position == 14


def test_a_gap_is_passed_once_it_has_lasted_too_long() -> None:
    feed = ChangeFeed()
    feed.position = 10
    feed._seen = {12}
    feed._advance(100.0)
    assert feed.position == 10
    feed._advance(100.0 + GAP_SECONDS / 2)
    assert feed.position == 10
    feed._advance(100.0 + GAP_SECONDS + 1)
    assert feed.position == 12


def test_from_an_empty_table_the_first_change_seen_sets_the_position() -> None:
    # A PostgreSQL sequence goes on counting after deletes: IDs need not start at 1.
    feed = ChangeFeed()
    feed._from_empty = True
    feed._seen = {41, 42}
    feed._advance(0.0)
    assert feed.position == 42
