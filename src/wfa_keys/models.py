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
    # The user commands of the command line (actor: COMMAND_LINE_ACTOR).
    USER_CREATED = "user_created"
    USER_ACTIVATED = "user_activated"
    USER_DEACTIVATED = "user_deactivated"
    PASSWORD_SET = "password_set"  # noqa: S105 -- an action name
    ROLE_CHANGED = "role_changed"
    SUBSCRIPTION_CHANGED = "subscription_changed"
    # Webhook endpoints (issue 23).
    WEBHOOK_CREATED = "webhook_created"
    WEBHOOK_UPDATED = "webhook_updated"
    WEBHOOK_ENABLED = "webhook_enabled"
    WEBHOOK_DISABLED = "webhook_disabled"
    WEBHOOK_AUTO_DISABLED = "webhook_auto_disabled"
    WEBHOOK_SECRET_ROTATED = "webhook_secret_rotated"  # noqa: S105 -- an action name
    WEBHOOK_DELETED = "webhook_deleted"
    WEBHOOK_TESTED = "webhook_tested"


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
    #: When an admin last enabled the key: activity, for the inactivity check (null: never).
    enabled_at = fields.DatetimeField(null=True)
    #: The hash of the secret before the last regeneration, valid until the time below.
    previous_secret_hash = fields.CharField(max_length=255, null=True)
    previous_secret_expires_at = fields.DatetimeField(null=True)
    #: The scopes the key grants (names from ``wfa_keys.scopes``), filled for old rows by 0003.
    scopes: fields.Field[list[str] | None] = fields.JSONField(null=True)
    #: The networks (CIDR) calls may come from, empty for anywhere (null only before 0003).
    allowed_cidrs: fields.Field[list[str] | None] = fields.JSONField(null=True)
    #: At most ``rate_limit_requests`` calls in any ``rate_limit_per_seconds`` (both or neither).
    rate_limit_requests = fields.IntField(null=True)
    rate_limit_per_seconds = fields.IntField(null=True)
    #: At most ``quota_requests`` calls per UTC ``quota_period`` (day or month).
    quota_requests = fields.BigIntField(null=True)
    quota_period = fields.CharField(max_length=8, null=True)
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
    # -- for the change stream (GET /api/v1/keys/changes), added by 0009 ----------------
    #: The organization of the changed key or keys (null: every one).
    organization_id = fields.CharField(max_length=36, null=True)
    #: What changed (disabled, regenerated, deleted, ...), for the stream.
    kind = fields.CharField(max_length=32, null=True)
    # -- batch changes, added by 0010 ------------------------------------------------------
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


class ServerSecret(Model):
    """A random secret every server process shares, by name (the device-cookie HMAC key).

    In the database, so that a cookie signed by one process is accepted by every other, and
    created once by whichever process needs it first (insert if absent, then read).
    """

    name = fields.CharField(max_length=64, primary_key=True)
    value = fields.CharField(max_length=128)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "server_secret"


# -- Webhooks (issue 23) ------------------------------------------------------------------


class WebhookEndpoint(Model):
    """Where an organization's events are POSTed, signed with the endpoint's secret.

    The signing secret is stored as it is (HMAC needs it to sign each delivery); it is shown
    to a client once, at creation or rotation, and never again.
    """

    id = fields.UUIDField(primary_key=True)
    organization: fields.ForeignKeyRelation[Organization] = fields.ForeignKeyField(
        "wfa_keys.Organization", related_name=False, on_delete=fields.CASCADE
    )
    url = fields.CharField(max_length=2000)
    description = fields.CharField(max_length=200, default="")
    #: The event types sent to it (``key.created``...).
    events: fields.Field[list[str]] = fields.JSONField(default=list)
    enabled = fields.BooleanField(default=True)
    #: Why the service disabled it (failing for days), shown to the organization's admins.
    disabled_reason = fields.CharField(max_length=300, null=True)
    signing_secret = fields.CharField(max_length=100)
    #: The first failed attempt since the last success (null: not failing).
    failing_since = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    organization_id: str

    class Meta:
        table = "webhook_endpoint"


class WebhookMessage(Model):
    """One event for one endpoint: the outbox row, written in the transaction of the change.

    ``body`` is the exact JSON POSTed (and signed); ``status`` goes ``pending`` to
    ``delivered`` or ``failed``. A worker claims a row by moving ``lease_until`` forward in
    a conditional update, so that one process at a time delivers it.
    """

    id = fields.BigIntField(primary_key=True)
    endpoint: fields.ForeignKeyRelation[WebhookEndpoint] = fields.ForeignKeyField(
        "wfa_keys.WebhookEndpoint", related_name=False, on_delete=fields.CASCADE
    )
    #: The ``webhook-id`` header, the same on every attempt (receivers deduplicate with it).
    message_id = fields.CharField(max_length=64, unique=True)
    event_type = fields.CharField(max_length=64)
    body = fields.TextField()
    status = fields.CharField(max_length=16, default="pending")
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    lease_until = fields.DatetimeField(null=True)
    #: A random token of the worker holding the lease: only it may record the outcome.
    claimed_by = fields.CharField(max_length=32, null=True)
    created_at = fields.DatetimeField()

    endpoint_id: str

    class Meta:
        table = "webhook_message"
        indexes = (("endpoint_id", "status", "id"), ("status", "next_attempt_at"))


