"""TLS for the server: the context, and the non-blocking handshake that runs on the loop.

Owns ``make_context`` (a server SSLContext whose sockets report "would block" the way plain
sockets do), ``TLSHandshake`` (one accepted socket wrapped and handshaken on the loop, bounded
by a timeout), which ``Server``'s accept path starts when it has an ``ssl_context`` and which
reports back through callbacks. After the handshake the Connection gets the SSLSocket and
never knows: ``NonBlockingSSLSocket`` turns ``SSLWantReadError``/``SSLWantWriteError``
(subclasses of OSError, not of BlockingIOError) into BlockingIOError, which the Connection and
the Writer already treat as "try again when the loop says so". It must not parse HTTP.

A hijack on a TLS connection hands over the SSLSocket (reads and writes on it are decrypted
and encrypted) and the pair with the decrypted bytes already read. Tests:
tests/integration/test_tls.py.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

from .loop.base import Loop
from .pending import PendingSocket

__all__ = [
    "NonBlockingSSLSocket",
    "TLSHandshake",
    "make_context",
    "wrap_accepted",
]

log = logging.getLogger("reactor.tls")


class NonBlockingSSLSocket(ssl.SSLSocket):
    """An SSLSocket whose "would block" errors are BlockingIOError, like a plain socket's."""

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        try:
            return super().recv(buflen, flags)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise BlockingIOError("TLS: no complete record yet") from None

    def recv_into(self, buffer: Any, nbytes: int | None = None, flags: int = 0) -> int:
        try:
            return super().recv_into(buffer, nbytes, flags)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise BlockingIOError("TLS: no complete record yet") from None

    def send(self, data: Any, flags: int = 0) -> int:
        try:
            return super().send(data, flags)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise BlockingIOError("TLS: the socket is full") from None


def make_context(
    certfile: str, keyfile: str | None = None, password: str | None = None
) -> ssl.SSLContext:
    """A server SSLContext (TLS 1.2+, HTTP/1.1 by ALPN) loading ``certfile``/``keyfile``;
    raises OSError or ssl.SSLError when they cannot be loaded."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile, keyfile, password)
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.sslsocket_class = NonBlockingSSLSocket
    return ctx


def wrap_accepted(ctx: ssl.SSLContext, sock: socket.socket) -> ssl.SSLSocket:
    """``sock``, just accepted, wrapped for a server-side handshake; OSError (ssl.SSLError is
    one) if the client is already gone, ``sock`` then closed.

    A client that reset before the accept leaves a socket whose getpeername() fails with
    ENOTCONN; SSLSocket's constructor then reads from it and raises ConnectionResetError, or
    SSLError ("Closed before TLS handshake with data in recv buffer") if the ClientHello's
    bytes were in flight, after it took the fd over from ``sock`` (the half-made SSLSocket,
    unreachable, would close it only when collected). So ask first; only a reset between the
    two calls still reaches the constructor."""
    try:
        sock.getpeername()
        return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    except OSError:
        sock.close()
        raise


class TLSHandshake(PendingSocket[ssl.SSLSocket]):
    """Wraps one accepted socket and drives its handshake with loop events. It reports to
    whoever started it through two callbacks and knows nothing of the server: ``on_done(sock,
    addr)`` with the SSLSocket once the handshake succeeded, and ``on_end(self)`` once it is
    over either way (succeeded, failed, timed out or cancelled). On failure the socket is
    closed here. The constructor raises OSError when the client is gone already
    (``wrap_accepted``); the socket is then closed too."""

    __slots__ = ("_timeout",)

    def __init__(
        self,
        loop: Loop,
        ctx: ssl.SSLContext,
        sock: socket.socket,
        addr: Any,
        *,
        on_done: Callable[[ssl.SSLSocket, Any], object],
        on_end: Callable[[TLSHandshake], object],
        timeout: float,
    ) -> None:
        super().__init__(loop, wrap_accepted(ctx, sock), addr, on_done, on_end)
        self._timeout = timeout  # ServerConfig.tls_handshake_timeout

    def start(self) -> None:
        self._timer = self._loop.call_later(self._timeout, self._on_timeout)
        self._step()

    def _step(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._wait(writable=False)
            return
        except ssl.SSLWantWriteError:
            self._wait(writable=True)
            return
        except (OSError, ValueError) as exc:  # SSLError, reset, EOF...
            log.info("TLS handshake with %s failed: %s", self._addr, exc)
            self.cancel()
            return
        on_done = self._on_done
        self._finish()
        if on_done is not None:
            on_done(sock, self._addr)

    def _wait(self, writable: bool) -> None:
        sock = self._sock
        assert sock is not None
        loop = self._loop
        loop.remove_fd(sock)
        if writable:
            loop.add_writer(sock, self._step)
        else:
            loop.add_reader(sock, self._step)

    def _on_timeout(self) -> None:
        self._timer = None
        if self._sock is not None:
            log.info("TLS handshake with %s timed out", self._addr)
            self.cancel()
