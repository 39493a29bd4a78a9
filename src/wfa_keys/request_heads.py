"""Bounded request heads: the request line and headers counted as they arrive.

uvicorn's httptools protocol has no limit of its own on a request's head: httptools keeps
each header until its end arrives and uvicorn the target until the request line ends, so a
client can make the server hold a 64 MB header, or several, in memory. :class:`HeadGuard`
counts the bytes of the head being read, line by line, and says how many of the bytes just
received may go to the parser without passing a limit; the protocol
(:class:`~wfa_keys.transport.CoalescingHttpProtocol`) answers 431 when the head goes on past
that point. The limits are settings (``WFA_MAX_REQUEST_LINE_BYTES``, ``WFA_MAX_HEADER_BYTES``,
``WFA_MAX_REQUEST_HEAD_BYTES``; see docs/limits.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from wfa_keys.settings import Settings

__all__ = ["HeadGuard", "HeadLimits", "refusal_431"]


@dataclass(frozen=True, slots=True)
class HeadLimits:
    """Longest request line, longest header line (each with its CRLF), largest head."""

    request_line: int = Settings.max_request_line_bytes
    header: int = Settings.max_header_bytes
    head: int = Settings.max_request_head_bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> HeadLimits:
        """The limits ``settings`` give."""
        return cls(
            settings.max_request_line_bytes,
            settings.max_header_bytes,
            settings.max_request_head_bytes,
        )

    @classmethod
    def from_env(cls) -> HeadLimits:
        """The limits of this process's environment (each worker of ``serve --workers N`` and
        plain uvicorn read them as the app reads its settings)."""
        return cls.from_settings(Settings.from_env(os.environ))


class HeadGuard:
    """The bytes of one connection's request head, counted as they arrive.

    ``reading`` is True while the parser is reading a head or waiting for the next one; the
    protocol calls :meth:`head_ended` when the parser has the whole head and
    :meth:`next_head` when the request's body is complete.
    """

    __slots__ = ("_first_line", "_line", "_line_limit", "_total", "changes", "limits", "reading")

    def __init__(self, limits: HeadLimits) -> None:
        self.limits = limits
        self.reading = True
        #: Counts the calls of :meth:`head_ended` and :meth:`next_head`: a caller can tell
        #: whether the parser moved on while it fed bytes.
        self.changes = 0
        self._total = 0  # bytes of this head so far
        self._line = 0  # bytes of its current, unfinished line
        self._first_line = True  # the current line is the request line
        self._line_limit = 0  # a limit for the current line alone (see resync), or 0

    def next_head(self) -> None:
        """The request is read: what comes next is another head."""
        self.reading = True
        self.changes += 1
        self._total = self._line = self._line_limit = 0
        self._first_line = True

    def head_ended(self) -> None:
        """The parser has the whole head: what comes next is its body."""
        self.reading = False
        self.changes += 1

    def resync(self) -> None:
        """The head being read began in bytes fed without counting (pipelined behind a body,
        or behind another head in the same bytes): which of its lines this is, and how long
        it is so far, are unknown. The current line may have the larger of the line limits;
        the count starts here, so such a head may pass the limits by what went uncounted."""
        self._first_line = False
        self._line = 0
        self._line_limit = max(self.limits.request_line, self.limits.header)

    def accept(self, data: bytes, start: int = 0) -> int:
        """Counts ``data[start:]`` as head bytes up to the first byte that would pass a limit
        and returns its index: ``len(data)`` when every byte is within the limits.

        Whatever follows the head's end in ``data`` is counted too: the caller feeds the
        parser up to the index returned and refuses the head only if the parser has not
        moved on by then (:attr:`changes`), else calls :meth:`resync` and goes on.
        """
        limits = self.limits
        end = len(data)
        size = end - start
        if (
            self._total + size <= limits.head
            and self._line + size <= min(limits.request_line, limits.header)
            and self._ends_first_line(data, start)
        ):
            # No line can pass its limit in fewer bytes than the shorter one: a read of a
            # few small heads (nearly every read) is counted without looking at each line.
            newline = data.rfind(b"\n", start)
            if newline == -1:
                self._line += size
            else:
                self._line = end - newline - 1
                self._line_limit = 0
            self._total += size
            return end
        stop = min(end, start + limits.head - self._total)
        position = start
        while position < stop:
            limit = self._line_limit or (limits.request_line if self._first_line else limits.header)
            line_stop = min(stop, position + limit - self._line)
            newline = data.find(b"\n", position, line_stop)
            if newline == -1:
                self._line += line_stop - position
                position = line_stop
                break
            # A blank line before the request line (which the parser skips) is not it.
            if self._line + newline - position > 1:
                self._first_line = False
            self._line = self._line_limit = 0
            position = newline + 1
        self._total += position - start
        return position

    def _ends_first_line(self, data: bytes, start: int) -> bool:
        """False when the request line's end in ``data[start:]`` is not plain: a blank line
        before it (which the line-by-line count tells from the request line). Otherwise
        True, and the request line is over if its end is in ``data``."""
        if not self._first_line:
            return True
        newline = data.find(b"\n", start)
        if newline == -1:
            return True
        if self._line + newline - start <= 1:
            return False
        self._first_line = False
        return True


def refusal_431(limits: HeadLimits) -> bytes:
    """The whole 431 response, in the JSON shape of the service's API errors."""
    body = (
        '{"error":"request_header_fields_too_large","message":"The request line or headers '
        f"are too large: at most {limits.request_line} bytes for the request line, "
        f'{limits.header} for a header, {limits.head} in all."}}'
    ).encode()
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"cache-control: no-store\r\n"
        b"connection: close\r\n\r\n" + body
    )
