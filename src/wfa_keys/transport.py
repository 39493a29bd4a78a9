"""One write per response: uvicorn's HTTP protocols over a transport that joins a response's
start and its body.

uvicorn writes a response's status line and headers to the socket when the app sends
``http.response.start``, and its body when the app sends ``http.response.body``: two
system calls and, on TCP with ``TCP_NODELAY`` (uvloop's and asyncio's default), two
segments for a response that fits in one. On loopback a write costs the server as much as
a warm API call's own Python, so the second one is a large part of what a call costs.

:class:`WriteCoalescingTransport` holds a write back until the next write, which then goes
out together with it in one ``writelines`` (one system call), or until the end of the
event loop's current turn (``call_soon``), whichever comes first: a response whose body
follows its start in the same turn (Starlette's ``Response`` sends both at once) is one
write; a streamed one loses nothing but that turn. At most one write is held, so the
transport's own buffer and flow control see everything else as before. ``close`` and
``write_eof`` send what is held first; ``abort`` drops it, as it drops the transport's buffer.

``wfa-keys serve`` gives uvicorn :class:`CoalescingHttpProtocol` as its ``http`` option;
plain ``uvicorn`` takes it as ``--http wfa_keys.transport:CoalescingHttpProtocol`` (without
it, the app works the same, with two writes a response). A websocket upgraded from such a
connection writes through the same transport.

It reaches into uvicorn's internals (it subclasses its protocol, which must keep the
transport ``connection_made`` is given): :data:`TESTED_UVICORN` lists the releases it was
tested with, and :func:`http_protocol` gives uvicorn's own protocol with any other (a test
fails when the installed uvicorn is not listed, so that an upgrade is checked, not guessed).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import uvicorn

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Protocol
except ImportError:  # httptools comes with uvicorn[standard], but may be missing
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Protocol  # type: ignore[assignment]

_Data = bytes | bytearray | memoryview

#: The uvicorn releases (major.minor) this module was tested with.
TESTED_UVICORN = ("0.54", "0.55")

logger = logging.getLogger("wfa_keys.transport")


def http_protocol(version: str = uvicorn.__version__) -> type[asyncio.Protocol] | str:
    """uvicorn's ``http`` option: :class:`CoalescingHttpProtocol` with a uvicorn release of
    :data:`TESTED_UVICORN`, else ``"auto"`` (uvicorn's own, two writes a response), with a
    warning."""
    if ".".join(version.split(".")[:2]) in TESTED_UVICORN:
        return CoalescingHttpProtocol
    logger.warning(
        "uvicorn %s is not a release the coalescing transport was tested with (%s): "
        "serving with uvicorn's own HTTP protocol",
        version,
        ", ".join(TESTED_UVICORN),
    )
    return "auto"


class WriteCoalescingTransport:
    """Wraps ``transport``: each write is held until the next one or the end of the event
    loop's turn, so that a response's start and body leave in one system call."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: _Data) -> None:
        held = self._held
        if held is None:
            # A copy of anything but bytes: the caller may reuse its buffer once we return.
            self._held = bytes(data)
            self._loop.call_soon(self._release)
        else:
            self._held = None
            self._transport.writelines((held, data))

    def writelines(self, chunks: Any) -> None:
        self._release()
        self._transport.writelines(chunks)

    def _release(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            # A connection lost meanwhile takes no more data (the transport would count the
            # write and warn after a few).
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self._release()
        self._transport.close()

    def write_eof(self) -> None:
        self._release()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        held = self._held
        return self._transport.get_write_buffer_size() + (0 if held is None else len(held))

    def __getattr__(self, name: str) -> Any:
        # Everything else (reading, extra info, the protocol, flow control) is the
        # transport's own.
        return getattr(self._transport, name)


class CoalescingHttpProtocol(_Protocol):
    """uvicorn's HTTP protocol (httptools', uvicorn's ``auto`` choice; h11's when httptools
    is missing) over a :class:`WriteCoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalescing = WriteCoalescingTransport(transport, self.loop)
        super().connection_made(cast(asyncio.Transport, coalescing))
