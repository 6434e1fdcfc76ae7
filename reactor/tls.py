"""TLS for the server: the context, and the non-blocking handshake that runs on the loop.

Owns ``make_context`` (a server SSLContext whose sockets report "would block" the way plain
sockets do), ``TLSHandshake`` (one accepted socket wrapped and handshaken on the loop, bounded
by a timeout) and ``start_handshake``, the one function ``Server``'s accept path calls when it
has an ``ssl_context``. After the handshake the Connection gets the SSLSocket and never knows:
``NonBlockingSSLSocket`` turns ``SSLWantReadError``/``SSLWantWriteError`` (subclasses of
OSError, not of BlockingIOError) into BlockingIOError, which the Connection and the Writer
already treat as "try again when the loop says so". It must not parse HTTP.

A hijack on a TLS connection hands over the SSLSocket (reads and writes on it are decrypted
and encrypted) and the pair with the decrypted bytes already read. Tests:
tests/integration/test_tls.py.
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Server

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "NonBlockingSSLSocket",
    "TLSHandshake",
    "make_context",
    "start_handshake",
]

log = logging.getLogger("reactor.tls")

#: Seconds a client gets to complete the TLS handshake (nginx's ssl_handshake_timeout: 60 s;
#: a client that connects and sends nothing is cut off like a slow request head).
HANDSHAKE_TIMEOUT = 10.0


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


def start_handshake(server: Server, sock: socket.socket, addr: Any) -> TLSHandshake:
    """Called by the server's accept path for every accepted socket when it serves TLS."""
    ctx = server._ssl_context
    assert ctx is not None
    return TLSHandshake(server, ctx, sock, addr)


class TLSHandshake:
    """Wraps one accepted socket and drives its handshake with loop events; on success hands
    the SSLSocket to a new Connection, on failure or timeout closes it."""

    __slots__ = ("_addr", "_loop", "_server", "_sock", "_timer")

    def __init__(
        self,
        server: Server,
        ctx: ssl.SSLContext,
        sock: socket.socket,
        addr: Any,
        timeout: float | None = None,
    ) -> None:
        self._server = server
        self._loop = server.loop
        self._addr = addr
        self._sock: ssl.SSLSocket | None = ctx.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )
        if timeout is None:
            timeout = HANDSHAKE_TIMEOUT
        self._timer = self._loop.call_later(timeout, self._on_timeout)
        server._handshakes.add(self)
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
            self._fail()
            return
        self._done(sock)

    def _wait(self, writable: bool) -> None:
        sock = self._sock
        assert sock is not None
        loop = self._loop
        loop.remove_fd(sock)
        if writable:
            loop.add_writer(sock, self._step)
        else:
            loop.add_reader(sock, self._step)

    def _finish(self) -> ssl.SSLSocket | None:
        sock, self._sock = self._sock, None
        self._timer.cancel()
        if sock is not None:
            self._loop.remove_fd(sock)
        server = self._server
        if self in server._handshakes:
            server._handshakes.discard(self)
            server._below_limit_again()
        return sock

    def _fail(self) -> None:
        sock = self._finish()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _on_timeout(self) -> None:
        if self._sock is not None:
            log.info("TLS handshake with %s timed out", self._addr)
            self._fail()

    def _done(self, sock: ssl.SSLSocket) -> None:
        self._finish()
        server = self._server
        if server._shutting_down:
            sock.close()
            return
        server._start_connection(sock, self._addr)
