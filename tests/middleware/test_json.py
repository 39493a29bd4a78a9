"""The token endpoint's reading of its body (wfa_auth._json)."""

from __future__ import annotations

import pytest

from wfa_auth._json import has_lone_surrogate, loads_json


@pytest.mark.parametrize(
    "body",
    [
        b'{"key_id": "\\ud800"}',
        b'{"\\udc00": "x"}',
        b'{"key_id": "\xed\xa0\x80"}',
        b'{"key_id": "\xff"}',
        b'{"key_id": ',
        b"[" * 50_000,
    ],
)
def test_bodies_no_text_can_come_from_are_value_errors(body: bytes) -> None:
    with pytest.raises(ValueError, match=r"utf-8|Expecting|surrogate|nested"):
        loads_json(body)


def test_valid_pairs_and_escaped_backslashes_are_text() -> None:
    assert loads_json(b'{"k": "\\ud83d\\ude00", "b": "\\\\ud800"}') == {
        "k": "\U0001f600",
        "b": "\\ud800",
    }
    assert not has_lone_surrogate(["x", {"y": 1}])
    assert has_lone_surrogate(["x", {"y": "\udfff"}])
