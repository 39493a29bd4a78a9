"""Reading a JSON request body as text the service can hold (the API's and GraphQL's).

A body that is not UTF-8, or whose JSON carries a lone surrogate (``"\\ud800"``: an escape
``json.loads`` turns into a character no UTF-8 text can hold), fails wherever the text is
written out later (a response, a log line, a database); refused here, it is a bad request.
The middleware's token endpoint reads its body the same way (``wfa_auth._json``); the
service takes its surrogate check from there (the service may import ``wfa_auth``, never the
reverse).
"""

from __future__ import annotations

import json
import re

from wfa_auth._json import has_lone_surrogate

__all__ = ["LoneSurrogateError", "has_lone_surrogate", "loads_json"]

# An escape for a surrogate; a valid pair (two of them) becomes one character in json.loads.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class LoneSurrogateError(ValueError):
    """A JSON body holds a lone surrogate."""


def loads_json(body: bytes | str) -> object:
    """``body`` parsed as JSON; ``ValueError`` when it is not UTF-8 (``UnicodeDecodeError``),
    not JSON (``json.JSONDecodeError``) or holds a lone surrogate (:class:`LoneSurrogateError`);
    ``RecursionError`` when it is nested too deeply."""
    # Strictly: json.loads(bytes) would let the UTF-8 bytes of a surrogate through.
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    value = json.loads(text)
    # The walk only when an escape could have made a surrogate (or text came with one).
    if (_SURROGATE_ESCAPE.search(text) or not text.isascii()) and has_lone_surrogate(value):
        raise LoneSurrogateError("a lone surrogate")
    return value
