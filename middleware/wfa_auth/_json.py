"""Reading a JSON request body as text a service can hold.

A body that is not UTF-8, or whose JSON carries a lone surrogate (``"\\ud800"``: an escape
``json.loads`` turns into a character no UTF-8 text can hold), fails wherever the text is
written out later (a response, a log line, a database); refused here, it is a bad request.
"""

from __future__ import annotations

import json
import re

# An escape for a surrogate; a valid pair (two of them) becomes one character in json.loads.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def has_lone_surrogate(value: object) -> bool:
    """Whether any string in ``value`` (a parsed JSON document, keys included) holds a
    surrogate code point."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def loads_json(body: bytes) -> object:
    """``body`` parsed as JSON; ``ValueError`` when it is not UTF-8, not JSON, nested too
    deeply or holds a lone surrogate."""
    text = body.decode("utf-8")  # strict: the UTF-8 bytes of a surrogate are refused too
    try:
        value = json.loads(text)
    except RecursionError:
        # json.loads recurses once per nesting level: '[' * 50_000 is unreadable like any other.
        raise ValueError("nested too deeply") from None
    if _SURROGATE_ESCAPE.search(text) is not None and has_lone_surrogate(value):
        raise ValueError("a lone surrogate")
    return value
