"""Reading JSON bodies: text the service can hold, or a ValueError."""

from __future__ import annotations

import json

import pytest

from wfa_keys.json_body import LoneSurrogateError, has_lone_surrogate, loads_json


@pytest.mark.parametrize(
    ("body", "value"),
    [
        (b'{"name": "plain"}', {"name": "plain"}),
        # One emoji as json.dumps escapes it: a valid pair, one character.
        (b'{"name": "\\ud83d\\ude00"}', {"name": "\U0001f600"}),
        ('{"name": "é \U0001f600"}'.encode(), {"name": "é \U0001f600"}),
        # An escaped backslash: the text "\ud800", no surrogate.
        (b'{"name": "\\\\ud800"}', {"name": "\\ud800"}),
    ],
)
def test_text_any_utf8_can_hold_is_read(body: bytes, value: object) -> None:
    assert loads_json(body) == value


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"name": "\\ud800"}', LoneSurrogateError),
        (b'{"\\udfff": 1}', LoneSurrogateError),
        (b'{"a": [{"b": ["\\uDBFF x"]}]}', LoneSurrogateError),
        (b'{"name": "\xed\xa0\x80"}', UnicodeDecodeError),  # a surrogate's raw bytes
        (b'{"name": "\xff"}', UnicodeDecodeError),
        (b'{"name": ', json.JSONDecodeError),
    ],
)
def test_bodies_no_text_can_come_from_are_value_errors(
    body: bytes, error: type[ValueError]
) -> None:
    with pytest.raises(error):
        loads_json(body)
    assert issubclass(error, ValueError)


def test_a_surrogate_in_text_already_decoded_is_found() -> None:
    assert has_lone_surrogate({"k": ["x", {"y": "z\udc00"}]})
    assert not has_lone_surrogate({"k": ["x", {"y": "z\U0001f600"}], "n": 1, "f": None})
    with pytest.raises(LoneSurrogateError):
        loads_json('{"name": "\ud800"}')
