"""The errors a client can act on, each with a stable ``extensions.code``.

Resolvers raise these; graphql-core copies their ``extensions`` onto the GraphQL error.
Anything else raised during a request is unexpected and reaches the client masked as
``INTERNAL_SERVER_ERROR`` (see :mod:`wfa_keys.graphql.extensions`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from wfa_keys import errors as domain


class ServiceError(Exception):
    """An expected error: its message and ``extensions`` are safe to show to the client."""

    code = "INTERNAL_SERVER_ERROR"
    default_message = "Internal server error"

    def __init__(self, message: str | None = None, **extensions: Any) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)
        self.extensions: dict[str, Any] = {"code": self.code, **extensions}


class Unauthenticated(ServiceError):
    """No valid session, or a failed sign-in (the same words for every reason)."""

    code = "UNAUTHENTICATED"
    default_message = "Sign in first."


class Forbidden(ServiceError):
    """Signed in, but not an admin."""

    code = "FORBIDDEN"
    default_message = "Only an admin of the organization can manage API keys."


class SubscriptionRequired(ServiceError):
    """The organization does not subscribe to Workflow Automation."""

    code = "SUBSCRIPTION_REQUIRED"
    default_message = "Your organization needs a Workflow Automation subscription to use API keys."


class NotFound(ServiceError):
    """No such key in the caller's organization.

    The same answer whether the key belongs to another organization or never existed, so
    that Key IDs of other organizations cannot be probed.
    """

    code = "NOT_FOUND"
    default_message = "There is no API key with this ID in your organization."


class BadUserInput(ServiceError):
    """An argument is out of range or malformed; ``extensions.field`` names it."""

    code = "BAD_USER_INPUT"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


class RateLimited(ServiceError):
    """Too many failed sign-ins; ``extensions.retryAfter`` says when to try again (seconds)."""

    code = "RATE_LIMITED"
    default_message = "Too many failed sign-in attempts. Try again later."

    def __init__(self, retry_after: int) -> None:
        super().__init__(None, retryAfter=retry_after)


class ServiceUnavailable(ServiceError):
    """A shared component did not answer; the request was refused, nothing was checked.

    ``extensions.requestId`` matches the server's log line.
    """

    code = "SERVICE_UNAVAILABLE"
    default_message = "The service is unavailable. Try again later."

    def __init__(self, request_id: str | None) -> None:
        super().__init__(None, requestId=request_id)


def from_domain(
    exc: domain.DomainError,
    *,
    fields: Mapping[str, str] | None = None,
    request_id: str | None = None,
) -> ServiceError:
    """The coded GraphQL error for a service-layer error; ``fields`` renames domain fields
    (``name``) to the argument a GraphQL client sent (``input.name``)."""
    if isinstance(exc, domain.InvalidInput):
        return BadUserInput((fields or {}).get(exc.field, exc.field), exc.message)
    if isinstance(exc, domain.NotFound):
        return NotFound(exc.message)
    if isinstance(exc, domain.RateLimited):
        return RateLimited(exc.retry_after)
    if isinstance(exc, domain.SignInFailed):
        return Unauthenticated(exc.message)
    if isinstance(exc, domain.Unavailable):
        return ServiceUnavailable(request_id)
    return ServiceError()


@contextmanager
def domain_errors(
    fields: Mapping[str, str] | None = None, *, request_id: str | None = None
) -> Iterator[None]:
    """Raise the coded GraphQL error of any service-layer error raised inside."""
    try:
        yield
    except domain.DomainError as exc:
        raise from_domain(exc, fields=fields, request_id=request_id) from None


INTERNAL_ERROR_CODE = "INTERNAL_SERVER_ERROR"
INTERNAL_ERROR_MESSAGE = "Internal server error"
