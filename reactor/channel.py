"""Channel: what a Request and its ResponseWriter may ask of their connection, and
ChannelSide, the connection's side of it.

The one interface between the handler-facing objects (reactor/request.py, response.py) and
the connection that serves them (reactor/connection.py implements it). They never touch the
connection's private attributes and never import connection.py; anything else that speaks
HTTP/1.1 on a socket (a test double, another transport) can serve them by providing this.
A Request and ResponseWriter hold their channel only while their request runs: the
connection detaches them when it ends, so they never keep it alive.

ChannelSide is a mixin with no slots of its own that reactor/connection.py's Connection
inherits: the services it gives a request and its response (body waits, drain, files,
hijack), written against the transport and the protocol; the connection supplies the rest
(``config``, ``start_response``, ``_flush_now``...). It must not import connection.py.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .buffers import BufferPair, Reader, Writer
from .config import ServerConfig
from .deadline import BODY_TIMEOUT
from .errors import BrokenConnectionError, ConnectionClosedError
from .http.headers import Headers
from .http.protocol import ProtocolContext, ServerProtocol
from .http.state import CLOSED, HIJACKED, ConnEvent, ConnState, HookState
from .loop.base import Loop
from .loop.futures import Future

if TYPE_CHECKING:
    from .transport import FileBody

__all__ = ["Channel", "ChannelSide", "ConnectionHost"]


class Channel(Protocol):
    """A connection as its request and response see it."""

    @property
    def loop(self) -> Loop:
        """The loop the connection runs on (for futures)."""

    @property
    def config(self) -> ServerConfig:
        """The server's configuration (limits, buffer sizes)."""

    @property
    def reader(self) -> Reader:
        """Bytes received and not consumed: the request body is read from here."""

    @property
    def remote_addr(self) -> Any:
        """The peer's address; None once the socket is closed."""

    @property
    def local_addr(self) -> Any:
        """The address the connection was accepted on; None once the socket is closed."""

    @property
    def hijacked(self) -> bool:
        """Whether a handler took the connection over."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue output bytes (sent at the latest when the request ends)."""

    def start_response(
        self,
        status: int,
        headers: Headers,
        version: str,
        body_size: int,
        final: bool,
        body: bytes | None,
    ) -> tuple[int, int]:
        """Queue the head, the framing decided once: ``(framing, declared length or -1)``.
        ``body`` follows the head at once if the framing is by length."""

    def flush(self) -> None:
        """Send queued output now (what the kernel takes; the rest as it becomes writable)."""

    def wait_for_body(self) -> Future[None]:
        """A future done when more body bytes arrived (sends ``100 Continue`` if owed)."""

    def drain(self) -> Future[None]:
        """A future done when queued output is below the low-water mark."""

    def send_file(self, fd: int, offset: int, count: int, close_fd: bool) -> Future[None]:
        """Queue a file region behind the output; done when the kernel took its last byte."""

    def hijack(self) -> tuple[socket.socket, BufferPair]:
        """Leave the server: the socket and the connection's own reader and writer."""


class ConnectionHost(Protocol):
    """What a connection needs of its server (reactor.server.Server is one). Written here,
    not in server.py, so that connection.py need not import the server, which imports it."""

    @property
    def loop(self) -> Loop: ...
    @property
    def config(self) -> ServerConfig: ...
    @property
    def protocol_context(self) -> ProtocolContext: ...
    @property
    def handler(self) -> Callable[..., Any]: ...
    @property
    def state_hook(self) -> Callable[[socket.socket, HookState], object] | None: ...
    @property
    def date_lines(self) -> tuple[bytes, bytes]: ...
    @property
    def date_second(self) -> int: ...

    def connection_ended(self, conn: Any) -> None:
        """A connection closed or was hijacked: it leaves the server's table."""

    def body_held(self, conn: Any, held: int) -> None:
        """A connection waiting for a request body holds ``held`` bytes (0: it no longer
        waits): the server-wide budget (ServerConfig.max_buffered_bytes)."""

    def default_headers(self) -> tuple[bytes, bytes]:
        """The ``Date`` and ``Server`` lines, rebuilt once a second."""

    def clf_time(self) -> str:
        """The access log's time."""


