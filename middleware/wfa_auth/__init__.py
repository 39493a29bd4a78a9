"""wfa_auth: authenticate Workflow Automation API calls by Key ID and Key Secret.

Mount :class:`ApiKeyAuthMiddleware` in front of any ASGI app, configured with the
:class:`Tokens`, :class:`Caching` and :class:`Throttling` objects; plug in your own key store,
token store, throttle store, verifier, extractor, cache, error responder or metrics observer
through the protocols in :mod:`wfa_auth.base`. Everything public is imported from here; the
``_``-prefixed modules are internals that may change in any release.
"""

from wfa_auth._cache import TTLCache
from wfa_auth._calls import CALL_OUTCOMES
from wfa_auth._config import Caching, Metering, Throttling, Tokens
from wfa_auth._counters import MemoryCounterStore
from wfa_auth._extractors import HeaderCredentialExtractor
from wfa_auth._hashing import Argon2Verifier
from wfa_auth._keyformat import (
    generate_key_id,
    generate_key_secret,
    is_valid_key_id,
    is_valid_key_secret,
)
from wfa_auth._memory import MemoryKeyRecord, MemoryKeyStore, MemoryTokenStore
from wfa_auth._middleware import SCOPE_KEY, ApiKeyAuthMiddleware, route_path
from wfa_auth._policies import quota_window
from wfa_auth._principal import ApiKeyUser
from wfa_auth._responses import JSONErrorResponder
from wfa_auth._scopes import insufficient_scope, requires_scope
from wfa_auth._throttle import MemoryThrottleStore
from wfa_auth._tokens import secret_fingerprint, token_digest
from wfa_auth.base import (
    AuthObserver,
    Authority,
    BearerCredentials,
    Cache,
    CallSink,
    CounterStore,
    CredentialExtractor,
    Credentials,
    ErrorResponder,
    KeyCredentials,
    KeyRecord,
    KeyStore,
    MalformedCredentials,
    Quota,
    RateLimit,
    SecretVerifier,
    Taken,
    ThrottleStore,
    TokenRecord,
    TokenStore,
    Usage,
)

# The one place of the distribution's version (pyproject.toml reads it: [tool.hatch.version]).
__version__ = "0.3.0"

__all__ = [
    "CALL_OUTCOMES",
    "SCOPE_KEY",
    "ApiKeyAuthMiddleware",
    "ApiKeyUser",
    "Argon2Verifier",
    "AuthObserver",
    "Authority",
    "BearerCredentials",
    "Cache",
    "Caching",
    "CallSink",
    "CounterStore",
    "CredentialExtractor",
    "Credentials",
    "ErrorResponder",
    "HeaderCredentialExtractor",
    "JSONErrorResponder",
    "KeyCredentials",
    "KeyRecord",
    "KeyStore",
    "MalformedCredentials",
    "MemoryCounterStore",
    "MemoryKeyRecord",
    "MemoryKeyStore",
    "MemoryThrottleStore",
    "MemoryTokenStore",
    "Metering",
    "Quota",
    "RateLimit",
    "SecretVerifier",
    "TTLCache",
    "Taken",
    "ThrottleStore",
    "Throttling",
    "TokenRecord",
    "TokenStore",
    "Tokens",
    "Usage",
    "__version__",
    "generate_key_id",
    "generate_key_secret",
    "insufficient_scope",
    "is_valid_key_id",
    "is_valid_key_secret",
    "quota_window",
    "requires_scope",
    "route_path",
    "secret_fingerprint",
    "token_digest",
]
