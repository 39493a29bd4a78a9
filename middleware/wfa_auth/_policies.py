"""A key's rate limit and quota as counting policies: buckets, slots, headers.

A rate limit of ``requests`` per ``per_seconds`` is counted in slots of a tenth of the
window; a call is allowed while the slots that overlap the last ``per_seconds`` seconds
(eleven of them, the oldest counted whole) hold fewer than ``requests`` units. Counting the
oldest slot whole errs on the safe side: never more than ``requests`` calls in any window
of ``per_seconds`` seconds. A quota counts one slot per UTC day or month.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from wfa_auth import _errors as errors
from wfa_auth._errors import Refusal
from wfa_auth.base import KeyRecord, Quota, RateLimit

#: Slots per rate-limit window; the window spans one more (see the module's docstring).
SLOTS_PER_WINDOW = 10
_DAY = 86400


def _month_bounds(slot: int) -> tuple[float, float]:
    year, month = divmod(slot, 12)
    start = datetime(year, month + 1, 1, tzinfo=UTC)
    end = datetime(year + (month + 1) // 12, (month + 1) % 12 + 1, 1, tzinfo=UTC)
    return start.timestamp(), end.timestamp()


@dataclass(frozen=True, slots=True)
class Policy:
    """One counted limit of one key (its rate limit or its quota)."""

    #: ``rate`` or ``quota``: the policy's name in the ``RateLimit`` headers.
    name: str
    bucket: str
    limit: int
    #: The slots a window spans (11 for a rate limit, 1 for a quota).
    span: int
    #: Seconds per slot of a rate limit; 0 for a quota (calendar slots).
    slot_seconds: float
    #: ``day`` or ``month`` for a quota.
    period: str
    #: Units taken from the store at a time: a fraction of the limit, so that a few
    #: processes holding leases leave little of it unused.
    chunk: int
    refusal: Refusal

    def slot_at(self, now: float) -> tuple[int, float, float]:
        """The slot that holds wall time ``now``, with its start and end (wall seconds)."""
        if self.slot_seconds:
            slot = int(now // self.slot_seconds)
            return slot, slot * self.slot_seconds, (slot + 1) * self.slot_seconds
        if self.period == "day":
            slot = int(now // _DAY)
            return slot, float(slot * _DAY), float((slot + 1) * _DAY)
        moment = datetime.fromtimestamp(now, UTC)
        slot = moment.year * 12 + moment.month - 1
        start, end = _month_bounds(slot)
        return slot, start, end

    def frees_at(self, oldest: int, slot_end: float) -> float:
        """When (wall seconds) a full window first has room again: when its ``oldest``
        counted slot leaves it (a rate limit), or when the period ends (a quota)."""
        if self.slot_seconds:
            return (oldest + self.span) * self.slot_seconds
        return slot_end

    def window_seconds(self, slot_start: float, slot_end: float) -> int:
        """The ``w`` of ``RateLimit-Policy``: the window, or the period's length."""
        if self.slot_seconds:
            return round(self.slot_seconds * SLOTS_PER_WINDOW)
        return round(slot_end - slot_start)


def rate_policy(key_id: str, rate: RateLimit) -> Policy:
    """The counting policy of a key's rate limit (its bucket changes with the window)."""
    return Policy(
        name="rate",
        bucket=f"{key_id}:r{rate.per_seconds}",
        limit=rate.requests,
        span=SLOTS_PER_WINDOW + 1,
        slot_seconds=rate.per_seconds / SLOTS_PER_WINDOW,
        period="",
        chunk=max(1, rate.requests // 20),
        refusal=errors.RATE_LIMITED,
    )


def quota_policy(key_id: str, quota: Quota) -> Policy:
    """The counting policy of a key's quota."""
    if quota.period not in ("day", "month"):
        raise ValueError("a quota's period is day or month")
    return Policy(
        name="quota",
        bucket=f"{key_id}:q{quota.period[0]}",
        limit=quota.requests,
        span=1,
        slot_seconds=0.0,
        period=quota.period,
        # Small: units leased and unused are given back once idle, but until then they
        # count as used (1 % of the quota at most over two processes).
        chunk=max(1, quota.requests // 200),
        refusal=errors.QUOTA_EXCEEDED,
    )


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """The policies of one key, built once per checked record."""

    key_id: str
    organization_id: str
    policies: tuple[Policy, ...]


def limits_of(record: KeyRecord) -> KeyLimits | None:
    """The key's policies, or None when it has neither a rate limit nor a quota."""
    rate: RateLimit | None = getattr(record, "rate_limit", None)
    quota: Quota | None = getattr(record, "quota", None)
    if rate is None and quota is None:
        return None
    policies = []
    if rate is not None:
        policies.append(rate_policy(record.key_id, rate))
    if quota is not None:
        policies.append(quota_policy(record.key_id, quota))
    return KeyLimits(record.key_id, record.organization_id, tuple(policies))


def header_values(states: list[tuple[Policy, int, float, int]]) -> tuple[str, str]:
    """``RateLimit-Policy`` and ``RateLimit`` for (policy, remaining, reset seconds, window)
    tuples, the tightest (fewest remaining, then soonest reset) first, as in the IETF
    httpapi draft (draft-ietf-httpapi-ratelimit-headers-11): a list of quoted policy names
    with ``q`` (quota) and ``w`` (window) in one, ``r`` (remaining) and ``t`` (seconds
    until reset) in the other."""
    if len(states) > 1:
        states = sorted(states, key=lambda state: (state[1], state[2]))
    policy_parts = []
    state_parts = []
    for policy, remaining, reset, window in states:
        policy_parts.append(f'"{policy.name}";q={policy.limit};w={window}')
        state_parts.append(f'"{policy.name}";r={max(0, remaining)};t={max(0, math.ceil(reset))}')
    return ", ".join(policy_parts), ", ".join(state_parts)


def quota_window(key_id: str, quota: Quota, now: float) -> tuple[str, int, float]:
    """The counter bucket and slot of the quota's period at wall time ``now``, and when
    (wall seconds) that period ends: ``CounterStore.count(bucket, slot)`` is what the key
    has used of it (units leased by a process count until given back)."""
    policy = quota_policy(key_id, quota)
    slot, _, ends = policy.slot_at(now)
    return policy.bucket, slot, ends
