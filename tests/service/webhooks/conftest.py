"""Fixtures for the webhook tests: an admin actor, managers, a receiver process on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.conftest import UserFactory
from support.webhook_receiver import Receiver
from wfa_auth import Argon2Verifier
from wfa_keys.keys import Actor, KeyManager
from wfa_keys.webhooks.endpoints import WebhookManager
from wfa_keys.webhooks.guard import AddressGuard


@pytest.fixture
async def actor(make_user: UserFactory) -> Actor:
    """An admin of Acme, as the service layer sees them."""
    user = await make_user("admin@acme.example")
    await user.fetch_related("organization")
    return Actor(user, client_ip="127.0.0.1")


@pytest.fixture
def key_manager() -> KeyManager:
    """The key lifecycle with the cheapest argon2."""
    return KeyManager(Argon2Verifier(time_cost=1, memory_cost_kib=8, parallelism=1))


@pytest.fixture
def insecure_guard() -> AddressGuard:
    """The guard as WFA_WEBHOOKS_ALLOW_INSECURE=on sets it: loopback http allowed."""
    return AddressGuard(allow_insecure=True)


@pytest.fixture
def webhooks(insecure_guard: AddressGuard) -> WebhookManager:
    """The endpoint rules, with loopback receivers allowed."""
    return WebhookManager(insecure_guard)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    """A receiver process on 127.0.0.1, stopped at the end."""
    running = Receiver.start(tmp_path)
    yield running
    running.stop()
