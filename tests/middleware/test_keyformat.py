"""Properties of the key format: what secret scanners and the middleware rely on."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from wfa_auth._keyformat import (
    BASE62,
    SECRET_BODY_LENGTH,
    SECRET_PATTERN,
    SECRET_PREFIX,
    SECRET_SCAN_REGEX,
    base62_checksum,
    generate_key_id,
    generate_key_secret,
    is_valid_key_id,
    is_valid_key_secret,
)

_ANY_CHARACTER = st.characters(codec="utf-8")


def test_every_generated_key_id_and_secret_matches_its_pattern_and_checksum() -> None:
    for _ in range(2000):
        key_id = generate_key_id()
        secret = generate_key_secret()

        assert is_valid_key_id(key_id)
        match = SECRET_PATTERN.match(secret)
        assert match is not None
        assert base62_checksum(match.group(1)) == match.group(2)
        assert is_valid_key_secret(secret)
        assert re.search(SECRET_SCAN_REGEX, f"leaked: {secret}.") is not None


_BODY = st.text(alphabet=BASE62, min_size=SECRET_BODY_LENGTH, max_size=SECRET_BODY_LENGTH)


@given(_BODY)
def test_any_base62_body_with_its_checksum_is_a_valid_secret(body: str) -> None:
    assert is_valid_key_secret(SECRET_PREFIX + body + base62_checksum(body))


@given(st.text(alphabet=BASE62, min_size=20, max_size=20))
def test_any_base62_key_id_body_is_a_valid_key_id(body: str) -> None:
    assert is_valid_key_id("wfak_" + body)
    assert not is_valid_key_id("wfas_" + body)


@settings(max_examples=2000)
@given(position=st.integers(min_value=0, max_value=42), replacement=_ANY_CHARACTER)
def test_changing_any_single_character_of_a_secret_breaks_it(
    position: int, replacement: str
) -> None:
    secret = generate_key_secret()
    if secret[position] == replacement:
        replacement = "1" if replacement == "0" else "0"  # still one changed character
    corrupted = secret[:position] + replacement + secret[position + 1 :]

    assert not is_valid_key_secret(corrupted)


@given(st.text(max_size=60))
def test_arbitrary_text_is_never_taken_for_a_secret_unless_well_formed(text: str) -> None:
    if is_valid_key_secret(text):
        body = text[5:37]
        assert text.startswith("wfas_")
        assert base62_checksum(body) == text[37:]


def test_no_two_of_100000_generated_secrets_collide() -> None:
    secrets_seen = {generate_key_secret() for _ in range(100_000)}

    assert len(secrets_seen) == 100_000


def test_checksum_is_six_base62_characters_for_every_crc_value() -> None:
    for body in ("", "0" * 32, "z" * 32, "wfa"):
        checksum = base62_checksum(body)
        assert len(checksum) == 6
        assert set(checksum) <= set(BASE62)


def test_truncated_or_extended_or_misprefixed_secrets_are_refused() -> None:
    secret = generate_key_secret()

    assert not is_valid_key_secret(secret[:-1])
    assert not is_valid_key_secret(secret + "0")
    assert not is_valid_key_secret("wfak_" + secret[5:])
    assert not is_valid_key_secret(" " + secret)
    assert not is_valid_key_secret(secret + "\n")
