"""Response trailers on real sockets: the fields arrive after the body in the last chunk (read
by h11 and by http.client), the connection serves the next request, and HTTP/1.0 and HEAD get
none. Socketless cases: tests/test_response.py, tests/http/test_trailers.py."""

from __future__ import annotations

import hashlib
import http.client
from typing import Any

from reactor import Request, ResponseWriter
from reactor.testing import raw_request

from .wire import ResponseReader, recv_all

BIG = b"0123456789abcdef" * 8192  # 128 KiB: past the response buffer, streamed chunked


def digest(body: bytes) -> str:
    return "sha256=" + hashlib.sha256(body).hexdigest()


def handler(w: ResponseWriter, r: Request) -> Any:
    if r.path == "/async":
        return streamed(w, r)
    if r.path == "/forbidden":
        try:
            w.trailers.set("Content-Length", "5")
        except ValueError as exc:
            w.write(str(exc).encode())
        return None
    body = BIG if r.path == "/big" else b"hello, " + r.path.encode()
    w.declare_trailer("X-Checksum", "Server-Timing")
    w.headers.set("Content-Type", "text/plain")
    w.write(body)
    w.trailers.set("X-Checksum", digest(body))
    w.trailers.set("Server-Timing", "app;dur=1")
    return None


async def streamed(w: ResponseWriter, r: Request) -> None:
    w.headers.set("Trailer", "X-Checksum")
    for i in range(0, len(BIG), 20_000):
        w.write(BIG[i : i + 20_000])
        await w.drain()
    w.trailers.set("X-Checksum", digest(BIG))


def test_trailers_follow_the_body_and_the_connection_is_reused(serve: Any) -> None:
    srv = serve(handler)
    with srv.connect() as s:
        reader = ResponseReader(s)
        for path in ("/one", "/two"):  # the second request, on the same connection
            s.sendall(raw_request("GET", path))
            resp = reader.read()
            body = b"hello, " + path.encode()
            assert resp.status == 200 and resp.body == body
            assert resp.header("transfer-encoding") == "chunked"
            assert resp.header("content-length") is None
            assert resp.header("trailer") == "X-Checksum, Server-Timing"
            assert resp.trailers == [("x-checksum", digest(body)), ("server-timing", "app;dur=1")]
        raw = bytes(reader.raw)
    # On the wire: the fields come after the body, in the last chunk of each response.
    first = raw.split(b"HTTP/1.1 200 OK")[1]
    assert first.index(b"hello, /one") < first.index(b"\r\n0\r\nX-Checksum: ")
    assert first.endswith(b"\r\nServer-Timing: app;dur=1\r\n\r\n")


def test_pipelined_trailered_responses(serve: Any) -> None:
    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request("GET", "/big") + raw_request("GET", "/async") + raw_request())
        reader = ResponseReader(s)
        big, streamed_resp, last = reader.read(), reader.read(), reader.read()
    assert big.body == BIG and big.trailers[0] == ("x-checksum", digest(BIG))
    assert streamed_resp.body == BIG and streamed_resp.trailers == [("x-checksum", digest(BIG))]
    assert last.body == b"hello, /"


def test_http_client_reads_past_the_trailers(serve: Any) -> None:
    srv = serve(handler)
    conn = http.client.HTTPConnection(*srv.address, timeout=5)
    try:
        for path in ("/a", "/async", "/b"):
            conn.request("GET", path)
            resp = conn.getresponse()
            assert resp.read() == (BIG if path == "/async" else b"hello, " + path.encode())
            assert not resp.will_close
    finally:
        conn.close()


def test_http10_gets_no_chunks_and_no_trailers(serve: Any) -> None:
    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(b"GET /old HTTP/1.0\r\n\r\n")
        data = recv_all(s)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head
    assert b"Content-Length: 11\r\n" in head
    assert body == b"hello, /old"
    assert b"X-Checksum:" not in data and b"Server-Timing:" not in data


def test_head_gets_no_body_and_no_trailers(serve: Any) -> None:
    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request("HEAD", "/h") + raw_request("GET", "/g"))
        reader = ResponseReader(s)
        head = reader.read("HEAD")
        assert head.body == b"" and head.trailers == []
        assert reader.read("GET").trailers[0] == ("x-checksum", digest(b"hello, /g"))
    assert b"X-Checksum:" not in bytes(reader.raw).split(b"HTTP/1.1 200 OK")[1]


def test_a_forbidden_field_is_a_value_error(serve: Any) -> None:
    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request("GET", "/forbidden"))
        resp = ResponseReader(s).read()
    assert resp.body == (
        b"field 'Content-Length' is not allowed in a trailer section (RFC 9110 6.5.1)"
    )
    assert resp.trailers == []
