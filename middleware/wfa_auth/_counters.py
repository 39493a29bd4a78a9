"""The in-process :class:`~wfa_auth.base.CounterStore`: rate limits and quotas counted in
this process only."""

from __future__ import annotations

from collections.abc import Mapping

from wfa_auth.base import Taken


class MemoryCounterStore:
    """A :class:`~wfa_auth.base.CounterStore` in a dict: exact for one process; several
    processes each count on their own (use a shared store for a cluster)."""

    def __init__(self) -> None:
        self._buckets: dict[str, dict[int, int]] = {}

    async def take(self, bucket: str, slot: int, amount: int, *, limit: int, span: int) -> Taken:
        """Grant up to ``amount`` units in ``slot`` within ``limit`` over ``span`` slots."""
        counts = self._buckets.setdefault(bucket, {})
        first = slot - span + 1
        for old in [s for s in counts if s < first]:
            del counts[old]
        total = sum(count for s, count in counts.items() if s <= slot)
        granted = max(0, min(amount, limit - total))
        if granted:
            counts[slot] = counts.get(slot, 0) + granted
        live = [s for s, count in counts.items() if count > 0 and s <= slot]
        return Taken(granted, total + granted, min(live) if live else slot)

    async def give_back(self, units: Mapping[tuple[str, int], int]) -> None:
        """Uncount units taken but not used; never below zero."""
        for (bucket, slot), amount in units.items():
            counts = self._buckets.get(bucket)
            if counts is not None and slot in counts:
                counts[slot] = max(0, counts[slot] - amount)

    async def count(self, bucket: str, slot: int) -> int:
        """The units counted in one slot of a bucket."""
        return self._buckets.get(bucket, {}).get(slot, 0)
