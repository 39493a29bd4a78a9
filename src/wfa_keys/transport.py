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
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Protocol

    _HTTPTOOLS = True
except ImportError:  # httptools comes with uvicorn[standard], but may be missing
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Protocol  # type: ignore[assignment]

    _HTTPTOOLS = False

from wfa_keys.request_heads import HeadGuard, HeadLimits, refusal_431

#: Seconds a connection refused with 431 stays open (not read) after the answer, so that the
#: client can read the answer before the close, which resets the connection when the client
#: sent more than was read.
LINGER_SECONDS = 1.0

_Data = bytes | bytearray | memoryview


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

    # Asked on every request (by uvicorn when a response completes, by CoalescingHttpProtocol
    # after each read): methods of their own, not __getattr__, which Python reaches only after
    # the usual lookup has failed with an AttributeError (about 0.4 us a call).
    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_write_buffer_size(self) -> int:
        held = self._held
        return self._transport.get_write_buffer_size() + (0 if held is None else len(held))

    def __getattr__(self, name: str) -> Any:
        # Everything else (reading, extra info, the protocol, flow control) is the
        # transport's own.
        return getattr(self._transport, name)


class CoalescingHttpProtocol(_Protocol):
    """uvicorn's HTTP protocol (httptools', uvicorn's ``auto`` choice; h11's when httptools
    is missing) over a :class:`WriteCoalescingTransport`, with bounded request heads.

    With httptools, each head is counted as it arrives (:class:`~wfa_keys.request_heads.
    HeadGuard`) and fed to the parser only up to the limits; a head that goes on past them is
    answered 431 and the connection closed, before any more of it is buffered. With h11, h11's
    own limit applies (uvicorn's ``h11_max_incomplete_event_size``, 16 KiB for a whole head,
    answered 400). ``head_limits`` (default: from the environment, ``WFA_MAX_*``) may be set
    on a subclass.
    """

    head_limits: HeadLimits | None = None
    _env_limits: HeadLimits | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard = HeadGuard(self._limits()) if _HTTPTOOLS else None
        self._refused = False

    @classmethod
    def _limits(cls) -> HeadLimits:
        if cls.head_limits is not None:
            return cls.head_limits
        if CoalescingHttpProtocol._env_limits is None:
            # Once a process: the environment is the one the app read its settings from.
            CoalescingHttpProtocol._env_limits = HeadLimits.from_env()
        return CoalescingHttpProtocol._env_limits

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalescing = WriteCoalescingTransport(transport, self.loop)
        super().connection_made(cast(asyncio.Transport, coalescing))

    def data_received(self, data: bytes) -> None:
        guard = self._guard
        if guard is None:
            super().data_received(data)
            return
        if self._refused:
            return  # refused: what still arrives is dropped, never buffered
        start, end = 0, len(data)
        while start < end:
            changes = guard.changes
            # A head: only as far as the limits allow. A body (bounded by uvicorn's flow
            # control and the app's body limit), and whatever follows it in this read: whole.
            stop = guard.accept(data, start) if guard.reading else end
            if stop > start:
                super().data_received(data[start:stop] if start or stop < end else data)
                if self._stopped():
                    return
            if guard.changes != changes:
                if guard.reading:
                    guard.resync()  # a new head began in what was just fed
            elif stop < end:
                self._refuse_head()  # the head open before goes on past a limit
                return
            start = stop

    def _stopped(self) -> bool:
        # Refused by uvicorn (a 400 closes the transport), or upgraded to a websocket, whose
        # protocol has the transport now.
        return self.transport.is_closing() or self.transport.get_protocol() is not self

    def _refuse_head(self) -> None:
        self._refused = True
        self.logger.warning("Request head too large: refused with 431.")
        if not self._in_flight():
            self._answer_431()
        # Else after the answers to the requests before it, in order (on_response_complete).

    def _in_flight(self) -> bool:
        return (self.cycle is not None and not self.cycle.response_complete) or bool(self.pipeline)

    def _answer_431(self) -> None:
        assert self._guard is not None
        self._unset_keepalive_if_required()
        transport = self.transport
        transport.write(refusal_431(self._guard.limits))
        if transport.can_write_eof():
            transport.write_eof()
            # Nothing more is read: what the client still sends waits in the kernel's buffer
            # (a closed window), costing this process nothing, until the close.
            self.flow.pause_reading()
            self.loop.call_later(LINGER_SECONDS, transport.close)
        else:
            transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refused and not self.transport.is_closing() and not self._in_flight():
            self._answer_431()

    def on_headers_complete(self) -> None:
        if self._guard is not None:
            self._guard.head_ended()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        if self._guard is not None:
            self._guard.next_head()
        super().on_message_complete()
