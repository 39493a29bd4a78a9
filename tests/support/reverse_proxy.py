"""A tiny HTTP reverse proxy on 127.0.0.1, setting X-Forwarded-For/-Proto like nginx does.

One request per connection (it answers ``Connection: close``), enough for the tests of the
service behind a proxy: it replaces any ``X-Forwarded-*`` header the client sent with the
client's real address and the scheme it is told to claim.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

_HEAD_LIMIT = 65536


class ReverseProxy:
    """Forwards each request to ``upstream`` (``http://host:port``) with forwarded headers."""

    def __init__(self, upstream: str, *, proto: str = "https") -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.proto = proto
        self._server: asyncio.Server | None = None
        self.base_url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client_host = writer.get_extra_info("peername")[0]
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > _HEAD_LIMIT:
                return
            request_line, *header_lines = head.decode("latin1").split("\r\n")[:-2]
            headers = []
            length = 0
            for line in header_lines:
                name, _, value = line.partition(":")
                lowered = name.strip().lower()
                if lowered.startswith("x-forwarded-") or lowered == "connection":
                    continue  # never pass on what the client claims
                if lowered == "content-length":
                    length = int(value.strip())
                headers.append(line)
            body = await reader.readexactly(length) if length else b""
            headers += [
                f"X-Forwarded-For: {client_host}",
                f"X-Forwarded-Proto: {self.proto}",
                "Connection: close",
            ]
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
            upstream_writer.write(
                ("\r\n".join([request_line, *headers]) + "\r\n\r\n").encode("latin1") + body
            )
            await upstream_writer.drain()
            while chunk := await upstream_reader.read(65536):
                writer.write(chunk)
                await writer.drain()
            upstream_writer.close()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def reverse_proxy(upstream: str, *, proto: str = "https") -> AsyncIterator[ReverseProxy]:
    """A running :class:`ReverseProxy` in front of ``upstream`` for the block."""
    proxy = ReverseProxy(upstream, proto=proto)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
