"""The service layer's public names are pinned: a console, the CLI or a REST face use them."""

from __future__ import annotations

from wfa_keys import errors, hashing, keys, signin, usage, validation


def test_the_service_layer_exports_exactly_its_public_names() -> None:
    assert sorted(keys.__all__) == [
        "Actor",
        "COMMAND_LINE_ACTOR",
        "KeyChanged",
        "KeyManager",
        "KeyStatus",
        "NewSecret",
        "UNCHANGED",
        "Unchanged",
        "key_status",
    ]
    assert sorted(signin.__all__) == ["SignIn", "SignedIn"]
    assert sorted(errors.__all__) == [
        "DomainError",
        "InvalidInput",
        "NotFound",
        "RateLimited",
        "SignInFailed",
        "Unavailable",
    ]
    assert sorted(hashing.__all__) == ["ARGON2_CONCURRENCY", "argon2_limiter", "run_argon2"]
    assert "key_name" in validation.__all__
    assert sorted(usage.__all__) == [
        "Granularity",
        "KeyTotals",
        "TortoiseCallSink",
        "UsageCounts",
        "key_usage",
        "organization_usage",
        "prune_usage",
        "usage_range",
    ]


def test_every_domain_error_is_documented_and_a_domain_error() -> None:
    for name in errors.__all__:
        error = getattr(errors, name)
        assert error.__doc__, name
        assert issubclass(error, errors.DomainError)
