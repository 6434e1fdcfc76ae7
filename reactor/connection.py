"""Connection: the glue between one accepted socket's transport, its HTTP protocol and the
handler.

Transport events (reactor/transport.py, the base class) go to the sans-IO ServerProtocol
(reactor/http/protocol.py), which says what they mean; the handler is called with a Request
and a ResponseWriter; the bytes they produce go back out through the transport. This module
adds what neither half knows: the handler's life (sync or a task), the timeouts (their policy
and the one lazily re-armed timer are the Deadline mixin, reactor/deadline.py), and
``_set_state``, the one method that changes the connection's state: it applies the protocol's
table, updates the server's connection table and runs the state hook (Go's
``(*conn).setState``).

Request and ResponseWriter reach the connection only through the Channel interface
(reactor/channel.py), which ChannelSide (there) and the "channel" section below implement.

Reference discipline (docs/architecture.md, "No cycles"): the Request and ResponseWriter point
back at the connection only while their request runs; ``_end_request`` detaches both, so an
ordinary keep-alive request and a hijacked connection alike are freed by reference counting
alone. Tests: tests/integration/*, tests/leaks/*.
"""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Coroutine
from time import time as _wall_time
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from .accesslog import log_rejected, log_request
from .channel import ChannelSide, ConnectionHost, Waiters
from .config import ServerConfig
from .deadline import (
    BODY_TIMEOUT,
    HEADER_TIMEOUT,
    IDLE_TIMEOUT,
    LINGER_TIMEOUT,
    NO_DEADLINE,
    WRITE_TIMEOUT,
    Deadline,
)
from .errors import BrokenConnectionError, ProtocolError
from .http.headers import Headers
from .http.parser import BODY_LENGTH, BODY_NONE
from .http.protocol import FRAMING_LENGTH, ServerProtocol
from .http.serialize import reason_phrase
from .http.state import (
    CLOSED,
    CLOSING,
    DISPATCH,
    DRAINING,
    END,
    HANDLING,
    HEAD_START,
    HIJACKED,
    HOOKS,
    IDLE,
    LINGERING,
    NEW,
    READING_BODY,
    READING_HEAD,
    WAIT_BODY,
    ConnEvent,
    ConnState,
    HookState,
)
from .loop.futures import Future
from .request import Body, Request, StreamingBody
from .response import ResponseWriter
from .transport import Transport

if TYPE_CHECKING:
    from .loop.handles import TimerHandle

__all__ = ["Connection"]

log = logging.getLogger("reactor.server")

# Bodies at least this large go out beside their head with sendmsg() instead of being joined
# to it (a copy of the whole body); below it the copy costs less than the gather.
_GATHER_MIN = 16 * 1024


E = ConnEvent

# After an error response, how long we keep reading (and discarding) before the final close,
# so that the client reads our response instead of a reset (Go's rstAvoidanceDelay).
_LINGER_SECONDS = 0.5

# Requests of one connection dispatched per loop pass: a client that pipelines thousands of
# them is served a batch at a time, the rest after every other ready connection has had its
# turn (Connection._resume), so many such clients cannot hold the loop for seconds. Pipelining
# clients send far fewer (browsers none, wrk's benchmark 16).
_PASS_BUDGET = 64


def _settle(fut: Future[None] | None, error: BaseException | None = None) -> Future[None] | None:
    """Complete a waiter unless it is done already. Returns None, for the caller to clear
    its place in the same statement: ``waiters.body = _settle(waiters.body)``."""
    if fut is not None and not fut.done():
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)
    return None