class Waiters:
    """What a handler of one connection waits for: ``body`` (a streaming read, woken by bytes
    arriving) and ``drain`` (woken by output going out). Kept apart, so that arriving bytes
    never wake a drain and written bytes never wake a read."""

    __slots__ = ("body", "drain")

    def __init__(self) -> None:
        self.body: Future[None] | None = None
        self.drain: Future[None] | None = None


class ChannelSide:
    """The connection's side of the channel (a mixin of reactor.connection.Connection)."""

    if not TYPE_CHECKING:  # no slots of its own (mypy would refuse the assignments below)
        __slots__ = ()
    else:  # what the connection (and its Transport base) provides

        @property
        def config(self) -> ServerConfig:
            raise NotImplementedError

        _loop: Loop
        _sock: socket.socket
        _reader: Reader
        _writer: Writer
        _proto: ServerProtocol
        _eof: bool
        _writing: bool
        _file: FileBody | None
        _waiters: Waiters | None

        def _response_started(self) -> bool:
            raise NotImplementedError

        def _flush_now(self) -> None: ...
        def _arm(self, kind: int, seconds: float) -> None: ...
        def _cancel_timer(self) -> None: ...
        def _abort(self) -> None: ...
        def _set_state(self, event: ConnEvent) -> ConnState:
            raise NotImplementedError

        def start_reading(self) -> None: ...
        def queue_file(
            self, fd: int, offset: int, count: int, close_fd: bool, waiter: Any
        ) -> None: ...
        def detach(self) -> tuple[socket.socket, BufferPair]:
            raise NotImplementedError

    @property
    def loop(self) -> Loop:
        return self._loop

    @property
    def reader(self) -> Reader:
        return self._reader

    @property
    def local_addr(self) -> Any:
        try:
            return self._sock.getsockname()
        except OSError:
            return None

    @property
    def hijacked(self) -> bool:
        return self._proto.state is HIJACKED

    def flush(self) -> None:
        self._flush_now()

    def wait_for_body(self) -> Future[None]:
        if self._eof:
            raise BrokenConnectionError("the client closed before sending the whole body")
        cont = self._proto.take_continue()
        if cont and not self._response_started():  # too late once the final head is out
            self._writer.write(cont)
            self._flush_now()
        fut: Future[None] = self._loop.create_future()
        self._waiting().body = fut
        self.start_reading()
        # A streaming read waits at most body_timeout for the next bytes (each wait re-arms);
        # pending output keeps its write timeout.
        if not self._writing:
            self._arm(BODY_TIMEOUT, self.config.body_timeout)
        return fut

    def drain(self) -> Future[None]:
        fut: Future[None] = self._loop.create_future()
        if self._proto.state is CLOSED:
            fut.set_exception(BrokenConnectionError("the connection is closed"))
            return fut
        self._flush_now()
        if self._writer.buffered() <= self.config.write_low_water:
            fut.set_result(None)
        else:
            self._waiting().drain = fut
        return fut

    def _waiting(self) -> Waiters:
        """The connection's waiters, made when a handler first waits."""
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = Waiters()
        return waiters

    def send_file(self, fd: int, offset: int, count: int, close_fd: bool) -> Future[None]:
        """Queue ``count`` bytes of ``fd`` from ``offset`` behind the buffered output."""
        fut: Future[None] = self._loop.create_future()
        self.queue_file(fd, offset, count, close_fd, fut)
        self._flush_now()
        return fut

    def hijack(self) -> tuple[socket.socket, BufferPair]:
        """Leave the server: send what the kernel takes of the head already written (the
        rest stays in the pair's writer), unregister, cancel timers, leave the table, run the
        HIJACKED hook; hand over the socket and our own pair."""
        if self._proto.state is CLOSED:
            raise ConnectionClosedError("the connection is closed")
        if self._file is not None:
            raise RuntimeError("hijack() while a sendfile() body is still being sent")
        self._proto.take_continue()  # never after a hijack: the hijacker owns the socket
        self._cancel_timer()
        try:
            pair = self.detach()
        except OSError:
            # No hand-over: the connection is broken; close it like any other.
            self._abort()
            raise
        self._set_state(ConnEvent.HIJACK)
        return pair
