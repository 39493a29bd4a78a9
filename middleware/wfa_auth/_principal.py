"""The authenticated principal the middleware puts in ``scope["user"]``."""

from __future__ import annotations

from starlette.authentication import BaseUser

from wfa_auth.base import KeyRecord


class ApiKeyUser(BaseUser):
    """The caller of an authenticated request: an API key and the admin who owns it.

    ``request.user.display_name`` is the owner's email, ``identity`` the Key ID, and
    ``key`` the whole :class:`~wfa_auth.base.KeyRecord` (its secret hash included, so keep
    it out of responses and logs).
    """

    def __init__(self, key: KeyRecord) -> None:
        self.key = key

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
