"""Enforcing per-key rate limits and quotas with a local counter on the warm path.

Each process leases units from the shared :class:`~wfa_auth.base.CounterStore` a chunk at
a time (a twentieth of a rate limit, a two-hundredth of a quota) and spends them locally:
a warm request costs a dict lookup and a decrement. A lease running low is topped up in
the background; only a request that finds none left (the first of a slot, or one that
outran the top-up) waits for the store. Units a process leased but did not use are given
back when their slot ends (before the process takes units of the next one), when the key
has been idle ``idle`` seconds, and at shutdown.

Error bound: the store grants units atomically within the limit, and a unit is spent only in
the slot it was granted for, so the calls accepted across every process never exceed the
limit (no overshoot). Units leased and not yet spent or given back are the only error, and
it is on the safe side: under one and a half ``chunk`` per process and policy are held back
(a quota's ``used`` counts them until they are given back, a second after the key idles).

When the store fails, leased units are still spent; a request that needs more is answered
503 ``service_unavailable`` (fail closed): a limited key is never let through unlimited.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
from anyio.abc import TaskGroup

from wfa_auth import _errors as errors
from wfa_auth._errors import AuthenticationRefused, Refusal
from wfa_auth._policies import KeyLimits, Policy, header_values
from wfa_auth.base import CounterStore

logger = logging.getLogger("wfa_auth")

#: Response headers for an admitted request, as ASGI raw headers.
Headers = list[tuple[bytes, bytes]]
# A request that keeps finding its lease spent by concurrent ones gives up after this.
_MAX_TRIES = 20
_MAX_PENDING_RETURNS = 100_000
_ceil = math.ceil


class _Lease:
    """Units of one policy's current slot that this process may spend, and the slot's
    ``RateLimit-Policy`` item and ``RateLimit`` format, built once per slot."""

    __slots__ = (
        "allowance",
        "base",
        "ends",
        "frees",
        "full_until",
        "item",
        "limit",
        "low",
        "oldest",
        "pair",
        "pair_from",
        "pair_header",
        "pair_state",
        "pair_template",
        "pair_until",
        "policy",
        "refill",
        "slot",
        "starts",
        "state",
        "state_b",
        "topping_up",
        "total",
        "used_at",
    )

    def __init__(self, policy: Policy, slot: int, starts: float, ends: float, now: float) -> None:
        self.slot = slot
        self.starts = starts
        self.ends = ends
        self.allowance = 0
        self.total = 0
        self.oldest = slot
        #: When (wall seconds) the window first has room again (the ``t`` of ``RateLimit``).
        self.frees = policy.frees_at(slot, ends)
        #: Until when (wall seconds) the store said the window was full.
        self.full_until = 0.0
        self.refill: anyio.Event | None = None
        #: A background top-up has been started and has not ended yet.
        self.topping_up = False
        self.used_at = now
        self.adopt(policy)

    def adopt(self, policy: Policy) -> None:
        """Count by ``policy`` from now on: the key's record was read again, and its limit
        may have changed (the bucket names the window, not the limit)."""
        self.policy = policy
        self.limit = policy.limit
        #: What remains of the limit less the allowance (kept with ``limit`` and ``total``).
        self.base = policy.limit - self.total
        #: Below this allowance (under half a chunk) the lease is topped up.
        self.low = (policy.chunk + 1) // 2
        name = policy.name.encode()
        window = policy.window_seconds(self.starts, self.ends)
        self.item = b'"%s";q=%d;w=%d' % (name, policy.limit, window)
        #: ``RateLimit``'s item, formatted with (remaining, seconds until ``frees``).
        self.state = b'"' + name + b'";r=%d;t=%d'
        #: The same taking the remaining count as bytes (``%b``: ``b"%d"`` for a template).
        self.state_b = b'"' + name + b'";r=%b;t=%d'
        #: The item of the lease last announced after this one (the very object: a new
        #: one when that lease adopts another policy), and both items joined.
        self.pair: bytes | None = None
        self.pair_state = b""
        #: The ``RateLimit-Policy`` header of this lease and the last one after it.
        self.pair_header = (b"ratelimit-policy", b"")
        #: ``pair_state`` with the two reset times filled in (formatted with the two
        #: remaining counts), and the wall times from and until which those reset times
        #: hold: they change at most once a second, the remaining counts every call.
        self.pair_template = b""
        self.pair_from = self.pair_until = 0.0

    def limit_left(self, policy: Policy) -> int:
        """What remains of the policy's limit, as this process last learned it."""
        return policy.limit - self.total + self.allowance

    def pair_with(self, second: _Lease) -> None:
        """Announce this lease first and ``second`` after it from now on: both items joined
        once (formatted with the reset times by :meth:`fill_reset_times`)."""
        self.pair = second.item
        self.pair_header = (b"ratelimit-policy", self.item + b", " + second.item)
        self.pair_state = self.state_b + b", " + second.state_b
        self.pair_until = 0.0

    def fill_reset_times(self, second: _Lease, now: float) -> None:
        """Fill ``pair_template`` with the reset times of this lease and ``second`` at
        ``now``, and note from and until when they hold (a lease's ``frees`` changes only
        with its ``item``, which makes the warm path pair the two again)."""
        reset, later = _ceil(self.frees - now), _ceil(second.frees - now)
        # Keeping the remaining counts' slots (%d).
        self.pair_template = self.pair_state % (
            b"%d",
            reset if reset > 0 else 0,
            b"%d",
            later if later > 0 else 0,
        )
        # ceil(frees - now) is t while frees - t <= now < frees - t + 1, and at most 0
        # (shown as 0) from frees on.
        if reset > 0:
            starts, ends = self.frees - reset, self.frees - reset + 1
        else:
            starts, ends = self.frees, math.inf
        if later > 0:
            starts = max(starts, second.frees - later)
            ends = min(ends, second.frees - later + 1)
        else:
            starts = max(starts, second.frees)
        self.pair_from, self.pair_until = starts, ends


