"""Organizations and users: the operations the command line and the bootstrap share."""

from __future__ import annotations

from tortoise.transactions import in_transaction

from wfa_keys.changes import publish_key_change
from wfa_keys.crypto import hasher_for
from wfa_keys.models import Organization, Role, User
from wfa_keys.settings import Settings

MIN_PASSWORD_LENGTH = 12


class UserError(ValueError):
    """A user or organization cannot be created or changed as asked; the message says why."""


def normalize_email(email: str) -> str:
    """Emails compare case-insensitively: they are stored and looked up trimmed and lower-cased."""
    return email.strip().lower()


async def create_user(
    settings: Settings,
    *,
    email: str,
    password: str,
    organization: str,
    role: Role,
) -> User:
    """Create a user, and the organization (with the subscription) when it does not exist."""
    email = normalize_email(email)
    if "@" not in email or len(email) > 254 or email.startswith("@") or email.endswith("@"):
        raise UserError(f"not an email address: {email!r}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    org_name = organization.strip()
    if not 1 <= len(org_name) <= 200:
        raise UserError("the organization name must have 1 to 200 characters")
    password_hash = hasher_for(settings).hash(password)
    async with in_transaction():
        if await User.filter(email=email).exists():
            raise UserError(f"a user with the email {email} exists already")
        org = await Organization.get_or_none(name=org_name)
        if org is None:
            org = await Organization.create(name=org_name, has_workflow_automation=True)
        return await User.create(
            email=email, password_hash=password_hash, role=role, organization=org
        )


async def set_subscription(organization: str, *, workflow_automation: bool) -> Organization:
    """Turn an organization's Workflow Automation subscription on or off."""
    async with in_transaction():
        org = await Organization.get_or_none(name=organization.strip())
        if org is None:
            raise UserError(f"no organization named {organization!r}")
        org.has_workflow_automation = workflow_automation
        await org.save(update_fields=["has_workflow_automation"])
        # Every server process drops its cached records of the organization's keys.
        await publish_key_change(None)
    return org
