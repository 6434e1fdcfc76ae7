"""Stream: a socket (typically a hijacked one) driven by the loop, with async reads and writes.

Owns the continuation of a connection after ``hijack()`` on the same native loop: awaitable
reads (``read``, ``readexactly``, ``readline``), buffered writes with backpressure
(``write`` + ``await drain()``), a callback form for protocol code (``set_protocol``,
``pause_reading``/``resume_reading``) and ``close()``. It works over the connection's own
``BufferPair``: the bytes the server had read past the request are held in the reader and
always come first (HIJACK-SPEC B3, B5); bytes the server had buffered in the writer go out
before anything written here (B7). Must not know HTTP, and must not touch the server or the
connection: only the loop, the socket and the pair. Tests: tests/test_stream.py.

Reading is demand-driven: the socket is registered with ``loop.add_reader`` only while a
coroutine waits for bytes, or while a protocol is set and not paused. When nobody reads,
nothing is received, the kernel's buffer fills and TCP flow control slows the peer down.

References: while a read, a write or a protocol is pending, the loop's registration holds the
stream (loop -> selector key -> bound method -> stream), which is what keeps it alive. After
``close()`` the loop holds nothing of it (the fd is removed, the queued protocol start is
cancelled, waiters are failed and dropped, the protocol callbacks are let go), so reference
counting frees it with no help from the cyclic collector. For the same reason the futures
that waiting coroutines await are only ever resolved with a result, never an exception: the
coroutine wakes, looks at the stream's state and raises itself. An exception stored in a future
and thrown into the awaiting coroutine would make a cycle (exception -> traceback ->
``Future.__await__`` frame -> future -> exception) that holds the awaiting frames, and so the
stream, until the cyclic collector runs.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from .buffers import RECV_SIZE, BufferPair
from .errors import BrokenConnectionError, ConnectionClosedError, LimitExceeded
from .loop.base import Loop
from .loop.futures import Future
from .loop.handles import Handle

__all__ = ["IncompleteReadError", "LineTooLongError", "Stream", "StreamClosed"]

DEFAULT_HIGH_WATER = 64 * 1024
DEFAULT_LOW_WATER = 16 * 1024
DEFAULT_LINE_LIMIT = 64 * 1024


_local = threading.local()


def _scratch() -> memoryview:
    """This thread's receive buffer (a loop runs in one thread; several loops may not)."""
    view: memoryview | None = getattr(_local, "view", None)
    if view is None:
        view = _local.view = memoryview(bytearray(RECV_SIZE))
    return view


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


