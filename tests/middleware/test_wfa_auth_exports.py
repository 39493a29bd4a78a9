"""The public API of wfa_auth is what ``__all__`` says, and it all imports."""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import wfa_auth


def test_public_api_is_pinned() -> None:
    assert sorted(wfa_auth.__all__) == sorted(
        [
            "CALL_OUTCOMES",
            "SCOPE_KEY",
            "__version__",
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
            "Metering",
            "MemoryCounterStore",
            "MemoryKeyRecord",
            "MemoryKeyStore",
            "MemoryThrottleStore",
            "MemoryTokenStore",
            "Quota",
            "RateLimit",
            "SecretVerifier",
            "Taken",
            "TTLCache",
            "ThrottleStore",
            "Throttling",
            "TokenRecord",
            "TokenStore",
            "Tokens",
            "Usage",
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
    )


def test_the_version_is_the_installed_distributions() -> None:
    # The distribution's version is read from wfa_auth/__init__.py ([tool.hatch.version]).
    assert wfa_auth.__version__ == importlib.metadata.version("wfa-auth")


def test_every_exported_name_exists_and_belongs_to_wfa_auth() -> None:
    for name in wfa_auth.__all__:
        member = getattr(wfa_auth, name)
        if isinstance(member, type):
            assert member.__module__.startswith("wfa_auth."), name


def test_the_middleware_package_imports_nothing_from_the_service_or_an_orm() -> None:
    package = Path(wfa_auth.__file__).parent
    imported: set[str] = set()
    for path in package.glob("*.py"):
        if path.name in ("fastapi.py", "client.py", "remote.py"):
            continue  # they import their optional extra; see test_packaging.py
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert imported - {"wfa_auth", "__future__"} <= {
        "anyio",
        "argon2",
        "base64",
        "binascii",
        "collections",
        "contextlib",
        "dataclasses",
        "datetime",
        "functools",
        "hashlib",
        "heapq",
        "hmac",
        "ipaddress",
        "json",
        "logging",
        "math",
        "re",
        "secrets",
        "starlette",
        "time",
        "typing",
        "zlib",
    }


def test_internals_live_in_private_modules_and_base_is_public() -> None:
    package = Path(wfa_auth.__file__).parent
    public = sorted(p.stem for p in package.glob("*.py") if not p.stem.startswith("_"))
    # fastapi, client and remote are integrations, public by name (each needs its extra);
    # webhooks: receivers verify deliveries (issue 23), a public module like those.
    assert set(public) - {"fastapi", "client", "remote", "webhooks"} == {"base"}


def test_the_package_uses_anyio_only_as_starlette_does() -> None:
    package = Path(wfa_auth.__file__).parent
    # The middleware itself; the optional integrations (fastapi, client) follow their hosts.
    for path in [*package.glob("_*.py"), package / "base.py"]:
        assert "asyncio" not in path.read_text(), path.name
