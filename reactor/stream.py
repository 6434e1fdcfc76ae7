"""Stream: a socket (typically a hijacked one) driven by the loop, with async reads and writes.

Owns the continuation of a connection after ``hijack()`` on the same native loop: awaitable
reads (``read``, ``readexactly``, ``readline``), buffered writes with backpressure
(``write`` + ``await drain()``), a callback form for protocol code (``set_protocol``,
``pause_reading``/``resume_reading``) and ``close()``. It works over the connection's own
``BufferPair``: the bytes the server had read past the request are held in the reader and
always come first (HIJACK-SPEC B3, B5); bytes the server had buffered in the writer go out
before anything written here (B7). Must not know HTTP, and must not touch the server or the
connection: only the loop, the socket and the pair. The socket work itself (read interest,
receiving, sending on writability, ``shutdown``, close) is the one Transport's
(reactor/transport.py); this module adds the waiting, the flow control and the protocol form
on top of its events. Tests: tests/test_stream.py.

Reading is demand-driven: the socket is registered for reading only while a coroutine waits
for bytes, or while a protocol is set and not paused; after a chunk has come for a waiting
coroutine, reading stops again. When nobody reads, nothing is received, the kernel's buffer
fills and TCP flow control slows the peer down.

References: while a read, a write or a protocol is pending, the loop's registration holds the
stream (loop -> selector key -> callback arguments -> stream), which is what keeps it alive.
After ``close()`` the loop holds nothing of it (the fd is removed, the queued protocol start
is cancelled, waiters are failed and dropped, the protocol callbacks are let go), so reference
counting frees it with no help from the cyclic collector. For the same reason the futures
that waiting coroutines await are only ever resolved with a result, never an exception: the
coroutine wakes, looks at the stream's state and raises itself. An exception stored in a future
and thrown into the awaiting coroutine would make a cycle (exception -> traceback ->
``Future.__await__`` frame -> future -> exception) that holds the awaiting frames, and so the
stream, until the cyclic collector runs.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from .buffers import BufferPair
from .errors import BrokenConnectionError, ConnectionClosedError, LimitExceeded
from .loop.base import Loop
from .loop.futures import Future
from .loop.handles import Handle
from .transport import Transport

__all__ = ["IncompleteReadError", "LineTooLongError", "Stream", "StreamClosed"]

DEFAULT_HIGH_WATER = 64 * 1024
DEFAULT_LOW_WATER = 16 * 1024
DEFAULT_LINE_LIMIT = 64 * 1024


class StreamClosed(ConnectionClosedError):
    """The stream was closed by us (``close()``); it reads and writes nothing more."""

    def __init__(self, message: str = "the stream is closed") -> None:
        super().__init__(message)


class IncompleteReadError(BrokenConnectionError):
    """The peer ended the stream before ``readexactly(n)`` got its ``n`` bytes.

    ``expected`` is ``n``; ``partial`` holds the bytes that did arrive (they are consumed).
    """

    def __init__(self, partial: bytes, expected: int) -> None:
        super().__init__(
            f"stream ended after {len(partial)} of {expected} expected bytes "
            f"(expected {expected}, got {len(partial)})"
        )
        self.partial = partial
        self.expected = expected


class LineTooLongError(LimitExceeded):
    """``readline(limit)`` found no ``\\n`` within ``limit`` bytes. The bytes stay held."""


class Stream(Transport):
    """A socket and its ``BufferPair`` driven by ``loop``.

    ``high_water``/``low_water``: ``await drain()`` returns at once while at most
    ``high_water`` bytes of output are buffered; above that it waits until the kernel has
    taken enough that at most ``low_water`` remain (asyncio's flow-control hysteresis).
    The socket is made non-blocking.
    """

    __slots__ = (
        "__weakref__",
        "_broken",
        "_closed",
        "_drain_waiter",
        "_eof_pending",
        "_fd",
        "_flush_waiter",
        "_high_water",
        "_low_water",
        "_on_data",
        "_on_eof",
        "_paused",
        "_read_waiter",
        "_start_handle",
    )

    def __init__(
        self,
        loop: Loop,
        sock: socket.socket,
        pair: BufferPair,
        *,
        high_water: int = DEFAULT_HIGH_WATER,
        low_water: int = DEFAULT_LOW_WATER,
    ) -> None:
        if not 0 <= low_water <= high_water:
            raise ValueError(
                f"low_water ({low_water}) must be between 0 and high_water ({high_water})"
            )
        Transport.__init__(self, loop, sock, pair)
        # The number, kept: sock.fileno() is -1 once a user closed the socket under the
        # stream, and the loop's registrations are keyed by the number (_forget_closed_socket).
        self._fd = sock.fileno()
        self._high_water = high_water
        self._low_water = low_water
        self._read_waiter: Future[None] | None = None
        self._drain_waiter: Future[None] | None = None
        self._flush_waiter: Future[None] | None = None
        self._eof_pending = False
        self._closed = False
        self._broken: BrokenConnectionError | None = None
        self._on_data: Callable[[bytes], object] | None = None
        self._on_eof: Callable[[], object] | None = None
        self._paused = False
        self._start_handle: Handle | None = None
        sock.setblocking(False)
        if self._writer.buffered():  # output the server had not sent yet goes first (B7)
            try:
                self.flush_output()
            except OSError as exc:  # the peer is gone: write() and drain() will say so
                self._set_broken(exc)

    # -- properties ----------------------------------------------------------------------

    @property
    def socket(self) -> socket.socket:
        """The underlying socket (non-blocking; do not read or write it directly)."""
        return self._sock

    @property
    def high_water(self) -> int:
        return self._high_water

    @property
    def low_water(self) -> int:
        return self._low_water

    def write_buffered(self) -> int:
        """How many written bytes the kernel has not taken yet."""
        return self._writer.buffered()

    def at_eof(self) -> bool:
        """True once the peer ended the stream (or it was closed) and no held bytes remain."""
        return (self._eof or self._closed) and not self._reader.buffered()

    def is_closed(self) -> bool:
        return self._closed

    # -- awaitable reads -----------------------------------------------------------------

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes: at least one, or ``b""`` at EOF. ``n < 0`` reads to EOF."""
        self._check_readable()
        reader = self._reader
        if n == 0:
            return b""
        if n < 0:
            while not self._eof:
                await self._wait_data()
            if not reader.buffered():
                self._raise_if_broken()
            return reader.take(-1)
        while not reader.buffered():
            if self._eof:
                self._raise_if_broken()
                return b""
            await self._wait_data()
        return reader.take(n)

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes; IncompleteReadError (with the partial bytes) if the stream
        ends first."""
        if n < 0:
            raise ValueError(f"readexactly() needs n >= 0, got {n}")
        self._check_readable()
        reader = self._reader
        while reader.buffered() < n:
            if self._eof:
                error = IncompleteReadError(reader.take(-1), n)
                raise error from self._broken
            await self._wait_data()
        return reader.take(n)

    async def readline(self, limit: int = DEFAULT_LINE_LIMIT) -> bytes:
        """Bytes through the next ``b"\\n"`` (included); at EOF, what is left (maybe ``b""``).

        A line (with its ``\\n``) longer than ``limit`` raises LineTooLongError and consumes
        nothing; ``limit < 0`` means no limit.
        """
        self._check_readable()
        reader = self._reader
        searched = 0  # bytes already searched, relative to the reader's position
        while True:
            # The reader's buffer, searched in place: no copy per search.
            buf = reader.buf
            pos = reader.pos
            held = len(buf) - pos
            end = held if limit < 0 else min(held, limit)
            nl = buf.find(b"\n", pos + searched, pos + end)
            if nl >= 0:
                return reader.take(nl + 1 - pos)
            searched = end
            if 0 <= limit <= held:
                raise LineTooLongError(
                    f"line longer than the limit of {limit} bytes (no newline in the first "
                    f"{limit} of {held} held bytes)"
                )
            if self._eof:
                if not held:
                    self._raise_if_broken()
                return reader.take(-1)
            await self._wait_data()

    def _check_readable(self) -> None:
        if self._closed:
            raise StreamClosed()
        if self._on_data is not None:
            raise RuntimeError("a protocol is set on this stream; it receives the data")

    def _raise_if_broken(self) -> None:
        broken = self._broken
        if broken is not None:
            raise BrokenConnectionError(str(broken)) from broken.__cause__

    def _wait_data(self) -> Future[None]:
        if self._closed:
            raise StreamClosed()
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            raise RuntimeError("another task is already waiting to read this stream")
        fut: Future[None] = self._loop.create_future()
        self._read_waiter = fut
        self.start_reading()
        return fut

    # -- the transport's events -------------------------------------------------------------

    def _data_received(self) -> None:
        on_data = self._on_data
        if on_data is not None and not self._paused and self._start_handle is None:
            on_data(self._reader.take(-1))  # the reader held nothing before this chunk
            return
        # One chunk per wait: nobody may want more, and not reading is the flow control. (A
        # protocol not started yet, or paused, gets the bytes held, in order, when it starts.)
        self.stop_reading()
        self._wake_reader()

    def _eof_received(self, error: OSError | None) -> None:
        if error is not None:
            self._set_broken(error)
        if self._on_data is None:
            self._wake_reader()
        elif not self._paused and self._start_handle is None:
            self._deliver_eof()
        # else: the protocol's (re)start delivers the held bytes, then the EOF

    def _write_progress(self, remaining: int, progressed: bool) -> None:
        if remaining <= self._low_water:
            self._wake_drain()
        if not remaining:
            self._wake_flush()
            if self._eof_pending:
                self._shutdown_write()

    def _write_failed(self, error: OSError) -> None:
        self._set_broken(error)
        self._wake_drain()
        self._wake_flush()

    def _wake_reader(self) -> None:
        waiter = self._read_waiter
        self._read_waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _set_broken(self, exc: OSError) -> None:
        # Its traceback holds the frame that caught it, which holds this stream: a cycle
        # once the error is stored here. The message is what matters.
        exc.__traceback__ = None
        if self._broken is None:
            error = BrokenConnectionError(f"the connection broke: {exc}")
            error.__cause__ = exc
            self._broken = error

    # -- writing -------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer ``data`` after what is already buffered and send what the kernel takes now;
        the rest goes out as the socket becomes writable. Never blocks; use ``drain()``."""
        if self._closed:
            raise StreamClosed()
        self._raise_if_broken()
        if not data:
            return
        if self._eof_pending:
            raise StreamClosed("write_eof() was called; the write side is shut")
        self._writer.write(data)
        if self._writing:
            return  # bytes are already waiting; these go after them
        try:
            self.flush_output()
        except OSError as exc:  # EPIPE, ECONNRESET: the peer is gone
            self._set_broken(exc)
            raise BrokenConnectionError(f"the connection broke: {exc}") from exc

    async def drain(self) -> None:
        """Return at once with at most ``high_water`` bytes buffered, else when the kernel
        has taken enough to leave ``low_water``. Raises StreamClosed or BrokenConnectionError
        if the stream is closed or breaks meanwhile."""
        if self._closed:
            raise StreamClosed()
        self._raise_if_broken()
        if self._writer.buffered() <= self._high_water:
            return
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            raise RuntimeError("another task is already draining this stream")
        fut: Future[None] = self._loop.create_future()
        self._drain_waiter = fut
        await fut
        if self._closed:
            raise StreamClosed()
        self._raise_if_broken()

    async def flush(self) -> None:
        """Wait until every buffered byte has been taken by the kernel (``drain()`` only
        waits for the low-water mark). Use it before ``close()``, or use ``aclose()``."""
        if self._closed:
            raise StreamClosed()
        self._raise_if_broken()
        if not self._writer.buffered():
            return
        waiter = self._flush_waiter
        if waiter is not None and not waiter.done():
            raise RuntimeError("another task is already flushing this stream")
        fut: Future[None] = self._loop.create_future()
        self._flush_waiter = fut
        await fut
        if self._closed:
            raise StreamClosed()
        self._raise_if_broken()

    def write_eof(self) -> None:
        """Half-close: shut the write side once the buffered output is sent; reading goes on."""
        if self._closed:
            raise StreamClosed()
        if self._eof_pending:
            return
        self._eof_pending = True
        if not self._writer.buffered():
            self._shutdown_write()

    def _shutdown_write(self) -> None:
        if not self.shutdown_write() and self._broken is None:
            self._broken = BrokenConnectionError("the connection broke: shutdown(SHUT_WR) failed")

    async def aclose(self) -> None:
        """Send what is buffered (unless the peer is gone), then close."""
        if self._closed:
            return
        try:
            await self.flush()
        except (BrokenConnectionError, StreamClosed):
            pass
        self.close()

    def _wake_flush(self) -> None:
        waiter = self._flush_waiter
        self._flush_waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_drain(self) -> None:
        waiter = self._drain_waiter
        self._drain_waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the callback (protocol) form -----------------------------------------------------

    def set_protocol(
        self, on_data: Callable[[bytes], object], on_eof: Callable[[], object] | None = None
    ) -> None:
        """Deliver the stream by callbacks from now on: ``on_data(chunk)`` with the held
        bytes first (on the next loop pass), then each chunk as it arrives; ``on_eof()``
        once when the peer ends the stream (or it breaks). Awaitable reads are refused
        afterwards. The callbacks are dropped at ``close()``."""
        if self._closed:
            raise StreamClosed()
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            raise RuntimeError("a task is waiting to read this stream; cannot set a protocol")
        self._on_data = on_data
        self._on_eof = on_eof
        self._schedule_start()

    def pause_reading(self) -> None:
        """Protocol form: stop delivering data (and stop receiving it) until resumed."""
        self._paused = True
        if self._on_data is not None:
            if self._sock.fileno() < 0:
                self._forget_closed_socket()
            else:
                self.stop_reading()

    def resume_reading(self) -> None:
        """Protocol form: deliver again, held bytes first (from the next loop pass)."""
        if not self._paused:
            return
        self._paused = False
        if self._on_data is not None and not self._closed:
            self._schedule_start()

    def is_reading(self) -> bool:
        """Whether the socket is registered for reading right now."""
        return self._reading

    def _schedule_start(self) -> None:
        # Through call_soon, never at once: the loop runs I/O callbacks before queued ones,
        # so registering the reader now could deliver socket bytes before the held ones.
        if self._start_handle is None:
            self._start_handle = self._loop.call_soon(self._start_protocol)

    def _start_protocol(self) -> None:
        self._start_handle = None
        on_data = self._on_data
        if self._closed or self._paused or on_data is None:
            return
        if self._reader.buffered():
            on_data(self._reader.take(-1))
            if self._closed or self._paused:
                return
        if self._eof:
            self._deliver_eof()
        else:
            self.start_reading()

    def _deliver_eof(self) -> None:
        on_eof = self._on_eof
        self._on_eof = None  # once
        if on_eof is not None:
            on_eof()

    # -- closing --------------------------------------------------------------------------

    def close(self) -> None:
        """Unregister from the loop and close the socket. Output the kernel does not take at
        once is dropped (``await flush()`` first to send it all, or use ``aclose()``). A task
        waiting to read, drain or flush gets StreamClosed. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._sock.fileno() < 0:
            self._forget_closed_socket()
        elif self._writer.buffered():
            try:
                self.send_now()  # a last try; what is left is dropped
            except OSError:
                pass
        self.close_transport()
        handle = self._start_handle
        self._start_handle = None
        if handle is not None:
            handle.cancel()
        self._on_data = None
        self._on_eof = None
        self._wake_reader()  # it wakes up, sees the stream closed and raises
        self._wake_drain()
        self._wake_flush()

    def _forget_closed_socket(self) -> None:
        # A user closed the socket under the stream: its fileno() is -1 and the loop can no
        # longer find the registration through it, so it is removed by the number it had.
        # (While we are registered, that number's registration is ours.)
        if self._reading or self._writing:
            self._loop.remove_fd(self._fd)
            self._reading = self._writing = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("eof" if self._eof else "open")
        return (
            f"<Stream fd={self._fd} {state} held={self._reader.buffered()} "
            f"unsent={self._writer.buffered()}>"
        )
