"""Scopes and address allow-lists: what a key may be given, in canonical form."""

from __future__ import annotations

import pytest

from wfa_keys.limits import MAX_ALLOWED_CIDRS
from wfa_keys.scopes import ScopeError, all_scope_names, normalize_cidrs, normalize_scopes


def test_omitted_scopes_mean_every_known_scope_but_keys_verify() -> None:
    assert normalize_scopes(None) == ["workflows:read", "workflows:write"]
    assert all_scope_names() == ["workflows:read", "workflows:write", "keys:verify"]


def test_keys_verify_is_granted_only_when_asked_for() -> None:
    assert normalize_scopes(["keys:verify"]) == ["keys:verify"]


def test_scopes_are_deduplicated_and_kept_in_documented_order() -> None:
    assert normalize_scopes(["workflows:write", "workflows:read", "workflows:write"]) == [
        "workflows:read",
        "workflows:write",
    ]


def test_no_scope_at_all_is_allowed() -> None:
    assert normalize_scopes([]) == []


@pytest.mark.parametrize("bad", ["workflows:delete", "", "WORKFLOWS:READ", "x" * 5000, "\ud800"])
def test_an_unknown_scope_is_refused_with_the_known_ones_named(bad: str) -> None:
    with pytest.raises(ScopeError, match="workflows:read, workflows:write") as error:
        normalize_scopes(["workflows:read", bad])
    assert len(str(error.value)) < 200


def test_networks_are_stored_in_canonical_form_and_addresses_become_single_hosts() -> None:
    assert normalize_cidrs([" 203.0.113.0/24", "2001:DB8::/32", "198.51.100.7", "::1"]) == [
        "203.0.113.0/24",
        "2001:db8::/32",
        "198.51.100.7/32",
        "::1/128",
    ]


def test_omitted_or_empty_networks_mean_anywhere() -> None:
    assert normalize_cidrs(None) == normalize_cidrs([]) == []


@pytest.mark.parametrize(
    "bad", ["10.0.0.1/8", "300.1.1.1/32", "10.0.0.0/33", "example.com", "", "10.0.0.0/8; drop"]
)
def test_a_network_that_is_not_exact_cidr_is_refused(bad: str) -> None:
    with pytest.raises(ScopeError, match="CIDR"):
        normalize_cidrs([bad])


def test_at_most_twenty_networks() -> None:
    networks = [f"10.0.{i}.0/24" for i in range(MAX_ALLOWED_CIDRS + 1)]

    assert len(normalize_cidrs(networks[:MAX_ALLOWED_CIDRS])) == MAX_ALLOWED_CIDRS
    with pytest.raises(ScopeError, match="at most 20"):
        normalize_cidrs(networks)
