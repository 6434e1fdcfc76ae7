"""ServerProtocol: the server side of one HTTP/1.1 connection, without sockets. Sans-IO.

Owns a connection's HTTP state (ConnState, changed only through the (state, event) table in
state.py), keep-alive (Go's shouldReuseConnection), ``Expect: 100-continue``,
the decision of what a head means (dispatch now, wait for the body, reject), response
framing (Content-Length, chunked or close-delimited; no body for HEAD, 1xx, 204 and 304;
chunked whenever an HTTP/1.1 response declares a ``Trailer``, the only framing that can carry
one) and the bytes of rejections. Bytes and decisions in, bytes and decisions out: it reads a
receive buffer it is given (``buf[pos:]`` held, ``consume(n)``), returns events and bytes, and
never touches a socket, a selector, a loop or a clock. As in h11 (whose ``next_event`` has
processed the event it returns), ``receive`` and ``response_end`` apply the events they return;
every other event is one the glue (reactor/connection.py) reports with ``apply``. Either way the
new state is a look-up in the table and nothing else writes ``state``.

Tests: tests/http/test_protocol.py (socketless, in the style of h11's test_connection.py),
test_trailers.py.
"""

from __future__ import annotations

from typing import Protocol

from ..errors import ProtocolError
from .headers import Headers
from .limits import Limits
from .parser import BODY_CHUNKED, BODY_LENGTH, BODY_NONE, ChunkedDecoder, RequestHead, RequestParser
from .serialize import encode_fields, reason_phrase, status_line
from .state import (
    DISPATCH,
    END,
    HEAD_START,
    IDLE,
    NEW,
    READING_BODY,
    READING_HEAD,
    RESPONSE_DONE,
    TRANSITIONS,
    WAIT_BODY,
    ConnEvent,
    ConnState,
    InvalidTransition,
)

__all__ = [
    "BODYLESS",
    "CONTINUE",
    "FRAMING_CHUNKED",
    "FRAMING_CLOSE",
    "FRAMING_LENGTH",
    "FRAMING_NONE",
    "ProtocolContext",
    "ReceiveBuffer",
    "ServerProtocol",
]


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

# Response body framing, decided once per response (0: not decided yet).
FRAMING_LENGTH = 1  # Content-Length
FRAMING_CHUNKED = 2  # Transfer-Encoding: chunked (HTTP/1.1)
FRAMING_CLOSE = 3  # the body ends when the connection closes (HTTP/1.0, unknown length)
FRAMING_NONE = 4  # no body: 1xx, 204, 304

# The Content-Length lines of the small bodies most responses have, formatted once.
_LENGTH_LINES = [b"Content-Length: %d\r\n" % n for n in range(1024)]

# Final statuses that carry no body (1xx never do either).
BODYLESS = frozenset({204, 304})
# Fields whose presence changes what the server adds or how it frames the body.
_HEAD_FIELDS = frozenset(
    {"content-length", "transfer-encoding", "date", "server", "connection", "trailer"}
)
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
# Fields that keep a head's shape out of _HEAD_SHAPES. Not Content-Length: a shape keyed by
# its value is worth keeping, since responses of one size repeat (a resource served again, an
# API's fixed-size answers, a WSGI app that always declares its length), and the cache is
# bounded, so sizes that never repeat cost only the misses they would cost anyway.
_UNSHAPED_FIELDS = _VOLATILE_FIELDS - {"content-length"}
_STATUS_LINES_11: dict[int, bytes] = {}


class ReceiveBuffer(Protocol):
    """What the protocol reads requests from (reactor.buffers.Reader is one): the held bytes
    are ``buf[pos:]``; ``consume(n)`` drops the first ``n`` of them. When every held byte is
    consumed, the protocol may instead set ``buf = b""`` and ``pos = 0`` (cheaper)."""

    buf: bytes | bytearray
    pos: int

    def consume(self, n: int) -> None: ...


