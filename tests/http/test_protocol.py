"""ServerProtocol without sockets, in the style of h11's test_connection.py: bytes in, events,
states, heads and response bytes out. A small driver plays the glue (reactor/connection.py):
it feeds a Reader, applies every event ``receive`` returns, calls a fake buffering handler that
consumes the body, and finishes the response with ``response_head``/``response_end``."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reactor.buffers import Reader
from reactor.errors import ProtocolError
from reactor.http.headers import Headers
from reactor.http.limits import Limits
from reactor.http.parser import BODY_CHUNKED, BODY_LENGTH, ChunkedDecoder, RequestHead
from reactor.http.protocol import (
    CONTINUE,
    FRAMING_CHUNKED,
    FRAMING_CLOSE,
    FRAMING_LENGTH,
    FRAMING_NONE,
    ProtocolContext,
    ServerProtocol,
)
from reactor.http.state import ConnEvent, ConnState, InvalidTransition

E = ConnEvent
S = ConnState
DEFAULTS = (b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n", b"Server: test\r\n")
RECEIVING = (S.NEW, S.IDLE, S.READING_HEAD, S.READING_BODY)


def reader(data: bytes = b"") -> Reader:
    buf = Reader(None)  # type: ignore[arg-type]  # never touches its socket here
    buf.feed(data)
    return buf


def fields(head: bytes) -> list[tuple[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    assert lines[-2:] == ["", ""], head
    return [(n.lower(), v.strip()) for n, v in (ln.split(":", 1) for ln in lines[1:-2])]


def values(head: bytes, name: str) -> list[str]:
    return [v for n, v in fields(head) if n == name]


def read_body(buf: Reader, head: RequestHead, limits: Limits) -> bytes:
    """What a buffering handler's Body does: consume exactly this request's body."""
    if head.body_framing == BODY_LENGTH:
        data = buf.take(head.content_length)
        assert len(data) == head.content_length
        return data
    if head.body_framing == BODY_CHUNKED:
        decoder, out = ChunkedDecoder(limits), []
        end = decoder.feed(buf.buf, buf.pos, len(buf.buf), out)
        assert decoder.done
        buf.consume(end - buf.pos)
        return b"".join(out)
    return b""


def receive(proto: ServerProtocol, buf: Reader) -> ConnEvent | None:
    """``proto.receive`` as an event: a RequestHead means DISPATCH (kept in ``LAST_HEAD``)."""
    result = proto.receive(buf)
    if isinstance(result, RequestHead):
        LAST_HEAD[id(proto)] = result
        return E.DISPATCH
    return result


LAST_HEAD: dict[int, RequestHead] = {}  # by id() of the protocol; popped when taken

# The state receive() leaves behind with each event it returns (it applies them, as h11's
# next_event does).
APPLIED = {E.HEAD_START: S.READING_HEAD, E.WAIT_BODY: S.READING_BODY, E.DISPATCH: S.HANDLING}


def take_request(proto: ServerProtocol) -> RequestHead:
    return LAST_HEAD.pop(id(proto))


@dataclass
class Driver:
    """The glue's role: receive + apply in a loop, a handler per DISPATCH, then the response."""

    context: ProtocolContext = field(default_factory=ProtocolContext)
    served: list[tuple[str, str, bytes]] = field(default_factory=list)
    events: list[ConnEvent] = field(default_factory=list)
    states_after: list[ConnState] = field(default_factory=list)
    out: bytearray = field(default_factory=bytearray)

    def __post_init__(self) -> None:
        self.proto = ServerProtocol(self.context)
        self.buf = reader()

    def feed(self, data: bytes) -> None:
        self.buf.feed(data)
        proto = self.proto
        while proto.state in RECEIVING:
            event = receive(proto, self.buf)
            if event is None:
                return
            self.events.append(event)
            assert proto.state is APPLIED[event]  # receive() applied what it returned
            if event is E.WAIT_BODY:
                self.out += proto.take_continue()
            elif event is E.DISPATCH:
                self.handle()

    def handle(self) -> None:
        proto = self.proto
        assert proto.state is S.HANDLING
        self.out += proto.take_continue()
        head = take_request(proto)
        body = read_body(self.buf, head, self.context.limits)
        self.served.append((head.method, head.target, body))
        reply = b"%s %s got %d" % (head.method.encode(), head.target.encode(), len(body))
        framing, _, parts = proto.response_head(
            200, Headers([("Content-Type", "text/plain")]), head.version, len(reply), True, DEFAULTS
        )
        assert framing == FRAMING_LENGTH
        self.out += b"".join(parts) + (b"" if head.method == "HEAD" else reply)
        proto.response_end(True)  # applied
        self.states_after.append(proto.state)