class Limiter:
    """Admits or refuses the requests of keys with a rate limit or a quota.

    :meth:`admit` is the warm path (no await); when it returns None, :meth:`acquire`
    talks to the store. :meth:`run` keeps leases topped up and gives back unused units.
    """

    def __init__(
        self,
        store: CounterStore,
        *,
        unavailable: Refusal = errors.SERVICE_UNAVAILABLE,
        clock: Callable[[], float] = time.time,
        idle: float = 1.0,
        interval: float = 1.0,
    ) -> None:
        self.store = store
        self._unavailable = unavailable
        self._clock = clock
        self.idle = idle
        self.interval = interval
        self._leases: dict[str, _Lease] = {}
        self._returns: dict[tuple[str, int], int] = {}
        self._tasks: TaskGroup | None = None
        self.next_sync = clock() + interval
        self._lock = anyio.Lock()

    def admit(self, limits: KeyLimits) -> Headers | Refusal | None:
        """The headers of an admitted request, the refusal of a refused one, or None when
        the store must be asked (:meth:`acquire`)."""
        now = self._clock()
        leases = self._leases
        policies = limits.policies
        if len(policies) == 2:
            # The usual case (a rate limit and a quota) with both leases live, spent here
            # with both headers made (this is every limited call).
            one, two = policies
            try:
                # Subscripts, not get(): no method call (a missing lease is the rare case).
                first = leases[one.bucket]
                second = leases[two.bucket]
            except KeyError:
                pass  # one not taken yet: see below
            else:
                allowance, later_allowance = first.allowance, second.allowance
                if allowance > 0 and later_allowance > 0 and now < first.ends and now < second.ends:
                    if first.policy is not one:
                        first.adopt(one)
                    if second.policy is not two:
                        second.adopt(two)
                    allowance -= 1
                    later_allowance -= 1
                    first.allowance = allowance
                    second.allowance = later_allowance
                    first.used_at = second.used_at = now
                    if allowance < first.low:
                        self._start_top_up(first, now)
                    if later_allowance < second.low:
                        self._start_top_up(second, now)
                    # The tightest first, as header_values orders them: fewest remaining, then
                    # the soonest reset (the same now for both: the sooner ``frees``); ties keep
                    # the order.
                    left = first.base + allowance
                    right = second.base + later_allowance
                    if right < left or (right == left and second.frees < first.frees):
                        first, second, left, right = second, first, right, left
                    if first.pair is not second.item:
                        first.pair_with(second)
                    # Two comparisons rather than a chained one: each specialized for floats.
                    if now >= first.pair_until or now < first.pair_from:
                        first.fill_reset_times(second, now)
                    state = first.pair_template % (
                        left if left > 0 else 0,
                        right if right > 0 else 0,
                    )
                    return [first.pair_header, (b"ratelimit", state)]
        spent: list[_Lease] = []
        for policy in limits.policies:
            lease = leases.get(policy.bucket)
            if lease is None:
                return None
            if lease.allowance > 0 and now < lease.ends:
                if lease.policy is not policy:
                    lease.adopt(policy)
                spent.append(lease)
                continue
            if now < lease.full_until:
                return self._refusal(limits, policy, lease, now)
            return None
        return self._spend(spent, now)

    async def acquire(self, limits: KeyLimits) -> Headers | Refusal:
        """Like :meth:`admit`, taking units from the store where a lease has run out;
        raises AuthenticationRefused (503) when the store fails."""
        for _ in range(_MAX_TRIES):
            now = self._clock()
            for policy in limits.policies:
                lease = self._leases.get(policy.bucket)
                if lease is not None and lease.allowance > 0 and now < lease.ends:
                    continue
                if lease is not None and lease.refill is not None:
                    await lease.refill.wait()
                    break
                if lease is not None and now < lease.full_until:
                    return self._refusal(limits, policy, lease, now)
                await self._take(policy, now, strict=True)
                break
            else:
                # Every lease is live: spent as on the warm path (None if one has just ended).
                admitted = self.admit(limits)
                if admitted is not None:
                    return admitted
        raise AuthenticationRefused(self._unavailable)

    def _spend(self, leases: list[_Lease], now: float) -> Headers:
        """Spend a unit of each lease; the ``RateLimit-Policy`` and ``RateLimit`` headers."""
        for lease in leases:
            lease.allowance -= 1
            lease.used_at = now
            if lease.allowance < lease.low:
                self._start_top_up(lease, now)
        if len(leases) == 1:
            lease = leases[0]
            left = lease.base + lease.allowance
            reset = _ceil(lease.frees - now)
            state = lease.state % (left if left > 0 else 0, reset if reset > 0 else 0)
            return [(b"ratelimit-policy", lease.item), (b"ratelimit", state)]
        states = [
            self._state(lease.policy, lease, now, lease.limit_left(lease.policy))
            for lease in leases
        ]
        policy_header, state_header = header_values(states)
        return [
            (b"ratelimit-policy", policy_header.encode()),
            (b"ratelimit", state_header.encode()),
        ]

    def _start_top_up(self, lease: _Lease, now: float) -> None:
        """Top ``lease`` up in the background unless it is being topped up already."""
        tasks = self._tasks
        if lease.refill is None and not lease.topping_up and tasks is not None:
            # Marked at once: the task may not run before the next calls are spent.
            lease.topping_up = True
            tasks.start_soon(self._top_up, lease, now)

    @staticmethod
    def _state(
        policy: Policy, lease: _Lease, now: float, remaining: int
    ) -> tuple[Policy, int, float, int]:
        return policy, remaining, lease.frees - now, policy.window_seconds(lease.starts, lease.ends)

    def _refusal(self, limits: KeyLimits, refused: Policy, lease: _Lease, now: float) -> Refusal:
        states = []
        for policy in limits.policies:
            other = self._leases.get(policy.bucket)
            if policy is refused or other is None:
                continue
            states.append(self._state(policy, other, now, other.limit_left(policy)))
        wait = lease.full_until - now
        window = refused.window_seconds(lease.starts, lease.ends)
        states.append((refused, 0, wait, window))
        policy_header, state_header = header_values(states)
        return refused.refusal.with_headers(
            Retry_After=str(max(1, math.ceil(wait))),
            RateLimit_Policy=policy_header,
            RateLimit=state_header,
        )

    async def _top_up(self, lease: _Lease, now: float) -> None:
        """Lease more units of ``lease``'s policy in the background, unless a request has
        already replaced it with a lease of the next slot."""
        try:
            if self._leases.get(lease.policy.bucket) is lease:
                await self._take(lease.policy, now, strict=False)
        finally:
            lease.topping_up = False

    async def _take(self, policy: Policy, now: float, strict: bool) -> None:
        """Lease a chunk of the current slot; ``strict``: a store failure refuses (503),
        otherwise (a background top-up) it is only logged."""
        slot, starts, ends = policy.slot_at(now)
        bucket = policy.bucket
        lease = self._leases.get(bucket)
        if lease is not None and lease.refill is not None:
            return
        # Units of an ended slot's lease are given back before the new slot's are taken:
        # until then they count as used, and the window could fill without them.
        stale = stale_slot = 0
        if lease is None or lease.slot != slot:
            if lease is not None and lease.allowance > 0:
                stale, stale_slot = lease.allowance, lease.slot
            lease = _Lease(policy, slot, starts, ends, now)
            self._leases[bucket] = lease
        event = lease.refill = anyio.Event()
        try:
            if stale:
                try:
                    await self.store.give_back({(bucket, stale_slot): stale})
                except Exception:
                    self._give_back_later(bucket, stale_slot, stale)
                    raise
            taken = await self.store.take(
                bucket, slot, policy.chunk, limit=policy.limit, span=policy.span
            )
        except Exception as exc:
            logger.error("counter store unavailable (%s)", type(exc).__name__)
            if strict:
                raise AuthenticationRefused(self._unavailable) from None
            return
        finally:
            lease.refill = None
            event.set()
        if self._leases.get(bucket) is not lease:
            # Dropped meanwhile (idle): nobody will spend these units.
            self._give_back_later(bucket, slot, taken.granted)
            return
        lease.allowance += taken.granted
        lease.total = taken.total
        lease.base = lease.limit - taken.total
        lease.oldest = taken.oldest
        frees = policy.frees_at(taken.oldest, ends)
        if frees != lease.frees:
            lease.frees = frees
            # A new item: the RateLimit templates that hold this reset time start again.
            lease.adopt(lease.policy)
        if taken.granted == 0:
            lease.full_until = policy.frees_at(taken.oldest, ends)

    def _give_back_later(self, bucket: str, slot: int, units: int) -> None:
        if units > 0 and len(self._returns) < _MAX_PENDING_RETURNS:
            self._returns[(bucket, slot)] = self._returns.get((bucket, slot), 0) + units

    def sync_is_due(self) -> bool:
        """True when unused units are due to be given back and no :meth:`run` task will."""
        return self._tasks is None and self.next_sync <= self._clock() and not self._lock.locked()

    async def sync(self, *, everything: bool = False) -> None:
        """Give back the units of ended slots and idle keys (``everything``: all units)."""
        async with self._lock:
            now = self._clock()
            self.next_sync = now + self.interval
            for bucket, lease in list(self._leases.items()):
                if lease.refill is not None:
                    continue
                done = everything or now >= lease.ends
                if done or now - lease.used_at >= self.idle:
                    self._give_back_later(bucket, lease.slot, lease.allowance)
                    lease.allowance = 0
                    if now >= lease.full_until:
                        del self._leases[bucket]
            if not self._returns:
                return
            returns, self._returns = self._returns, {}
            try:
                await self.store.give_back(returns)
            except Exception as exc:
                # Kept and given back next time; meanwhile they count as used (safe side).
                logger.warning("could not give back leased units (%s)", type(exc).__name__)
                for item, units in returns.items():
                    self._returns[item] = self._returns.get(item, 0) + units

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """While entered, top-ups run in the background and unused units are given back
        every ``interval`` seconds; at exit, every unit still leased is given back."""
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            tasks.start_soon(self._timer)
            try:
                yield
            finally:
                self._tasks = None
                tasks.cancel_scope.cancel()
        await self.sync(everything=True)

    async def _timer(self) -> None:
        while True:
            await anyio.sleep(self.interval)
            await self.sync()