class ProtocolContext:
    """What every connection of one server shares: the limits, whether handlers stream, a
    parser for complete heads, and whether connections may still be reused (not after
    shutdown has begun)."""

    __slots__ = ("head_class", "limits", "parser", "reuse", "streaming")

    def __init__(
        self,
        limits: Limits | None = None,
        streaming: bool = False,
        head_class: type[RequestHead] = RequestHead,
    ) -> None:
        self.limits = limits if limits is not None else Limits()
        self.streaming = streaming
        self.reuse = True
        # What parsed heads are made as (the server's Request: see RequestParser).
        self.head_class = head_class
        # Parses every complete head; only its fast path is used across connections (a
        # connection whose head arrives in pieces gets a parser of its own).
        self.parser = RequestParser(self.limits, head_class)


class ServerProtocol:
    """The HTTP/1.1 state of one connection. ``state`` changes only in ``apply``."""

    # Every idle connection pays for each slot (the per-response counters live on the
    # response object, which exists only while a request runs).
    __slots__ = (
        "body_scan",
        "context",
        "continue_pending",
        "head",
        "keep_alive",
        "linger",
        "parser",
        "scan_pos",
        "state",
    )

    def __init__(self, context: ProtocolContext) -> None:
        self.context = context
        self.state = NEW
        self.keep_alive = True
        # Whether a "100 Continue" is owed before the body is read (take_continue()).
        self.continue_pending = False
        # Whether to read and discard after the last output even if no input is held: an
        # error response can leave the client sending (Go's rstAvoidanceDelay).
        self.linger = False
        # The head whose body a buffering handler waits for, and the chunked scan over it.
        self.head: RequestHead | None = None
        self.body_scan: ChunkedDecoder | None = None
        self.scan_pos = 0
        # None while no partial head is pending: see ProtocolContext.parser.
        self.parser: RequestParser | None = None

    def __repr__(self) -> str:
        return f"<ServerProtocol {self.state.name} keep_alive={self.keep_alive}>"

    # -- the one place the state changes ---------------------------------------------------

    def apply(self, event: ConnEvent) -> ConnState:
        """Move to the state the table gives for ``event``; InvalidTransition if none (events
        the glue reports: receive() and response_end() apply their own)."""
        new = TRANSITIONS.get((self.state, event))
        if new is None:
            raise InvalidTransition(
                f"invalid connection state transition: {event.name} in {self.state.name}"
            )
        self.state = new
        return new

    # -- requests in -----------------------------------------------------------------------

    def receive(self, buf: ReceiveBuffer) -> RequestHead | ConnEvent | None:
        """Look at the held bytes and say what they make: a RequestHead (a request to
        dispatch: DISPATCH is applied, the state is HANDLING), WAIT_BODY (a buffering handler's
        head whose body is not all here; applied: READING_BODY), HEAD_START (the first bytes of
        a head; applied: READING_HEAD), or None (nothing new: more bytes are needed; the state
        is unchanged). A complete head is consumed; a body is not (the handler reads it).
        Raises ProtocolError (with the status to answer) for a bad request; the state is then
        unchanged (the glue applies REJECT).

        Every state that reads (NEW, IDLE, READING_HEAD, READING_BODY) has a transition for
        each event returned, so the look-ups below cannot fail."""
        state = self.state
        if state is READING_BODY:
            if self._body_arrived(buf):
                self.state = TRANSITIONS[READING_BODY, DISPATCH]
                return self._take_head()
            return None
        if state is not NEW and state is not IDLE and state is not READING_HEAD:
            return None
        parser = self.parser
        context = self.context
        data = buf.buf
        try:
            if parser is None:
                parsed = context.parser.parse(data, buf.pos)
                if parsed is None and len(data) > buf.pos:
                    # A partial head: from now on this connection remembers how far it
                    # searched, in a parser of its own.
                    context.parser.reset()
                    parser = self.parser = RequestParser(context.limits, context.head_class)
                    parsed = parser.parse(data, buf.pos)
            else:
                parsed = parser.parse(data, buf.pos)
                if parsed is not None:
                    self.parser = None
        except ProtocolError:
            self.parser = None
            context.parser.reset()
            raise
        if parsed is None:
            if state is not READING_HEAD and len(data) > buf.pos:
                self.state = TRANSITIONS[state, HEAD_START]
                return HEAD_START
            return None
        head, end = parsed
        if end >= len(data):  # the usual case: the head was all that was held
            buf.buf = b""
            buf.pos = 0
        else:
            buf.consume(end - buf.pos)
        # What the head means (inlined: once per request).
        if not head.keep_alive or not context.reuse:
            self.keep_alive = False
        expect = head.expect
        if expect is not None and expect != "100-continue":
            self.head = head  # the rejection answers it (bodiless if it is a HEAD)
            raise ProtocolError(f"unsupported Expect {expect!r}", status=417)
        framing = head.body_framing
        if framing == BODY_NONE:
            if self.continue_pending:  # owed to an earlier request that never read its body
                self.continue_pending = False
            self.state = TRANSITIONS[state, DISPATCH]
            return head
        # A 100 Continue is owed to an HTTP/1.1 client that asked and has a body to send.
        self.continue_pending = expect is not None and head.version == "HTTP/1.1"
        if context.streaming:
            self.state = TRANSITIONS[state, DISPATCH]
            return head
        self.head = head
        if framing == BODY_CHUNKED:
            self.body_scan = ChunkedDecoder(context.limits)
        if self._body_arrived(buf):
            self.continue_pending = False
            self.state = TRANSITIONS[state, DISPATCH]
            return self._take_head()
        self.state = TRANSITIONS[state, WAIT_BODY]
        return WAIT_BODY

    def _body_arrived(self, buf: ReceiveBuffer) -> bool:
        """Whether the whole body of the current head is held (it is not consumed)."""
        head = self.head
        assert head is not None
        held = len(buf.buf) - buf.pos
        if head.body_framing == BODY_LENGTH:
            return held >= head.content_length
        scan = self.body_scan
        assert scan is not None
        # The scan position is relative to the start of the body, which does not move while
        # we wait (nothing consumes the buffer until the handler runs).
        pos = buf.pos
        self.scan_pos = scan.feed(buf.buf, pos + self.scan_pos, pos + held) - pos
        return scan.done

    def _take_head(self) -> RequestHead:
        """The head whose body has arrived, forgetting it and its body scan."""
        head = self.head
        assert head is not None
        self.head = None
        self.body_scan = None
        self.scan_pos = 0
        return head

    def take_continue(self) -> bytes:
        """The ``100 Continue`` owed before the body is read, once; else ``b""``."""
        if self.continue_pending:
            self.continue_pending = False
            return CONTINUE
        return b""

    def peer_closed(self) -> None:
        """The client sent EOF: no request will follow (held complete ones still count)."""
        self.keep_alive = False

    def stop_reuse(self) -> None:
        """This connection serves no request after the current one (shutdown, a hijack
        refused...)."""
        self.keep_alive = False

    # -- responses out ---------------------------------------------------------------------

    def response_head(
        self,
        status: int,
        headers: Headers,
        version: str,
        body_size: int,
        final: bool,
        defaults: tuple[bytes, bytes],
    ) -> tuple[int, int, list[bytes]]:
        """Decide the framing of a response, once: returns ``(framing, declared length or
        -1, parts of the head)``; ``b"".join(parts)`` is the head.

        ``body_size`` bytes are written already; ``final``: the handler returned, so they are
        the whole body. ``defaults``: the ``Date`` and ``Server`` lines to add unless the
        handler set them. ValueError for a bad field or a body over a declared length."""
        # The shape of the head (framing, status line, the encoded fields, what the server
        # adds) depends on these alone; most responses repeat one, so it is looked up.
        fields = headers.fields
        keep_alive = self.keep_alive
        key = (status, version, keep_alive, final, *fields)
        shape = _HEAD_SHAPES.get(key)
        if shape is None:
            shape = _head_shape(status, fields, version, keep_alive, final)
            if shape[9]:  # no field whose value changes per response: keep it
                if len(_HEAD_SHAPES) >= _HEAD_SHAPES_MAX:
                    _HEAD_SHAPES.clear()
                _HEAD_SHAPES[key] = shape
        framing, declared, line, has_date, has_server, middle, add_length, end, reuse, _ = shape
        if -1 < declared < body_size:
            raise ValueError(
                f"body of {body_size} bytes exceeds the declared Content-Length {declared}"
            )
        if not reuse:
            self.keep_alive = False
        parts = [
            line,
            b"" if has_date else defaults[0],
            b"" if has_server else defaults[1],
            middle,
            (
                (
                    _LENGTH_LINES[body_size]
                    if body_size < 1024
                    else b"Content-Length: %d\r\n" % body_size
                )
                if add_length
                else b""
            ),
            end,
        ]
        return framing, declared, parts

    def response_end(self, body_complete: bool) -> ConnEvent:
        """The response is sent and the request's body was read (``body_complete``) or not:
        RESPONSE_DONE if the connection may serve another request, else END (Go's
        shouldReuseConnection). The event is applied (from HANDLING: IDLE or CLOSING)."""
        if body_complete and self.keep_alive:
            event = RESPONSE_DONE
        else:
            self.keep_alive = False
            event = END
        try:
            self.state = TRANSITIONS[self.state, event]
        except KeyError:
            raise InvalidTransition(
                f"invalid connection state transition: {event.name} in {self.state.name}"
            ) from None
        return event

    def error_response(self, status: int, text: str, head_only: bool = False) -> bytes:
        """A complete plain-text error response that ends the connection (rejections and
        timeouts). ``head_only``: the request was HEAD, so the body is left out (its length is
        still announced, RFC 9110 section 9.3.2)."""
        body = text.encode("utf-8", "replace") + b"\n"
        head = status_line(status) + encode_fields(
            (
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
            )
        )
        self.keep_alive = False
        self.linger = True
        self.head = None
        self.body_scan = None
        self.continue_pending = False
        return head + b"\r\n" + (b"" if head_only else body)

    def rejection(self, error: ProtocolError, buf: ReceiveBuffer | None = None) -> bytes:
        """The error response to a bad request (``error.status``, its reason), bodiless if
        the request is a HEAD: the head being handled says so, or else the held bytes the
        error was found in begin with one."""
        status = error.status
        head = self.head
        if head is not None:
            head_only = head.method == "HEAD"
        elif buf is not None:
            start = bytes(buf.buf[buf.pos : buf.pos + 64]).lstrip(b"\r\n")
            head_only = start.startswith(b"HEAD ")
        else:
            head_only = False
        return self.error_response(status, f"{status} {reason_phrase(status)}: {error}", head_only)


