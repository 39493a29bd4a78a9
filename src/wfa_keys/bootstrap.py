"""The first admin: created by ``wfa-keys serve`` on a database that has no user yet."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from tortoise.transactions import in_transaction

from wfa_keys.models import Role, User
from wfa_keys.settings import Settings
from wfa_keys.users import create_user

__all__ = [
    "BOOTSTRAP_ORGANIZATION",
    "DEFAULT_ADMIN_EMAIL",
    "BootstrapAdmin",
    "announce_admin",
    "bootstrap_admin",
]

DEFAULT_ADMIN_EMAIL = "admin@localhost"
BOOTSTRAP_ORGANIZATION = "Default organization"


@dataclass(frozen=True)
class BootstrapAdmin:
    """The admin just created; ``generated_password`` is set only when the service chose it."""

    email: str
    organization: str
    generated_password: str | None

    def __repr__(self) -> str:
        shown = "None" if self.generated_password is None else "'***'"
        return (
            f"BootstrapAdmin(email={self.email!r}, organization={self.organization!r}, "
            f"generated_password={shown})"
        )


async def bootstrap_admin(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> BootstrapAdmin | None:
    """Create the first admin and its organization (subscribed) when there is no user at all.

    The email and password come from ``WFA_BOOTSTRAP_ADMIN_EMAIL`` and
    ``WFA_BOOTSTRAP_ADMIN_PASSWORD``; without them the admin is ``admin@localhost`` with a
    random password, returned once for the caller to show. Returns None when users exist.
    """
    if await User.exists():  # every start but the first: no password to hash
        return None
    env = os.environ if environ is None else environ
    email = env.get("WFA_BOOTSTRAP_ADMIN_EMAIL") or DEFAULT_ADMIN_EMAIL
    password = env.get("WFA_BOOTSTRAP_ADMIN_PASSWORD")
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(18)
    async with in_transaction():
        if await User.exists():  # another process bootstrapped meanwhile
            return None
        user = await create_user(
            settings,
            email=email,
            password=password,
            organization=BOOTSTRAP_ORGANIZATION,
            role=Role.ADMIN,
        )
    return BootstrapAdmin(user.email, BOOTSTRAP_ORGANIZATION, generated)


def announce_admin(admin: BootstrapAdmin) -> None:
    """Print (never log) who the first admin is, and its generated password this once."""
    lines = [f"Created the first admin {admin.email} in organization {admin.organization!r}."]
    if admin.generated_password is not None:
        lines.append(f"Its password, shown only this once: {admin.generated_password}")
    print("\n".join(lines), flush=True)
