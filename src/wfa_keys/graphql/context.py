"""What every resolver can reach: the caller, the request and the app's shared services."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from starlette.requests import Request
from starlette.responses import Response

from wfa_auth import (
    Argon2Verifier,
    CounterStore,
    MemoryCounterStore,
    MemoryThrottleStore,
    ThrottleStore,
)
from wfa_keys.crypto import hasher_for
from wfa_keys.keys import Actor, KeyChanged, KeyManager
from wfa_keys.models import Role, User
from wfa_keys.sessions import ActiveSession
from wfa_keys.settings import Settings
from wfa_keys.signin import SignIn
from wfa_keys.webhooks.endpoints import WebhookManager
from wfa_keys.webhooks.guard import AddressGuard, Resolver, system_resolver

__all__ = ["Context", "KeyChanged", "Services", "request_id_of"]


@dataclass(frozen=True)
class Services:
    """Created once per GraphQL app and shared by its requests: the service layer."""

    settings: Settings
    hasher: Argon2Verifier
    keys: KeyManager
    sign_in: SignIn
    webhooks: WebhookManager
    #: Rate-limit and quota counters (``ApiKey.quota.used``): the middleware's store.
    counters: CounterStore = field(default_factory=MemoryCounterStore)

    @property
    def on_key_changed(self) -> KeyChanged | None:
        """The callback awaited after each committed key change."""
        return self.keys.on_key_changed

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        on_key_changed: KeyChanged | None = None,
        throttle_store: ThrottleStore | None = None,
        hasher: Argon2Verifier | None = None,
        webhook_resolver: Resolver | None = None,
        counters: CounterStore | None = None,
    ) -> Services:
        """Services for ``settings``: one hasher, key manager and sign-in per app instance.

        ``throttle_store`` holds the sign-in throttle; a :class:`wfa_auth.MemoryThrottleStore`
        (this process only) unless the app shares one between processes.
        """
        hasher = hasher if hasher is not None else hasher_for(settings)
        store = throttle_store if throttle_store is not None else MemoryThrottleStore()
        return cls(
            settings=settings,
            hasher=hasher,
            keys=KeyManager(hasher, on_key_changed=on_key_changed),
            sign_in=SignIn(settings, hasher, store),
            webhooks=WebhookManager(
                AddressGuard(
                    allow_insecure=settings.webhooks_allow_insecure,
                    resolver=webhook_resolver or system_resolver,
                )
            ),
            counters=counters if counters is not None else MemoryCounterStore(),
        )


@dataclass
class Context:
    """The context of one GraphQL request (``info.context``)."""

    services: Services
    request_id: str = field(default_factory=lambda: uuid4().hex)
    client_ip: str | None = None
    #: True when the request came over https: the session cookie is then marked Secure.
    secure: bool = False
    session: ActiveSession | None = None
    request: Request | None = None
    #: Headers and cookies set here are merged into the HTTP response.
    response: Response | None = None

    @property
    def settings(self) -> Settings:
        """The app's settings."""
        return self.services.settings

    @property
    def user(self) -> User | None:
        """The signed-in user, or None."""
        return self.session.user if self.session is not None else None

    @property
    def actor(self) -> Actor:
        """The signed-in user as the service layer's actor (behind ``admin_only``)."""
        user = self.user
        if user is None:  # pragma: no cover - admin_only refused the call already
            raise RuntimeError("resolver reached without a signed-in user")
        return Actor(user, client_ip=self.client_ip, request_id=self.request_id)

    @property
    def is_admin(self) -> bool:
        """True for a signed-in admin (who may see introspection in production)."""
        user = self.user
        return user is not None and user.role == Role.ADMIN


def request_id_of(context: Any) -> str | None:
    """The request ID of a context, when it is one of ours."""
    return context.request_id if isinstance(context, Context) else None
