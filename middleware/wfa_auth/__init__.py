"""wfa_auth: authenticate Workflow Automation API calls by Key ID and Key Secret.

Mount :class:`ApiKeyAuthMiddleware` in front of any ASGI app; plug in your own key store,
verifier, extractor, cache or error responder through the protocols in :mod:`wfa_auth.base`.
"""

from wfa_auth.base import (
    BearerCredentials,
    Cache,
    CredentialExtractor,
    Credentials,
    ErrorResponder,
    KeyCredentials,
    KeyRecord,
    KeyStore,
    MalformedCredentials,
    SecretVerifier,
    TokenRecord,
    TokenStore,
)
from wfa_auth.cache import TTLCache
from wfa_auth.extractors import HeaderCredentialExtractor
from wfa_auth.hashing import Argon2Verifier
from wfa_auth.memory import MemoryKeyRecord, MemoryKeyStore, MemoryTokenStore
from wfa_auth.middleware import SCOPE_KEY, ApiKeyAuthMiddleware
from wfa_auth.principal import ApiKeyUser
from wfa_auth.responses import JSONErrorResponder
from wfa_auth.throttle import FailureLimiter
from wfa_auth.tokens import secret_fingerprint, token_digest

__all__ = [
    "SCOPE_KEY",
    "ApiKeyAuthMiddleware",
    "ApiKeyUser",
    "Argon2Verifier",
    "BearerCredentials",
    "Cache",
    "CredentialExtractor",
    "Credentials",
    "ErrorResponder",
    "FailureLimiter",
    "HeaderCredentialExtractor",
    "JSONErrorResponder",
    "KeyCredentials",
    "KeyRecord",
    "KeyStore",
    "MalformedCredentials",
    "MemoryKeyRecord",
    "MemoryKeyStore",
    "MemoryTokenStore",
    "SecretVerifier",
    "TTLCache",
    "TokenRecord",
    "TokenStore",
    "secret_fingerprint",
    "token_digest",
]
