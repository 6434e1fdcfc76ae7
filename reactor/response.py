"""What a handler writes with: ResponseWriter (and the hijack that ends it).

Owns the response status and headers, body buffering until the framing is decided (once, at
the first flush: the handler's Content-Length; else the whole body if the handler returned
first; else chunked on HTTP/1.1 or close-delimited on HTTP/1.0), HEAD/1xx/204/304 bodies,
interim 1xx responses, write backpressure (``await w.drain()``) and ``hijack()``. Bytes go into
the connection's Writer; the Connection decides when they are sent. Tests:
tests/integration/test_server.py, test_hijack.py.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import IO, TYPE_CHECKING

from .buffers import BufferPair
from .errors import BrokenConnectionError, ConnectionClosedError, HijackedError, NotSupportedError
from .http.headers import Headers
from .http.serialize import LAST_CHUNK, encode_fields, status_line
from .http.state import ConnState
from .loop.futures import Future

if TYPE_CHECKING:
    import socket

    from .connection import Connection

__all__ = ["ResponseWriter", "hijack"]

log = logging.getLogger("reactor.server")

_BODYLESS = frozenset({204, 304})
_STATUS_LINES_11: dict[int, bytes] = {}
# sendfile() bodies up to this size are read into the output buffer instead.
_SMALL_FILE = 16 * 1024
_CLOSED = ConnState.CLOSED
# Fields whose presence changes what the server adds or how it frames the body.
_HEAD_FIELDS = frozenset({"content-length", "transfer-encoding", "date", "server", "connection"})
# Encoded "Name: value\r\n" lines of fields seen before; bounded, cleared when full.
_FIELD_LINES: dict[tuple[str, str], bytes] = {}
_FIELD_LINES_MAX = 512


# Fields whose values differ from one response to the next: caching them would only churn the
# cache (and keep cookies in a module-level dict).
_VOLATILE_FIELDS = frozenset(
    {
        "set-cookie",
        "content-length",
        "content-range",
        "etag",
        "last-modified",
        "location",
        "expires",
        "date",
    }
)


def _encode_field(item: tuple[str, str], lname: str) -> bytes:
    line = encode_fields((item,))
    if lname not in _VOLATILE_FIELDS:
        if len(_FIELD_LINES) >= _FIELD_LINES_MAX:
            _FIELD_LINES.clear()
        _FIELD_LINES[item] = line
    return line


def _caller() -> str:
    frame = sys._getframe(2)
    return f"{frame.f_code.co_name} ({frame.f_code.co_filename}:{frame.f_lineno})"


class ResponseWriter:
    """The response to one request. ``headers`` is mutable until the head is sent."""

    __slots__ = (
        "__weakref__",
        "_body",
        "_body_size",
        "_conn",
        "_declared_length",
        "_file_sent",
        "_finished",
        "_framing",
        "_head_only",
        "_head_sent",
        "_hijacked",
        "_sent_body",
        "_version",
        "headers",
        "status",
    )

    def __init__(self, conn: Connection, version: str, head_only: bool) -> None:
        self._conn: Connection | None = conn
        self._version = version
        self._head_only = head_only
        self.headers = Headers()
        self.status = 0  # 0: not written yet (200 at the first write)
        self._head_sent = False
        self._finished = False
        self._file_sent = False
        self._hijacked = False
        self._body: list[bytes] = []
        self._body_size = 0
        self._sent_body = 0
        self._declared_length = -1
        self._framing = 0  # 0 undecided, 1 length, 2 chunked, 3 close-delimited, 4 none

    # -- public API ------------------------------------------------------------------------

    @property
    def hijacked(self) -> bool:
        return self._hijacked

    @property
    def head_sent(self) -> bool:
        return self._head_sent

    def write_header(self, status: int) -> None:
        """Set the status. A 1xx other than 101 is sent at once as an interim response (its
        headers are the current ones) and the final status is still to come."""
        if self._hijacked:
            log.warning("response.write_header on hijacked connection from %s", _caller())
            raise HijackedError()
        self._check_open()
        if not isinstance(status, int) or not 100 <= status <= 999:
            raise ValueError(f"invalid status code {status!r}")
        if self._head_sent or self.status:
            log.warning("superfluous response.write_header(%d) from %s", status, _caller())
            return
        if 100 <= status < 200 and status != 101:
            conn = self._conn
            assert conn is not None
            conn._writer.write(status_line(status) + encode_fields(self.headers) + b"\r\n")
            return
        self.status = status

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Write body bytes; returns how many. Before the framing is decided they are held;
        past ``response_buffer`` bytes, the head is sent with chunked framing."""
        if self._hijacked:
            if len(data):
                log.warning("response.write on hijacked connection from %s", _caller())
            raise HijackedError()
        conn = self._conn
        if self._finished or conn is None:
            raise ConnectionClosedError("the response is finished")
        if conn.state is _CLOSED:
            raise BrokenConnectionError("the client connection is closed")
        n = len(data)
        status = self.status
        if not status:
            self.status = status = 200
        if n == 0:
            return 0
        if status < 200 or status in _BODYLESS:
            raise ValueError(f"a {status} response has no body")
        if self._file_sent:
            raise ValueError("no body may follow sendfile()")
        if not self._head_sent:
            # A declared Content-Length is checked when the head is built (_send_head).
            self._body.append(bytes(data))
            self._body_size += n
            if self._body_size > conn._server.config.response_buffer:
                # Commit to a framing (the declared length, else chunked) and stream the
                # rest: a handler writing a large body must not make us hold all of it.
                self._send_head(final=False)
            return n
        total = self._sent_body + n
        if 0 <= self._declared_length < total:
            raise ValueError(
                f"body of {total} bytes exceeds the declared Content-Length {self._declared_length}"
            )
        self._write_body(data)
        return n

    def flush(self) -> None:
        """Send the head (deciding the framing) and every body byte written so far."""
        if self._hijacked:
            raise HijackedError()
        self._check_open()
        if not self.status:
            self.status = 200
        if not self._head_sent:
            self._send_head(final=False)
        conn = self._conn
        assert conn is not None
        conn._flush_now()

    def sendfile(
        self,
        file: int | IO[bytes],
        offset: int = 0,
        count: int | None = None,
        *,
        close: bool = False,
    ) -> Future[None]:
        """Send ``count`` bytes of a regular file from ``offset`` (default: to its end) as the
        rest of the body. On a plain socket ``os.sendfile`` moves them inside the kernel;
        otherwise (TLS) they are read in pieces as the socket takes them. No other body may
        follow. Without a declared Content-Length, the body is framed by length if nothing
        was written before, else chunked framing is refused (ValueError).

        Returns a future done when the kernel has taken the last byte: an async handler
        awaits it; the file must stay open until then, or pass ``close=True`` to hand the
        descriptor over (it is closed when sent or when the connection ends)."""
        fd = file if isinstance(file, int) else file.fileno()
        try:
            return self._sendfile(fd, offset, count, close)
        except BaseException:
            if close:  # the descriptor was handed over: it is ours to close, even now
                try:
                    os.close(fd)
                except OSError:
                    pass
            raise

    def _sendfile(self, fd: int, offset: int, count: int | None, close: bool) -> Future[None]:
        if self._hijacked:
            raise HijackedError()
        conn = self._conn
        if self._finished or conn is None:
            raise ConnectionClosedError("the response is finished")
        if conn.state is _CLOSED:
            raise BrokenConnectionError("the client connection is closed")
        if count is None:
            count = os.fstat(fd).st_size - offset
        if count < 0 or offset < 0:
            raise ValueError(f"invalid file region: offset {offset}, count {count}")
        if not self.status:
            self.status = 200
        if not self._head_sent:
            if self._declared_length < 0 and not any(
                name.lower() == "content-length" for name, _ in self.headers
            ):
                self.headers.set("Content-Length", str(self._body_size + count))
            self._send_head(final=False)
        if self._framing != 1:
            raise ValueError("sendfile() needs a length-framed body: set Content-Length first")
        total = self._sent_body + count
        if total > self._declared_length:
            raise ValueError(
                f"body of {total} bytes exceeds the declared Content-Length {self._declared_length}"
            )
        self._sent_body = total
        self._file_sent = True
        if not self._head_only and 0 < count <= _SMALL_FILE:
            # A small file costs less read into the buffer beside its head: one send().
            data = os.pread(fd, count, offset)
            conn._writer.write(data)  # short if the file shrank: the framing check aborts
            if len(data) < count:
                self._sent_body -= count - len(data)
            count = 0
        if self._head_only or count == 0:
            fut: Future[None] = conn._loop.create_future()
            fut.set_result(None)
            if close:
                os.close(fd)
            conn._flush_now()
            return fut
        return conn._queue_file(fd, offset, count, close)

    def drain(self) -> Future[None]:
        """``await w.drain()``: wait until buffered output is below the low-water mark."""
        if self._hijacked:
            raise HijackedError()
        self._check_open()
        conn = self._conn
        assert conn is not None
        if not self._head_sent and self._body:
            self.flush()
        return conn._drain_waiter()

    def hijack(self) -> tuple[socket.socket, BufferPair]:
        """Take the connection over: returns ``(sock, pair)`` with the accepted socket and
        the connection's own reader and writer. See docs/hijack.md."""
        if self._hijacked:
            raise HijackedError()
        conn = self._conn
        if conn is None or self._finished:
            raise RuntimeError("hijack() called after the handler finished")
        # B6: a status already written is flushed first; body bytes not yet sent are dropped
        # (Go drops its 2 KiB response buffer the same way), so the head goes out bodiless.
        if self.status and not self._head_sent:
            self._body = []
            self._body_size = 0
            self._send_head(final=False)
        self._hijacked = True
        return conn._hijack()

    # -- used by the connection ------------------------------------------------------------

    def _check_open(self) -> None:
        if self._finished:
            raise ConnectionClosedError("the response is finished")
        conn = self._conn
        if conn is not None and conn.state is _CLOSED:
            raise BrokenConnectionError("the client connection is closed")

    def _send_head(self, final: bool) -> None:
        """Build the head (deciding the framing once) and queue it with the held body."""
        conn = self._conn
        assert conn is not None
        status = self.status or 200
        self.status = status
        version = self._version
        bodyless = status < 200 or status in _BODYLESS
        # One pass over the handler's fields: what the framing depends on, and the encoded
        # lines (cached per (name, value): most responses repeat the same fields).
        has_date = has_server = has_connection = False
        declared = self._declared_length
        lines: list[bytes] = []
        cache = _FIELD_LINES
        for item in self.headers._items:
            lname = item[0].lower()
            if lname in _HEAD_FIELDS:
                if lname == "content-length":
                    if bodyless and status != 304:
                        continue
                    if declared < 0:
                        declared = _parse_length(item[1])
                elif lname == "transfer-encoding":
                    if bodyless:
                        continue
                    # The framing is ours to decide; a handler's value is replaced.
                    continue
                elif lname == "date":
                    has_date = True
                elif lname == "server":
                    has_server = True
                elif lname == "connection":
                    has_connection = True
            line = cache.get(item)
            if line is None:
                line = _encode_field(item, lname)
            lines.append(line)
        keep_alive = conn._keep_alive
        tail: bytes = b""
        if bodyless:
            self._framing = 4
        elif declared >= 0:
            if declared < self._body_size:
                raise ValueError(
                    f"body of {self._body_size} bytes exceeds the declared Content-Length "
                    f"{declared}"
                )
            self._framing = 1
        elif final:
            self._framing = 1
            tail = b"Content-Length: %d\r\n" % self._body_size
        elif version == "HTTP/1.1":
            self._framing = 2
            tail = b"Transfer-Encoding: chunked\r\n"
        else:
            self._framing = 3
            keep_alive = False
        self._declared_length = declared
        if status != 101:
            if not keep_alive:
                conn._keep_alive = False
                if not has_connection or version == "HTTP/1.1":
                    if has_connection:
                        lines = [ln for ln in lines if ln[:11].lower() != b"connection:"]
                    tail += b"Connection: close\r\n"
            elif version == "HTTP/1.0" and not has_connection:
                tail += b"Connection: keep-alive\r\n"
        date_line, server_line = conn._server._default_headers()
        line = _STATUS_LINES_11.get(status)
        if line is None:
            line = _STATUS_LINES_11[status] = status_line(status, "HTTP/1.1")
        body = self._body
        self._head_sent = True
        parts = [
            line,
            b"" if has_date else date_line,
            b"" if has_server else server_line,
            *lines,
            tail,
            b"\r\n",
        ]
        if body and self._framing == 1 and len(body) == 1 and not self._head_only:
            # The usual response: head and whole body in one join, one buffer append.
            parts.append(body[0])
            self._body = []
            self._sent_body += self._body_size
            self._body_size = 0
            conn._writer.write(b"".join(parts))
            return
        conn._writer.write(b"".join(parts))
        if body:
            self._body = []
            self._body_size = 0
            for chunk in body:
                self._write_body(chunk)

    def _write_body(self, data: bytes | bytearray | memoryview) -> None:
        conn = self._conn
        assert conn is not None
        n = len(data)
        self._sent_body += n
        framing = self._framing
        if self._head_only or framing == 4:
            return
        writer = conn._writer
        if framing == 2:
            writer.write(b"%x\r\n" % n)
            writer.write(data)
            writer.write(b"\r\n")
        else:
            writer.write(data)
        if writer.buffered() > conn._server.config.write_high_water:
            conn._flush_now()

    def _finish(self) -> bool:
        """End the response after the handler returned. Returns False when the framing
        cannot be completed (a declared Content-Length was not written): abort then."""
        if self._finished:
            return True
        if not self._head_sent:
            if not self.status:
                self.status = 200
            self._send_head(final=True)
        self._finished = True
        ok = True
        if self._framing == 2 and not self._head_only:
            conn = self._conn
            assert conn is not None
            conn._writer.write(LAST_CHUNK)
        elif self._framing == 1 and not self._head_only and self._sent_body < self._declared_length:
            log.error(
                "handler wrote %d of the %d body bytes it declared in Content-Length; aborting "
                "the connection",
                self._sent_body,
                self._declared_length,
            )
            ok = False
        return ok

    def _error_response(self, status: int, reason: str) -> None:
        """Replace whatever was prepared (head not sent) with a plain-text error."""
        self.headers = Headers([("Content-Type", "text/plain; charset=utf-8")])
        self.status = status
        self._body = []
        self._body_size = 0
        self._declared_length = -1
        body = reason.encode("utf-8", "replace") + b"\n"
        self.write(body)

    def _detach(self) -> None:
        self._finished = True
        self._conn = None
        self._body = []

    def __repr__(self) -> str:
        return f"<ResponseWriter status={self.status} head_sent={self._head_sent}>"


def _parse_length(value: str) -> int:
    value = value.strip()
    if not value.isdigit():
        raise ValueError(f"invalid Content-Length header {value!r}")
    return int(value)


def hijack(w: object) -> tuple[socket.socket, BufferPair]:
    """Hijack through wrappers (Go's ResponseController.Hijack): call ``w.hijack()``, or walk
    ``w.unwrap()`` until a layer has ``hijack``; NotSupportedError when none has."""
    seen = 0
    while True:
        method = getattr(w, "hijack", None)
        if callable(method):
            result: tuple[socket.socket, BufferPair] = method()
            return result
        unwrap = getattr(w, "unwrap", None)
        if not callable(unwrap) or seen > 100:
            raise NotSupportedError(f"{type(w).__name__} does not support hijack()")
        w = unwrap()
        seen += 1
