"""Running the webhook tasks in a server process: the delivery worker and the reminders."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from wfa_keys.models import WebhookDelivery
from wfa_keys.models import WebhookMessage as Message
from wfa_keys.settings import Settings
from wfa_keys.webhooks.guard import AddressGuard
from wfa_keys.webhooks.reminders import send_expiry_reminders
from wfa_keys.webhooks.sender import Sender
from wfa_keys.webhooks.worker import RetryPolicy, WebhookWorker

__all__ = ["WebhookTasks", "prune_history", "start_webhooks"]

logger = logging.getLogger("wfa_keys.webhooks")


#: Delivered and failed messages, and delivery attempts, are kept this long.
KEEP_HISTORY = timedelta(days=30)


async def prune_history(now: datetime | None = None, keep: timedelta = KEEP_HISTORY) -> int:
    """Delete finished messages and attempts older than ``keep``; how many rows went."""
    cutoff = (now or datetime.now(UTC)) - keep
    attempts: int = await WebhookDelivery.filter(created_at__lt=cutoff).delete()
    messages: int = await Message.filter(
        status__in=["delivered", "failed"], created_at__lt=cutoff
    ).delete()
    return attempts + messages


async def remind_periodically(interval: float) -> None:
    """Write due expiry reminders every ``interval`` seconds (the first check at once), and
    prune the delivery history now and then."""
    rounds = 0
    while True:
        try:
            await send_expiry_reminders()
            if rounds % 12 == 0:
                await prune_history()
        except Exception as exc:  # the next round tries again
            logger.warning("could not check expiry reminders (%s)", type(exc).__name__)
        rounds += 1
        await asyncio.sleep(interval)


@dataclass
class WebhookTasks:
    """The running tasks; :meth:`stop` cancels them and closes the sender."""

    worker: WebhookWorker
    tasks: list[asyncio.Task[None]]

    async def stop(self) -> None:
        """Cancel the tasks and close the sender's connections."""
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.worker.sender.aclose()


def start_webhooks(settings: Settings) -> WebhookTasks:
    """Start this process's webhook worker and reminder check, as ``settings`` say."""
    guard = AddressGuard(allow_insecure=settings.webhooks_allow_insecure)
    worker = WebhookWorker(
        Sender(guard),
        policy=RetryPolicy(retry_base=settings.webhooks_retry_base_ms / 1000),
        poll_interval=settings.webhooks_poll_interval_ms / 1000,
    )
    tasks = [
        asyncio.create_task(worker.run(), name="wfa-keys webhook worker"),
        asyncio.create_task(
            remind_periodically(settings.webhooks_reminder_interval),
            name="wfa-keys expiry reminders",
        ),
    ]
    return WebhookTasks(worker, tasks)
