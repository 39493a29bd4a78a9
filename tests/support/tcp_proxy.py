"""A TCP proxy on 127.0.0.1 that makes the faults networks really make, between a process and
its database.

:class:`TcpProxy` forwards every connection to ``target``, and on demand:

- :meth:`~TcpProxy.go_down` / :meth:`~TcpProxy.come_back`: the database goes away cleanly
  (connections closed, new ones refused) and comes back on the same port;
- :meth:`~TcpProxy.fault` with :data:`FREEZE`: a half-open link. Bytes are held in both
  directions, nothing is forwarded and nothing is closed (a NAT entry that timed out, a
  swallowed route); :meth:`~TcpProxy.heal` delivers what was held;
- :data:`BLACKHOLE`: every byte is swallowed for good and new connections are accepted but
  swallowed too (a database whose packets vanish: no reset, no answer);
- :data:`DROP`: the connections are reset (RST) and new ones refused (a crash, a failover).

A fault applies to every connection (``only=None``), or only to the connections that sent a
``LISTEN`` (``only=LISTENERS``): the change feed's own connection, with the pool left working.

The bench (``bench/revocation.py --fault``) and the tests share this one proxy.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading

__all__ = ["BLACKHOLE", "DROP", "FAULTS", "FREEZE", "LISTENERS", "TcpProxy"]

_CHUNK = 65536
FREEZE = "freeze"
BLACKHOLE = "blackhole"
DROP = "drop"
FAULTS = (FREEZE, BLACKHOLE, DROP)
#: ``only=LISTENERS``: the fault hits the connections that sent a ``LISTEN`` only.
LISTENERS = "listeners"
#: A LISTEN statement (asyncpg quotes the channel), not the UNLISTEN of a pool's reset.
_LISTEN = re.compile(rb'(?<![A-Za-z])LISTEN\s+"', re.IGNORECASE)


class _Link:
    """One proxied connection: the two sockets, and whether it ever sent ``LISTEN``."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.listener = False
        self.sockets = (client, upstream)


class TcpProxy:
    """Forwards connections to ``target`` until told to fail (see the module's docstring)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._links: list[_Link] = []
        self._listener: socket.socket | None = None
        self._fault: str | None = None
        self._only: str | None = None
        self.port = self._listen(0)

    def _listen(self, port: int) -> int:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        bound: int = listener.getsockname()[1]
        return bound

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed: the database "went away"
            with self._lock:
                fault = self._fault if self._only is None else None
            if fault == DROP:
                _reset(client)
                continue
            if fault == BLACKHOLE:
                # Accepted, then never answered: the client waits for the server's first byte.
                threading.Thread(target=_swallow, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            link = _Link(client, upstream)
            with self._lock:
                self._links.append(link)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(link, source, sink), daemon=True).start()

    def _hit(self, link: _Link) -> str | None:
        """The fault that applies to ``link`` now (call with the lock held)."""
        if self._fault is None or (self._only == LISTENERS and not link.listener):
            return None
        return self._fault

    def _pump(self, link: _Link, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(_CHUNK):
                with self._lock:
                    if source is link.client and _LISTEN.search(data):
                        link.listener = True
                    # Held here, unsent, for as long as the link is frozen.
                    while (fault := self._hit(link)) == FREEZE:
                        self._changed.wait()
                if fault == BLACKHOLE:
                    continue
                if fault == DROP:
                    break
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def fault(self, kind: str, *, only: str | None = None) -> None:
        """Start a fault (:data:`FAULTS`) on every link, or on the ``LISTENERS`` only."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            self._fault, self._only = kind, only
            hit = [link for link in self._links if self._hit(link) is not None]
            self._changed.notify_all()
        if kind == DROP:
            for link in hit:
                for sock in link.sockets:
                    _reset(sock)

    def heal(self) -> None:
        """End the fault: held bytes flow again, new connections are forwarded."""
        with self._lock:
            self._fault = self._only = None
            self._changed.notify_all()

    def go_down(self) -> None:
        """Refuse new connections and cut the open ones."""
        if self._listener is not None:
            # close() alone does not wake a thread blocked in accept(); shutdown() does.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            for sock in link.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def cut(self) -> None:
        """Cut the open connections and keep accepting new ones (a dropped link)."""
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            for sock in link.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def come_back(self) -> None:
        """Accept connections again, on the same port."""
        self._listen(self.port)

    def close(self) -> None:
        """Stop for good; whatever was held is released and closed."""
        self.heal()
        self.go_down()


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP reset rather than an orderly close."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _swallow(sock: socket.socket) -> None:
    """Read and discard whatever ``sock`` sends, until it closes."""
    with contextlib.suppress(OSError), sock:
        while sock.recv(_CHUNK):
            pass
