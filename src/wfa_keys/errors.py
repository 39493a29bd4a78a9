"""The errors of the service layer, independent of any transport.

The key lifecycle (:mod:`wfa_keys.keys`) and sign-in (:mod:`wfa_keys.signin`) raise these;
each face maps them to its own words: GraphQL to an ``extensions.code``, the command line to
one line on stderr. Their messages are safe to show to the person who caused them.
"""

from __future__ import annotations

__all__ = [
    "DomainError",
    "InvalidInput",
    "NotFound",
    "RateLimited",
    "SignInFailed",
    "Unavailable",
]


class DomainError(Exception):
    """An expected refusal of the service layer; the message says why, without secrets."""

    default_message = "The request cannot be carried out."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class NotFound(DomainError):
    """No such key in the caller's organization.

    Raised alike for a key of another organization and one that never existed, so that Key
    IDs of other organizations cannot be probed.
    """

    default_message = "There is no API key with this ID in your organization."


class InvalidInput(DomainError):
    """An argument is out of range or malformed; ``field`` names it (``name``, ``key_id``...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class SignInFailed(DomainError):
    """Wrong email or password, or a deactivated user: the same words for every reason."""

    default_message = "Wrong email or password."


class RateLimited(DomainError):
    """Too many sign-in attempts; ``retry_after`` is the whole seconds until one may retry.

    ``per_address`` when the client address's limit refused it (whatever the email), rather
    than the limit of one email: such refusals are audited per address, not per email.
    """

    default_message = "Too many failed sign-in attempts. Try again later."

    def __init__(self, retry_after: int, *, per_address: bool = False) -> None:
        super().__init__()
        self.retry_after = retry_after
        self.per_address = per_address


class Unavailable(DomainError):
    """A shared component (the throttle store) did not answer: refused, failing closed."""

    default_message = "The service is unavailable. Try again later."