class WebhookDelivery(Model):
    """One attempt to deliver a message: what the receiver answered and when the next is."""

    id = fields.BigIntField(primary_key=True)
    endpoint: fields.ForeignKeyRelation[WebhookEndpoint] = fields.ForeignKeyField(
        "wfa_keys.WebhookEndpoint", related_name=False, on_delete=fields.CASCADE
    )
    message: fields.ForeignKeyRelation[WebhookMessage] = fields.ForeignKeyField(
        "wfa_keys.WebhookMessage", related_name=False, on_delete=fields.CASCADE
    )
    event_type = fields.CharField(max_length=64)
    #: ``delivered``, ``retrying`` or ``failed``.
    status = fields.CharField(max_length=16)
    response_code = fields.IntField(null=True)
    duration_ms = fields.IntField()
    #: Why it failed, in a few words (never the response body).
    error = fields.CharField(max_length=200, null=True)
    next_retry_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    endpoint_id: str
    message_id: int

    class Meta:
        table = "webhook_delivery"
        indexes = (("endpoint_id", "created_at"),)


class KeyReminder(Model):
    """A reminder sent for a key (``expiring_7d``, ``expiring_1d``, ``expired``): once each."""

    id = fields.BigIntField(primary_key=True)
    key_id = fields.CharField(max_length=64)
    kind = fields.CharField(max_length=16)
    created_at = fields.DatetimeField()

    class Meta:
        table = "key_reminder"
        unique_together = (("key_id", "kind"),)


class KeyNetwork(Model):
    """A network (/24 or /64) a key was used from, and when last: new-address alerts."""

    id = fields.BigIntField(primary_key=True)
    key_id = fields.CharField(max_length=64)
    network = fields.CharField(max_length=64)
    last_seen_at = fields.DatetimeField()

    class Meta:
        table = "key_network"
        unique_together = (("key_id", "network"),)


class CallCounts(Model):
    """Calls by outcome, one column per outcome of :data:`wfa_auth.CALL_OUTCOMES`, in its
    order: the columns every usage table shares."""

    success = fields.BigIntField(default=0)
    rate_limited = fields.BigIntField(default=0)
    quota_exceeded = fields.BigIntField(default=0)
    insufficient_scope = fields.BigIntField(default=0)
    ip_not_allowed = fields.BigIntField(default=0)
    disabled = fields.BigIntField(default=0)
    expired = fields.BigIntField(default=0)
    invalid_secret = fields.BigIntField(default=0)

    class Meta:
        abstract = True


class KeyUsage(CallCounts):
    """One key's calls in one hour, by outcome. Kept after the key is deleted (by Key ID),
    pruned after ``WFA_USAGE_RETENTION_DAYS``."""

    id = fields.BigIntField(primary_key=True)
    key_id = fields.CharField(max_length=64)
    organization_id = fields.UUIDField()
    hour = fields.DatetimeField()

    class Meta:
        table = "key_usage"
        unique_together = (("key_id", "hour"),)
        indexes = (("organization_id", "hour"),)


class OrganizationUsageHour(CallCounts):
    """An organization's calls in one hour, by outcome: the sum of its ``key_usage`` rows of
    that hour, written in the same transaction (``organizationUsage`` reads its buckets here,
    not the keys' rows)."""

    id = fields.BigIntField(primary_key=True)
    organization_id = fields.UUIDField()
    hour = fields.DatetimeField()

    class Meta:
        table = "organization_usage_hour"
        unique_together = (("organization_id", "hour"),)


class KeyUsageDay(CallCounts):
    """One key's calls in one UTC day, by outcome: the sum of its ``key_usage`` rows of that
    day, written in the same transaction (``organizationUsage`` ranks keys over whole days
    here)."""

    id = fields.BigIntField(primary_key=True)
    key_id = fields.CharField(max_length=64)
    organization_id = fields.UUIDField()
    day = fields.DatetimeField()

    class Meta:
        table = "key_usage_day"
        unique_together = (("key_id", "day"),)
        indexes = (("organization_id", "day"),)


class KeyUsageWeek(CallCounts):
    """One key's calls in one week (from Monday 00:00 UTC), by outcome: the sum of its
    ``key_usage_day`` rows of that week, written in the same transaction (a 90-day ranking
    reads 12 weeks and a few days, not 90 days)."""

    id = fields.BigIntField(primary_key=True)
    key_id = fields.CharField(max_length=64)
    organization_id = fields.UUIDField()
    week = fields.DatetimeField()

    class Meta:
        table = "key_usage_week"
        unique_together = (("key_id", "week"),)
        indexes = (("organization_id", "week"),)


class LimitCounter(Model):
    """Units of a rate limit or quota taken in one slot, shared by every server process
    (``WFA_THROTTLE_STORE=database``); deleted once the slot has left its window."""

    id = fields.BigIntField(primary_key=True)
    bucket = fields.CharField(max_length=80)
    slot = fields.BigIntField()
    count = fields.BigIntField(default=0)
    expires_at = fields.DatetimeField()

    class Meta:
        table = "limit_counter"
        unique_together = (("bucket", "slot"),)
