"""wfa_auth: authenticate Workflow Automation API calls by Key ID and Key Secret.

Mount :class:`ApiKeyAuthMiddleware` in front of any ASGI app; plug in your own key store,
verifier, extractor, cache or error responder through the protocols in :mod:`wfa_auth.base`.
"""

from wfa_auth.base import (
    AuthObserver,
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
    ThrottleStore,
    TokenRecord,
    TokenStore,
)
from wfa_auth.cache import TTLCache
from wfa_auth.extractors import HeaderCredentialExtractor
from wfa_auth.hashing import Argon2Verifier
from wfa_auth.keyformat import (
    generate_key_id,
    generate_key_secret,
    is_valid_key_id,
    is_valid_key_secret,
)
from wfa_auth.memory import MemoryKeyRecord, MemoryKeyStore, MemoryTokenStore
from wfa_auth.middleware import SCOPE_KEY, ApiKeyAuthMiddleware, route_path
from wfa_auth.principal import ApiKeyUser
from wfa_auth.responses import JSONErrorResponder
from wfa_auth.throttle import FailureLimiter, MemoryThrottleStore
from wfa_auth.tokens import secret_fingerprint, token_digest

__all__ = [
    "SCOPE_KEY",
    "ApiKeyAuthMiddleware",
    "ApiKeyUser",
    "Argon2Verifier",
    "AuthObserver",
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
    "MemoryThrottleStore",
    "MemoryTokenStore",
    "SecretVerifier",
    "TTLCache",
    "ThrottleStore",
    "TokenRecord",
    "TokenStore",
    "generate_key_id",
    "generate_key_secret",
    "is_valid_key_id",
    "is_valid_key_secret",
    "route_path",
    "secret_fingerprint",
    "token_digest",
]
