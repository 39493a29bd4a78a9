"""Tortoise ORM models. Schema changes go through ``wfa_keys/migrations`` (``wfa-keys migrate``)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model


class Role(StrEnum):
    """What a user may do: only admins manage API keys."""

    ADMIN = "admin"
    MEMBER = "member"


class AuditAction(StrEnum):
    """Every kind of event the audit log records."""

    KEY_CREATED = "key_created"
    KEY_ENABLED = "key_enabled"
    KEY_DISABLED = "key_disabled"
    KEY_REGENERATED = "key_regenerated"
    KEY_DELETED = "key_deleted"
    LOGIN_SUCCEEDED = "login_succeeded"
    LOGIN_FAILED = "login_failed"
    LOGIN_THROTTLED = "login_throttled"
    LOGOUT = "logout"
    KEY_UPDATED = "key_updated"
    PREVIOUS_SECRET_REVOKED = "previous_secret_revoked"  # noqa: S105 -- an action name
    KEY_AUTO_DISABLED = "key_auto_disabled"


class Organization(Model):
    """A customer organization. Only subscribers to Workflow Automation may use API keys."""

    id = fields.UUIDField(primary_key=True)
    name = fields.CharField(max_length=200, unique=True)
    has_workflow_automation = fields.BooleanField(default=False)
    #: Keys neither used nor created for this many days are disabled (null: never).
    key_inactivity_days = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    users: fields.ReverseRelation[User]
    api_keys: fields.ReverseRelation[ApiKey]
    workflows: fields.ReverseRelation[Workflow]

    class Meta:
        table = "organization"


class User(Model):
    """A person who signs in. The email is stored lower-cased: unique case-insensitively."""

    id = fields.UUIDField(primary_key=True)
    email = fields.CharField(max_length=254, unique=True)
    password_hash = fields.CharField(max_length=255)
    role = fields.CharEnumField(Role, max_length=16, default=Role.MEMBER)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "wfa_keys.Organization", related_name="users", on_delete=fields.CASCADE
    )
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    organization_id: str

    class Meta:
        table = "user"


class ApiKey(Model):
    """An API key. The secret is never stored: only its argon2id hash."""

    id = fields.BigIntField(primary_key=True)
    key_id = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=100)
    secret_hash = fields.CharField(max_length=255)
    enabled = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField(null=True)
    last_used_at = fields.DatetimeField(null=True)
    #: The client address of the last use, written with ``last_used_at``.
    last_used_ip = fields.CharField(max_length=45, null=True)
    secret_regenerated_at = fields.DatetimeField(null=True)
    #: The hash of the secret before the last regeneration, valid until the time below.
    previous_secret_hash = fields.CharField(max_length=255, null=True)
    previous_secret_expires_at = fields.DatetimeField(null=True)
    #: The scopes the key grants (names from ``wfa_keys.scopes``), filled for old rows by 0003.
    scopes: fields.Field[list[str] | None] = fields.JSONField(null=True)
    #: The networks (CIDR) calls may come from, empty for anywhere (null only before 0003).
    allowed_cidrs: fields.Field[list[str] | None] = fields.JSONField(null=True)
    owner: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "wfa_keys.User", related_name="api_keys", on_delete=fields.CASCADE
    )
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "wfa_keys.Organization", related_name="api_keys", on_delete=fields.CASCADE
    )

    owner_id: str
    organization_id: str

    class Meta:
        table = "api_key"
        indexes = (("organization_id", "created_at"),)


class AuditEvent(Model):
    """One change or sign-in, written in the transaction of what it records, never a secret."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyNullableRelation[Organization] = fields.ForeignKeyField(
        "wfa_keys.Organization", related_name=False, null=True, on_delete=fields.CASCADE
    )
    actor: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "wfa_keys.User", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    actor_email = fields.CharField(max_length=254, null=True)
    action = fields.CharEnumField(AuditAction, max_length=32)
    key_id = fields.CharField(max_length=64, null=True)
    client_ip = fields.CharField(max_length=64, null=True)
    #: What else the action records (a count of throttled attempts, a grace period), never a secret.
    detail: fields.Field[dict[str, Any] | None] = fields.JSONField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    organization_id: str | None
    actor_id: str | None

    class Meta:
        table = "audit_event"
        indexes = (("organization_id", "created_at"),)


class Session(Model):
    """An admin's sign-in. The cookie holds a random ID, the table only its SHA-256."""

    id_hash = fields.CharField(max_length=64, primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "wfa_keys.User", related_name="sessions", on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    last_seen_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()

    user_id: str

    class Meta:
        table = "session"


class AccessToken(Model):
    """A short-lived access token from the token endpoint, stored by its SHA-256 only."""

    token_hash = fields.CharField(max_length=64, primary_key=True)
    key_id = fields.CharField(max_length=64, db_index=True)
    secret_fingerprint = fields.CharField(max_length=64)
    expires_at = fields.DatetimeField()

    class Meta:
        table = "access_token"


class KeyChange(Model):
    """A committed change that affects authentication, for server processes that poll for them.

    Written in the transaction of the change; ``key_id`` null means every key (a user's
    deactivation or role change, a subscription change) unless ``key_ids`` lists the keys of
    a batch (the inactivity sweep). On PostgreSQL the same change is also announced with
    NOTIFY.
    """

    id = fields.BigIntField(primary_key=True)
    key_id = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    # -- batch changes (0008) --
    #: The keys of a batch change (key_id is then null), or null.
    key_ids: fields.Field[list[str] | None] = fields.JSONField(null=True)

    class Meta:
        table = "key_change"


class ThrottleSlot(Model):
    """One counted attempt in a shared throttle bucket, until ``expires_at``.

    Buckets and members are digests, never a raw email, address or Key ID, so their size is
    fixed whatever a client sends.
    """

    id = fields.BigIntField(primary_key=True)
    bucket = fields.CharField(max_length=64)
    member = fields.CharField(max_length=64)
    expires_at = fields.DatetimeField()

    class Meta:
        table = "throttle_slot"
        unique_together = (("bucket", "member"),)


class Workflow(Model):
    """A workflow of the sample Workflow Automation API, which API keys read and create."""

    id = fields.BigIntField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "wfa_keys.Organization", related_name="workflows", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=100)
    #: The Key ID of the key that created it.
    created_by_key_id = fields.CharField(max_length=64)
    created_at = fields.DatetimeField(auto_now_add=True)

    organization_id: str

    class Meta:
        table = "workflow"
        indexes = (("organization_id", "created_at"),)
