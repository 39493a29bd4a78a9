"""HeaderCredentialExtractor: which headers carry credentials, and which are malformed."""

from __future__ import annotations

import base64

import pytest

from wfa_auth import BearerCredentials, HeaderCredentialExtractor, KeyCredentials
from wfa_auth.base import MalformedCredentials


def scope(*headers: tuple[str, str], query: bytes = b"") -> dict[str, object]:
    raw = [(k.lower().encode(), v.encode("latin-1")) for k, v in headers]
    return {"type": "http", "headers": raw, "query_string": query}


def test_bearer_token_is_found() -> None:
    found = HeaderCredentialExtractor().extract(scope(("Authorization", "bearer abc.DEF-1_~+/=")))
    assert found == BearerCredentials("abc.DEF-1_~+/=")


def test_basic_splits_at_the_first_colon() -> None:
    raw = base64.b64encode(b"wfak_id:se:cret").decode()
    found = HeaderCredentialExtractor().extract(scope(("Authorization", f"Basic {raw}")))
    assert found == KeyCredentials("wfak_id", "se:cret")


def test_key_headers_are_found() -> None:
    found = HeaderCredentialExtractor().extract(
        scope(("X-API-Key-ID", "wfak_id"), ("X-API-Key-Secret", "wfas_s"))
    )
    assert found == KeyCredentials("wfak_id", "wfas_s")


def test_no_headers_and_query_strings_mean_no_credentials() -> None:
    query = b"key_id=wfak_id&key_secret=wfas_s&access_token=t"
    assert HeaderCredentialExtractor().extract(scope(query=query)) is None


def test_disabled_modes_are_not_accepted() -> None:
    extractor = HeaderCredentialExtractor(bearer=False, basic=False, key_headers=False)
    with pytest.raises(MalformedCredentials):
        extractor.extract(scope(("Authorization", "Bearer abc")))
    assert extractor.extract(scope(("X-API-Key-ID", "a"), ("X-API-Key-Secret", "b"))) is None


@pytest.mark.parametrize(
    "headers",
    [
        (("Authorization", "Bearer a"), ("Authorization", "Bearer b")),
        (("Authorization", "Bearer a b"),),
        (("X-API-Key-Secret", "wfas_s"),),
        (("X-API-Key-ID", "x" * 2000), ("X-API-Key-Secret", "s")),
        (("Authorization", "Basic " + base64.b64encode(b"\xff:\xfe").decode()),),
    ],
)
def test_ambiguous_or_broken_headers_are_malformed(headers: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(MalformedCredentials):
        HeaderCredentialExtractor().extract(scope(*headers))


def test_credential_reprs_hide_the_secret() -> None:
    assert "wfas_s" not in repr(KeyCredentials("wfak_id", "wfas_s"))
    assert "s3cr3t-token" not in repr(BearerCredentials("s3cr3t-token"))
