"""Keys of the service written straight to its tables, as ``KeyManager`` writes them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from support.settings import cheap_settings
from wfa_auth import generate_key_id, generate_key_secret
from wfa_keys.crypto import hasher_for
from wfa_keys.models import ApiKey, Organization, Role, User
from wfa_keys.scopes import default_scope_names

SETTINGS = cheap_settings(database_url="unused", token_ttl=900)


async def make_key(
    org_name: str = "Acme",
    *,
    scopes: Sequence[str] | None = None,
    allowed_cidrs: Sequence[str] = (),
    enabled: bool = True,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A key of ``org_name`` (made with its admin when new), and its secret."""
    org, _ = await Organization.get_or_create(name=org_name, has_workflow_automation=True)
    owner, _ = await User.get_or_create(
        email=f"ada@{org_name.lower()}.test",
        defaults={"password_hash": "unused", "role": Role.ADMIN, "organization": org},
    )
    secret = generate_key_secret()
    key = await ApiKey.create(
        key_id=generate_key_id(),
        name=f"{org_name} key",
        secret_hash=hasher_for(SETTINGS).hash(secret),
        owner=owner,
        organization=org,
        scopes=default_scope_names() if scopes is None else list(scopes),
        allowed_cidrs=list(allowed_cidrs),
        enabled=enabled,
        expires_at=expires_at,
    )
    return key, secret
