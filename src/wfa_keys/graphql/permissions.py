"""Who may call what. Key management needs a signed-in admin whose organization subscribes
to Workflow Automation; the checks run in this order, so the error names the first
missing condition.
"""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission, PermissionExtension
from strawberry.types import Info

from wfa_keys.graphql.context import Context
from wfa_keys.graphql.errors import Forbidden, ServiceError, SubscriptionRequired, Unauthenticated
from wfa_keys.models import Role


class _CodedPermission(BasePermission):
    error: type[ServiceError] = ServiceError

    def on_unauthorized(self) -> None:
        raise self.error()


class IsAuthenticated(_CodedPermission):
    """A valid session (API keys never count: a leaked key must not mint keys)."""

    error = Unauthenticated

    def has_permission(self, source: Any, info: Info[Context, Any], **kwargs: Any) -> bool:
        return info.context.user is not None


class IsAdmin(_CodedPermission):
    """The signed-in user has the admin role."""

    error = Forbidden

    def has_permission(self, source: Any, info: Info[Context, Any], **kwargs: Any) -> bool:
        user = info.context.user
        return user is not None and user.role == Role.ADMIN


class HasWorkflowAutomation(_CodedPermission):
    """The signed-in user's organization subscribes to Workflow Automation."""

    error = SubscriptionRequired

    def has_permission(self, source: Any, info: Info[Context, Any], **kwargs: Any) -> bool:
        user = info.context.user
        return user is not None and user.organization.has_workflow_automation


def admin_only() -> PermissionExtension:
    """The field extension for key management: signed in, admin, subscribed."""
    return PermissionExtension(
        permissions=[IsAuthenticated(), IsAdmin(), HasWorkflowAutomation()],
        use_directives=False,
    )
