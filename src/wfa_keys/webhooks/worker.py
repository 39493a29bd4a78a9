"""The delivery worker: claims due messages through the database and delivers them.

Every ``wfa-keys serve`` process runs one. Per endpoint only the oldest pending message (its
head) may be claimed, so an endpoint receives its events in the order they were created, one
at a time, even after being down for hours. A claim is a conditional update that moves the
message's lease forward and writes a random token (``claimed_by``): of several processes
only one changes the row, and only the holder of the token records the outcome. A process
killed while delivering loses nothing: its lease runs out and the message is claimed again
(the receiver may then see the same ``webhook-id`` twice; that is what the ID is for).

A failed attempt is retried with exponential backoff and full jitter (the first retry within
``retry_base`` seconds, 5 by default) until ``retry_window`` (24 hours) after the event was
created; then the message is ``failed`` and the next one is delivered. An endpoint whose
deliveries have failed without a success for ``disable_after`` (5 days) is disabled, with
a reason the organization's admins see and an audit event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.expressions import Q
from tortoise.functions import Min
from tortoise.transactions import in_transaction

from wfa_keys.audit import record_event
from wfa_keys.models import AuditAction, WebhookDelivery, WebhookEndpoint
from wfa_keys.models import WebhookMessage as Message
from wfa_keys.webhooks.sender import DEFAULT_TIMEOUT, Outcome, Sender

__all__ = ["Clock", "RetryPolicy", "WebhookWorker"]

logger = logging.getLogger("wfa_keys.webhooks")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again, and when to give up."""

    #: The largest first delay (seconds); each later one doubles, up to ``max_delay``.
    retry_base: float = 5.0
    max_delay: float = 3600.0
    #: A message still failing this long after its event is marked failed.
    retry_window: timedelta = timedelta(hours=24)
    #: An endpoint failing (no success) for this long is disabled.
    disable_after: timedelta = timedelta(days=5)

    def delay(self, attempts: int) -> float:
        """Seconds before the attempt after ``attempts`` failed ones (full jitter, at most
        the bound, at least half of it so retries do not bunch at zero)."""
        bound = min(self.retry_base * 2.0 ** (attempts - 1), self.max_delay)
        return bound * (0.5 + random.random() / 2)  # noqa: S311 -- jitter, not a secret


class WebhookWorker:
    """Delivers the outbox; :meth:`run_once` is one pass, :meth:`run` loops until cancelled."""

    def __init__(
        self,
        sender: Sender,
        *,
        policy: RetryPolicy | None = None,
        poll_interval: float = 1.0,
        clock: Clock = utc_now,
        concurrency: int = 8,
    ) -> None:
        self.sender = sender
        self.policy = policy or RetryPolicy()
        self.poll_interval = poll_interval
        self.clock = clock
        self.concurrency = concurrency
        #: A claim outlives the longest attempt by a wide margin.
        self.lease = timedelta(seconds=DEFAULT_TIMEOUT * 6 + sender.timeout)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for work now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled; a failed pass is logged and the next one tries again."""
        while True:
            try:
                done = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be down: try again next poll
                logger.warning("webhook delivery pass failed (%s)", type(exc).__name__)
                done = 0
            if done:
                continue  # an endpoint's next message may be due at once
            self._wake.clear()
            # asyncio.timeout, not wait_for, which can lose a cancellation on 3.11.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()

    async def run_once(self) -> int:
        """Claim and deliver each enabled endpoint's due head message; how many were tried."""
        now = self.clock()
        heads = (
            await Message.filter(status="pending", endpoint__enabled=True)
            .group_by("endpoint_id")
            .annotate(head=Min("id"))
            .values_list("head", flat=True)
        )
        claimed: list[tuple[Message, str]] = []
        for head in heads:
            token = secrets.token_hex(8)
            won = await (
                Message.filter(id=head, status="pending", next_attempt_at__lte=now)
                .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
                .update(lease_until=now + self.lease, claimed_by=token)
            )
            if won:
                message = await Message.get(id=head).select_related("endpoint")
                claimed.append((message, token))
        limit = asyncio.Semaphore(self.concurrency)

        async def deliver(message: Message, token: str) -> None:
            async with limit:
                await self._deliver(message, token)

        await asyncio.gather(*(deliver(m, t) for m, t in claimed))
        return len(claimed)

    async def _deliver(self, message: Message, token: str) -> None:
        endpoint = message.endpoint
        try:
            outcome = await self.sender.send(
                endpoint.url,
                endpoint.signing_secret,
                message.message_id,
                message.body.encode(),
                timestamp=int(self.clock().timestamp()),
            )
        except Exception as exc:  # a bug must not hold the lease: record a failed attempt
            logger.warning("webhook delivery failed unexpectedly (%s)", type(exc).__name__)
            outcome = Outcome(False, None, 0, "Internal error while sending.")
        await self._record(message, token, outcome)

    async def _record(self, message: Message, token: str, outcome: Outcome) -> None:
        now = self.clock()
        attempts = message.attempts + 1
        if outcome.delivered:
            status, next_at = "delivered", None
        elif now - message.created_at >= self.policy.retry_window:
            status, next_at = "failed", None
        else:
            status, next_at = "pending", now + timedelta(seconds=self.policy.delay(attempts))
        async with in_transaction():
            updated = await Message.filter(id=message.id, claimed_by=token).update(
                status=status,
                attempts=attempts,
                next_attempt_at=next_at or now,
                lease_until=None,
                claimed_by=None,
            )
            if not updated:
                return  # the lease ran out and another worker took it over
            await WebhookDelivery.create(
                endpoint_id=message.endpoint_id,
                message_id=message.id,
                event_type=message.event_type,
                status="delivered"
                if outcome.delivered
                else "failed"
                if next_at is None
                else "retrying",
                response_code=outcome.status_code,
                duration_ms=outcome.duration_ms,
                error=outcome.error,
                next_retry_at=next_at,
                created_at=now,
            )
            await self._endpoint_health(message.endpoint_id, outcome, now)

    async def _endpoint_health(self, endpoint_id: str, outcome: Outcome, now: datetime) -> None:
        if outcome.delivered:
            await WebhookEndpoint.filter(id=endpoint_id, failing_since__not_isnull=True).update(
                failing_since=None
            )
            return
        await WebhookEndpoint.filter(id=endpoint_id, failing_since__isnull=True).update(
            failing_since=now
        )
        cutoff = now - self.policy.disable_after
        reason = (
            f"Disabled on {now:%Y-%m-%d %H:%M} UTC: every delivery failed for "
            f"{self.policy.disable_after.days or self.policy.disable_after} days "
            f"(last: {outcome.error or 'no answer'})"
        )[:300]
        disabled = await WebhookEndpoint.filter(
            id=endpoint_id, enabled=True, failing_since__lte=cutoff
        ).update(enabled=False, disabled_reason=reason)
        if disabled:
            endpoint = await WebhookEndpoint.get(id=endpoint_id)
            await record_event(
                AuditAction.WEBHOOK_AUTO_DISABLED,
                organization_id=endpoint.organization_id,
                actor=None,
                client_ip=None,
                detail={"endpointId": str(endpoint_id), "reason": reason},
            )
            logger.warning("disabled webhook endpoint %s: failing for days", endpoint_id)