class Connection(ChannelSide, Deadline, Transport):
    """One accepted connection, from accept to close or hijack."""

    # Every idle connection pays for each slot: the config and limits are read through the
    # server, and the loop holds the plain functions with ``(self,)`` as their arguments
    # rather than bound methods (a 1-tuple is 16 bytes smaller than a bound method).
    __slots__ = (
        "__weakref__",
        "_addrs",
        "_deadline",
        "_proto",
        "_request",
        "_response",
        "_server",
        "_timeout_kind",
        "_timer",
        "_waiters",
    )

    def __init__(self, server: ConnectionHost, sock: socket.socket) -> None:
        Transport.__init__(self, server.loop, sock)
        self._server = server
        self._proto = ServerProtocol(server.protocol_context)
        self._request: Request | None = None
        self._response: ResponseWriter | None = None
        # A streaming body read and a drain() wait on different events: two places, so that
        # arriving bytes never wake a drain and written bytes never wake a read; made when a
        # handler first waits (an idle connection pays one slot for both).
        self._waiters: Waiters | None = None
        self._timer: TimerHandle | None = None
        self._deadline = 0.0
        self._timeout_kind = NO_DEADLINE
        self._addrs: tuple[Any, Any] | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.remote_addr!r} {self._proto.state.name}>"

    @property
    def remote_addr(self) -> Any:
        """The peer's address (``(host, port)``, or "unix"); None if the socket was closed
        before anyone asked."""
        addrs = self._addrs
        if addrs is None:
            addrs = self._ask_addrs()
        return addrs[0] if addrs is not None else None

    @property
    def local_addr(self) -> Any:
        """The address the connection was accepted on; None if the socket was closed before
        anyone asked."""
        addrs = self._addrs
        if addrs is None:
            addrs = self._ask_addrs()
        return addrs[1] if addrs is not None else None

    def _ask_addrs(self) -> tuple[Any, Any] | None:
        # Asked of the socket when first wanted, then kept: a connection nobody asks (no
        # access log, a handler that never looks) pays one empty slot instead of accept()'s
        # address tuple (about 150 bytes); one that is asked pays the two syscalls and the
        # address formatting once, not per request (about 10,000 instructions a request of
        # an ASGI app, whose scope has both).
        try:
            peer = self._sock.getpeername()
            local = self._sock.getsockname()
        except OSError:
            return None
        addrs = self._addrs = (peer if peer else "unix", local)
        return addrs

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._run_hook(HookState.NEW)
        self.start_reading()
        # A new connection gets the header timeout from its start (Go's ReadHeaderTimeout):
        # a client that connects and sends nothing is cut off like a slow one.
        self._arm(HEADER_TIMEOUT, self._server.config.read_header_timeout)

    def _set_state(self, event: ConnEvent) -> ConnState:
        """The one place the connection moves its state: the protocol's table (``apply``),
        then what follows a change (``_state_changed``). The protocol's ``receive`` and
        ``response_end`` apply the events they return themselves; their callers below report
        the change with ``_state_changed`` alone, and only when it has something to do."""
        proto = self._proto
        old = proto.state
        new = proto.apply(event)
        self._state_changed(old, event, new)
        return new

    def _state_changed(self, old: ConnState, event: ConnEvent, new: ConnState) -> None:
        """What follows a change of state (Go's ``(*conn).setState``): a closed or hijacked
        connection leaves the server's table; the state hook hears what HOOKS says."""
        server = self._server
        if new is CLOSED or new is HIJACKED:
            server.connection_ended(self)
        if old is READING_BODY and new is not READING_BODY:  # rejected, timed out, closed
            server.body_held(self, 0)
        if server.state_hook is not None:
            hook_state = HOOKS.get((old, event))
            if hook_state is not None:
                self._run_hook(hook_state)

    def _run_hook(self, state: HookState) -> None:
        hook = self._server.state_hook
        if hook is not None:
            try:
                hook(self._sock, state)
            except Exception:
                log.exception("connection state hook raised")

    # -- transport events ---------------------------------------------------------------------

    def _eof_received(self, error: OSError | None) -> None:
        """EOF (``error`` None) or a read error."""
        try:
            self._peer_gone(error)
        except Exception as exc:
            self._internal_error(exc)

    def _peer_gone(self, error: OSError | None) -> None:
        """EOF or a read error. EOF means "no more requests", not "forget the ones held"
        (RFC 9112 section 9.6; Go and nginx answer them): complete requests already received
        are answered in order, then the connection closes (``_data_received`` ends it once
        the held bytes make no further request). The response that is known to be the last
        says ``Connection: close``."""
        proto = self._proto
        state = proto.state
        if state is LINGERING:
            self._close()
            return
        if error is not None and state is not HANDLING:
            self._abort()
            return
        reader = self._reader
        held = len(reader.buf) > reader.pos
        if not held:
            proto.peer_closed()  # the current response, if any, is the last
        if state is HANDLING:
            waiters = self._waiters
            if waiters is not None and waiters.body is not None:
                waiters.body = _settle(
                    waiters.body, BrokenConnectionError("the client closed the connection")
                )
            request = self._request
            if request is not None and request.body_complete:
                request.notify_disconnect()
            if error is not None:
                self._abort()
            return
        if state is DRAINING or state is CLOSING:
            return  # the output goes on; the connection ends after it (or after the held)
        if held and state is not READING_BODY:
            # NEW / IDLE / READING_HEAD with bytes held: they may be complete requests (reading
            # had stopped at the read-ahead limit, say). Serve them; _data_received ends the
            # connection after the last.
            self._data_received()
            return
        # Nothing held, or a body that can no longer arrive: no complete request will come.
        # Finish what we owe (nothing, unless output is still queued) and close.
        self._set_state(END)
        if not self.output_pending():
            self._close()

    def _write_progress(self, remaining: int, progressed: bool) -> None:
        try:
            if progressed:
                self._arm(WRITE_TIMEOUT, self._server.config.write_timeout)
            waiters = self._waiters
            if (
                waiters is not None
                and waiters.drain is not None
                and remaining <= self._server.config.write_low_water
            ):
                waiters.drain = _settle(waiters.drain)
            if remaining:
                return
            self._output_drained()
            state = self._proto.state
            if state is CLOSING:
                self._close_after_output()
            elif state is DRAINING:
                self._after_drain()
        except Exception as exc:
            self._internal_error(exc)

    def _write_failed(self, error: OSError) -> None:
        self._abort()

    # -- the request loop ------------------------------------------------------------------

    def _data_received(self) -> None:
        """Bytes arrived (or, from IDLE, output that held requests back is gone, or an async
        handler returned): parse and dispatch every complete request held, then send the
        output once."""
        try:
            state = self._proto.state
            if state is IDLE:  # the usual case, tested first
                pass
            elif state is READING_BODY:
                if not self._writing:  # pending output keeps its write timeout
                    self._arm(BODY_TIMEOUT, self._server.config.body_timeout)
                # The server-wide budget of bodies waiting (it may pause this reading).
                self._server.body_held(self, len(self._reader.buf) - self._reader.pos)
            elif state is LINGERING:
                self._reader.consume(self._reader.buffered())  # discard
                return
            elif state is not NEW and state is not READING_HEAD:
                # The handler runs (async), output drains or the connection ends: hold the
                # bytes (HIJACK-SPEC B2), wake a streaming body read, and stop reading past
                # the read-ahead limit.
                waiters = self._waiters
                if waiters is not None and waiters.body is not None:
                    waiters.body = _settle(waiters.body)
                    self._disarm()
                if self._reader.buffered() > self._server.config.limits.max_read_ahead:
                    self.stop_reading()
                return
            proto = self._proto
            reader = self._reader
            writer = self._writer
            server = self._server
            config = server.config
            high_water = config.write_high_water
            handler = server.handler
            streaming = server.protocol_context.streaming
            # receive() applies the events it returns; with no state hook, nothing else follows
            # them (they neither close nor hijack), so they are reported only to a hook.
            hooked = server.state_hook is not None
            eof = self._eof  # the client ended its side: serve what is held, then end
            budget = _PASS_BUDGET
            while len(reader.buf) > reader.pos:  # bytes held: maybe a (next) request
                if proto.state is IDLE and (self._file is not None or len(writer.buf) > high_water):
                    # Output of earlier responses holds the next request back (a file body
                    # still going out, or output over the high-water mark): send it first.
                    self._flush_now()
                    if self._file is not None or len(writer.buf) > high_water:
                        if proto.state is IDLE:
                            self._set_state(E.OUTPUT_BLOCKED)
                        break
                old = proto.state
                try:
                    event = proto.receive(reader)
                except ProtocolError as exc:
                    self._reject(exc)
                    return
                if event is None:
                    break
                if hooked:
                    self._state_changed(
                        old, event if isinstance(event, ConnEvent) else DISPATCH, proto.state
                    )
                if event is HEAD_START:
                    # Measured from the first byte; later bytes do not extend it. Pending
                    # output keeps its write timeout (the head's is armed once it is sent).
                    if not self._writing:
                        self._arm(HEADER_TIMEOUT, self._server.config.read_header_timeout)
                    break
                if event is WAIT_BODY:
                    # A buffering handler: we are about to wait for the body, so ask for it.
                    cont = proto.take_continue()
                    if cont:
                        writer.write(cont)
                    if not self._writing:  # pending output keeps its write timeout
                        self._arm(BODY_TIMEOUT, self._server.config.body_timeout)
                    server.body_held(self, len(reader.buf) - reader.pos)
                    break
                # A request to dispatch: the parser made it a Request, and DISPATCH is applied.
                # (Here rather than in a method of its own: once per request.)
                request: Request = event  # type: ignore[assignment]
                if old is READING_BODY:  # its body is here: no longer waiting for it
                    server.body_held(self, 0)
                if eof:  # the last request held (as far as a length tells) says close
                    rest = len(reader.buf) - reader.pos
                    if request.body_framing == BODY_LENGTH:
                        rest -= request.content_length
                    if rest <= 0:
                        proto.peer_closed()
                if not self._writing:  # pending output keeps its write timeout
                    self._timeout_kind = NO_DEADLINE
                # The response first: should building the request fail, the client is still
                # owed an answer, and _internal_error finds one with nothing sent.
                response = ResponseWriter(
                    self, request.version, request.method == "HEAD", config.response_buffer
                )
                self._response = response
                if streaming:
                    # (no body: an empty one is made only if the handler asks for it)
                    request.attach(
                        StreamingBody(self, request.body_framing, request.content_length)
                        if request.body_framing != BODY_NONE
                        else None,
                        self,
                        True,
                    )
                elif request.body_framing != BODY_NONE:
                    request.attach(Body(self, request.body_framing, request.content_length), self)
                else:  # no body: an empty one is made only if the handler asks for it
                    request.attach(None, self)
                self._request = request
                try:
                    result = handler(response, request)
                except Exception as exc:
                    self._handler_failed(exc)
                else:
                    if result is not None and (
                        type(result) is CoroutineType or isinstance(result, Coroutine)
                    ):
                        self._loop.spawn(self._run_handler(result))
                        break
                    self._end_request()
                if proto.state is not IDLE:
                    break
                budget -= 1
                if not budget:
                    break
            if not budget and len(reader.buf) > reader.pos:
                # This pass's share is served: the rest after the other ready connections',
                # read no further ahead meanwhile than a handler running would be. The output
                # waits for the next batch's (or goes past the high-water mark, above): a send
                # per batch is many small writes, which TCP delivers to a small receive
                # window at a trickle (delayed ACKs).
                self._loop.call_soon(Connection._resume, self)
                if len(reader.buf) - reader.pos > config.limits.max_read_ahead:
                    self.stop_reading()
                return
            state = proto.state
            if eof and (state is IDLE or state is READING_HEAD or state is NEW):
                # After the client's EOF the held bytes make no further request: the
                # responses owed are queued, so the connection ends after them.
                state = self._set_state(END)
            if state is IDLE and not self._writing and self._file is None:
                # _flush_now() for the usual end of a batch, inlined: one send, and only
                # if the kernel does not take it all, a writer registration.
                try:
                    if writer.send_some():
                        self.watch_writable()
                        self._arm(WRITE_TIMEOUT, self._server.config.write_timeout)
                except OSError:
                    self._abort()
            elif state is not CLOSED and state is not HIJACKED:
                if (state is HANDLING or state is DRAINING) and len(
                    reader.buf
                ) - reader.pos > self._server.config.limits.max_read_ahead:
                    self.stop_reading()
                if state is not HANDLING or writer.buf or self._writing or self._file is not None:
                    self._flush_now()  # (a handler running with nothing to send: nothing to do)
        except Exception as exc:
            self._internal_error(exc)

    def _resume(self) -> None:
        """The next batch of the pipelined requests held (see _PASS_BUDGET)."""
        if self._proto.state is IDLE and self._reader.buffered():
            self._data_received()

    async def _run_handler(self, handler: Coroutine[Any, Any, Any]) -> None:
        """Await an async handler and end its request in the task's last step: no done
        callback, one step less of the loop between the handler's return and its response."""
        try:
            await handler
        except Exception as exc:
            self._handler_done(exc)
        except BaseException:  # cancelled (the request then simply ends), or exiting
            self._handler_done(None)
            raise
        else:
            self._handler_done(None)

    def _handler_done(self, error: BaseException | None) -> None:
        try:
            if error is not None:
                self._handler_failed(error)
            else:
                self._end_request()
            state = self._proto.state
            if state is IDLE:
                if len(self._reader.buf) > self._reader.pos or self._eof:
                    self._data_received()  # pipelined requests held meanwhile (or the end)
                elif self._writer.buf or self._writing or self._file is not None:
                    self._flush_now()  # (an ASGI app's response is usually out already)
            elif state is not CLOSED and state is not HIJACKED:
                self._flush_now()
        except Exception as exc:
            self._internal_error(exc)

    def _handler_failed(self, exc: BaseException) -> None:
        # Log the traceback as text, from the handler's frame down. A traceback object in a
        # log record would keep every frame of the stack alive (a frame holds its caller,
        # and ours hold this connection) for as long as a handler keeps the record; as text
        # it pins nothing. The handler's frames are cleared too: they hold its locals (w, r).
        state = self._proto.state
        # A write or read after the client went away (a reset, a close) is not the server's
        # error, nor the handler's: one line at INFO, as the static and WSGI paths log it.
        gone = state is CLOSED and isinstance(exc, BrokenConnectionError)
        # A request body that breaks the protocol (bad chunk framing, a chunk limit), found
        # as a streaming handler read it: the client's error, answered with its status (as
        # a buffering handler's body is) and logged as a bad request, not a server error.
        bad = exc if isinstance(exc, ProtocolError) else None
        tb = exc.__traceback__
        if tb is not None and tb.tb_frame.f_code in _DISPATCH_CODES:
            tb = tb.tb_next
        quiet = gone or bad is not None
        text = "" if quiet else "".join(traceback.format_exception(type(exc), exc, tb))
        exc.__traceback__ = None
        traceback.clear_frames(tb)
        if gone:
            log.info("the client went away while the handler ran: %s", exc)
        elif bad is not None:
            log.info("bad request body from %s: %d %s", self.remote_addr, bad.status, bad)
        else:
            log.error("handler raised\n%s", text.rstrip())
        del exc, tb
        response = self._response
        if state is HIJACKED or state is CLOSED or response is None:
            self._end_request()
            return
        if response.head_sent:
            self._end_request(abort=True)
            return
        if bad is not None:
            self._proto.stop_reuse()  # the rest of the body cannot be framed: close after
            status = bad.status
            response.replace_with_error(status, f"{status} {reason_phrase(status)}: {bad}")
        else:
            response.replace_with_error(500, "500 Internal Server Error")
        self._end_request()

    def _end_request(self, abort: bool = False) -> None:
        """The handler returned (or failed): finish the response, detach, and move on."""
        request = self._request
        response = self._response
        self._request = None
        self._response = None
        waiters = self._waiters
        if waiters is not None:
            for waiter in (waiters.body, waiters.drain):
                if waiter is not None and not waiter.done():
                    waiter.cancel()
            self._waiters = None
        if request is None or response is None:
            return
        state = self._proto.state
        if state is HIJACKED or state is CLOSED:
            request.detach()
            response.detach()
            return
        try:
            if abort:
                ok = False
                response.detach()
            else:
                ok = response.finish()  # which lets go of the connection
        except Exception as exc:
            # Finishing runs handler-supplied headers through the serialiser: a bad one
            # (CR/LF in a value) is the handler's error, answered like one.
            log.error("could not finish the response: %s", exc)
            ok = False
            if not response.head_sent:
                response.replace_with_error(500, "500 Internal Server Error")
                ok = response.finish()
            response.detach()
        if ok and self._server.config.access_log:
            log_request(self._server.clf_time(), request, response.status, response.body_bytes)
        complete = request.end()  # the unread rest of its body discarded if all here
        if self._proto.state is CLOSED:  # sending the rest of the response found the peer gone
            return
        if not ok:
            self._abort()
            return
        proto = self._proto
        event = proto.response_end(complete)  # applied: IDLE or CLOSING
        if self._server.state_hook is not None:
            self._state_changed(HANDLING, event, proto.state)
        if proto.state is CLOSING:
            self._flush_now()
            return
        if not self._writing:  # _arm_wait_timeout(), inlined: once per request
            reader = self._reader
            if len(reader.buf) > reader.pos:
                self._arm(HEADER_TIMEOUT, self._server.config.read_header_timeout)
            else:
                # _arm(IDLE_TIMEOUT, ...) inlined for its usual case: the armed timer fires
                # no later than the new deadline (it then re-arms itself for it).
                self._timeout_kind = IDLE_TIMEOUT
                deadline = self._deadline = self._loop.time() + self._server.config.idle_timeout
                timer = self._timer
                if timer is None or timer.callback is None or timer.when > deadline:
                    self._arm(IDLE_TIMEOUT, self._server.config.idle_timeout)
        if not self._reading:
            self.start_reading()

    # -- the channel (reactor/channel.py; the rest of it is ChannelSide) -----------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue output; past the high-water mark, send what the kernel takes now."""
        writer = self._writer
        writer.write(data)
        if len(writer.buf) > self._server.config.write_high_water:
            self._flush_now()

    def _response_started(self) -> bool:
        """Whether the current response's head is out (a 100 Continue is then too late:
        Go stops offering it once WriteHeader is called)."""
        response = self._response
        return response is not None and response.head_sent

    @property
    def config(self) -> ServerConfig:
        return self._server.config

    def start_response(
        self,
        status: int,
        headers: Headers,
        version: str,
        body_size: int,
        final: bool,
        body: bytes | None,
    ) -> tuple[int, int]:
        """Queue a response head (the protocol decides the framing: see
        ServerProtocol.response_head). ``body``, the held body in one piece, goes right
        behind the head, in one buffer append, if the framing is by length: then (and only
        then) it was taken. Returns ``(framing, declared length or -1)``."""
        server = self._server
        defaults = server.date_lines
        if server.date_second != int(_wall_time()):  # default_headers(), inlined
            defaults = server.default_headers()
        framing, declared, parts = self._proto.response_head(
            status, headers, version, body_size, final, defaults
        )
        writer = self._writer
        if body is not None and framing == FRAMING_LENGTH:
            if (
                body_size >= _GATHER_MIN  # (the held body is all there is: its size)
                and not writer.buf
                and self._file is None
                and type(self._sock) is socket.socket  # an SSLSocket has no sendmsg
            ):
                self._send_gathered(b"".join(parts), body)
                return framing, declared
            parts.append(body)
        if writer.buf:
            writer.write(b"".join(parts))
            if len(writer.buf) > self._server.config.write_high_water:
                self._flush_now()
        else:  # the usual case: the writer adopts the bytes, no copy (Writer.write inlined)
            writer.buf = b"".join(parts)
            if len(writer.buf) > self._server.config.write_high_water:
                self._flush_now()
        return framing, declared

    # -- writing ----------------------------------------------------------------------------

    def _send_gathered(self, head: bytes, body: bytes) -> None:
        """A large body behind its head with nothing queued before them: one ``sendmsg``
        of both, so the body is not copied into a joined buffer first; only what the
        kernel does not take now is copied into the writer, and goes out as usual."""
        writer = self._writer
        try:
            sent = self._sock.sendmsg((head, body))
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._abort()
            return
        if sent < len(head):
            writer.buf = bytearray(head[sent:]) + body
        elif sent < len(head) + len(body):
            writer.buf = bytearray(memoryview(body)[sent - len(head) :])
        else:
            return
        self._flush_now()  # (a writer registration and a write timeout: what is left waits)

    def _flush_now(self) -> None:
        state = self._proto.state
        if state is CLOSED or state is HIJACKED:
            if state is CLOSED and self._response is not None:
                raise BrokenConnectionError("the connection is closed")
            return
        was_writing = self._writing
        try:
            if was_writing or self._file is not None:
                remaining = self.flush_output()
            else:  # the usual case, flush_output() inlined: one send, nothing registered
                remaining = self._writer.send_some()
                if remaining:
                    self.watch_writable()
        except OSError:
            self._abort()
            return
        if remaining:
            if not was_writing:
                self._arm(WRITE_TIMEOUT, self._server.config.write_timeout)
            return
        if was_writing:
            self._output_drained()
        if state is CLOSING:
            self._close_after_output()
        elif state is DRAINING:
            # Not _data_received() from here: this may run inside it.
            self._loop.call_soon(Connection._after_drain, self)

    def _after_drain(self) -> None:
        """The output that held up pipelined requests is sent: go on with them."""
        try:
            if self._proto.state is not DRAINING or self.output_pending():
                return
            self._set_state(E.OUTPUT_DRAINED)
            if self._eof and not self._reader.buffered():
                self._set_state(END)
                self._close()  # the client left while we were draining
                return
            self._arm_wait_timeout()
            # Reading may have stopped at the read-ahead limit while the output drained.
            self.start_reading()
            self._data_received()
        except Exception as exc:
            self._internal_error(exc)

    # -- errors, timeouts and closing -------------------------------------------------------

    def _reject(self, exc: ProtocolError) -> None:
        """Answer a bad request with its status, ``Connection: close`` and a one-line reason,
        then close (lingering, so the client reads the answer)."""
        status = exc.status
        log.info("bad request from %s: %d %s", self.remote_addr, status, exc)
        if self._server.config.access_log:
            log_rejected(self._server.clf_time(), self.remote_addr, status)
        self._writer.write(self._proto.rejection(exc, self._reader))
        self._set_state(E.REJECT)
        self._flush_now()

    def _error_and_close(self, status: int, text: str) -> None:
        """A timeout's error response (408), then close. Not in the middle of a response."""
        self._writer.write(self._proto.error_response(status, text))
        self._set_state(END)
        self._flush_now()

    def _internal_error(self, exc: BaseException) -> None:
        """Reactor's own code raised while handling this connection's event: end the
        connection (a 500 if no response head was sent yet, else an abort), logged once."""
        log.error(
            "internal error on the connection from %s; closing it",
            self.remote_addr,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        state = self._proto.state
        if state is CLOSED or state is HIJACKED:
            return
        response = self._response
        # Nothing of an answer sent yet: between requests, or a response whose head is not
        # out. A HANDLING connection without a response is finishing one: abort then.
        unanswered = (
            response is not None and not response.head_sent
            if state is HANDLING
            else state is not CLOSING and state is not LINGERING and state is not DRAINING
        )
        self._detach_exchange()
        try:
            if not unanswered:
                self._abort()
                return
            self._writer.write(self._proto.error_response(500, "500 Internal Server Error"))
            self._set_state(END)
            self._flush_now()
        except Exception:
            log.exception("could not end the connection from %s cleanly", self.remote_addr)
            self._abort()

    def _detach_exchange(self) -> None:
        """Let go of the current request and response, if any (they are over)."""
        request = self._request
        response = self._response
        self._request = None
        self._response = None
        if request is not None:
            request.detach()
        if response is not None:
            response.detach()

    def _close_after_output(self) -> None:
        """Output is sent and the connection ends: close, lingering if input is unread."""
        if self._proto.state is not CLOSING:
            return
        if self._eof or (not self._reader.buffered() and not self._proto.linger):
            self._close()
            return
        # Closing with unread input makes the kernel send RST, which can destroy the
        # response in flight: shut our side, read and discard until EOF or a short delay.
        self._set_state(E.LINGER)
        self._reader.consume(self._reader.buffered())
        if not self.shutdown_write():
            self._close()
            return
        self.start_reading()
        self._arm(LINGER_TIMEOUT, _LINGER_SECONDS)

    def _abort(self) -> None:
        """Close now, dropping unsent output."""
        self._writer.clear()
        self._close()

    def _close(self) -> None:
        state = self._proto.state
        if state is CLOSED or state is HIJACKED:
            return
        # Unregistered before the CLOSED hook runs: a hook that closes the socket would
        # otherwise leave the fd number registered for the next connection to collide with.
        self.stop_io()
        self._set_state(E.CLOSE)  # every live state may close
        self._cancel_timer()
        waiters = self._waiters
        if waiters is not None:
            error = BrokenConnectionError("the connection was closed")
            waiters.body = _settle(waiters.body, error)
            waiters.drain = _settle(waiters.drain, error)
        response = self._response
        if response is not None:
            response.connection_lost()
        request = self._request
        if request is not None and request.body_complete:
            request.notify_disconnect()
        self.close_transport()

    def pause_body_reading(self) -> None:
        """The server's budget of buffered bodies is spent and this connection holds more
        than another: stop reading. The body timeout keeps running (every connection's
        life stays bounded, as nginx's and Go's timeouts do: a paused upload that waits
        longer than the body timeout gets its 408, rather than an attacker's stalled
        uploads being kept forever once paused)."""
        self.stop_reading()

    def resume_body_reading(self) -> None:
        if self._proto.state is READING_BODY:
            self.start_reading()

    def close(self) -> None:
        """Close the connection now (used by the server's close and shutdown)."""
        self._abort()

    def close_if_idle(self) -> bool:
        """Shutdown: close a keep-alive connection that waits between requests. A connection
        that has not had its first request yet is left to it (its request may be in the
        kernel already; Go spares new connections the same way): it is answered with
        ``Connection: close``, or ends at its header timeout or the grace period."""
        if (
            self._proto.state is IDLE
            and not self._reader.buffered()
            and not self._writer.buffered()
        ):
            self._close()
            return True
        self._proto.stop_reuse()
        return False


# The frames of ours a handler's traceback starts with, left out of its log line.
_DISPATCH_CODES = (Connection._data_received.__code__, Connection._run_handler.__code__)