# Head shapes (_head_shape) by (status, version, keep-alive, final, *fields); bounded.
_HeadShape = tuple[int, int, bytes, bool, bool, bytes, bool, bytes, bool, bool]
_HEAD_SHAPES: dict[tuple[object, ...], _HeadShape] = {}
_HEAD_SHAPES_MAX = 256


def _head_shape(
    status: int, fields: list[tuple[str, str]], version: str, keep_alive: bool, final: bool
) -> _HeadShape:
    """Everything of a response head but the body size and the Date/Server values:
    ``(framing, declared length or -1, status line, has Date, has Server, the fields and
    framing line, whether a Content-Length line for the body size follows, the rest through
    the empty line, whether the connection may be reused, cacheable)``. ValueError for a bad
    field."""
    bodyless = status < 200 or status in BODYLESS
    (
        field_lines,
        declared,
        has_date,
        has_server,
        has_connection,
        handler_close,
        has_trailer,
        cacheable,
    ) = _scan_fields(fields, status, bodyless)
    keep_alive = keep_alive and not handler_close
    framing_line = b""
    add_length = False
    if bodyless:
        framing = FRAMING_NONE
    elif declared >= 0:
        framing = FRAMING_LENGTH
    elif final and not (has_trailer and version == "HTTP/1.1"):
        # A declared trailer keeps an HTTP/1.1 body chunked: a length would drop it (Go
        # sets no Content-Length either once a Trailer is declared).
        framing = FRAMING_LENGTH
        add_length = True
    elif version == "HTTP/1.1":
        framing = FRAMING_CHUNKED
        framing_line = b"Transfer-Encoding: chunked\r\n"
    else:
        framing = FRAMING_CLOSE
        keep_alive = False
    end = b"\r\n"
    if status != 101:
        if not keep_alive:
            if has_connection:  # the handler's value may say keep-alive: ours decides
                field_lines = b"".join(
                    ln + b"\n"
                    for ln in field_lines.split(b"\n")
                    if ln and ln[:11].lower() != b"connection:"
                )
            end = b"Connection: close\r\n\r\n"
        elif version == "HTTP/1.0" and not has_connection:
            end = b"Connection: keep-alive\r\n\r\n"
    line = _STATUS_LINES_11.get(status)
    if line is None:
        line = _STATUS_LINES_11[status] = status_line(status, "HTTP/1.1")
    return (
        framing,
        declared,
        line,
        has_date,
        has_server,
        field_lines + framing_line,
        add_length,
        end,
        keep_alive or status == 101,  # a 101 leaves the connection to whoever takes it
        cacheable,
    )


