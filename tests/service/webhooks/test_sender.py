"""One POST: the timeout bounds the whole attempt (10 s unless told otherwise)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from wfa_keys.webhooks.guard import AddressGuard
from wfa_keys.webhooks.sender import Sender


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()
    for connection in accepted:
        connection.close()


def test_an_attempt_waits_ten_seconds_by_default() -> None:
    assert Sender(AddressGuard()).timeout == 10


async def test_a_receiver_that_never_answers_fails_the_attempt_at_the_timeout(
    silent_port: int,
) -> None:
    sender = Sender(AddressGuard(allow_insecure=True), timeout=0.5)
    outcome = await sender.send(
        f"http://127.0.0.1:{silent_port}/hook", "whsec_AAAA", "msg_1", b"{}", timestamp=1
    )
    await sender.aclose()
    assert not outcome.delivered
    assert outcome.error == "No answer within 0.5 s."
    assert outcome.duration_ms < 5000  # bounded: not the 10 s default, not forever
