"""Organizations and users: the operations the command line and the bootstrap share.

Every change that affects authentication announces itself in its transaction
(:func:`~wfa_keys.changes.publish_key_change` with None: every key, since the middleware
checks each key's owner and organization), so that every server process re-reads its
cached keys when it commits:

- deactivating a user ends their sessions and deletes the access tokens of their keys
  (revoked: activating the user again brings none back);
- a role change away from admin deletes those tokens too (a member's keys are refused);
- a new password ends the user's sessions; keys and their tokens do not depend on it;
- a subscription change is announced (the organization's keys are refused or accepted).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from tortoise.transactions import in_transaction

from wfa_keys import validation
from wfa_keys.audit import record_event
from wfa_keys.changes import publish_key_change
from wfa_keys.crypto import hasher_for
from wfa_keys.errors import InvalidInput
from wfa_keys.hashing import run_argon2
from wfa_keys.limits import MAX_EMAIL_LENGTH, MAX_ORGANIZATION_NAME_LENGTH, MIN_PASSWORD_LENGTH
from wfa_keys.models import AuditAction, Organization, Role, User
from wfa_keys.sessions import end_user_sessions
from wfa_keys.settings import Settings
from wfa_keys.store import TortoiseTokenStore

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "UserChange",
    "UserError",
    "create_user",
    "list_users",
    "normalize_email",
    "set_password",
    "set_role",
    "set_subscription",
    "set_user_active",
]


class UserError(ValueError):
    """A user or organization cannot be created or changed as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class UserChange:
    """What a user change did: the user, and how many sessions it ended."""

    user: User
    changed: bool
    sessions_ended: int = 0


async def _record(
    actor_name: str | None, action: AuditAction, organization_id: UUID | str, **detail: str
) -> None:
    """The audit event of a user change made by ``actor_name``, in the change's transaction.

    The user concerned is named in the event's detail. No actor (the first admin's creation
    by ``serve``, a test's fixtures): no event.
    """
    if actor_name is None:
        return
    await record_event(
        action,
        organization_id=organization_id,
        actor=None,
        actor_name=actor_name,
        client_ip=None,
        detail=detail,
    )


def normalize_email(email: str) -> str:
    """Emails compare case-insensitively: they are stored and looked up trimmed and lower-cased."""
    return email.strip().lower()


def _valid_email(email: str) -> str:
    email = normalize_email(email)
    if (
        "@" not in email
        or len(email) > MAX_EMAIL_LENGTH
        or email.startswith("@")
        or email.endswith("@")
        or validation.has_control_characters(email)
    ):
        raise UserError(f"not an email address: {email!r}")
    return email


def _valid_password(password: str) -> str:
    try:
        return validation.new_password(password)
    except InvalidInput as exc:
        raise UserError(exc.message) from None


async def create_user(
    settings: Settings,
    *,
    email: str,
    password: str,
    organization: str,
    role: Role,
    actor_name: str | None = None,
) -> User:
    """Create a user, and the organization (with the subscription) when it does not exist."""
    email = _valid_email(email)
    _valid_password(password)
    org_name = organization.strip()
    if not 1 <= len(org_name) <= MAX_ORGANIZATION_NAME_LENGTH:
        raise UserError(
            f"the organization name must have 1 to {MAX_ORGANIZATION_NAME_LENGTH} characters"
        )
    password_hash = await run_argon2(hasher_for(settings).hash, password)
    async with in_transaction():
        if await User.filter(email=email).exists():
            raise UserError(f"a user with the email {email} exists already")
        org = await Organization.get_or_none(name=org_name)
        if org is None:
            org = await Organization.create(name=org_name, has_workflow_automation=True)
        user = await User.create(
            email=email, password_hash=password_hash, role=role, organization=org
        )
        await _record(actor_name, AuditAction.USER_CREATED, org.id, email=email, role=role.value)
        return user


async def list_users() -> list[User]:
    """Every user with their organization, by organization name then email."""
    return await User.all().select_related("organization").order_by("organization__name", "email")


async def _locked_user(email: str) -> User:
    address = normalize_email(email)
    user = (
        await User.filter(email=address).select_for_update().first()
        if not validation.has_control_characters(address)
        else None
    )
    if user is None:
        raise UserError(f"no user with the email {address!r}")
    return user


async def set_user_active(email: str, *, active: bool, actor_name: str | None = None) -> UserChange:
    """Activate or deactivate a user.

    Deactivation ends the user's sessions and deletes the access tokens of their keys in
    the same transaction; their keys are refused from the commit on, in every process.
    """
    async with in_transaction():
        user = await _locked_user(email)
        if user.is_active == active:
            return UserChange(user, changed=False)
        user.is_active = active
        await user.save(update_fields=["is_active"])
        ended = 0
        if not active:
            ended = await end_user_sessions(user.id)
            await TortoiseTokenStore().delete_tokens_for_owner(user.id)
        action = AuditAction.USER_ACTIVATED if active else AuditAction.USER_DEACTIVATED
        await _record(actor_name, action, user.organization_id, email=user.email)
        await publish_key_change(
            None,
            organization_id=user.organization_id,
            kind="owner_activated" if active else "owner_deactivated",
        )
    return UserChange(user, changed=True, sessions_ended=ended)


async def set_role(email: str, *, role: Role, actor_name: str | None = None) -> UserChange:
    """Make a user an admin or a member; a former admin's keys and their tokens stop working."""
    async with in_transaction():
        user = await _locked_user(email)
        if user.role == role:
            return UserChange(user, changed=False)
        was_admin = user.role == Role.ADMIN
        user.role = role
        await user.save(update_fields=["role"])
        if was_admin:
            await TortoiseTokenStore().delete_tokens_for_owner(user.id)
        await _record(
            actor_name,
            AuditAction.ROLE_CHANGED,
            user.organization_id,
            email=user.email,
            role=role.value,
        )
        await publish_key_change(None, organization_id=user.organization_id, kind="owner_role")
    return UserChange(user, changed=True)


async def set_password(
    settings: Settings, email: str, password: str, *, actor_name: str | None = None
) -> UserChange:
    """Give a user a new password and end every session they have (signed in elsewhere)."""
    _valid_password(password)
    password_hash = await run_argon2(hasher_for(settings).hash, password)
    async with in_transaction():
        user = await _locked_user(email)
        user.password_hash = password_hash
        await user.save(update_fields=["password_hash"])
        ended = await end_user_sessions(user.id)
        await _record(actor_name, AuditAction.PASSWORD_SET, user.organization_id, email=user.email)
        # Keys do not depend on the password, but the contract announces every user change.
        await publish_key_change(None, organization_id=user.organization_id, kind="owner_password")
    return UserChange(user, changed=True, sessions_ended=ended)


async def set_subscription(
    organization: str, *, workflow_automation: bool, actor_name: str | None = None
) -> Organization:
    """Turn an organization's Workflow Automation subscription on or off."""
    async with in_transaction():
        org = await Organization.filter(name=organization.strip()).select_for_update().first()
        if org is None:
            raise UserError(f"no organization named {organization!r}")
        if org.has_workflow_automation != workflow_automation:
            org.has_workflow_automation = workflow_automation
            await org.save(update_fields=["has_workflow_automation"])
            await _record(
                actor_name,
                AuditAction.SUBSCRIPTION_CHANGED,
                org.id,
                workflowAutomation="on" if workflow_automation else "off",
            )
            await publish_key_change(
                None,
                organization_id=org.id,
                kind="subscription_on" if workflow_automation else "subscription_off",
            )
    return org
