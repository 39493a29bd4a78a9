"""The first admin that ``wfa-keys serve`` creates on an empty database."""

from __future__ import annotations

import pytest
from tortoise.context import TortoiseContext

from support.settings import cheap_settings
from wfa_keys.bootstrap import (
    BOOTSTRAP_ORGANIZATION,
    DEFAULT_ADMIN_EMAIL,
    bootstrap_admin,
)
from wfa_keys.crypto import hasher_for
from wfa_keys.models import Organization, Role, User
from wfa_keys.users import UserError, create_user

PASSWORD = "a long bootstrap password"


async def test_admin_comes_from_the_environment_in_a_subscribed_organization(
    db: TortoiseContext,
) -> None:
    env = {
        "WFA_BOOTSTRAP_ADMIN_EMAIL": "Owner@Acme.Example",
        "WFA_BOOTSTRAP_ADMIN_PASSWORD": PASSWORD,
    }

    admin = await bootstrap_admin(cheap_settings(), env)

    assert admin is not None
    assert (admin.email, admin.generated_password) == ("owner@acme.example", None)
    user = await User.get(email="owner@acme.example").prefetch_related("organization")
    assert user.role is Role.ADMIN
    assert user.organization.name == BOOTSTRAP_ORGANIZATION
    assert user.organization.has_workflow_automation is True
    assert hasher_for(cheap_settings()).verify(user.password_hash, PASSWORD)


async def test_without_the_environment_the_admin_gets_a_random_password(
    db: TortoiseContext,
) -> None:
    admin = await bootstrap_admin(cheap_settings(), {})

    assert admin is not None
    assert admin.email == DEFAULT_ADMIN_EMAIL
    assert admin.generated_password is not None
    assert len(admin.generated_password) >= 24
    assert admin.generated_password not in repr(admin)
    user = await User.get(email=DEFAULT_ADMIN_EMAIL)
    assert hasher_for(cheap_settings()).verify(user.password_hash, admin.generated_password)
    assert user.password_hash != admin.generated_password


async def test_two_bootstraps_choose_different_passwords(db: TortoiseContext) -> None:
    first = await bootstrap_admin(cheap_settings(), {})
    await User.all().delete()
    await Organization.all().delete()
    second = await bootstrap_admin(cheap_settings(), {})

    assert first is not None
    assert second is not None
    assert first.generated_password != second.generated_password


async def test_nothing_happens_once_a_user_exists(db: TortoiseContext) -> None:
    await create_user(
        cheap_settings(),
        email="member@acme.example",
        password=PASSWORD,
        organization="Acme",
        role=Role.MEMBER,
    )

    assert await bootstrap_admin(cheap_settings(), {}) is None
    assert await User.all().count() == 1
    assert not await Organization.exists(name=BOOTSTRAP_ORGANIZATION)


async def test_a_too_short_bootstrap_password_is_refused_and_nothing_is_created(
    db: TortoiseContext,
) -> None:
    env = {"WFA_BOOTSTRAP_ADMIN_PASSWORD": "short"}

    with pytest.raises(UserError, match="at least 12 characters"):
        await bootstrap_admin(cheap_settings(), env)

    assert await User.all().count() == 0
    assert await Organization.all().count() == 0
