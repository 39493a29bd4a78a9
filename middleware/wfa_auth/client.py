"""A client helper: an ``httpx.Auth`` that calls the Workflow Automation API with a Bearer token.

Needs ``pip install 'wfa-auth[client]'``; httpx is imported here only, never by the rest of
``wfa_auth``. The Key ID and Key Secret go to the token endpoint once; the token it answers is
sent with every call until shortly before it expires, then exchanged again. A call answered
401 (the token was revoked, or the server restarted with in-memory tokens) gets one fresh
exchange and one retry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator

import anyio
import httpx

__all__ = ["TokenExchangeError", "WfaKeyAuth"]

DEFAULT_TOKEN_PATH = "/v1/auth/api-key/token"  # noqa: S105 -- a URL path


class TokenExchangeError(httpx.HTTPStatusError):
    """The token endpoint refused the Key ID and Key Secret (``response`` says why).

    Raised from the call that needed a token. The message carries the status and the
    server's ``error`` code, never the secret.
    """


class WfaKeyAuth(httpx.Auth):
    """``httpx.Client(auth=WfaKeyAuth(key_id, key_secret, token_url=...))``, sync or async.

    ``token_url`` is absolute, or relative to each request's URL (the default is the token
    path at the root of the request's host). A token is reused until ``refresh_before``
    seconds (at most half its lifetime) before its ``expires_in`` runs out. One instance may be
    shared by threads or tasks: one exchange at a time, the others wait and reuse its token.
    ``clock`` (monotonic seconds) is for tests.
    """

    # The API call's body is not needed; the token response is read explicitly.
    requires_response_body = False

    def __init__(
        self,
        key_id: str,
        key_secret: str,
        *,
        token_url: str | httpx.URL = DEFAULT_TOKEN_PATH,
        refresh_before: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key_id = key_id
        self._key_secret = key_secret
        self.token_url = httpx.URL(token_url)
        self.refresh_before = refresh_before
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._sync_lock = threading.Lock()
        self._async_lock = anyio.Lock()

    def __repr__(self) -> str:
        # The secret and the token never reach a log line through a repr.
        return f"WfaKeyAuth(key_id={self.key_id!r}, token_url={str(self.token_url)!r})"

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        with self._sync_lock:
            token = self._current_token()
            if token is None:
                exchange = self._token_request(request)
                token_response = yield exchange
                token_response.read()
                token = self._accept(exchange, token_response)
        response = yield self._authorized(request, token)
        if response.status_code != 401:
            return
        with self._sync_lock:
            token = self._token_after_refusal(token)
            if token is None:
                exchange = self._token_request(request)
                token_response = yield exchange
                token_response.read()
                token = self._accept(exchange, token_response)
        yield self._authorized(request, token)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        async with self._async_lock:
            token = self._current_token()
            if token is None:
                exchange = self._token_request(request)
                token_response = yield exchange
                await token_response.aread()
                token = self._accept(exchange, token_response)
        response = yield self._authorized(request, token)
        if response.status_code != 401:
            return
        async with self._async_lock:
            token = self._token_after_refusal(token)
            if token is None:
                exchange = self._token_request(request)
                token_response = yield exchange
                await token_response.aread()
                token = self._accept(exchange, token_response)
        yield self._authorized(request, token)

    def _current_token(self) -> str | None:
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token
        return None

    def _token_after_refusal(self, refused: str) -> str | None:
        """A token to retry with: another task's newer one, or None to exchange again."""
        if self._token is not None and self._token != refused:
            return self._current_token()
        self._token = None
        return None

    def _token_request(self, request: httpx.Request) -> httpx.Request:
        return httpx.Request(
            "POST",
            request.url.join(self.token_url),
            json={"key_id": self.key_id, "key_secret": self._key_secret},
            headers={"Accept": "application/json"},
        )

    def _accept(self, exchange: httpx.Request, response: httpx.Response) -> str:
        """Remember the token in ``response``; raise when the exchange was refused."""
        try:
            body = response.json() if response.status_code == 200 else None
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            error = _error_code(response)
            raise TokenExchangeError(
                f"The token endpoint answered {response.status_code} ({error}) for Key ID "
                f"{self.key_id}.",
                request=exchange,
                response=response,
            )
        token: str = body["access_token"]
        expires_in = body.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 0.0
        self._token = token
        self._refresh_at = self._clock() + lifetime - min(self.refresh_before, lifetime / 2)
        return token

    @staticmethod
    def _authorized(request: httpx.Request, token: str) -> httpx.Request:
        request.headers["Authorization"] = f"Bearer {token}"
        return request


def _error_code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return "not JSON"
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else "no error code"
