"""Request bodies no text can come from: lone surrogates and bytes that are not UTF-8.

The fuzz cases that found plain-text 500s (a lone surrogate in ``operationName``, a body not
UTF-8), as hypothesis strategies: :func:`bad_bodies` corrupts a good JSON document anywhere
(a value, a key, a nested variable), escaped as ``json.dumps`` writes it (``"\\ud800"``),
as the raw UTF-8 bytes of a surrogate, or with bytes that are not UTF-8 at all.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

#: A lone surrogate: a code point UTF-8 cannot encode.
SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
#: Byte sequences that are not UTF-8: stray continuation bytes, truncated sequences, the
#: UTF-8-like encodings of surrogates, overlong forms, code points past U+10FFFF.
NOT_UTF8 = st.sampled_from(
    [b"\xff", b"\xfe", b"\x80", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xed\xbf\xbf",
     b"\xc0\xaf", b"\xf4\x90\x80\x80"]
)  # fmt: skip


def with_surrogate() -> st.SearchStrategy[str]:
    """Text holding at least one lone surrogate, anywhere in it."""
    return st.tuples(st.text(max_size=12), SURROGATE, st.text(max_size=12)).map("".join)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document a string could go: its values, nested ones too."""
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, (*path, index)))
    return found


def _replaced(document: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, *rest = path
    copy: Any = dict(document) if isinstance(document, dict) else list(document)
    copy[head] = _replaced(document[head], tuple(rest), new)
    return copy


@st.composite
def _with_surrogate_somewhere(draw: st.DrawFn, document: dict[str, Any]) -> bytes:
    bad = draw(with_surrogate())
    place = draw(st.sampled_from([*_paths(document), "a new key"]))
    if place == "a new key":
        corrupted = {**document, bad: draw(st.text(max_size=5))}
    else:
        corrupted = _replaced(document, place, bad)
    if draw(st.booleans()):
        return json.dumps(corrupted).encode()  # escaped: "\ud800"
    # The raw bytes of a surrogate, which json.loads(bytes) would decode ("surrogatepass").
    return json.dumps(corrupted, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def _not_utf8_somewhere(draw: st.DrawFn, document: dict[str, Any]) -> bytes:
    body = json.dumps(document, ensure_ascii=False).encode()
    at = draw(st.integers(0, len(body)))
    return body[:at] + draw(NOT_UTF8) + body[at:]


def bad_bodies(document: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """``document`` as JSON, corrupted by a lone surrogate or bytes not UTF-8."""
    return st.one_of(_with_surrogate_somewhere(document), _not_utf8_somewhere(document))


def examples(strategy: st.SearchStrategy[bytes], count: int) -> list[bytes]:
    """Up to ``count`` examples of ``strategy``, drawn now (the requests are sent by async
    tests, which hypothesis's ``@given`` cannot drive)."""
    drawn: list[bytes] = []

    @hypothesis_settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(body=strategy)
    def collect(body: bytes) -> None:
        drawn.append(body)

    collect()
    return drawn