def dispatch(request: bytes, **context: object) -> tuple[ServerProtocol, RequestHead]:
    proto = ServerProtocol(ProtocolContext(**context))  # type: ignore[arg-type]
    event = receive(proto, reader(request))
    assert event is E.DISPATCH
    assert proto.state is S.HANDLING
    return proto, take_request(proto)


# -- keep-alive matrix -----------------------------------------------------------------------

REQUEST_CONNECTION = {  # request Connection value -> (keep-alive on 1.0, on 1.1)
    None: (False, True),
    "keep-alive": (True, True),
    "close": (False, False),
    "Keep-Alive, Upgrade": (True, True),
    "keep-alive, close": (False, False),
}


MATRIX = itertools.product(
    ("HTTP/1.0", "HTTP/1.1"),
    REQUEST_CONNECTION,
    ("declared", "final", "streamed"),
    (None, "close"),
)


@pytest.mark.parametrize(("version", "conn", "framing", "handler_conn"), list(MATRIX))
def test_keep_alive_matrix(
    version: str, conn: str | None, framing: str, handler_conn: str | None
) -> None:
    request = f"GET / {version}\r\nHost: a\r\n" + (f"Connection: {conn}\r\n" if conn else "")
    proto, _ = dispatch(request.encode() + b"\r\n")
    headers = Headers([("Content-Length", "5")] if framing == "declared" else [])
    if handler_conn:
        headers.add("Connection", handler_conn)
    got, _, parts = proto.response_head(200, headers, version, 5, framing == "final", DEFAULTS)
    out = b"".join(parts)
    streamed = framing == "streamed"
    by_stream = FRAMING_CHUNKED if version == "HTTP/1.1" else FRAMING_CLOSE
    assert got == (by_stream if streamed else FRAMING_LENGTH)
    assert values(out, "content-length") == ([] if streamed else ["5"])
    assert values(out, "transfer-encoding") == (["chunked"] if got == FRAMING_CHUNKED else [])
    keep = (
        REQUEST_CONNECTION[conn][version == "HTTP/1.1"]
        and handler_conn != "close"
        and got != FRAMING_CLOSE
    )
    event = proto.response_end(True)
    assert event is (E.RESPONSE_DONE if keep else E.END)
    assert proto.keep_alive is keep
    assert proto.state is (S.IDLE if keep else S.CLOSING)
    if not keep:
        assert values(out, "connection") == ["close"]
    else:
        assert values(out, "connection") == (["keep-alive"] if version == "HTTP/1.0" else [])


def test_handler_keep_alive_never_hides_a_close() -> None:
    """A handler's ``Connection: keep-alive`` cannot keep a connection the server closes; the
    head must then say ``close`` (as for HTTP/1.1), never promise a reuse that won't happen."""
    wrong = []
    for version, conn, final in itertools.product(
        ("HTTP/1.0", "HTTP/1.1"), REQUEST_CONNECTION, (True, False)
    ):
        request = f"GET / {version}\r\nHost: a\r\n" + (f"Connection: {conn}\r\n" if conn else "")
        proto, _ = dispatch(request.encode() + b"\r\n")
        headers = Headers([("Connection", "keep-alive")])
        out = b"".join(proto.response_head(200, headers, version, 5, final, DEFAULTS)[2])
        keep = proto.response_end(True) is E.RESPONSE_DONE
        want = ["keep-alive"] if keep else ["close"]
        if values(out, "connection") != want:
            wrong.append(
                (version, conn, "final" if final else "streamed", values(out, "connection"))
            )
    assert wrong == []


