"""The default :class:`~wfa_auth.base.CredentialExtractor`: credentials from request headers.

Only headers are read. Credentials in the query string would end up in access logs, proxy
logs and browser history, so they are never looked for.
"""

from __future__ import annotations

import binascii
import re

from starlette.types import Scope

from wfa_auth.base import BearerCredentials, Credentials, KeyCredentials, MalformedCredentials

KEY_ID_HEADER = b"x-api-key-id"
KEY_SECRET_HEADER = b"x-api-key-secret"
_KEY_HEADERS = (KEY_ID_HEADER, KEY_SECRET_HEADER)
_TOKEN68 = re.compile(r"\A[A-Za-z0-9\-._~+/]+=*\Z")
_MAX_HEADER_LENGTH = 1024


class HeaderCredentialExtractor:
    """Finds ``Authorization: Bearer``, ``Authorization: Basic`` or the two key headers.

    ``Basic`` carries ``base64(key_id:key_secret)``; the headers are ``X-API-Key-ID`` and
    ``X-API-Key-Secret``. Ambiguous requests (an ``Authorization`` header and the key headers,
    or a header given twice) are malformed rather than resolved by a guess.
    """

    def __init__(self, *, bearer: bool = True, basic: bool = True, key_headers: bool = True):
        self.bearer = bearer
        self.basic = basic
        self.key_headers = key_headers

    def extract(self, scope: Scope) -> Credentials | None:
        """The credentials in ``scope``; None when there are none; raises MalformedCredentials."""
        authorization: bytes | None = None
        key_id: bytes | None = None
        key_secret: bytes | None = None
        repeated = False
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                repeated = repeated or authorization is not None
                authorization = value
            elif name == KEY_ID_HEADER:
                repeated = repeated or key_id is not None
                key_id = value
            elif name == KEY_SECRET_HEADER:
                repeated = repeated or key_secret is not None
                key_secret = value
        if authorization is None and key_id is None and key_secret is None:
            return None
        if repeated:
            raise MalformedCredentials("a credential header is given more than once")
        if authorization is not None and (key_id is not None or key_secret is not None):
            raise MalformedCredentials("both an Authorization header and API key headers")
        if authorization is not None:
            return self._authorization(authorization)
        if not self.key_headers:
            return None
        if key_id is None or key_secret is None:
            raise MalformedCredentials("X-API-Key-ID and X-API-Key-Secret go together")
        return KeyCredentials(_text(key_id), _text(key_secret))

    def _authorization(self, raw: bytes) -> Credentials | None:
        value = _text(raw)
        scheme, _, param = value.strip().partition(" ")
        param = param.strip()
        scheme = scheme.lower()
        if scheme == "bearer" and self.bearer:
            if not _TOKEN68.match(param):
                raise MalformedCredentials("the Bearer token is empty or malformed")
            return BearerCredentials(param)
        if scheme == "basic" and self.basic:
            try:
                # binascii directly: base64.b64decode adds a regex pass on this hot path.
                decoded = binascii.a2b_base64(param, strict_mode=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise MalformedCredentials("Basic credentials are not base64 of UTF-8") from None
            key_id, colon, key_secret = decoded.partition(":")
            if not colon:
                raise MalformedCredentials("Basic credentials need key_id:key_secret")
            return KeyCredentials(key_id, key_secret)
        raise MalformedCredentials("unsupported Authorization scheme")


def sole_authorization(scope: Scope) -> bytes | None:
    """The ``Authorization`` header of ``scope`` as received, when it is given once and no
    key header is: the one header :class:`HeaderCredentialExtractor` would read credentials
    from, and not too long for it. None otherwise (then only the extractor can tell what the
    headers mean)."""
    authorization: bytes | None = None
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            if authorization is not None:
                return None
            authorization = value
        elif name in _KEY_HEADERS:
            return None
    if authorization is not None and len(authorization) > _MAX_HEADER_LENGTH:
        return None
    return authorization


def _text(raw: bytes) -> str:
    if len(raw) > _MAX_HEADER_LENGTH:
        raise MalformedCredentials("a credential header is too long")
    return raw.decode("latin-1")
