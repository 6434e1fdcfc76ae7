"""Channel: what a Request and its ResponseWriter may ask of their connection.

The one interface between the handler-facing objects (reactor/request.py, response.py) and
the connection that serves them (reactor/connection.py implements it). They never touch the
connection's private attributes and never import connection.py; anything else that speaks
HTTP/1.1 on a socket (a test double, another transport) can serve them by providing this.
A Request and ResponseWriter hold their channel only while their request runs: the
connection detaches them when it ends, so they never keep it alive.
"""

from __future__ import annotations

import socket
from typing import Any, Protocol

from .buffers import BufferPair, Reader
from .config import ServerConfig
from .http.headers import Headers
from .loop.base import Loop
from .loop.futures import Future

__all__ = ["Channel"]


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
    def closed(self) -> bool:
        """Whether the connection is closed (writes fail with BrokenConnectionError)."""

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
