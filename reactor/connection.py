"""Connection: one accepted socket's state machine, from loop events to the handler and back.

Owns the per-connection flow: readable -> Reader -> RequestParser -> Request/ResponseWriter ->
handler -> Writer -> one send per batch of (pipelined) responses. States and their allowed
transitions are the table in reactor/http/state.py; ``_set_state`` enforces it. Timeouts use one
lazily re-armed timer per connection: moving a deadline later costs an attribute store, and the
timer, when it fires early, re-arms itself for the current deadline.

Reference discipline (docs/architecture.md, "No cycles"): the Request and ResponseWriter point
back at the connection only while their request runs; ``_end_request`` detaches both, so an
ordinary keep-alive request and a hijacked connection alike are freed by reference counting
alone. Tests: tests/integration/*, tests/leaks/*.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import traceback
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from .buffers import BufferPair, Reader, Writer
from .errors import BrokenConnectionError, ConnectionClosedError, ProtocolError
from .http.parser import (
    BODY_CHUNKED,
    BODY_LENGTH,
    BODY_NONE,
    ChunkedDecoder,
    RequestHead,
    RequestParser,
)
from .http.serialize import encode_fields, reason_phrase, status_line
from .http.state import TRANSITIONS, ConnState, HookState, check_transition
from .loop.base import take_exception
from .loop.futures import Future
from .request import Body, Request, StreamingBody
from .response import ResponseWriter

if TYPE_CHECKING:
    from .loop.handles import TimerHandle
    from .server import Server

__all__ = ["Connection"]

log = logging.getLogger("reactor.server")
access_log = logging.getLogger("reactor.access")

IDLE = ConnState.IDLE
READING_HEAD = ConnState.READING_HEAD
READING_BODY = ConnState.READING_BODY
HANDLING = ConnState.HANDLING
DRAINING = ConnState.DRAINING
CLOSING = ConnState.CLOSING
HIJACKED = ConnState.HIJACKED
CLOSED = ConnState.CLOSED

# What the one connection timer is currently measuring.
_NO_TIMEOUT = 0
_HEADER_TIMEOUT = 1
_BODY_TIMEOUT = 2
_IDLE_TIMEOUT = 3
_WRITE_TIMEOUT = 4
_LINGER_TIMEOUT = 5

# After an error response, how long we keep reading (and discarding) before the final close,
# so that the client reads our response instead of a reset (Go's rstAvoidanceDelay).
_LINGER_SECONDS = 0.5

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


# A file body is sent in pieces of at most this many bytes per system call.
_FILE_CHUNK = 1 << 20
# sendfile() refuses these sockets or files: fall back to pread() + send().
_NO_SENDFILE_ERRNOS = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSOCK})


def _settle(fut: Future[None] | None, error: BaseException | None = None) -> Future[None] | None:
    """Complete a waiter unless it is done already. Returns None, for the caller to clear
    its slot in the same statement: ``self._body_waiter = _settle(self._body_waiter)``."""
    if fut is not None and not fut.done():
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)
    return None


class _FileBody:
    """A file region queued as the rest of a response body (``ResponseWriter.sendfile``)."""

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


class Connection:
    """One accepted connection, from accept to close or hijack."""

    # Every idle connection pays for each slot: the config and limits are read through the
    # server, and the loop holds the plain functions with ``(self,)`` as their arguments
    # rather than bound methods (a 1-tuple is 16 bytes smaller than a bound method).
    __slots__ = (
        "__weakref__",
        "_body_scan",
        "_body_waiter",
        "_closing",
        "_continue_pending",
        "_deadline",
        "_drain_fut",
        "_file",
        "_head",
        "_hijacked",
        "_keep_alive",
        "_linger",
        "_loop",
        "_parser",
        "_peer_eof",
        "_reader",
        "_reading",
        "_request",
        "_response",
        "_scan_pos",
        "_served",
        "_server",
        "_sock",
        "_timeout_kind",
        "_timer",
        "_writer",
        "_writing",
        "state",
    )

    def __init__(self, server: Server, sock: socket.socket, remote_addr: Any = None) -> None:
        self._server = server
        self._loop = server._loop
        self._sock = sock
        self._reader = Reader(sock)
        self._writer = Writer(sock)
        # None while no partial head is pending: complete heads are parsed by the server's
        # shared parser (its fast path keeps no state); a connection gets its own parser
        # only to remember its search progress through a head that arrives in pieces.
        self._parser: RequestParser | None = None
        self.state = IDLE
        self._head: Any = None
        self._body_scan: ChunkedDecoder | None = None
        self._scan_pos = 0
        self._linger = False
        self._served = False  # whether a request has been dispatched on this connection
        self._file: _FileBody | None = None  # a file body queued behind the buffered output
        self._request: Request | None = None
        self._response: ResponseWriter | None = None
        # A streaming body read and a drain() wait on different events: two slots, so that
        # arriving bytes never wake a drain and written bytes never wake a read.
        self._body_waiter: Future[None] | None = None
        self._drain_fut: Future[None] | None = None
        self._timer: TimerHandle | None = None
        self._deadline = 0.0
        self._timeout_kind = _NO_TIMEOUT
        self._keep_alive = True
        self._closing = False
        self._hijacked = False
        self._peer_eof = False
        self._continue_pending = False
        self._reading = False
        self._writing = False

    def __repr__(self) -> str:
        return f"<Connection {self.remote_addr!r} {self.state.name}>"

    @property
    def remote_addr(self) -> Any:
        """The peer's address, asked of the socket: keeping accept()'s address tuple would
        cost every idle connection about 150 bytes. None once the socket is closed."""
        try:
            addr = self._sock.getpeername()
        except OSError:
            return None
        return addr if addr else "unix"

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._resume_reading()
        # A new connection gets the header timeout from its start (Go's ReadHeaderTimeout):
        # a client that connects and sends nothing is cut off like a slow one.
        self._arm(_HEADER_TIMEOUT, self._server.config.read_header_timeout)

    def _set_state(self, new: ConnState) -> None:
        if new not in TRANSITIONS[self.state]:
            check_transition(self.state, new)  # raises, naming both states
        self.state = new

    def _hook(self, state: HookState) -> None:
        hook = self._server._state_hook
        if hook is not None:
            try:
                hook(self._sock, state)
            except Exception:
                log.exception("connection state hook raised")

    # -- reading ----------------------------------------------------------------------------

    def _resume_reading(self) -> None:
        if not self._reading and not self._peer_eof:
            self._loop.add_reader(self._sock, Connection._on_readable, self)
            self._reading = True

    def _pause_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._sock)
            self._reading = False

    def _on_readable(self) -> None:
        try:
            n = self._sock.recv_into(self._server._scratch)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._on_peer_gone(exc)
            return
        if not n:
            self._on_peer_gone(None)
            return
        self._reader._feed(self._server._scratch[:n].tobytes())
        state = self.state
        if state is IDLE or state is READING_HEAD:
            self._process()
        elif state is READING_BODY:
            self._arm(_BODY_TIMEOUT, self._server.config.body_timeout)
            self._process()
        elif state is CLOSING:
            self._reader._consume(self._reader.buffered())  # discard
        else:
            # The handler runs (async) or output drains: hold the bytes (HIJACK-SPEC B2),
            # wake a streaming body read, and stop reading past the read-ahead limit.
            if self._body_waiter is not None:
                self._body_waiter = _settle(self._body_waiter)
                self._disarm()
            if self._reader.buffered() > self._server.config.limits.max_read_ahead:
                self._pause_reading()

    def _on_peer_gone(self, error: OSError | None) -> None:
        """EOF (``error`` None) or a read error."""
        self._peer_eof = True
        self._pause_reading()
        state = self.state
        if state is CLOSING:
            self._close()
            return
        if error is not None and state is not HANDLING:
            self._abort()
            return
        if state is HANDLING:
            self._keep_alive = False
            if self._body_waiter is not None:
                self._body_waiter = _settle(
                    self._body_waiter, BrokenConnectionError("the client closed the connection")
                )
            request = self._request
            if request is not None and request.body.complete:
                request._notify_disconnect()
            if error is not None:
                self._abort()
            return
        if state is DRAINING:
            self._keep_alive = False
            return
        # IDLE / READING_HEAD / READING_BODY: no complete request will come. Finish what we
        # owe (nothing, unless output is still queued) and close.
        self._keep_alive = False
        self._closing = True
        if not self._writer.buffered():
            self._close()

    # -- the request loop ------------------------------------------------------------------

    def _process(self) -> None:
        """Parse and dispatch every complete request held, then send the output once."""
        reader = self._reader
        while not self._closing:
            state = self.state
            if state is IDLE or state is READING_HEAD:
                parser = self._parser
                try:
                    if parser is None:
                        parsed = self._server._parser.parse(reader._buf, reader._pos)
                        if parsed is None and reader.buffered():
                            # A partial head: from now on this connection remembers how far
                            # it searched, in a parser of its own.
                            self._server._parser.reset()
                            parser = self._parser = RequestParser(self._server.config.limits)
                            parsed = parser.parse(reader._buf, reader._pos)
                    else:
                        parsed = parser.parse(reader._buf, reader._pos)
                        if parsed is not None:
                            self._parser = None
                except ProtocolError as exc:
                    self._parser = None
                    self._server._parser.reset()
                    if state is IDLE:
                        self._set_state(READING_HEAD)
                        if self._server._state_hook is not None:
                            self._hook(HookState.ACTIVE)
                    self._reject(exc)
                    return
                if parsed is None:
                    if state is IDLE and reader.buffered():
                        self._set_state(READING_HEAD)
                        if self._server._state_hook is not None:
                            self._hook(HookState.ACTIVE)
                        # Measured from the first byte; later bytes do not extend it.
                        self._arm(_HEADER_TIMEOUT, self._server.config.read_header_timeout)
                    break
                head, end = parsed
                if state is IDLE and self._server._state_hook is not None:
                    self._hook(HookState.ACTIVE)
                # Consume the head (Reader._consume, inlined: once per request).
                if end >= len(reader._buf):
                    reader._buf = b""
                    reader._pos = 0
                else:
                    reader._consume(end - reader._pos)
                if not self._start_request(head):
                    break
            elif state is READING_BODY:
                if not self._body_arrived():
                    break
                self._dispatch()
            else:
                break
            if self.state is not IDLE:
                break
            if self._file is not None:  # a file body is still going out: wait for it
                self._flush_now()
                if self._file is not None:
                    self._set_state(DRAINING)
                    break
            if len(self._writer._buf) > self._server.config.write_high_water:
                self._flush_now()
                if len(self._writer._buf) > self._server.config.write_high_water:
                    if self.state is IDLE:
                        self._set_state(DRAINING)
                    break
        state = self.state
        if state is not CLOSED and state is not HIJACKED:
            if (state is HANDLING or state is DRAINING) and len(
                reader._buf
            ) - reader._pos > self._server.config.limits.max_read_ahead:
                self._pause_reading()
            self._flush_now()

    def _start_request(self, head: Any) -> bool:
        """A head was parsed: dispatch now, or wait for the body. False: stop the loop."""
        self._head = head
        if not head.keep_alive or self._server._shutting_down:
            self._keep_alive = False
        expect = head.expect
        if expect is not None and expect != "100-continue":
            self._reject(ProtocolError(f"unsupported Expect {expect!r}", status=417))
            return False
        framing = head.body_framing
        streaming = self._server._streaming
        if framing == BODY_NONE or streaming:
            self._continue_pending = (
                expect is not None and framing != BODY_NONE and head.version == "HTTP/1.1"
            )
            self._dispatch()
            return True
        if framing == BODY_CHUNKED:
            self._body_scan = ChunkedDecoder(self._server.config.limits)
        if self._body_arrived():
            self._dispatch()
            return True
        if self._closing:  # the body held so far was malformed and has been answered
            return False
        self._set_state(READING_BODY)
        if expect is not None and head.version == "HTTP/1.1":
            # A buffering handler: we are about to wait for the body, so ask for it.
            self._writer.write(_CONTINUE)
        self._arm(_BODY_TIMEOUT, self._server.config.body_timeout)
        return True

    def _body_arrived(self) -> bool:
        """Whether the whole body of the current head is held (it is not consumed)."""
        head: RequestHead = self._head
        reader = self._reader
        if head.body_framing == BODY_LENGTH:
            return reader.buffered() >= head.content_length
        scan = self._body_scan
        assert scan is not None
        # The scanner's position is relative to the start of the body, which does not move
        # while we wait (nothing consumes the reader until the handler runs).
        held = reader.buffered()
        try:
            new = scan.feed(reader._buf, reader._pos + self._scan_pos, reader._pos + held)
        except ProtocolError as exc:
            self._reject(exc)
            return False
        self._scan_pos = new - reader._pos
        return scan.done

    def _dispatch(self) -> None:
        head = self._head
        self._head = None
        self._body_scan = None
        self._scan_pos = 0
        if self.state is not HANDLING:
            self._set_state(HANDLING)
        if not self._writing:  # pending output keeps its write timeout
            self._timeout_kind = _NO_TIMEOUT
        self._served = True
        body_cls = StreamingBody if self._server._streaming else Body
        body = body_cls(self, head.body_framing, head.content_length)
        request = Request(head, body, None, self)
        response = ResponseWriter(self, head.version, head.method == "HEAD")
        self._request = request
        self._response = response
        try:
            result = self._server._handler(response, request)
        except Exception as exc:
            self._handler_failed(exc)
            return
        if result is not None and isinstance(result, Coroutine):
            task = self._loop.spawn(result)
            task.add_done_callback(self._on_task_done)
            return
        self._end_request()

    def _on_task_done(self, task: Future[Any]) -> None:
        error = take_exception(task)  # a reactor Task or an asyncio one
        if error is not None:
            self._handler_failed(error)
        else:
            self._end_request()
        if self.state is IDLE:
            self._process()
        elif self.state is HANDLING or self.state is DRAINING:
            self._flush_now()

    def _handler_failed(self, exc: BaseException) -> None:
        # Log the traceback as text, from the handler's frame down. A traceback object in a
        # log record would keep every frame of the stack alive (a frame holds its caller,
        # and ours hold this connection) for as long as a handler keeps the record; as text
        # it pins nothing. The handler's frames are cleared too: they hold its locals (w, r).
        tb = exc.__traceback__
        if tb is not None and tb.tb_frame.f_code is Connection._dispatch.__code__:
            tb = tb.tb_next
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        exc.__traceback__ = None
        traceback.clear_frames(tb)
        del exc, tb
        log.error("handler raised\n%s", text.rstrip())
        response = self._response
        if self._hijacked or self.state is CLOSED or response is None:
            self._end_request()
            return
        if response._head_sent:
            self._end_request(abort=True)
            return
        response._error_response(500, "500 Internal Server Error")
        self._end_request()

    def _end_request(self, abort: bool = False) -> None:
        """The handler returned (or failed): finish the response, detach, and move on."""
        request = self._request
        response = self._response
        self._request = None
        self._response = None
        for waiter in (self._body_waiter, self._drain_fut):
            if waiter is not None and not waiter.done():
                waiter.cancel()
        self._body_waiter = self._drain_fut = None
        if request is None or response is None:
            return
        if self._hijacked or self.state is CLOSED:
            request._detach()
            response._detach()
            return
        try:
            ok = not abort and response._finish()
        except Exception as exc:
            # Finishing runs handler-supplied headers through the serialiser: a bad one
            # (CR/LF in a value) is the handler's error, answered like one.
            log.error("could not finish the response: %s", exc)
            ok = False
            if not response._head_sent:
                response._error_response(500, "500 Internal Server Error")
                ok = response._finish()
        if ok and self._server.config.access_log:
            self._log_access(request, response)
        body = request.body
        if body._remaining or body._decoder is not None:
            try:
                complete = body._skip_rest()
            except ProtocolError:
                complete = False
        else:
            complete = True
        request._detach()
        response._detach()
        if self.state is CLOSED:  # sending the rest of the response found the peer gone
            return
        if not ok:
            self._abort()
            return
        if not complete:
            self._keep_alive = False
        if not self._keep_alive:
            self._closing = True
            self._flush_now()
            return
        self._set_state(IDLE)
        if self._server._state_hook is not None:
            self._hook(HookState.IDLE)
        self._arm_wait_timeout()
        if not self._reading:
            self._resume_reading()

    def _log_access(self, request: Request, response: ResponseWriter) -> None:
        addr = request.remote_addr
        host = addr[0] if isinstance(addr, tuple) else (addr or "-")
        access_log.info(
            '%s - - [%s] "%s %s %s" %d %s',
            host,
            self._server._clf_time(),
            request.method,
            request.target,
            request.version,
            response.status,
            response._sent_body or "-",
            # For the Combined Log Format (reactor serve --access-log-format combined).
            extra={
                "referer": request.headers.get("referer"),
                "user_agent": request.headers.get("user-agent"),
            },
        )

    # -- streaming body and drain waits ---------------------------------------------------

    def _wait_for_body(self) -> Future[None]:
        if self._peer_eof:
            raise BrokenConnectionError("the client closed before sending the whole body")
        if self._continue_pending:
            self._continue_pending = False
            self._writer.write(_CONTINUE)
            self._flush_now()
        fut: Future[None] = self._loop.create_future()
        self._body_waiter = fut
        self._resume_reading()
        # A streaming read waits at most body_timeout for the next bytes (each wait re-arms).
        self._arm(_BODY_TIMEOUT, self._server.config.body_timeout)
        return fut

    def _drain_waiter(self) -> Future[None]:
        fut: Future[None] = self._loop.create_future()
        if self.state is CLOSED:
            fut.set_exception(BrokenConnectionError("the connection is closed"))
            return fut
        self._flush_now()
        if self._writer.buffered() <= self._server.config.write_low_water:
            fut.set_result(None)
        else:
            self._drain_fut = fut
        return fut

    # -- writing ----------------------------------------------------------------------------

    def _flush_now(self) -> None:
        state = self.state
        if state is CLOSED or state is HIJACKED:
            if state is CLOSED and self._response is not None:
                raise BrokenConnectionError("the connection is closed")
            return
        try:
            remaining = self._writer._send_some()
            if not remaining and self._file is not None:
                remaining = self._send_file()
        except OSError:
            self._abort()
            return
        if remaining:
            if not self._writing:
                self._loop.add_writer(self._sock, Connection._on_writable, self)
                self._writing = True
                self._arm(_WRITE_TIMEOUT, self._server.config.write_timeout)
            return
        if self._writing:
            self._loop.remove_writer(self._sock)
            self._writing = False
            self._output_drained()
        if self._closing:
            self._close_after_output()
        elif self.state is DRAINING:
            # Not _process() from here: this may run inside _process itself.
            self._loop.call_soon(Connection._after_drain, self)

    def _after_drain(self) -> None:
        """The output that held up pipelined requests is sent: go on with them."""
        if self.state is not DRAINING or self._writer.buffered() or self._file is not None:
            return
        self._set_state(IDLE)
        if self._peer_eof and not self._reader.buffered():
            self._close()  # the client left while we were draining
            return
        self._arm_wait_timeout()
        self._process()

    def _on_writable(self) -> None:
        file = self._file
        before = self._writer.buffered() + (file.remaining if file is not None else 0)
        try:
            remaining = self._writer._send_some()
            if not remaining and file is not None:
                remaining = self._send_file()
        except OSError:
            self._abort()
            return
        if remaining < before:
            self._arm(_WRITE_TIMEOUT, self._server.config.write_timeout)  # progress
        if self._drain_fut is not None and remaining <= self._server.config.write_low_water:
            self._drain_fut = _settle(self._drain_fut)
        if remaining:
            return
        self._loop.remove_writer(self._sock)
        self._writing = False
        self._output_drained()
        if self._closing:
            self._close_after_output()
        elif self.state is DRAINING:
            self._after_drain()

    # -- file bodies ----------------------------------------------------------------------

    def _queue_file(self, fd: int, offset: int, count: int, close_fd: bool) -> Future[None]:
        """Queue ``count`` bytes of ``fd`` from ``offset`` behind the buffered output."""
        fut: Future[None] = self._loop.create_future()
        # os.sendfile() moves the bytes inside the kernel; it needs a plain socket (TLS
        # must encrypt in user space, so an SSLSocket reads the file in pieces instead).
        use_sendfile = type(self._sock) is socket.socket and hasattr(os, "sendfile")
        self._file = _FileBody(fd, offset, count, close_fd, use_sendfile, fut)
        self._flush_now()
        return fut

    def _send_file(self) -> int:
        """Send what the kernel takes of the queued file; return the bytes left (0: done).
        OSError: the peer is gone, or the file shrank (the response cannot be completed)."""
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

    def _output_drained(self) -> None:
        state = self.state
        if state is IDLE:
            self._arm_wait_timeout()
        elif state is HANDLING:
            self._disarm()

    def _arm_wait_timeout(self) -> None:
        """Between requests: the idle timeout, or the header timeout if the next request has
        begun. While output waits for the kernel the write timeout governs instead."""
        if self._writing:
            return
        if self._reader.buffered():
            self._arm(_HEADER_TIMEOUT, self._server.config.read_header_timeout)
        else:
            self._arm(_IDLE_TIMEOUT, self._server.config.idle_timeout)

    # -- errors, timeouts and closing -------------------------------------------------------

    def _reject(self, exc: ProtocolError) -> None:
        """Answer a bad request with its status, ``Connection: close`` and a one-line reason,
        then close (lingering, so the client reads the answer)."""
        status = exc.status
        reason = reason_phrase(status)
        log.info("bad request from %s: %d %s", self.remote_addr, status, exc)
        if self._server.config.access_log:
            # No request line could be trusted: logged as "-" like nginx does for a 400.
            addr = self.remote_addr
            access_log.info(
                '%s - - [%s] "-" %d -',
                addr[0] if isinstance(addr, tuple) else (addr or "-"),
                self._server._clf_time(),
                status,
                extra={"referer": None, "user_agent": None},
            )
        self._error_and_close(status, f"{status} {reason}: {exc}")

    def _error_and_close(self, status: int, text: str) -> None:
        body = text.encode("utf-8", "replace") + b"\n"
        head = status_line(status) + encode_fields(
            (
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
            )
        )
        self._keep_alive = False
        self._closing = True
        self._head = None
        self._body_scan = None
        self._writer.write(head + b"\r\n" + body)
        self._linger = True
        self._flush_now()

    def _close_after_output(self) -> None:
        """Output is sent and the connection ends: close, lingering if input is unread."""
        if self.state is CLOSING or self.state is CLOSED:
            return
        if self._peer_eof or (not self._reader.buffered() and not self._linger):
            self._close()
            return
        # Closing with unread input makes the kernel send RST, which can destroy the
        # response in flight: shut our side, read and discard until EOF or a short delay.
        self._set_state(CLOSING)
        self._reader._consume(self._reader.buffered())
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close()
            return
        self._resume_reading()
        self._arm(_LINGER_TIMEOUT, _LINGER_SECONDS)

    def _arm(self, kind: int, seconds: float) -> None:
        self._timeout_kind = kind
        deadline = self._loop.time() + seconds
        self._deadline = deadline
        timer = self._timer
        if timer is None or timer.callback is None:
            self._timer = self._loop.call_at(deadline, Connection._on_timer, self)
        elif timer.when > deadline:
            timer.cancel()
            self._timer = self._loop.call_at(deadline, Connection._on_timer, self)

    def _disarm(self) -> None:
        if not self._writing:  # pending output keeps its write timeout
            self._timeout_kind = _NO_TIMEOUT

    def _on_timer(self) -> None:
        self._timer = None
        kind = self._timeout_kind
        if kind == _NO_TIMEOUT or self.state is CLOSED or self.state is HIJACKED:
            return
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, Connection._on_timer, self)
            return
        self._timeout_kind = _NO_TIMEOUT
        if kind == _HEADER_TIMEOUT:
            if self._reader.buffered():
                log.info("read header timeout from %s", self.remote_addr)
                self._error_and_close(408, "408 Request Timeout: request head not received in time")
            else:
                self._close()
        elif kind == _BODY_TIMEOUT and self.state is HANDLING:
            # A streaming handler waited too long for body bytes: its read fails.
            log.info("body timeout from %s (streaming handler)", self.remote_addr)
            self._body_waiter = _settle(
                self._body_waiter, BrokenConnectionError("the request body did not arrive in time")
            )
            self._abort()
        elif kind == _BODY_TIMEOUT:
            log.info("body timeout from %s", self.remote_addr)
            self._error_and_close(408, "408 Request Timeout: request body not received in time")
        elif kind == _IDLE_TIMEOUT:
            self._close()
        elif kind == _WRITE_TIMEOUT:
            log.info("write timeout to %s: the client stopped reading", self.remote_addr)
            self._abort()
        else:  # _LINGER_TIMEOUT
            self._close()

    def _abort(self) -> None:
        """Close now, dropping unsent output."""
        self._writer._buf = b""
        self._close()

    def _close(self) -> None:
        if self.state is CLOSED or self.state is HIJACKED:
            return
        self.state = CLOSED  # every state may close
        self._loop.remove_fd(self._sock)
        self._reading = self._writing = False
        timer = self._timer
        self._timer = None
        if timer is not None:
            timer.cancel()
        error = BrokenConnectionError("the connection was closed")
        self._body_waiter = _settle(self._body_waiter, error)
        self._drain_fut = _settle(self._drain_fut, error)
        file = self._file
        if file is not None:
            self._file = None
            file.finish(BrokenConnectionError("the connection closed before the file was sent"))
        request = self._request
        if request is not None and request.body.complete:
            request._notify_disconnect()
        try:
            self._sock.close()
        except OSError:
            pass
        self._server._forget(self)
        self._hook(HookState.CLOSED)
        if self._response is None:
            self._head = None

    def close(self) -> None:
        """Close the connection now (used by the server's close and shutdown)."""
        self._abort()

    def close_if_idle(self) -> bool:
        """Shutdown: close a keep-alive connection that waits between requests. A connection
        that has not had its first request yet is left to it (its request may be in the
        kernel already; Go spares new connections the same way): it is answered with
        ``Connection: close``, or ends at its header timeout or the grace period."""
        if (
            self.state is IDLE
            and self._served
            and not self._reader.buffered()
            and not self._writer.buffered()
        ):
            self._close()
            return True
        self._keep_alive = False
        return False

    # -- hijack -----------------------------------------------------------------------------

    def _hijack(self) -> tuple[socket.socket, BufferPair]:
        """Leave the server: flush the head already written, unregister, cancel timers,
        leave the table, run the HIJACKED hook; hand over the socket and our own pair."""
        if self.state is CLOSED:
            raise ConnectionClosedError("the connection is closed")
        if self._file is not None:
            raise RuntimeError("hijack() while a sendfile() body is still being sent")
        self._hijacked = True
        self._continue_pending = False
        sock = self._sock
        self._loop.remove_fd(sock)
        self._reading = self._writing = False
        timer = self._timer
        self._timer = None
        if timer is not None:
            timer.cancel()
        self._timeout_kind = _NO_TIMEOUT
        writer = self._writer
        if writer.buffered():
            # The head (B6) must reach the socket before anything the hijacker writes
            # directly on it (B7): finish it in blocking mode, bounded by the write timeout.
            try:
                sock.settimeout(self._server.config.write_timeout)
                writer.flush()
            except OSError:
                # No hand-over: the connection is broken (or stuck); close it like any other.
                self._hijacked = False
                self._abort()
                raise
            finally:
                if sock.fileno() >= 0:
                    sock.setblocking(False)
        self._set_state(HIJACKED)
        self._server._forget(self)
        self._hook(HookState.HIJACKED)
        return sock, BufferPair(self._reader, writer)