def _scan_fields(
    fields: list[tuple[str, str]], status: int, bodyless: bool
) -> tuple[bytes, int, bool, bool, bool, bool, bool, bool]:
    """One pass over a response's fields: ``(encoded lines, declared length or -1, has Date,
    has Server, has Connection, Connection says close, has Trailer, cacheable)``. Cacheable:
    no field of _UNSHAPED_FIELDS. ValueError for a bad field."""
    has_date = has_server = has_connection = handler_close = has_trailer = False
    cacheable = True
    declared = -1
    lines: list[bytes] = []
    cache = _FIELD_LINES
    for item in fields:
        lname = item[0].lower()
        if lname in _UNSHAPED_FIELDS:
            cacheable = False
        if lname in _HEAD_FIELDS:
            if lname == "content-length":
                if bodyless and status != 304:
                    continue
                if declared < 0:
                    declared = _parse_length(item[1])
            elif lname == "transfer-encoding":
                continue  # the framing is ours to decide; a handler's value is replaced
            elif lname == "date":
                has_date = True
            elif lname == "server":
                has_server = True
            elif lname == "trailer":
                has_trailer = True
            else:  # connection
                has_connection = True
                if "close" in item[1].lower():
                    handler_close = True  # the handler ends the connection
        line = cache.get(item)
        if line is None:
            line = _encode_field(item, lname)
        lines.append(line)
    return (
        b"".join(lines),
        declared,
        has_date,
        has_server,
        has_connection,
        handler_close,
        has_trailer,
        cacheable,
    )


def _encode_field(item: tuple[str, str], lname: str) -> bytes:
    line = encode_fields((item,))
    if lname not in _VOLATILE_FIELDS:
        if len(_FIELD_LINES) >= _FIELD_LINES_MAX:
            _FIELD_LINES.clear()
        _FIELD_LINES[item] = line
    return line


def _parse_length(value: str) -> int:
    value = value.strip()
    if not value.isdigit():
        raise ValueError(f"invalid Content-Length header {value!r}")
    return int(value)