def test_no_reuse_after_shutdown_eof_or_unread_body() -> None:
    ctx = ProtocolContext()
    ctx.reuse = False
    proto = ServerProtocol(ctx)
    assert receive(proto, reader(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")) is E.DISPATCH
    assert proto.keep_alive is False
    proto, _ = dispatch(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    proto.peer_closed()
    assert proto.response_end(True) is E.END
    proto, _ = dispatch(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx")
    assert proto.response_end(False) is E.END
    assert proto.keep_alive is False


# -- pipelining ------------------------------------------------------------------------------

PIPELINE = (
    b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
    b"POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
    b"PUT /three HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nTrailer: t\r\n\r\n"
)


def test_three_pipelined_requests_in_one_feed() -> None:
    d = Driver()
    d.feed(PIPELINE)
    assert d.served == [
        ("GET", "/one", b""),
        ("POST", "/two", b"hello"),
        ("PUT", "/three", b"abcde"),
    ]
    assert d.events == [E.DISPATCH] * 3
    assert d.states_after == [S.IDLE] * 3
    assert d.proto.state is S.IDLE and d.buf.buffered() == 0
    assert bytes(d.out).count(b"HTTP/1.1 200 OK\r\n") == 3
    assert bytes(d.out).endswith(b"Content-Length: 16\r\n\r\nPUT /three got 5")
    assert b"Connection" not in d.out


def test_bytes_held_while_handling_are_not_parsed() -> None:
    proto = ServerProtocol(ProtocolContext())
    buf = reader(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n")
    assert receive(proto, buf) is E.DISPATCH
    assert take_request(proto).target == "/a"
    assert receive(proto, buf) is None and proto.state is S.HANDLING
    assert proto.response_end(True) is E.RESPONSE_DONE and proto.state is S.IDLE
    assert receive(proto, buf) is E.DISPATCH
    assert take_request(proto).target == "/b"


# -- 100-continue ----------------------------------------------------------------------------

EXPECT = b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"


def test_continue_when_buffering_waits_for_the_body() -> None:
    proto, buf = ServerProtocol(ProtocolContext()), reader(EXPECT)
    assert receive(proto, buf) is E.WAIT_BODY
    assert proto.state is S.READING_BODY
    assert proto.take_continue() == CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert proto.take_continue() == b""
    buf.feed(b"hel")
    assert receive(proto, buf) is None
    buf.feed(b"lo")
    assert receive(proto, buf) is E.DISPATCH
    assert proto.state is S.HANDLING
    assert proto.take_continue() == b""
    assert buf.take(-1) == b"hello"


@pytest.mark.parametrize(
    ("request_bytes", "streaming", "event", "cont"),
    [
        (EXPECT + b"hello", False, E.DISPATCH, b""),  # the body is already here
        (EXPECT.replace(b"HTTP/1.1", b"HTTP/1.0"), False, E.WAIT_BODY, b""),  # never on 1.0
        (b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", False, E.DISPATCH, b""),
        (EXPECT, True, E.DISPATCH, CONTINUE),  # streaming: the handler decides to read
    ],
)
def test_when_a_continue_is_owed(
    request_bytes: bytes, streaming: bool, event: E, cont: bytes
) -> None:
    proto = ServerProtocol(ProtocolContext(streaming=streaming))
    assert receive(proto, reader(request_bytes)) is event
    assert proto.state is APPLIED[event]
    assert proto.take_continue() == cont
    assert proto.take_continue() == b""


def test_driver_sends_continue_before_the_response() -> None:
    d = Driver()
    d.feed(EXPECT)
    assert bytes(d.out) == CONTINUE and d.proto.state is S.READING_BODY
    d.feed(b"hello")
    assert d.served == [("POST", "/", b"hello")]
    assert bytes(d.out).startswith(CONTINUE + b"HTTP/1.1 200 OK\r\n")
    assert bytes(d.out).count(b"100 Continue") == 1


# -- bodiless responses and the framing table ------------------------------------------------


def respond(
    status: int, items: list[tuple[str, str]], size: int = 0, final: bool = True
) -> tuple[int, int, bytes]:
    proto, _ = dispatch(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    framing, declared, parts = proto.response_head(
        status, Headers(items), "HTTP/1.1", size, final, DEFAULTS
    )
    return framing, declared, b"".join(parts)


@pytest.mark.parametrize("status", [100, 103, 204, 304])
def test_bodiless_statuses(status: int) -> None:
    items = [("Content-Length", "42"), ("Transfer-Encoding", "chunked")]
    framing, declared, head = respond(status, items, final=False)
    assert framing == FRAMING_NONE
    assert values(head, "transfer-encoding") == []
    # 304 keeps the length of the representation it stands for; 1xx and 204 never have one.
    assert values(head, "content-length") == (["42"] if status == 304 else [])
    assert declared == (42 if status == 304 else -1)
    assert head.startswith(b"HTTP/1.1 %d " % status)


def test_head_request_frames_like_get_and_keeps_alive() -> None:
    d = Driver()
    d.feed(b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /g HTTP/1.1\r\nHost: a\r\n\r\n")
    out = bytes(d.out)
    assert out.count(b"HTTP/1.1 200 OK") == 2 and d.states_after == [S.IDLE, S.IDLE]
    assert b"Content-Length: 13\r\n\r\nHTTP/1.1 200 OK" in out  # HEAD: length, no body
    assert out.endswith(b"\r\n\r\nGET /g got 0")


def test_handler_transfer_encoding_is_replaced() -> None:
    framing, _, head = respond(200, [("Transfer-Encoding", "gzip")], final=False)
    assert framing == FRAMING_CHUNKED
    assert values(head, "transfer-encoding") == ["chunked"]
    framing, _, head = respond(200, [("Transfer-Encoding", "chunked")], size=3)
    assert framing == FRAMING_LENGTH
    assert values(head, "transfer-encoding") == [] and values(head, "content-length") == ["3"]


@pytest.mark.parametrize(
    "case",
    [
        ([("Content-Length", "10")], "HTTP/1.1", 3, False, (FRAMING_LENGTH, 10, "10", None)),
        ([("content-length", " 10 ")], "HTTP/1.0", 10, True, (FRAMING_LENGTH, 10, "10", None)),
        ([], "HTTP/1.1", 7, True, (FRAMING_LENGTH, -1, "7", None)),
        ([], "HTTP/1.0", 0, True, (FRAMING_LENGTH, -1, "0", None)),
        ([], "HTTP/1.1", 7, False, (FRAMING_CHUNKED, -1, None, "chunked")),
        ([], "HTTP/1.0", 7, False, (FRAMING_CLOSE, -1, None, None)),
    ],
)
def test_framing_table(
    case: tuple[list[tuple[str, str]], str, int, bool, tuple[int, int, str | None, str | None]],
) -> None:
    items, version, size, final, want = case
    proto, _ = dispatch(f"GET / {version}\r\nHost: a\r\nConnection: keep-alive\r\n\r\n".encode())
    framing, declared, parts = proto.response_head(
        200, Headers(items), version, size, final, DEFAULTS
    )
    head = b"".join(parts)
    assert (framing, declared) == want[:2]
    assert values(head, "content-length") == ([want[2]] if want[2] else [])
    assert values(head, "transfer-encoding") == ([want[3]] if want[3] else [])
    assert proto.keep_alive is (framing != FRAMING_CLOSE)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n" + DEFAULTS[0] + DEFAULTS[1])


@pytest.mark.parametrize("value", ["2", "abc", "-1", ""])
def test_bad_or_too_small_declared_length_is_a_value_error(value: str) -> None:
    with pytest.raises(ValueError):
        respond(200, [("Content-Length", value)], size=5)


# -- rejections ------------------------------------------------------------------------------

BAD = {
    "request line": (b"GARBAGE\r\n\r\n", 400),
    "no host": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "bad length": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", 400),
    "bare LF after chunk data": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"a\r\n0123456789\n0\r\n\r\n",
        400,
    ),
    "version": (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    "coding": (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    "too large": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n", 413),
    "long line": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n", 414),
    "expect": (b"GET / HTTP/1.1\r\nHost: a\r\nExpect: nothing\r\n\r\n", 417),
}


def check_rejection(out: bytes, status: int, with_body: bool) -> None:
    head, sep, body = out.partition(b"\r\n\r\n")
    assert sep
    assert head.startswith(b"HTTP/1.1 %d " % status)
    assert values(head + sep, "connection") == ["close"]
    length = int(values(head + sep, "content-length")[0])
    assert length > 0
    if not with_body:
        assert body == b""
    else:
        assert len(body) == length and body.startswith(b"%d " % status) and body.endswith(b"\n")


@pytest.mark.parametrize(("request_bytes", "status"), list(BAD.values()), ids=list(BAD))
def test_rejection(request_bytes: bytes, status: int) -> None:
    proto, buf = ServerProtocol(ProtocolContext()), reader(request_bytes)
    with pytest.raises(ProtocolError) as info:
        receive(proto, buf)
    assert info.value.status == status
    check_rejection(proto.rejection(info.value, buf), status, with_body=True)
    assert proto.keep_alive is False and proto.linger is True
    assert proto.apply(E.REJECT) is S.CLOSING


def test_bare_lf_after_chunk_data_arriving_later() -> None:
    proto = ServerProtocol(ProtocolContext())
    buf = reader(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert receive(proto, buf) is E.WAIT_BODY
    assert proto.state is S.READING_BODY
    buf.feed(b"a\r\n0123456789")
    assert receive(proto, buf) is None
    buf.feed(b"\n0\r\n\r\n")
    with pytest.raises(ProtocolError) as info:
        receive(proto, buf)
    assert info.value.status == 400
    assert proto.apply(E.REJECT) is S.CLOSING


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"HEAD /url HTTP/1.1\r\n\r\n",  # issue 10, bug 2: no Host
        b"\r\nHEAD /url HTTP/1.1\r\n\r\n",
        b"HEAD / HTTP/1.1\r\nHost: a\r\nExpect: nothing\r\n\r\n",
    ],
)
def test_rejection_of_head_has_no_body(request_bytes: bytes) -> None:
    proto, buf = ServerProtocol(ProtocolContext()), reader(request_bytes)
    with pytest.raises(ProtocolError) as info:
        receive(proto, buf)
    out = proto.rejection(info.value, buf)
    check_rejection(out, info.value.status, with_body=False)
    assert out.endswith(b"Connection: close\r\n\r\n")


def test_rejection_of_a_pipelined_head_after_a_get() -> None:
    d = Driver()
    with pytest.raises(ProtocolError) as info:
        d.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nHEAD /url HTTP/1.1\r\n\r\n")
    assert d.served == [("GET", "/", b"")] and d.proto.state is S.IDLE
    out = d.proto.rejection(info.value, d.buf)
    check_rejection(out, 400, with_body=False)
    assert out.endswith(b"\r\n\r\n")


# -- the state table -------------------------------------------------------------------------


def test_receive_and_response_end_apply_their_events() -> None:
    """receive() moves the state by the table for each event it returns and leaves it alone
    when it returns None or raises; response_end() applies RESPONSE_DONE or END, and is
    refused (InvalidTransition) outside HANDLING."""
    proto, buf = ServerProtocol(ProtocolContext()), reader(b"")
    assert receive(proto, buf) is None and proto.state is S.NEW
    buf.feed(b"GET / HT")
    assert receive(proto, buf) is E.HEAD_START and proto.state is S.READING_HEAD
    assert receive(proto, buf) is None and proto.state is S.READING_HEAD
    buf.feed(b"TP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n")
    assert receive(proto, buf) is E.DISPATCH and proto.state is S.HANDLING
    take_request(proto)
    assert receive(proto, buf) is None and proto.state is S.HANDLING
    assert proto.response_end(True) is E.RESPONSE_DONE and proto.state is S.IDLE
    with pytest.raises(InvalidTransition, match="RESPONSE_DONE in IDLE"):
        proto.response_end(True)
    assert proto.state is S.IDLE
    assert receive(proto, buf) is E.WAIT_BODY and proto.state is S.READING_BODY
    buf.feed(b"x")
    assert receive(proto, buf) is None and proto.state is S.READING_BODY
    buf.feed(b"yGET")
    assert receive(proto, buf) is E.DISPATCH and proto.state is S.HANDLING
    assert buf.take(2) == b"xy"
    assert proto.response_end(False) is E.END and proto.state is S.CLOSING
    proto = ServerProtocol(ProtocolContext())
    with pytest.raises(ProtocolError):
        receive(proto, reader(b"GET / HTTP/1.1\r\n\r\n"))  # no Host
    assert proto.state is S.NEW


def test_apply_rejects_events_the_state_does_not_allow() -> None:
    proto = ServerProtocol(ProtocolContext())
    with pytest.raises(InvalidTransition, match="RESPONSE_DONE in NEW"):
        proto.apply(E.RESPONSE_DONE)
    assert proto.state is S.NEW
    proto.apply(E.DISPATCH)
    with pytest.raises(InvalidTransition, match="DISPATCH in HANDLING"):
        proto.apply(E.DISPATCH)
    proto.apply(E.END)
    with pytest.raises(InvalidTransition, match="REJECT in CLOSING"):
        proto.apply(E.REJECT)
    assert proto.state is S.CLOSING
    proto.apply(E.CLOSE)
    with pytest.raises(InvalidTransition, match="HEAD_START in CLOSED"):
        proto.apply(E.HEAD_START)


# -- random splits ---------------------------------------------------------------------------


Case = tuple[bytes, list[tuple[str, str, bytes]]]


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@st.composite
def pipelines(draw: st.DrawFn) -> Case:
    stream, want = b"", []
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["get", "length", "chunked"]))
        body = b"" if kind == "get" else draw(st.binary(min_size=1, max_size=40))
        method = "GET" if kind == "get" else "POST"
        head = f"{method} /{i} HTTP/1.1\r\nHost: h\r\n".encode()
        if kind == "length":
            stream += head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        elif kind == "chunked":
            cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=3)))
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in cut(body, cuts) if p)
            stream += head + b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
        else:
            stream += head + b"\r\n"
        want.append((method, f"/{i}", body))
    return stream, want


def run_pieces(pieces: list[bytes]) -> Driver:
    d = Driver()
    for piece in pieces:
        d.feed(piece)
    assert d.proto.state is S.IDLE and d.buf.buffered() == 0
    return d


@settings(max_examples=200, deadline=None)
@given(pipelines(), st.data())
def test_random_splits_dispatch_the_same(case: Case, data: st.DataObject) -> None:
    stream, want = case
    whole = run_pieces([stream])
    assert whole.served == want
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    split = run_pieces(cut(stream, cuts))
    assert split.served == want
    assert split.out == whole.out


@settings(max_examples=30, deadline=None)
@given(pipelines())
def test_one_byte_at_a_time(case: Case) -> None:
    stream, want = case
    d = run_pieces([stream[i : i + 1] for i in range(len(stream))])
    assert d.served == want
    assert d.events[0] is E.HEAD_START
    assert d.events.count(E.WAIT_BODY) == sum(1 for m, _, _ in want if m == "POST")
    assert d.events.count(E.DISPATCH) == len(want)


@settings(max_examples=100, deadline=None)
@given(pipelines(), pipelines(), st.data())
def test_two_connections_sharing_a_context_interleave(
    a: Case, b: Case, data: st.DataObject
) -> None:
    context = ProtocolContext()
    drivers, streams, fed = [Driver(context=context), Driver(context=context)], [a[0], b[0]], [0, 0]
    while fed != [len(s) for s in streams]:
        i = data.draw(st.sampled_from([k for k in (0, 1) if fed[k] < len(streams[k])]))
        n = data.draw(st.integers(1, len(streams[i]) - fed[i]))
        drivers[i].feed(streams[i][fed[i] : fed[i] + n])
        fed[i] += n
    assert drivers[0].served == a[1] and drivers[1].served == b[1]


# -- the head shape cache ----------------------------------------------------------------------


def test_declared_length_heads_are_cached_and_still_checked() -> None:
    """A head with the handler's Content-Length is kept in the shape cache (responses of one
    size repeat), comes out the same from it, and a body over the declared length is still
    refused per response; a Set-Cookie head is never kept."""
    from reactor.http import protocol

    def head(fields: list[tuple[str, str]], size: int) -> bytes:
        proto, _ = dispatch(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        return b"".join(
            proto.response_head(200, Headers(fields), "HTTP/1.1", size, True, DEFAULTS)[2]
        )

    protocol._HEAD_SHAPES.clear()
    fields = [("Content-Type", "application/octet-stream"), ("Content-Length", "65536")]
    first = head(fields, 65536)
    assert len(protocol._HEAD_SHAPES) == 1
    assert head(fields, 65536) == first
    assert values(first, "content-length") == ["65536"]
    with pytest.raises(ValueError, match="exceeds the declared Content-Length 65536"):
        head(fields, 65537)
    head([("Set-Cookie", "a=b"), ("Content-Length", "3")], 3)
    assert len(protocol._HEAD_SHAPES) == 1
