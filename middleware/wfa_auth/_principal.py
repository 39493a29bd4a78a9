"""The authenticated principal the middleware puts in ``scope["user"]``."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.authentication import AuthCredentials, BaseUser

from wfa_auth._policies import limits_of
from wfa_auth.base import KeyRecord


class ApiKeyUser(BaseUser):
    """The caller of an authenticated request: an API key and the admin who owns it.

    ``request.user.display_name`` is the owner's email, ``identity`` the Key ID, and
    ``key`` the whole :class:`~wfa_auth.base.KeyRecord` (its secret hash included, so keep
    it out of responses and logs). ``auth`` is what the middleware puts in
    ``request.auth``: ``authenticated`` (or the middleware's ``scopes`` option) and the key's
    own scopes, built once per checked record rather than per request.
    """

    def __init__(
        self,
        key: KeyRecord,
        scopes: Iterable[str] = ("authenticated",),
        *,
        matched_hash: str | None = None,
    ) -> None:
        self.key = key
        #: The secret hash the credentials matched: the key's current one, or the previous
        #: one during a grace period (tokens issued now are tied to it, and end with it).
        self.matched_hash = key.secret_hash if matched_hash is None else matched_hash
        # dict.fromkeys: without duplicates, in order (granted scopes first, then the key's).
        self.auth = AuthCredentials(list(dict.fromkeys([*scopes, *key.scopes])))
        #: The key's rate limit and quota as counting policies; None when it has neither.
        self.limits = limits_of(key)

    @property
    def is_authenticated(self) -> bool:
        """Always True: the middleware only builds one after the credentials were checked."""
        return True

    @property
    def display_name(self) -> str:
        """The key owner's email."""
        return self.key.owner_email

    @property
    def identity(self) -> str:
        """The Key ID."""
        return self.key.key_id

    def __repr__(self) -> str:
        return f"ApiKeyUser(key_id={self.key.key_id!r})"
