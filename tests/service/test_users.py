"""Creating users and organizations, and switching the subscription."""

from __future__ import annotations

import pytest
from tortoise.context import TortoiseContext

from support.settings import cheap_settings
from wfa_keys.crypto import hasher_for
from wfa_keys.models import Organization, Role, User
from wfa_keys.users import UserError, create_user, normalize_email, set_subscription

PASSWORD = "correct horse battery"


async def test_create_user_creates_the_organization_with_the_subscription(
    db: TortoiseContext,
) -> None:
    user = await create_user(
        cheap_settings(),
        email=" Ada@Example.COM ",
        password=PASSWORD,
        organization="Acme",
        role=Role.ADMIN,
    )

    assert user.email == "ada@example.com"
    org = await Organization.get(name="Acme")
    assert org.has_workflow_automation
    stored = await User.get(id=user.id)
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash
    assert hasher_for(cheap_settings()).verify(stored.password_hash, PASSWORD)


async def test_emails_are_unique_case_insensitively(db: TortoiseContext) -> None:
    await create_user(
        cheap_settings(),
        email="ada@example.com",
        password=PASSWORD,
        organization="Acme",
        role=Role.ADMIN,
    )

    with pytest.raises(UserError, match="exists already"):
        await create_user(
            cheap_settings(),
            email="ADA@example.com",
            password=PASSWORD,
            organization="Other",
            role=Role.MEMBER,
        )
    assert await User.all().count() == 1
    assert not await Organization.filter(name="Other").exists()


@pytest.mark.parametrize(
    ("email", "password", "organization", "message"),
    [
        ("not-an-email", PASSWORD, "Acme", "not an email"),
        ("@example.com", PASSWORD, "Acme", "not an email"),
        ("ada@example.com", "short", "Acme", "at least 12"),
        ("ada@example.com", PASSWORD, "   ", "organization name"),
    ],
)
async def test_bad_input_creates_nothing(
    db: TortoiseContext, email: str, password: str, organization: str, message: str
) -> None:
    with pytest.raises(UserError, match=message):
        await create_user(
            cheap_settings(),
            email=email,
            password=password,
            organization=organization,
            role=Role.ADMIN,
        )

    assert await User.all().count() == 0
    assert await Organization.all().count() == 0


async def test_set_subscription_switches_it(db: TortoiseContext) -> None:
    await Organization.create(name="Acme", has_workflow_automation=True)

    await set_subscription("Acme", workflow_automation=False)

    assert not (await Organization.get(name="Acme")).has_workflow_automation


async def test_set_subscription_of_an_unknown_organization_is_an_error(db: TortoiseContext) -> None:
    with pytest.raises(UserError, match="no organization"):
        await set_subscription("Nope", workflow_automation=True)


def test_normalize_email_trims_and_lowercases() -> None:
    assert normalize_email("  Ada@EXAMPLE.com\n") == "ada@example.com"
