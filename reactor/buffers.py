"""The buffer pair: one Reader and one Writer over one socket.

Owns the bytes a connection has received but not consumed (Reader) and the bytes it has
produced but the kernel has not taken (Writer). The server uses these very objects while it
serves the connection; a hijack hands them over as they are (HIJACK-SPEC B3, B5, B7). Neither
object references the connection, the request or the server: only the socket and the bytes.
That is what lets a hijacked connection be freed by reference counting the moment its handler
returns, with no ``releaseConn`` step as in Go. Tests: tests/test_buffers.py,
tests/integration/test_hijack.py.

After a hijack the methods below work in the socket's current mode: blocking (then ``read``
waits like ``socket.recv``) or non-blocking (then a read with nothing held and nothing on the
socket raises ``BlockingIOError``, and ``flush`` sends what the kernel takes and raises
``BlockingIOError`` for the rest, which stays buffered).
"""

from __future__ import annotations

import socket

__all__ = ["BufferPair", "Reader", "Writer"]

# One recv() asks for this much; CPython allocates it and shrinks the result to what came.
RECV_SIZE = 65536
# Consumed bytes at the front of the buffer are dropped (one memmove) past this size, or when
# they are most of the buffer; below it, moving an offset is cheaper.
_COMPACT_AT = 64 * 1024


