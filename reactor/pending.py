"""PendingSocket: one accepted socket's step before it becomes a connection.

A TLS handshake (reactor/tls.py) and a PROXY header (reactor/proxy.py) each watch a socket on
the loop, bounded by a timer, and report to whoever started them through two callbacks:
``on_done(sock, addr)`` with the socket to serve once the step succeeded, and
``on_end(self)`` once it is over either way. This is the part they share: leaving the loop
and letting go of the callbacks (``_finish``), and closing on failure (``cancel``).
Tests: tests/integration/test_tls.py, test_proxies.py.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .loop.base import Loop

__all__ = ["PendingSocket"]

S = TypeVar("S", bound=socket.socket)


class PendingSocket(Generic[S]):
    """The socket, its address, the loop, the two callbacks and the timer (armed by the
    subclass)."""

    __slots__ = ("_addr", "_loop", "_on_done", "_on_end", "_sock", "_timer")

    def __init__(
        self,
        loop: Loop,
        sock: S,
        addr: Any,
        on_done: Callable[[S, Any], object],
        on_end: Callable[[Any], object],
    ) -> None:
        self._loop = loop
        self._sock: S | None = sock
        self._addr = addr
        self._on_done: Callable[[S, Any], object] | None = on_done
        self._on_end: Callable[[Any], object] | None = on_end
        self._timer: Any = None

    def _finish(self) -> S | None:
        """Leave the loop and report the end (once); the callbacks are let go: they hold
        the server, and this object may outlive the step in a caller's frame."""
        sock, self._sock = self._sock, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if sock is not None:
            self._loop.remove_fd(sock)
        on_end = self._on_end
        self._on_done = self._on_end = None
        if on_end is not None:
            on_end(self)
        return sock

    def cancel(self) -> None:
        """Stop and close the socket (failure, timeout, server shutdown)."""
        sock = self._finish()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
