"""ResponseWriter's trailers without sockets: a fake channel that builds heads with the real
ServerProtocol and keeps every byte written; h11, as a client, is the oracle that reads them
(whole and one byte at a time). The same cases over real sockets:
tests/integration/test_trailers.py."""

from __future__ import annotations

import logging
from typing import Any, cast

import h11
import pytest

from reactor.channel import Channel
from reactor.http.headers import Headers
from reactor.http.protocol import FRAMING_LENGTH, ProtocolContext, ServerProtocol
from reactor.response import ResponseWriter

DEFAULTS = (b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n", b"Server: test\r\n")


class FakeChannel:
    """The part of the Channel interface a ResponseWriter uses without files or hijacks."""

    def __init__(self) -> None:
        self.proto = ServerProtocol(ProtocolContext())
        self.out = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.out += data

    def flush(self) -> None:
        pass

    def start_response(
        self,
        status: int,
        headers: Headers,
        version: str,
        body_size: int,
        final: bool,
        body: bytes | None,
    ) -> tuple[int, int]:
        framing, declared, parts = self.proto.response_head(
            status, headers, version, body_size, final, DEFAULTS
        )
        self.out += b"".join(parts)
        if body is not None and framing == FRAMING_LENGTH:
            self.out += body
        return framing, declared


def writer(version: str = "HTTP/1.1", method: str = "GET") -> tuple[ResponseWriter, FakeChannel]:
    channel = FakeChannel()
    return ResponseWriter(cast(Channel, channel), version, method == "HEAD"), channel


def finished(w: ResponseWriter, channel: FakeChannel) -> bytes:
    assert w.finish()
    return bytes(channel.out)


def read(data: bytes, method: str = "GET", one_byte: bool = False) -> dict[str, Any]:
    """The response in ``data`` as h11 reads it: status, headers, body, trailers; and that
    nothing follows it."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "a")]))
    conn.send(h11.EndOfMessage())
    pieces = [data[i : i + 1] for i in range(len(data))] if one_byte else [data]
    result: dict[str, Any] = {"body": b""}
    for piece in pieces:
        conn.receive_data(piece)
        while (event := conn.next_event()) is not h11.NEED_DATA:
            if isinstance(event, h11.Response):
                result["status"] = event.status_code
                result["headers"] = [(n.decode(), v.decode()) for n, v in event.headers]
            elif isinstance(event, h11.Data):
                result["body"] += event.data
            elif isinstance(event, h11.EndOfMessage):
                result["trailers"] = [(n.decode(), v.decode()) for n, v in event.headers]
                assert conn.their_state is h11.DONE
                assert conn.trailing_data == (b"", False)
                return result
    raise AssertionError(f"incomplete response: {data!r}")


def header(resp: dict[str, Any], name: str) -> list[str]:
    return [v for n, v in resp["headers"] if n == name]


@pytest.mark.parametrize("one_byte", [False, True])
def test_declared_trailers_follow_a_whole_body(one_byte: bool) -> None:
    w, channel = writer()
    w.declare_trailer("Server-Timing", "X-Checksum")
    w.write(b"hello")
    w.trailers.set("Server-Timing", "db;dur=53")
    w.trailers["X-Checksum"] = "sha256=abc"
    data = finished(w, channel)
    assert data.endswith(
        b"5\r\nhello\r\n0\r\nServer-Timing: db;dur=53\r\nX-Checksum: sha256=abc\r\n\r\n"
    )
    resp = read(data, one_byte=one_byte)
    assert resp["body"] == b"hello"
    assert header(resp, "transfer-encoding") == ["chunked"]
    assert header(resp, "content-length") == []
    assert header(resp, "trailer") == ["Server-Timing, X-Checksum"]
    assert resp["trailers"] == [("server-timing", "db;dur=53"), ("x-checksum", "sha256=abc")]


def test_trailer_header_set_by_the_handler_declares_too() -> None:
    w, channel = writer()
    w.headers.set("Trailer", "x-sum, Server-Timing")
    w.write(b"a")
    w.flush()
    w.write(b"b")
    w.trailers.set("X-Sum", "2")
    w.trailers.set("server-timing", "app;dur=1")
    resp = read(finished(w, channel))
    assert resp["body"] == b"ab"
    assert resp["trailers"] == [("x-sum", "2"), ("server-timing", "app;dur=1")]


def test_trailers_without_a_body() -> None:
    w, channel = writer()
    w.declare_trailer("X-Sum")
    w.trailers.set("X-Sum", "0")
    data = finished(w, channel)
    assert data.endswith(b"\r\n\r\n0\r\nX-Sum: 0\r\n\r\n")
    assert read(data)["trailers"] == [("x-sum", "0")]


def test_declared_but_never_set_ends_with_the_plain_last_chunk() -> None:
    w, channel = writer()
    w.declare_trailer("X-Sum")
    w.write(b"abc")
    data = finished(w, channel)
    assert data.endswith(b"3\r\nabc\r\n0\r\n\r\n")
    assert read(data)["trailers"] == []


def test_undeclared_trailers_are_sent_on_a_chunked_response() -> None:
    w, channel = writer()
    w.declare_trailer("X-Sum")
    w.write(b"abc")
    w.trailers.set("X-Sum", "1")
    w.trailers.set("X-Late", "2")  # never declared: sent too (an ASGI app declares none)
    resp = read(finished(w, channel))
    assert resp["trailers"] == [("x-sum", "1"), ("x-late", "2")]


@pytest.mark.parametrize(
    "case",
    ["http10", "http10-flushed", "content-length", "head", "204", "304"],
)
def test_dropped_silently_when_the_response_is_not_chunked(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    w, channel = writer(
        version="HTTP/1.0" if case.startswith("http10") else "HTTP/1.1",
        method="HEAD" if case == "head" else "GET",
    )
    w.declare_trailer("X-Sum")
    if case in ("204", "304"):
        w.write_header(int(case))
    else:
        if case == "content-length":
            w.headers.set("Content-Length", "3")
        w.write(b"abc")
        if case == "http10-flushed":
            w.flush()
    w.trailers.set("X-Sum", "1")
    with caplog.at_level(logging.WARNING):
        data = finished(w, channel)
    assert b"X-Sum:" not in data
    assert not caplog.records
    head, _, body = data.partition(b"\r\n\r\n")
    # A HEAD's head says what a GET's would (RFC 9110 9.3.2): chunked, with no body at all.
    assert (b"Transfer-Encoding: chunked" in head) is (case == "head")
    assert body == (b"" if case in ("head", "204", "304") else b"abc")
    if case in ("http10", "content-length"):
        assert b"\r\nContent-Length: 3" in head


def test_forbidden_fields_raise_naming_the_field() -> None:
    w, _ = writer()
    with pytest.raises(ValueError, match="'Content-Length' is not allowed in a trailer"):
        w.declare_trailer("X-Sum", "Content-Length")
    assert "Trailer" not in w.headers  # nothing of a refused call is declared
    with pytest.raises(ValueError, match="'Host' is not allowed"):
        w.trailers.set("Host", "example.com")
    with pytest.raises(ValueError, match="invalid character in header 'X-Sum'"):
        w.trailers.set("X-Sum", "1\r\nSet-Cookie: a=b")
    with pytest.raises(ValueError, match="invalid header name"):
        w.declare_trailer("X Sum")


def test_declaring_twice_lists_a_name_once() -> None:
    w, _ = writer()
    w.declare_trailer("X-Sum")
    w.declare_trailer("x-sum", "X-Other", "x-other")
    assert w.headers.get_all("Trailer") == ["X-Sum, X-Other"]
    w.headers.add("Trailer", "A")  # the handler's own Trailer fields are kept, in one
    w.declare_trailer("B")
    assert w.headers.get_all("Trailer") == ["X-Sum, X-Other, A, B"]


def test_declaring_after_the_head_is_sent_raises() -> None:
    w, channel = writer()
    w.write(b"abc")
    w.flush()
    with pytest.raises(RuntimeError, match="after the response head was sent"):
        w.declare_trailer("X-Sum")
    w.trailers.set("X-Sum", "1")  # the response is chunked already: sent all the same
    assert read(finished(w, channel))["trailers"] == [("x-sum", "1")]


def test_error_response_replaces_declared_trailers() -> None:
    w, channel = writer()
    w.declare_trailer("X-Sum")
    w.trailers.set("X-Sum", "1")
    w.replace_with_error(500, "boom")
    resp = read(finished(w, channel))
    assert resp["status"] == 500 and resp["body"] == b"boom\n"
    assert header(resp, "content-length") == ["5"] and resp["trailers"] == []


def test_a_response_without_trailers_never_creates_them() -> None:
    for flushed in (False, True):
        w, channel = writer()
        w.write(b"abc")
        if flushed:  # chunked: finish() looks for trailers and finds none
            w.flush()
        data = finished(w, channel)
        assert data.endswith(b"0\r\n\r\n" if flushed else b"\r\n\r\nabc")
        assert getattr(w, "_trailers", None) is None
