"""Fixtures for the middleware tests: a fast verifier, a memory store with one key, an app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from support.keys import CountingStore, CountingVerifier, inner_app
from wfa_auth import ApiKeyAuthMiddleware, MemoryKeyRecord


@pytest.fixture
def verifier() -> CountingVerifier:
    return CountingVerifier()


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


@pytest.fixture
def key(store: CountingStore, verifier: CountingVerifier) -> tuple[MemoryKeyRecord, str]:
    """A key of ``ada@example.com`` at Acme, and its secret."""
    return store.create_key(
        verifier, name="CI", owner_email="ada@example.com", organization_name="Acme"
    )


@pytest.fixture
def make_middleware(
    store: CountingStore, verifier: CountingVerifier
) -> Callable[..., ApiKeyAuthMiddleware]:
    def make(**options: Any) -> ApiKeyAuthMiddleware:
        options.setdefault("store", store)
        options.setdefault("verifier", verifier)
        if "clock" in options and "timer" not in options:
            # A test that moves the wall clock moves the monotonic one with it.
            clock = options["clock"]
            options["timer"] = lambda: clock().timestamp()
        return ApiKeyAuthMiddleware(inner_app(), **options)

    return make