class Stream:
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
        "_eof",
        "_eof_pending",
        "_fd",
        "_flush_waiter",
        "_high_water",
        "_loop",
        "_low_water",
        "_on_data",
        "_on_eof",
        "_paused",
        "_read_waiter",
        "_reader",
        "_reading",
        "_sock",
        "_start_handle",
        "_writer",
        "_writing",
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
        self._loop = loop
        self._sock = sock
        # Cached: registrations are keyed by the number, and sock.fileno() is -1 once the
        # socket is closed, which would make remove_fd miss the registration.
        self._fd = sock.fileno()
        self._reader = pair.reader
        self._writer = pair.writer
        self._high_water = high_water
        self._low_water = low_water
        self._read_waiter: Future[None] | None = None
        self._drain_waiter: Future[None] | None = None
        self._flush_waiter: Future[None] | None = None
        self._eof_pending = False
        self._eof = False
        self._closed = False
        self._reading = False
        self._writing = False
        self._broken: BrokenConnectionError | None = None
        self._on_data: Callable[[bytes], object] | None = None
        self._on_eof: Callable[[], object] | None = None
        self._paused = False
        self._start_handle: Handle | None = None
        sock.setblocking(False)
        if self._writer.buffered():  # output the server had not sent yet goes first (B7)
            self._start_writing()

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
            return reader._take(-1)
        while not reader.buffered():
            if self._eof:
                self._raise_if_broken()
                return b""
            await self._wait_data()
        return reader._take(n)

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes; IncompleteReadError (with the partial bytes) if the stream
        ends first."""
        if n < 0:
            raise ValueError(f"readexactly() needs n >= 0, got {n}")
        self._check_readable()
        reader = self._reader
        while reader.buffered() < n:
            if self._eof:
                error = IncompleteReadError(reader._take(-1), n)
                raise error from self._broken
            await self._wait_data()
        return reader._take(n)

    async def readline(self, limit: int = DEFAULT_LINE_LIMIT) -> bytes:
        """Bytes through the next ``b"\\n"`` (included); at EOF, what is left (maybe ``b""``).

        A line (with its ``\\n``) longer than ``limit`` raises LineTooLongError and consumes
        nothing; ``limit < 0`` means no limit.
        """
        self._check_readable()
        reader = self._reader
        searched = 0  # bytes already searched, relative to the reader's position
        while True:
            # Reader internals: reading its buffer in place avoids a copy per search.
            buf = reader._buf
            pos = reader._pos
            held = len(buf) - pos
            end = held if limit < 0 else min(held, limit)
            nl = buf.find(b"\n", pos + searched, pos + end)
            if nl >= 0:
                return reader._take(nl + 1 - pos)
            searched = end
            if 0 <= limit <= held:
                raise LineTooLongError(
                    f"line longer than the limit of {limit} bytes (no newline in the first "
                    f"{limit} of {held} held bytes)"
                )
            if self._eof:
                if not held:
                    self._raise_if_broken()
                return reader._take(-1)
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
        self._start_reading()
        return fut

    # -- the loop's callbacks --------------------------------------------------------------

    def _start_reading(self) -> None:
        if not self._reading:
            self._loop.add_reader(self._fd, self._on_readable)
            self._reading = True

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def _on_readable(self) -> None:
        try:
            # recv_into a per-thread scratch buffer and copy what came: recv(RECV_SIZE)
            # would allocate the full 64 KiB for every read.
            scratch = _scratch()
            data = scratch[: self._sock.recv_into(scratch)].tobytes()
        except (BlockingIOError, InterruptedError):
            return  # spurious wakeup: nothing there after all
        except OSError as exc:  # ECONNRESET and friends: the peer broke it
            self._set_broken(exc)
            data = b""
        on_data = self._on_data
        if on_data is not None:
            if data:
                on_data(data)
            else:
                self._eof = True
                self._stop_reading()
                self._deliver_eof()
            return
        if data:
            self._reader._feed(data)
        else:
            self._eof = True
        # One chunk per wait: nobody may want more, and not reading is the flow control.
        self._stop_reading()
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
            remaining = self._writer._send_some()
        except OSError as exc:  # EPIPE, ECONNRESET: the peer is gone
            self._set_broken(exc)
            raise BrokenConnectionError(f"the connection broke: {exc}") from exc
        if remaining:
            self._start_writing()

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
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self._set_broken(exc)

    async def aclose(self) -> None:
        """Send what is buffered (unless the peer is gone), then close."""
        if self._closed:
            return
        try:
            await self.flush()
        except (BrokenConnectionError, StreamClosed):
            pass
        self.close()

    def _start_writing(self) -> None:
        if not self._writing:
            self._loop.add_writer(self._fd, self._on_writable)
            self._writing = True

    def _on_writable(self) -> None:
        try:
            remaining = self._writer._send_some()
        except OSError as exc:  # EPIPE, ECONNRESET: the peer is gone
            self._set_broken(exc)
            self._writing = False
            self._loop.remove_writer(self._fd)
            self._wake_drain()
            self._wake_flush()
            return
        if remaining <= self._low_water:
            self._wake_drain()
        if not remaining:
            self._writing = False
            self._loop.remove_writer(self._fd)
            self._wake_flush()
            if self._eof_pending:
                self._shutdown_write()

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
            self._stop_reading()

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
            on_data(self._reader._take(-1))
            if self._closed or self._paused:
                return
        if self._eof:
            self._deliver_eof()
        else:
            self._start_reading()

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
        self._loop.remove_fd(self._fd)
        self._reading = self._writing = False
        if self._writer.buffered():
            try:
                self._writer._send_some()  # a last try; what is left is dropped
            except OSError:
                pass
        self._sock.close()
        handle = self._start_handle
        self._start_handle = None
        if handle is not None:
            handle.cancel()
        self._on_data = None
        self._on_eof = None
        read_waiter = self._read_waiter
        self._read_waiter = None
        if read_waiter is not None and not read_waiter.done():
            read_waiter.set_result(None)  # it wakes up, sees the stream closed and raises
        self._wake_drain()
        self._wake_flush()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("eof" if self._eof else "open")
        return (
            f"<Stream fd={self._fd} {state} held={self._reader.buffered()} "
            f"unsent={self._writer.buffered()}>"
        )
