"""What every resolver can reach: the caller, the request and the app's shared services."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from starlette.requests import Request
from starlette.responses import Response

from wfa_auth import Argon2Verifier
from wfa_keys.crypto import hasher_for
from wfa_keys.models import Role, User
from wfa_keys.sessions import ActiveSession, LoginThrottle
from wfa_keys.settings import Settings

KeyChanged = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class Services:
    """Created once per GraphQL app and shared by its requests."""

    settings: Settings
    hasher: Argon2Verifier
    login_throttle: LoginThrottle
    on_key_changed: KeyChanged | None = None

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        on_key_changed: KeyChanged | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> Services:
        """Services for ``settings``: one hasher and one login throttle per app instance."""
        return cls(
            settings=settings,
            hasher=hasher_for(settings),
            login_throttle=LoginThrottle(settings, clock=clock),
            on_key_changed=on_key_changed,
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
    def is_admin(self) -> bool:
        """True for a signed-in admin (who may see introspection in production)."""
        user = self.user
        return user is not None and user.role == Role.ADMIN


def request_id_of(context: Any) -> str | None:
    """The request ID of a context, when it is one of ours."""
    return context.request_id if isinstance(context, Context) else None