class Reader:
    """Bytes received and not yet consumed, then the socket."""

    __slots__ = ("__weakref__", "_sock", "buf", "pos")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        # ``bytes`` while it holds one recv() result untouched (no copy), ``bytearray`` once
        # a second one is appended.
        self.buf: bytes | bytearray = b""
        self.pos = 0

    # -- for protocol code that parses in place (the server, Stream) ------------------------
    # ``buf[pos:]`` are the held bytes. Parsers read ``buf`` from ``pos`` without copying and
    # then ``consume`` what they used; a transport ``feed``s what the socket delivered.

    def feed(self, data: bytes) -> None:
        buf = self.buf
        if self.pos >= len(buf):
            self.buf = data
            self.pos = 0
        elif type(buf) is bytes:
            merged = bytearray(memoryview(buf)[self.pos :])
            merged += data
            self.buf = merged
            self.pos = 0
        else:
            buf += data  # bytearray: extended in place

    def consume(self, n: int) -> None:
        pos = self.pos + n
        buf = self.buf
        size = len(buf)
        if pos >= size:
            self.buf = b""
            self.pos = 0
        elif pos > _COMPACT_AT and pos * 2 > size:
            self.buf = bytearray(memoryview(buf)[pos:])
            self.pos = 0
        else:
            self.pos = pos

    def take(self, n: int) -> bytes:
        """Consume and return up to ``n`` held bytes (``n < 0``: all of them)."""
        pos = self.pos
        buf = self.buf
        size = len(buf)
        if n < 0 or pos + n >= size:
            data = bytes(buf) if pos == 0 and type(buf) is bytes else bytes(buf[pos:])
            self.buf = b""
            self.pos = 0
            return data
        data = bytes(buf[pos : pos + n])
        self.consume(n)
        return data

    def _recv(self, size: int = RECV_SIZE) -> bytes:
        return self._sock.recv(size)

    # -- the public reader API --------------------------------------------------------------

    def buffered(self) -> int:
        """How many received bytes are held and not yet read."""
        return len(self.buf) - self.pos

    def peek(self, n: int = 1) -> bytes:
        """Up to ``n`` bytes without consuming them. With fewer than ``n`` held, one socket
        read tops the buffer up (in non-blocking mode only if data is there)."""
        if self.buffered() < n:
            try:
                data = self._recv(max(n - self.buffered(), RECV_SIZE))
            except BlockingIOError:
                data = b""
            if data:
                self.feed(data)
        return bytes(self.buf[self.pos : self.pos + n])

    def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes: held bytes first (without touching the socket), else one
        socket read (``b""`` at EOF). ``n < 0`` reads to EOF (in non-blocking mode: until the
        socket has nothing more)."""
        if n == 0:
            return b""
        if n > 0:
            if self.pos < len(self.buf):
                return self.take(n)
            return self._recv(n)
        parts = [self.take(-1)] if self.buffered() else []
        got_any = bool(parts)
        while True:
            try:
                data = self._recv()
            except BlockingIOError:
                if not got_any:
                    raise
                break
            if not data:
                break
            got_any = True
            parts.append(data)
        return b"".join(parts)

    def readinto(self, b: bytearray | memoryview) -> int:
        """Fill ``b`` from held bytes, or with one socket read when none are held."""
        view = memoryview(b).cast("B")
        if self.pos < len(self.buf):
            data = self.take(len(view))
            view[: len(data)] = data
            return len(data)
        return self._sock.recv_into(view)

    def readline(self, limit: int = -1) -> bytes:
        """Read through the next ``\\n`` (included), at most ``limit`` bytes when ``limit``
        is positive, or to EOF. Non-blocking with no complete line and nothing more on the
        socket: returns the partial line if one is held, else raises BlockingIOError."""
        while True:
            buf = self.buf
            end = len(buf) if limit < 0 else min(len(buf), self.pos + limit)
            nl = buf.find(b"\n", self.pos, end)
            if nl >= 0:
                return self.take(nl + 1 - self.pos)
            if limit >= 0 and self.buffered() >= limit:
                return self.take(limit)
            try:
                data = self._recv()
            except BlockingIOError:
                if self.buffered():
                    return self.take(-1)
                raise
            if not data:
                return self.take(-1)
            self.feed(data)

    def __repr__(self) -> str:
        return f"<Reader fd={self._sock.fileno()} buffered={self.buffered()}>"


class Writer:
    """Bytes produced and not yet taken by the kernel, then the socket."""

    __slots__ = ("__weakref__", "_sock", "buf")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        # The shared empty ``bytes`` while nothing waits (an idle connection pays for no
        # bytearray); a ``bytearray`` from the first write until everything is sent. The
        # server may also set it to one ``bytes`` object (a whole response, adopted without
        # a copy); a later write or a partial send turns that into a ``bytearray``.
        self.buf: bytes | bytearray = b""

    def buffered(self) -> int:
        """How many written bytes wait to be sent."""
        return len(self.buf)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Buffer ``data``; nothing is sent before ``flush()``."""
        buf = self.buf
        if type(buf) is bytes:
            if buf:
                merged = bytearray(buf)
                merged += data
                self.buf = merged
            else:
                self.buf = bytearray(data)
        else:
            buf += data  # bytearray: extended in place
        return len(data)

    def clear(self) -> None:
        """Drop every buffered byte (an abort: the output will never be sent)."""
        self.buf = b""

    def send_some(self) -> int:
        """Send what the kernel takes without blocking; return how many bytes remain.
        OSError other than BlockingIOError propagates (the peer is gone)."""
        buf = self.buf
        if not buf:
            return 0
        try:
            sent = self._sock.send(buf)
        except BlockingIOError:
            return len(buf)
        if sent >= len(buf):
            self.buf = b""
            return 0
        if type(buf) is bytes:  # an adopted bytes object: keep the rest in a bytearray
            rest = self.buf = bytearray(memoryview(buf)[sent:])
            return len(rest)
        del buf[:sent]  # type: ignore[union-attr]  # a bytearray
        return len(buf)

    def flush(self) -> None:
        """Send every buffered byte. Blocking socket: waits until all are sent. Non-blocking:
        sends what the kernel takes; if bytes remain, raises BlockingIOError (they stay
        buffered; call ``flush()`` again when the socket is writable)."""
        if not self.buf:
            return
        if self._sock.gettimeout() != 0.0:  # blocking, or blocking with a timeout
            buf, self.buf = self.buf, b""
            self._sock.sendall(buf)
            return
        while self.buf:
            before = len(self.buf)
            remaining = self.send_some()
            if remaining and remaining == before:
                raise BlockingIOError(f"{remaining} bytes still buffered; the socket is full")

    def __repr__(self) -> str:
        return f"<Writer fd={self._sock.fileno()} buffered={self.buffered()}>"


class BufferPair:
    """What ``hijack()`` returns beside the socket: the connection's own reader and writer."""

    __slots__ = ("reader", "writer")

    def __init__(self, reader: Reader, writer: Writer) -> None:
        self.reader = reader
        self.writer = writer

    def __iter__(self):  # type: ignore[no-untyped-def]
        yield self.reader
        yield self.writer

    def __repr__(self) -> str:
        return f"<BufferPair {self.reader!r} {self.writer!r}>"
