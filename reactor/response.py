"""What a handler writes with: ResponseWriter (and the hijack that ends it).

Owns one response's progress: status and headers, body bytes held until the framing is
decided (at the first flush; the decision itself is the protocol's, reactor/http/protocol.py:
the handler's Content-Length, else the whole body if the handler returned first, else chunked
on HTTP/1.1 or close-delimited on HTTP/1.0), the count of body bytes sent against a declared
length, interim 1xx responses, trailer fields, write backpressure (``await w.drain()``) and
``hijack()``. It reaches its connection only through the Channel interface
(reactor/channel.py). Tests: tests/integration/test_server.py, test_hijack.py, test_trailers.py;
tests/test_response.py (socketless, through a fake channel).

Trailers (RFC 9110 6.5, RFC 9112 7.1.2), as Go's net/http has them: before the head is sent
the handler declares the fields with ``w.declare_trailer("Server-Timing", ...)`` (which adds
them to the ``Trailer`` header, RFC 9110 6.6.2; setting ``Trailer`` in ``w.headers`` does the
same), and sets their values in ``w.trailers`` (a Headers that checks what is set in it) at
any time before it returns:

    w.declare_trailer("Server-Timing")
    w.write(body)
    w.trailers.set("Server-Timing", "db;dur=53")

A declared ``Trailer`` makes an HTTP/1.1 response chunked even when the whole body fits the
buffer; every field set in ``w.trailers`` goes out in the last chunk of a chunked response
(declared or not: an ASGI app sends trailers it never declared). A response that is not
chunked (an HTTP/1.0 request, a Content-Length, sendfile(), HEAD, 1xx, 204, 304) drops them
silently. A field a trailer section must not carry
(Content-Length, Host, Content-Type... RFC 9110 6.5.1) raises ValueError when declared or set.
``w.trailers`` is created at first use: a response without trailers pays nothing for them.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import IO, TYPE_CHECKING

from .buffers import BufferPair
from .channel import Channel
from .errors import BrokenConnectionError, ConnectionClosedError, HijackedError, NotSupportedError
from .http.headers import Headers, Trailers
from .http.protocol import BODYLESS, FRAMING_CHUNKED, FRAMING_LENGTH, FRAMING_NONE
from .http.serialize import (
    LAST_CHUNK,
    check_trailer_field,
    encode_fields,
    encode_last_chunk,
    status_line,
)
from .loop.futures import Future

if TYPE_CHECKING:
    import socket

__all__ = ["ResponseWriter", "hijack"]

log = logging.getLogger("reactor.server")

# sendfile() bodies up to this size are read into the output buffer instead.
_SMALL_FILE = 16 * 1024

_new = object.__new__

# How a response ended (``_ended``): it is open, finished by the server, hijacked, its
# connection closed under it (the connection says so: connection_lost()), or ended early by
# the handler (end()) short of its declared Content-Length (the connection aborts then).
_OPEN = 0
_FINISHED = 1
_HIJACKED = 2
_BROKEN = 3
_UNFRAMED = 4


def _caller() -> str:
    frame = sys._getframe(2)
    return f"{frame.f_code.co_name} ({frame.f_code.co_filename}:{frame.f_lineno})"


class ResponseWriter:
    """The response to one request. ``headers`` is mutable until the head is sent."""

    __slots__ = (
        "__weakref__",
        "_body",
        "_body_size",
        "_buffer_limit",
        "_channel",
        "_declared_length",
        "_ended",
        "_file_sent",
        "_framing",
        "_head_only",
        "_sent_body",
        "_trailers",
        "_version",
        "headers",
        "status",
    )

    # Left unset by __init__ (which runs once per request: most responses have no trailers
    # and pay nothing for them) until ``trailers`` is first used; finish() reads it with
    # getattr, only for a chunked response.
    _trailers: Trailers

    def __init__(
        self, channel: Channel, version: str, head_only: bool, buffer_limit: int = 64 * 1024
    ) -> None:
        self._channel: Channel | None = channel
        # Body bytes held before committing to a framing (ServerConfig.response_buffer).
        self._buffer_limit = buffer_limit
        self._version = version
        self._head_only = head_only
        # Headers() without the __init__ call (once per request), as the parser makes them.
        self.headers = headers = _new(Headers)
        headers.fields = []
        headers._index = None
        self.status = 0  # 0: not written yet (200 at the first write)
        self._ended = _OPEN
        self._framing = 0  # 0: the head is not sent; else the protocol's FRAMING_*
        self._file_sent = False
        self._body: list[bytes] = []
        self._body_size = 0
        self._sent_body = 0
        self._declared_length = -1

    # -- public API ------------------------------------------------------------------------

    @property
    def hijacked(self) -> bool:
        return self._ended == _HIJACKED

    @property
    def head_sent(self) -> bool:
        return self._framing != 0

    @property
    def body_bytes(self) -> int:
        """Body bytes sent (or, for HEAD, that would have been)."""
        return self._sent_body

    @property
    def trailers(self) -> Trailers:
        """The trailer fields, sent in the last chunk of a chunked response; only declared
        ones (``declare_trailer``) are sent. Created at first use."""
        try:
            return self._trailers
        except AttributeError:  # unset until first use: see the note on _trailers above
            trailers = self._trailers = Trailers()
            return trailers

    def declare_trailer(self, *names: str) -> None:
        """Declare trailer fields: add ``names`` to the ``Trailer`` header (RFC 9110 6.6.2),
        which keeps an HTTP/1.1 response chunked. Before the head is sent (RuntimeError
        after); ValueError naming a field a trailer section must not carry."""
        if self._ended == _HIJACKED:
            raise HijackedError()
        if self._framing or self._ended:
            raise RuntimeError(f"declare_trailer{names!r} after the response head was sent")
        for name in names:
            check_trailer_field(name, "")
        headers = self.headers
        declared = _declared_trailers(headers)
        new = []
        for name in names:
            if name.lower() not in declared:
                declared.add(name.lower())
                new.append(name)
        if new:  # one Trailer field listing them all
            headers.set("Trailer", ", ".join([*headers.get_all("Trailer"), *new]))

    def write_header(self, status: int) -> None:
        """Set the status. A 1xx other than 101 is sent at once as an interim response (its
        headers are the current ones) and the final status is still to come."""
        if self._ended == _HIJACKED:
            log.warning("response.write_header on hijacked connection from %s", _caller())
            raise HijackedError()
        channel = self._open_channel()
        if not isinstance(status, int) or not 100 <= status <= 999:
            raise ValueError(f"invalid status code {status!r}")
        if self._framing or self.status:
            log.warning("superfluous response.write_header(%d) from %s", status, _caller())
            return
        if 100 <= status < 200 and status != 101:
            channel.write(status_line(status) + encode_fields(self.headers) + b"\r\n")
            return
        self.status = status

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Write body bytes; returns how many. Before the framing is decided they are held;
        past ``response_buffer`` bytes, the head is sent with chunked framing. Writing after
        the connection closed raises BrokenConnectionError."""
        channel = self._channel
        if self._ended or channel is None:
            if self._ended == _HIJACKED:
                if len(data):
                    log.warning("response.write on hijacked connection from %s", _caller())
                raise HijackedError()
            raise self._ended_error()
        n = len(data)
        status = self.status
        if status != 200:
            if not status:
                self.status = status = 200
            elif n and (status < 200 or status in BODYLESS):
                raise ValueError(f"a {status} response has no body")
        if n == 0:
            return 0
        if not self._framing:  # (a sendfile() sends the head: no file was sent yet)
            # A declared Content-Length is checked when the head is built (_send_head).
            self._body.append(bytes(data))
            self._body_size += n
            if self._body_size > self._buffer_limit:
                # Commit to a framing (the declared length, else chunked) and stream the
                # rest: a handler writing a large body must not make us hold all of it.
                self._send_head(channel, final=False)
            return n
        if self._file_sent:
            raise ValueError("no body may follow sendfile()")
        total = self._sent_body + n
        if 0 <= self._declared_length < total:
            raise ValueError(
                f"body of {total} bytes exceeds the declared Content-Length {self._declared_length}"
            )
        self._write_body(channel, data)
        return n

    def flush(self) -> None:
        """Send the head (deciding the framing) and every body byte written so far."""
        if self._ended == _HIJACKED:
            raise HijackedError()
        channel = self._open_channel()
        if not self.status:
            self.status = 200
        if not self._framing:
            self._send_head(channel, final=False)
        channel.flush()

    def end(self) -> None:
        """The response is complete: send it now, as when the handler returns (a body written
        in one piece gets its Content-Length), while the handler goes on with other work
        (an ASGI app's background task). Later writes raise; the request itself ends when the
        handler returns. ValueError if a declared Content-Length was not written in full."""
        if self._ended == _HIJACKED:
            raise HijackedError()
        channel = self._open_channel()
        complete = self.finish()
        channel.flush()  # (what was written goes out even so: the client sees it cut short)
        if not complete:
            self._ended = _UNFRAMED
            raise ValueError(
                f"body of {self._sent_body} bytes is shorter than the declared Content-Length "
                f"{self._declared_length}"
            )

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
        if self._ended == _HIJACKED:
            raise HijackedError()
        channel = self._open_channel()
        if count is None:
            count = os.fstat(fd).st_size - offset
        if count < 0 or offset < 0:
            raise ValueError(f"invalid file region: offset {offset}, count {count}")
        if not self.status:
            self.status = 200
        if not self._framing:
            if self._declared_length < 0 and "content-length" not in self.headers:
                self.headers.set("Content-Length", str(self._body_size + count))
            self._send_head(channel, final=False)
        if self._framing != FRAMING_LENGTH:
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
            channel.write(data)  # short if the file shrank: the framing check aborts
            if len(data) < count:
                self._sent_body -= count - len(data)
            count = 0
        if self._head_only or count == 0:
            fut: Future[None] = channel.loop.create_future()
            fut.set_result(None)
            if close:
                os.close(fd)
            channel.flush()
            return fut
        return channel.send_file(fd, offset, count, close)

    def drain(self) -> Future[None]:
        """``await w.drain()``: wait until buffered output is below the low-water mark."""
        if self._ended == _HIJACKED:
            raise HijackedError()
        channel = self._open_channel()
        if not self._framing and self._body:
            self.flush()
        return channel.drain()

    def hijack(self) -> tuple[socket.socket, BufferPair]:
        """Take the connection over: returns ``(sock, pair)`` with the accepted socket and
        the connection's own reader and writer. See docs/hijack.md."""
        if self._ended == _HIJACKED:
            raise HijackedError()
        if self._ended == _BROKEN:  # the connection closed under the handler
            raise ConnectionClosedError("the connection is closed")
        channel = self._channel
        if channel is None or self._ended:
            raise RuntimeError("hijack() called after the handler finished")
        # B6: a status already written is flushed first; body bytes not yet sent are dropped
        # (Go drops its 2 KiB response buffer the same way), so the head goes out bodiless.
        if self.status and not self._framing:
            self._body = []
            self._body_size = 0
            self._send_head(channel, final=False)
        result = channel.hijack()
        self._ended = _HIJACKED
        return result

    # -- used by the connection ------------------------------------------------------------

    def _open_channel(self) -> Channel:
        channel = self._channel
        if self._ended or channel is None:
            raise self._ended_error()
        return channel

    def _ended_error(self) -> Exception:
        if self._ended == _BROKEN:
            return BrokenConnectionError("the client connection is closed")
        return ConnectionClosedError("the response is finished")

    def connection_lost(self) -> None:
        """The connection closed while the response was open (called by the connection):
        every later write, flush or drain raises BrokenConnectionError."""
        if self._ended == _OPEN:
            self._ended = _BROKEN

    def _send_head(self, channel: Channel, final: bool) -> None:
        """Build the head (the protocol decides the framing, once) and queue it with the
        held body."""
        status = self.status or 200
        self.status = status
        body = self._body
        one = body[0] if len(body) == 1 and not self._head_only else None
        framing, declared = channel.start_response(
            status, self.headers, self._version, self._body_size, final, one
        )
        if self._declared_length < 0:
            self._declared_length = declared
        self._framing = framing
        if one is not None and framing == FRAMING_LENGTH:
            # The usual response: the whole body went out beside its head.
            self._body = []
            self._sent_body += self._body_size
            self._body_size = 0
            return
        if body:
            self._body = []
            self._body_size = 0
            for chunk in body:
                self._write_body(channel, chunk)

    def _write_body(self, channel: Channel, data: bytes | bytearray | memoryview) -> None:
        self._sent_body += len(data)
        framing = self._framing
        if self._head_only or framing == FRAMING_NONE:
            return
        if framing == FRAMING_CHUNKED:
            channel.write(b"%x\r\n%b\r\n" % (len(data), bytes(data)))
        else:
            channel.write(data)

    def finish(self) -> bool:
        """End the response after the handler returned (called by the connection), and let
        go of the connection. Returns False when the framing cannot be completed (a declared
        Content-Length was not written): the connection aborts then."""
        channel = self._channel
        if self._ended or channel is None:
            self._channel = None
            return self._ended != _UNFRAMED
        if not self._framing:
            body = self._body
            if len(body) == 1 and not self._head_only:
                # The usual response, _send_head() inlined: the handler returned, so the one
                # piece it wrote is the whole body, and goes out beside the head.
                status = self.status or 200
                self.status = status
                self._framing, declared = channel.start_response(
                    status, self.headers, self._version, self._body_size, True, body[0]
                )
                if self._declared_length < 0:
                    self._declared_length = declared
                if self._framing == FRAMING_LENGTH:
                    self._body = []
                    self._sent_body += self._body_size
                    self._body_size = 0
                else:  # a handler's own framing (Transfer-Encoding): the body follows
                    self._body = []
                    self._body_size = 0
                    self._write_body(channel, body[0])
            else:
                self._send_head(channel, final=True)
        self._ended = _FINISHED
        self._channel = None
        if self._head_only:
            return True
        framing = self._framing
        if framing == FRAMING_CHUNKED:
            # (getattr: the slot is unset unless the handler used w.trailers.)
            trailers = getattr(self, "_trailers", None)
            channel.write(LAST_CHUNK if trailers is None else self._last_chunk(trailers))
        elif framing == FRAMING_LENGTH and self._sent_body < self._declared_length:
            log.error(
                "handler wrote %d of the %d body bytes it declared in Content-Length; aborting "
                "the connection",
                self._sent_body,
                self._declared_length,
            )
            return False
        return True

    def _last_chunk(self, trailers: Trailers) -> bytes:
        """The last chunk with the trailer fields (every one set: declaring is what keeps a
        response chunked and tells the client, not what picks the fields to send)."""
        if not trailers:
            return LAST_CHUNK
        try:
            return encode_last_chunk(trailers.fields)
        except ValueError as exc:  # a field put in trailers.fields by hand, unchecked
            log.error("trailer fields dropped: %s", exc)
            return LAST_CHUNK

    def replace_with_error(self, status: int, reason: str) -> None:
        """Replace whatever was prepared (head not sent) with a plain-text error (called by
        the connection when the handler failed)."""
        self.headers = Headers([("Content-Type", "text/plain; charset=utf-8")])
        self.status = status
        self._body = []
        self._body_size = 0
        self._declared_length = -1
        self._file_sent = False
        body = reason.encode("utf-8", "replace") + b"\n"
        self.write(body)

    def detach(self) -> None:
        """The request is over: let go of the connection (called by the connection)."""
        if self._ended == _OPEN:
            self._ended = _FINISHED
        self._channel = None
        self._body = []

    def __repr__(self) -> str:
        return f"<ResponseWriter status={self.status} head_sent={self.head_sent}>"


def _declared_trailers(headers: Headers) -> set[str]:
    """The lower-case names the ``Trailer`` fields of ``headers`` list."""
    return {
        name.strip().lower()
        for value in headers.get_all("Trailer")
        for name in value.split(",")
        if name.strip()
    }


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
