"""POSTing one signed message to one endpoint, through the SSRF guard.

The host is resolved and checked (:class:`~wfa_keys.webhooks.guard.AddressGuard`) right
before the request, and the request connects to the address that was checked: the URL is
rewritten to that address, the ``Host`` header and the TLS server name (SNI and certificate
check) keep the name. Redirects are not followed (a 3xx is a failure); at most 64 KiB of the
response is read; the whole attempt is bounded by the timeout (10 s by default).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from wfa_keys.webhooks.guard import AddressGuard, RefusedUrl
from wfa_keys.webhooks.signing import sign

__all__ = ["MAX_RESPONSE_BYTES", "Outcome", "Sender"]

MAX_RESPONSE_BYTES = 64 * 1024
DEFAULT_TIMEOUT = 10.0


async def _none() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt gave: delivered (a 2xx), the status code, an error, how long."""

    delivered: bool
    status_code: int | None
    duration_ms: int
    error: str | None = None


class Sender:
    """Sends messages; ``transport`` replaces the network in tests (it must see no request
    the guard refuses)."""

    def __init__(
        self,
        guard: AddressGuard,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str = "wfa-keys-webhooks/1",
    ) -> None:
        self.guard = guard
        self.timeout = timeout
        self.user_agent = user_agent
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: it would bypass the guard
            # No pooled connections: the pool is keyed by the address connected to, so a
            # connection verified for one host name would carry another name's request.
            limits=httpx.Limits(max_keepalive_connections=0),
            timeout=timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        """Close the connections."""
        await self._client.aclose()

    async def send(
        self, url: str, secret: str, message_id: str, body: bytes, *, timestamp: int
    ) -> Outcome:
        """POST ``body`` to ``url`` signed for ``timestamp``; never raises for the network."""
        started = time.monotonic()

        def outcome(delivered: bool, code: int | None, error: str | None = None) -> Outcome:
            took = round((time.monotonic() - started) * 1000)
            return Outcome(delivered, code, took, error)

        try:
            target = await self.guard.check(url)
        except RefusedUrl as exc:
            return outcome(False, None, str(exc)[:200])
        headers = {
            "Host": target.host_header,
            "Content-Type": "application/json",
            "User-Agent": self.user_agent,
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, message_id, timestamp, body),
        }
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        request = self._client.build_request(
            "POST", target.connect_url, headers=headers, content=body, extensions=extensions
        )
        try:
            # httpx's timeout bounds each read; this bounds the whole attempt, so that a
            # receiver trickling bytes cannot hold the worker.
            async with asyncio.timeout(self.timeout):
                response = await self._client.send(request, stream=True)
                try:
                    read = 0
                    # A body read already (by a test transport) has nothing left to stream.
                    chunks = response.aiter_raw() if not response.is_stream_consumed else _none()
                    async for chunk in chunks:
                        read += len(chunk)
                        if read >= MAX_RESPONSE_BYTES:
                            break  # the rest is not read: a receiver cannot make us buffer it
                finally:
                    await response.aclose()
        except (httpx.TimeoutException, TimeoutError):
            return outcome(False, None, f"No answer within {self.timeout:g} s.")
        except httpx.HTTPError as exc:
            return outcome(False, None, f"Could not connect ({type(exc).__name__}).")
        code = response.status_code
        if 200 <= code < 300:
            return outcome(True, code)
        if 300 <= code < 400:
            return outcome(False, code, "Redirects are not followed.")
        return outcome(False, code, f"The receiver answered {code}.")
