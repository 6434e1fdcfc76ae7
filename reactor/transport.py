"""Transport: one non-blocking socket and its BufferPair on the loop.

Owns everything that touches the socket for the server's connections (reactor/connection.py)
and for streams (reactor/stream.py): read interest and pausing, receiving into a per-thread
scratch buffer, sending what the kernel takes and registering for writability for the rest,
file bodies (``os.sendfile``, or ``pread`` + ``send`` on TLS), ``shutdown(SHUT_WR)``, close,
and ``detach`` (the hijack: the socket and the very same BufferPair leave the loop). It knows
nothing of HTTP. Subclasses receive its events by overriding ``_data_received``,
``_eof_received`` and ``_write_progress``; it is a base class rather than an object of its
own so that an idle connection pays for no second object and no reference cycle (see
docs/architecture.md, "One transport").

OS facts: ``recv_into`` on a non-blocking socket raises BlockingIOError when a readiness
report was spurious, and ECONNRESET & co. when the peer reset; epoll reports a closed fd to
no one, so a registration is always removed before its socket is closed (a closed socket's
``fileno()`` is -1 and could not be looked up). Tests: tests/test_transport.py, and every
integration test through Connection and Stream.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
from typing import Any

from .buffers import RECV_SIZE, BufferPair, Reader, Writer
from .errors import BrokenConnectionError
from .loop.base import Loop

__all__ = ["Transport", "scratch_buffer"]

log = logging.getLogger("reactor.server")

# A file body is sent in pieces of at most this many bytes per system call.
_FILE_CHUNK = 1 << 20
# sendfile() refuses these sockets or files: fall back to pread() + send().
_NO_SENDFILE_ERRNOS = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSOCK})

_local = threading.local()


def scratch_buffer() -> memoryview:
    """This thread's receive buffer. One ``recv_into`` here and a copy of the bytes that came
    costs less than ``recv(RECV_SIZE)``, which allocates the full size every time. Per thread,
    because ``recv_into`` releases the GIL: two loops in two threads must not share one."""
    view: memoryview | None = getattr(_local, "view", None)
    if view is None:
        view = _local.view = memoryview(bytearray(RECV_SIZE))
    return view


class FileBody:
    """A file region queued behind the buffered output (``Transport.queue_file``)."""

    __slots__ = ("close_fd", "fd", "offset", "remaining", "use_sendfile", "waiter")

    def __init__(
        self, fd: int, offset: int, count: int, close_fd: bool, use_sendfile: bool, waiter: Any
    ) -> None:
        self.fd = fd
        self.offset = offset
        self.remaining = count
        self.close_fd = close_fd
        self.use_sendfile = use_sendfile
        self.waiter = waiter

    def finish(self, error: BaseException | None) -> None:
        if self.close_fd:
            self.close_fd = False
            try:
                os.close(self.fd)
            except OSError:
                pass
        waiter = self.waiter
        self.waiter = None
        if waiter is not None and not waiter.done():
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)


class Transport:
    """A socket with its reader and writer on ``loop``. Subclasses handle the events."""

    __slots__ = ("_eof", "_file", "_loop", "_reader", "_reading", "_sock", "_writer", "_writing")

    def __init__(self, loop: Loop, sock: socket.socket, pair: BufferPair | None = None) -> None:
        self._loop = loop
        self._sock = sock
        if pair is None:
            self._reader = Reader(sock)
            self._writer = Writer(sock)
        else:
            self._reader = pair.reader
            self._writer = pair.writer
        self._reading = False
        self._writing = False
        self._eof = False  # the peer ended its side (or reading failed): nothing more comes
        self._file: FileBody | None = None  # a file body queued behind the buffered output

    # -- events for subclasses --------------------------------------------------------------

    def _data_received(self) -> None:
        """New bytes were appended to the reader."""
        raise NotImplementedError

    def _eof_received(self, error: OSError | None) -> None:
        """The peer ended its side (``error`` None) or reading failed. Reading has stopped."""
        raise NotImplementedError

    def _write_progress(self, remaining: int, progressed: bool) -> None:
        """A writable event sent something (``progressed``) or nothing; ``remaining`` bytes
        are left (0: all output is sent and the writer registration is gone)."""

    def _write_failed(self, error: OSError) -> None:
        """Sending failed on a writable event (the peer is gone). Writing has stopped."""
        raise NotImplementedError

    # -- reading ------------------------------------------------------------------------------

    # Named start/stop rather than resume/pause: Stream's public ``pause_reading`` and
    # ``resume_reading`` (the protocol form) are built on these.

    def start_reading(self) -> None:
        """Register for reading (``_data_received``/``_eof_received`` follow); a no-op while
        registered or once the peer ended its side."""
        if not self._reading and not self._eof:
            self._loop.add_reader(self._sock, Transport._on_readable, self)
            self._reading = True

    def stop_reading(self) -> None:
        """Unregister for reading: nothing is received until ``start_reading``."""
        if self._reading:
            self._loop.remove_reader(self._sock)
            self._reading = False

    def _on_readable(self) -> None:
        try:
            view = _local.view
        except AttributeError:
            view = scratch_buffer()
        try:
            n = self._sock.recv_into(view)
        except (BlockingIOError, InterruptedError):
            return  # a spurious report: nothing there after all
        except OSError as exc:  # ECONNRESET and friends: the peer broke it
            self._stop_on_eof()
            self._eof_received(exc)
            return
        if not n:
            self._stop_on_eof()
            self._eof_received(None)
            return
        reader = self._reader
        if reader.pos >= len(reader.buf):  # Reader.feed, inlined: nothing held, adopt them
            reader.buf = view[:n].tobytes()
            reader.pos = 0
        else:
            reader.feed(view[:n].tobytes())
        self._data_received()

    def _stop_on_eof(self) -> None:
        self._eof = True
        if self._reading:
            self._loop.remove_reader(self._sock)
            self._reading = False

    # -- writing ------------------------------------------------------------------------------

    def send_now(self) -> int:
        """Send what the kernel takes of the buffered output, then of a queued file; return
        the bytes left (0: everything is sent). OSError: the peer is gone (or the file
        shrank)."""
        remaining = self._writer.send_some()
        if not remaining and self._file is not None:
            remaining = self._send_file()
        return remaining

    def flush_output(self) -> int:
        """Send what the kernel takes now and wait for writability for the rest (or stop
        waiting once nothing is left); return the bytes left. OSError: see ``send_now``."""
        remaining = self.send_now()
        if remaining:
            self.watch_writable()
        elif self._writing:
            self._loop.remove_writer(self._sock)
            self._writing = False
        return remaining

    def watch_writable(self) -> None:
        """Send the rest of the output as the socket becomes writable (``_write_progress``
        reports it); the registration ends by itself once everything is sent."""
        if not self._writing:
            self._loop.add_writer(self._sock, Transport._on_writable, self)
            self._writing = True

    def output_pending(self) -> int:
        """Buffered output bytes, plus the rest of a queued file."""
        file = self._file
        return self._writer.buffered() + (file.remaining if file is not None else 0)

    def _on_writable(self) -> None:
        before = self.output_pending()
        try:
            remaining = self.send_now()
        except OSError as exc:
            if self._writing:
                self._loop.remove_writer(self._sock)
                self._writing = False
            self._write_failed(exc)
            return
        if not remaining:
            self._loop.remove_writer(self._sock)
            self._writing = False
        self._write_progress(remaining, remaining < before)

    def queue_file(self, fd: int, offset: int, count: int, close_fd: bool, waiter: Any) -> None:
        """Send ``count`` bytes of ``fd`` from ``offset`` after the buffered output;
        ``waiter`` (a future) completes when the kernel has taken the last byte. Call
        ``flush_output`` to start."""
        # os.sendfile() moves the bytes inside the kernel; it needs a plain socket (TLS must
        # encrypt in user space, so an SSLSocket reads the file in pieces instead).
        use_sendfile = type(self._sock) is socket.socket and hasattr(os, "sendfile")
        self._file = FileBody(fd, offset, count, close_fd, use_sendfile, waiter)

    def _send_file(self) -> int:
        file = self._file
        assert file is not None
        sock = self._sock
        while file.remaining:
            size = min(file.remaining, _FILE_CHUNK)
            if file.use_sendfile:
                try:
                    sent = os.sendfile(sock.fileno(), file.fd, file.offset, size)
                except BlockingIOError:
                    return file.remaining
                except OSError as exc:
                    if exc.errno not in _NO_SENDFILE_ERRNOS:
                        raise
                    file.use_sendfile = False
                    continue
            else:
                data = os.pread(file.fd, size, file.offset)
                try:
                    sent = sock.send(data) if data else 0
                except BlockingIOError:
                    return file.remaining
            if not sent:
                log.warning("file body ended %d bytes short: the file shrank", file.remaining)
                raise OSError(errno.EIO, "the file shrank while it was being sent")
            file.offset += sent
            file.remaining -= sent
        self._file = None
        file.finish(None)
        return 0

    def shutdown_write(self) -> bool:
        """Half-close: no more output. False if the socket refused (it is broken)."""
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            return False
        return True

    # -- the end --------------------------------------------------------------------------

    def stop_io(self) -> None:
        """Leave the loop: no more read or write events (the socket stays open)."""
        if self._reading or self._writing:
            self._loop.remove_fd(self._sock)
            self._reading = self._writing = False

    def close_transport(self) -> None:
        """Unregister and close the socket; a queued file fails. Unsent output is left in
        the writer (callers decide whether it was worth a last try)."""
        self.stop_io()
        file = self._file
        if file is not None:
            self._file = None
            file.finish(BrokenConnectionError("the connection closed before the file was sent"))
        try:
            self._sock.close()
        except OSError:
            pass

    def detach(self) -> tuple[socket.socket, BufferPair]:
        """Leave the loop: unregister and hand over the socket and the same reader and
        writer. Output already buffered is sent as far as the kernel takes it now, never
        waiting (a client that does not read must not stop the loop): what it does not take
        stays in the writer, ahead of anything written through it (HIJACK-SPEC B6, B7;
        docs/hijack.md, "Before the hand-over"). OSError if sending fails (the socket is
        unregistered by then; the caller closes it)."""
        if self._file is not None:
            raise RuntimeError("hijack() while a sendfile() body is still being sent")
        sock = self._sock
        self._loop.remove_fd(sock)
        self._reading = self._writing = False
        writer = self._writer
        if writer.buffered():
            writer.send_some()
        return sock, BufferPair(self._reader, writer)
