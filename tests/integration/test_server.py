"""The server core on real sockets: keep-alive, pipelining, bodies, 100-continue, HEAD,
framing, handler exceptions, client-disconnect notification, real clients."""

from __future__ import annotations

import http.client
import logging
import shutil
import socket
import subprocess
import threading
import time
from typing import Any

import pytest
import urllib3

from reactor import Request, ResponseWriter, ServerConfig, streaming
from reactor.testing import raw_request

from .wire import ResponseReader, is_closed, recv_all, recv_until, wait_for


def hello(w: ResponseWriter, r: Request) -> None:
    w.headers.set("Content-Type", "text/plain")
    w.write(b"Hello, World!")


def echo(w: ResponseWriter, r: Request) -> None:
    body = r.body.read()
    w.headers.set("X-Path", r.path)
    w.headers.set("X-Query", r.query)
    w.headers.set("X-Method", r.method)
    w.write(body)


def test_keep_alive_http_client(serve: Any) -> None:
    srv = serve(hello)
    conn = http.client.HTTPConnection(*srv.address, timeout=5)
    for _ in range(5):
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read() == b"Hello, World!"
        assert resp.getheader("Content-Length") == "13"
        assert resp.getheader("Server") == "reactor"
        assert resp.getheader("Date")
    # One connection served all five.
    assert srv.call(lambda: srv.server.connection_count) == 1
    conn.close()


def test_urllib3_pool_reuses_connection(serve: Any) -> None:
    srv = serve(echo)
    with urllib3.PoolManager() as pool:
        for i in range(5):
            resp = pool.request("POST", f"{srv.url}/p?i={i}", body=b"x" * i)
            assert resp.status == 200
            assert resp.data == b"x" * i
            assert resp.headers["X-Query"] == f"i={i}"
        assert srv.call(lambda: srv.server.connection_count) == 1


def test_curl(serve: Any) -> None:
    assert shutil.which("curl"), "curl is required (.ci/run installs it)"
    srv = serve(echo)
    out = subprocess.run(
        ["curl", "-s", "-i", "--data-binary", "hello", f"{srv.url}/a/b?c=d"],
        capture_output=True,
        timeout=10,
        check=True,
    ).stdout
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"X-Path: /a/b\r\n" in out and b"X-Query: c=d\r\n" in out
    assert out.endswith(b"\r\n\r\nhello")


def test_http10_closes_unless_keep_alive(serve: Any) -> None:
    srv = serve(hello)
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = recv_all(s)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close\r\n" in data
    assert data.endswith(b"Hello, World!")
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        data = recv_until(s, b"Hello, World!")
        assert b"Connection: keep-alive\r\n" in data
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert recv_all(s).endswith(b"Hello, World!")


def test_connection_close_request(serve: Any) -> None:
    srv = serve(hello)
    with srv.connect() as s:
        s.sendall(raw_request(headers=[("Connection", "close")]))
        data = recv_all(s)
    assert b"Connection: close\r\n" in data
    assert data.endswith(b"Hello, World!")


def test_pipelined_responses_in_order_and_coalesced(serve: Any) -> None:
    seen: list[str] = []

    def handler(w: ResponseWriter, r: Request) -> None:
        seen.append(r.path)
        w.write(r.path.encode())

    srv = serve(handler)
    burst = b"".join(raw_request(target=f"/{i}") for i in range(20))
    with srv.connect() as s:
        s.sendall(burst)
        reader = ResponseReader(s)
        bodies = [reader.read().body for _ in range(20)]
    assert bodies == [f"/{i}".encode() for i in range(20)]
    assert seen == [f"/{i}" for i in range(20)]


def count_sends(monkeypatch: Any) -> list[int]:
    """The sizes of the sends a Writer makes from now on (the test's own list)."""
    from reactor import buffers

    sends: list[int] = []
    real = buffers.Writer.send_some

    def counting(self: buffers.Writer) -> int:
        if self.buf:
            sends.append(len(self.buf))
        return real(self)

    monkeypatch.setattr(buffers.Writer, "send_some", counting)
    return sends


def test_pipelined_burst_is_one_send(serve: Any, monkeypatch: Any) -> None:
    """Responses to a burst that arrives in one read go out in one send."""
    sends = count_sends(monkeypatch)
    srv = serve(hello)
    with srv.connect() as s:
        s.sendall(raw_request() * 10)
        reader = ResponseReader(s)
        for _ in range(10):
            assert reader.read().body == b"Hello, World!"
    assert len(sends) == 1


def test_a_burst_past_the_pass_budget_is_served_a_batch_per_pass(
    serve: Any, monkeypatch: Any
) -> None:
    """More pipelined requests than one pass serves (reactor.connection._PASS_BUDGET): a
    batch per pass, every one answered in order, and the batches' output goes out together
    below the high-water mark (a send per batch is small writes, which TCP trickles to a
    small receive window: tests/adversarial/test_issue11_faults.py's half-close after a
    flood). That other connections are served between two batches:
    tests/adversarial/test_floods.py."""
    from reactor import connection

    budget = connection._PASS_BUDGET
    order: list[str] = []
    sends = count_sends(monkeypatch)
    resumed: list[int] = []
    real_resume = connection.Connection._resume

    def resume(conn: connection.Connection) -> None:
        resumed.append(len(order))
        real_resume(conn)

    monkeypatch.setattr(connection.Connection, "_resume", resume)

    def handler(w: ResponseWriter, r: Request) -> None:
        order.append(r.path)
        w.write(r.path.encode())

    srv = serve(handler)
    count = 3 * budget + 5
    with srv.connect() as s:
        s.sendall(b"".join(raw_request(target=f"/{i}") for i in range(count)))
        reader = ResponseReader(s)
        bodies = [reader.read().body for _ in range(count)]
    assert bodies == [f"/{i}".encode() for i in range(count)]
    assert order == [f"/{i}" for i in range(count)]
    assert resumed == [budget, 2 * budget, 3 * budget]  # each batch in a pass of its own
    assert len(sends) == 1  # the four batches' answers (64, 64, 64 and 5) in one send


def test_async_handler_pipelined_in_order(serve: Any) -> None:
    async def handler(w: ResponseWriter, r: Request) -> None:
        await srv.loop.sleep(0.01 if r.path == "/0" else 0)
        w.write(r.path.encode())

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request(target="/0") + raw_request(target="/1") + raw_request(target="/2"))
        reader = ResponseReader(s)
        assert [reader.read().body for _ in range(3)] == [b"/0", b"/1", b"/2"]


def test_content_length_body(serve: Any) -> None:
    srv = serve(echo)
    with srv.connect() as s:
        body = bytes(range(256)) * 1000
        s.sendall(raw_request("POST", "/", body=body))
        assert ResponseReader(s).read().body == body


def test_body_sent_slowly_waits_for_whole_body(serve: Any) -> None:
    srv = serve(echo)
    with srv.connect() as s:
        head = raw_request("POST", "/", [("Content-Length", "10")])
        s.sendall(head + b"01234")
        time.sleep(0.05)
        s.sendall(b"56789")
        assert ResponseReader(s).read().body == b"0123456789"


def test_chunked_request_body(serve: Any) -> None:
    srv = serve(echo)
    with srv.connect() as s:
        s.sendall(raw_request("POST", "/", chunks=[b"hello ", b"chunked ", b"world"]))
        assert ResponseReader(s).read().body == b"hello chunked world"
        # Split at awkward places: the head, the sizes and the data arrive in pieces.
        data = raw_request("POST", "/", chunks=[b"a" * 1000, b"b" * 17])
        for i in range(0, len(data), 7):
            s.sendall(data[i : i + 7])
        assert ResponseReader(s).read().body == b"a" * 1000 + b"b" * 17


def test_chunked_trailers_visible(serve: Any) -> None:
    def handler(w: ResponseWriter, r: Request) -> None:
        r.body.read()
        w.write(repr(r.body.trailers).encode())

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\nX-Sum: 42\r\n\r\n"
        )
        assert ResponseReader(s).read().body == b"[('X-Sum', '42')]"


def test_chunked_response_when_flushed(serve: Any) -> None:
    def handler(w: ResponseWriter, r: Request) -> None:
        w.write(b"part1,")
        w.flush()
        w.write(b"part2")

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request())
        resp = ResponseReader(s).read()
        assert resp.header("transfer-encoding") == "chunked"
        assert resp.header("content-length") is None
        assert resp.body == b"part1,part2"


def test_close_delimited_response_on_http10(serve: Any) -> None:
    def handler(w: ResponseWriter, r: Request) -> None:
        w.write(b"a")
        w.flush()
        w.write(b"b")

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        data = recv_all(s)
    assert b"Transfer-Encoding" not in data
    assert b"Connection: close" in data
    assert data.endswith(b"\r\n\r\nab")


def test_large_response_uses_chunked_past_buffer(serve: Any) -> None:
    payload = b"z" * (300 * 1024)

    def handler(w: ResponseWriter, r: Request) -> None:
        for i in range(0, len(payload), 50_000):
            w.write(payload[i : i + 50_000])

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request())
        resp = ResponseReader(s).read()
        assert resp.body == payload
        assert resp.header("transfer-encoding") == "chunked"


def test_declared_content_length_is_used(serve: Any) -> None:
    def handler(w: ResponseWriter, r: Request) -> None:
        w.headers.set("Content-Length", "6")
        w.write(b"abc")
        w.flush()
        w.write(b"def")

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request())
        resp = ResponseReader(s).read()
        assert resp.header("content-length") == "6"
        assert resp.body == b"abcdef"


def test_a_streaming_handler_reads_the_empty_body_of_a_get(serve: Any) -> None:
    """A request without a body gets no body object until the handler asks; a streaming
    handler then gets one it can await (read() is a coroutine), already complete."""

    @streaming
    async def handler(w: ResponseWriter, r: Request) -> None:
        complete = r.body_complete
        data = await r.body.read()
        w.write(b"%s %d %s" % (type(r.body).__name__.encode(), len(data), b"%r" % complete))

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request())
        assert ResponseReader(s).read().body == b"StreamingBody 0 True"


def test_end_sends_the_whole_response_while_the_handler_goes_on(serve: Any) -> None:
    """``w.end()``: the response is out (with its Content-Length) before the handler returns;
    a write after it raises; the next request waits for the handler to return."""
    may_return = threading.Event()
    late_write: list[str] = []

    async def handler(w: ResponseWriter, r: Request) -> None:
        if r.path == "/next":
            w.write(b"next")
            return
        w.write(b"done early")
        w.end()
        try:
            w.write(b"more")
        except Exception as exc:
            late_write.append(type(exc).__name__)
        while not may_return.is_set():  # work after the response (a background task)
            await srv.loop.sleep(0.01)

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request() + raw_request(target="/next"))
        reader = ResponseReader(s)
        first = reader.read()  # while the handler still runs
        assert (first.body, first.header("content-length")) == (b"done early", "10")
        may_return.set()
        assert reader.read().body == b"next"
    assert late_write == ["ConnectionClosedError"]  # (written before the handler returned)


def test_end_short_of_the_declared_length_raises_and_aborts(serve: Any) -> None:
    errors: list[str] = []

    def handler(w: ResponseWriter, r: Request) -> None:
        w.headers.set("Content-Length", "9")
        w.write(b"short")
        try:
            w.end()
        except ValueError as exc:
            errors.append(str(exc))

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request())
        out = recv_all(s)
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"\r\n\r\nshort")
    assert errors == ["body of 5 bytes is shorter than the declared Content-Length 9"]


def test_head_has_no_body(serve: Any) -> None:
    srv = serve(hello)
    with srv.connect() as s:
        s.sendall(raw_request("HEAD", "/") + raw_request("GET", "/"))
        reader = ResponseReader(s)
        head = reader.read("HEAD")
        assert head.header("content-length") == "13"
        assert head.body == b""
        assert reader.read("GET").body == b"Hello, World!"


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_statuses(serve: Any, status: int) -> None:
    def handler(w: ResponseWriter, r: Request) -> None:
        w.write_header(status)

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request() + raw_request())
        reader = ResponseReader(s)
        for _ in range(2):
            resp = reader.read()
            assert resp.status == status
            assert resp.header("content-length") is None
            assert resp.header("transfer-encoding") is None


def test_interim_103_then_final(serve: Any) -> None:
    def handler(w: ResponseWriter, r: Request) -> None:
        w.headers.set("Link", "</style.css>; rel=preload")
        w.write_header(103)
        w.headers.remove("Link")
        w.write(b"done")

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request())
        resp = ResponseReader(s).read()
        assert resp.interim == [103]
        assert resp.body == b"done"


def test_expect_100_continue_buffering_handler(serve: Any) -> None:
    srv = serve(echo)
    with srv.connect() as s:
        s.sendall(raw_request("POST", "/", [("Expect", "100-continue"), ("Content-Length", "5")]))
        got = recv_until(s, b"\r\n\r\n")
        assert got == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"hello")
        data = recv_until(s, b"hello")
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")


def test_expect_100_continue_not_sent_when_body_present(serve: Any) -> None:
    srv = serve(echo)
    with srv.connect() as s:
        s.sendall(
            raw_request("POST", "/", [("Expect", "100-continue"), ("Content-Length", "5")])
            + b"hello"
        )
        data = recv_until(s, b"hello")
        assert b"100 Continue" not in data


def test_expect_100_continue_too_large_gets_413(serve: Any) -> None:
    from reactor import Limits

    srv = serve(echo, ServerConfig(limits=Limits(max_body_size=10)))
    with srv.connect() as s:
        s.sendall(raw_request("POST", "/", [("Expect", "100-continue"), ("Content-Length", "11")]))
        data = recv_all(s)
    assert data.startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in data


def test_expect_unknown_gets_417(serve: Any) -> None:
    srv = serve(echo)
    with srv.connect() as s:
        s.sendall(raw_request("POST", "/", [("Expect", "fancy"), ("Content-Length", "1")]) + b"x")
        assert recv_all(s).startswith(b"HTTP/1.1 417 ")


def test_streaming_handler_reads_body_as_it_arrives(serve: Any) -> None:
    pieces: list[bytes] = []

    @streaming
    async def handler(w: ResponseWriter, r: Request) -> None:
        while True:
            data = await r.body.read(4)
            if not data:
                break
            pieces.append(data)
        w.write(b"|".join(pieces))

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request("POST", "/", [("Expect", "100-continue"), ("Content-Length", "8")]))
        assert recv_until(s, b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"abcd")
        time.sleep(0.05)
        s.sendall(b"efgh")
        resp = ResponseReader(s).read()
        assert resp.body == b"abcd|efgh"


def test_handler_exception_before_head_gives_500_and_keeps_serving(serve: Any, caplog: Any) -> None:
    def handler(w: ResponseWriter, r: Request) -> None:
        if r.path == "/boom":
            w.write(b"partial")
            raise ValueError("boom")
        w.write(b"ok")

    srv = serve(handler)
    with caplog.at_level(logging.ERROR, logger="reactor.server"), srv.connect() as s:
        s.sendall(raw_request(target="/boom") + raw_request(target="/ok"))
        reader = ResponseReader(s)
        resp = reader.read()
        assert resp.status == 500
        assert b"Traceback" not in resp.body and b"boom" not in resp.body
        assert reader.read().body == b"ok"
    records = [r for r in caplog.records if "handler raised" in r.getMessage()]
    assert len(records) == 1
    assert "Traceback" in records[0].getMessage() and "ValueError: boom" in caplog.text


def test_async_handler_exception_gives_500(serve: Any, caplog: Any) -> None:
    async def handler(w: ResponseWriter, r: Request) -> None:
        await srv.loop.sleep(0)
        raise KeyError("async boom")

    srv = serve(handler)
    with caplog.at_level(logging.ERROR, logger="reactor.server"), srv.connect() as s:
        s.sendall(raw_request())
        assert ResponseReader(s).read().status == 500
    assert "async boom" in caplog.text


def test_handler_exception_after_head_aborts(serve: Any, caplog: Any) -> None:
    def handler(w: ResponseWriter, r: Request) -> None:
        w.write(b"first")
        w.flush()
        raise RuntimeError("after head")

    srv = serve(handler)
    with caplog.at_level(logging.ERROR, logger="reactor.server"), srv.connect() as s:
        s.sendall(raw_request())
        data = recv_all(s)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert not data.endswith(b"0\r\n\r\n")  # no last chunk: the client sees the truncation
    assert "after head" in caplog.text


def test_disconnect_notification_callback_and_awaitable(serve: Any) -> None:
    events: list[str] = []
    done = threading.Event()

    async def handler(w: ResponseWriter, r: Request) -> None:
        r.on_disconnect(lambda: events.append("callback"))
        await r.wait_disconnected()
        events.append("awaited")
        done.set()

    srv = serve(handler)
    s = srv.connect()
    s.sendall(raw_request())
    time.sleep(0.05)
    s.close()
    assert done.wait(2)
    assert events == ["callback", "awaited"]


def test_pipelined_bytes_do_not_signal_disconnect(serve: Any) -> None:
    events: list[str] = []

    async def handler(w: ResponseWriter, r: Request) -> None:
        r.on_disconnect(lambda: events.append(r.path))
        await srv.loop.sleep(0.1)
        w.write(b"ok")

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request(target="/a") + raw_request(target="/b"))
        reader = ResponseReader(s)
        assert reader.read().body == b"ok"
        assert reader.read().body == b"ok"
    assert events == []


def test_write_backpressure_drain(serve: Any) -> None:
    total = 8 * 1024 * 1024
    drained: list[int] = []

    async def handler(w: ResponseWriter, r: Request) -> None:
        w.headers.set("Content-Length", str(total))
        chunk = b"d" * 65536
        for _ in range(total // len(chunk)):
            w.write(chunk)
            await w.drain()
            drained.append(1)

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request())
        time.sleep(0.2)  # the client does not read yet: the server must wait, not buffer all
        assert len(drained) < total // 65536
        resp = ResponseReader(s).read(timeout=20)
        assert len(resp.body) == total


def test_remote_addr_and_headers_multimap(serve: Any) -> None:
    seen: dict[str, Any] = {}

    def handler(w: ResponseWriter, r: Request) -> None:
        seen["addr"] = r.remote_addr
        seen["all"] = r.headers.get_all("x-a")
        seen["first"] = r.headers.get("X-A")
        seen["order"] = [n for n, _ in r.headers]
        w.write(b"")

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-b: 2\r\nX-a: 3\r\n\r\n")
        ResponseReader(s).read()
        assert seen["addr"] == s.getsockname()
    assert seen["all"] == ["1", "3"] and seen["first"] == "1"
    assert seen["order"] == ["Host", "X-A", "x-b", "X-a"]


def test_response_splitting_is_refused(serve: Any, caplog: Any) -> None:
    def handler(w: ResponseWriter, r: Request) -> None:
        w.headers.set("X-Evil", "a\r\nSet-Cookie: x=1")
        w.write(b"body")

    srv = serve(handler)
    with caplog.at_level(logging.ERROR, logger="reactor.server"), srv.connect() as s:
        s.sendall(raw_request())
        resp = ResponseReader(s).read()
    assert resp.status == 500
    assert resp.header("set-cookie") is None


def test_ipv6_loopback(serve: Any) -> None:
    srv = serve(hello, host="::1")
    conn = http.client.HTTPConnection("::1", srv.port, timeout=5)
    conn.request("GET", "/")
    assert conn.getresponse().read() == b"Hello, World!"
    conn.close()


def test_unix_socket(tmp_path: Any) -> None:
    from reactor import SelectorLoop, Server

    loop = SelectorLoop()
    server = Server(hello, loop=loop)
    path = str(tmp_path / "r.sock")
    server.listen_unix(path)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(path)
            s.sendall(raw_request())
            assert ResponseReader(s).read().body == b"Hello, World!"
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.stop()
        thread.join(5)
        loop.close()


def test_closed_client_is_closed_on_server(serve: Any) -> None:
    srv = serve(hello)
    s = srv.connect()
    s.sendall(raw_request())
    ResponseReader(s).read()
    assert wait_for(lambda: srv.call(lambda: srv.server.connection_count) == 1)
    s.close()
    assert wait_for(lambda: srv.call(lambda: srv.server.connection_count) == 0)


def test_half_closed_client_still_gets_response(serve: Any) -> None:
    srv = serve(echo)
    with srv.connect() as s:
        s.sendall(raw_request("POST", "/", body=b"half"))
        s.shutdown(socket.SHUT_WR)
        data = recv_all(s)
    assert data.endswith(b"half")


def test_read_ahead_is_capped_while_a_handler_runs(serve: Any) -> None:
    from reactor import Limits

    release = threading.Event()
    seen: list[tuple[bool, int]] = []

    async def handler(w: ResponseWriter, r: Request) -> None:
        if r.path == "/slow":
            while not release.is_set():
                await srv.loop.sleep(0.01)
            conn = w._channel
            assert conn is not None
            seen.append((conn._reading, conn._reader.buffered()))
        w.write(b"ok")

    srv = serve(handler, ServerConfig(limits=Limits(max_read_ahead=16 * 1024)))
    with srv.connect() as s:
        s.sendall(raw_request(target="/slow"))
        burst = raw_request(target="/next") * 4000  # ~100 KiB of pipelined requests
        sender = threading.Thread(target=s.sendall, args=(burst,))
        sender.start()
        time.sleep(0.3)
        release.set()
        reader = ResponseReader(s)
        for _ in range(4001):
            assert reader.read(timeout=10).body == b"ok"
        sender.join(10)
    reading, held = seen[0]
    # The server stopped reading once past the cap: it held at most one read past it.
    assert not reading
    assert 16 * 1024 < held <= 16 * 1024 + 65536


def test_access_log_common_log_format(serve: Any, caplog: Any) -> None:
    srv = serve(hello, ServerConfig(access_log=True))
    with caplog.at_level(logging.INFO, logger="reactor.access"), srv.connect() as s:
        s.sendall(raw_request(target="/a?b=1"))
        ResponseReader(s).read()
        srv.call(lambda: None)
    lines = [r.getMessage() for r in caplog.records if r.name == "reactor.access"]
    assert len(lines) == 1
    import re

    assert re.fullmatch(
        r"127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "
        r'"GET /a\?b=1 HTTP/1\.1" 200 13',
        lines[0],
    ), lines[0]


def test_access_log_rejected_request_and_combined_fields(serve: Any, caplog: Any) -> None:
    srv = serve(hello, ServerConfig(access_log=True))
    with caplog.at_level(logging.INFO, logger="reactor.access"):
        with srv.connect() as s:
            s.sendall(raw_request(headers=[("Referer", "http://r/"), ("User-Agent", "ua/1")]))
            ResponseReader(s).read()
        with srv.connect() as s:
            s.sendall(b"GET / HTTP/1.1\r\n\r\n")  # no Host: 400
            recv_all(s)
        srv.call(lambda: None)
    records = [r for r in caplog.records if r.name == "reactor.access"]
    assert len(records) == 2
    assert records[0].referer == "http://r/" and records[0].user_agent == "ua/1"  # type: ignore[attr-defined]
    assert records[1].getMessage().endswith('] "-" 400 -')


def test_malformed_chunked_body_in_the_first_packet_gets_400(serve: Any, caplog: Any) -> None:
    srv = serve(echo)
    with caplog.at_level(logging.ERROR), srv.connect() as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        data = recv_all(s)
        srv.call(lambda: None)  # the loop has finished the callback that answered
    assert data.startswith(b"HTTP/1.1 400 ")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # nothing escaped


def test_drain_waits_while_body_bytes_arrive(serve: Any) -> None:
    """A streaming echo: arriving body bytes must not wake drain(), or output piles up."""
    peak: list[int] = []

    @streaming
    async def handler(w: ResponseWriter, r: Request) -> None:
        w.headers.set("Content-Length", str(8 * 1024 * 1024))
        while data := await r.body.read(65536):
            w.write(data)
            await w.drain()
            conn = w._channel
            assert conn is not None
            peak.append(conn._writer.buffered())

    srv = serve(handler)
    body = b"u" * (8 * 1024 * 1024)
    with srv.connect() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        head = raw_request("POST", "/", [("Content-Length", str(len(body)))])
        sender = threading.Thread(target=s.sendall, args=(head + body,))
        sender.start()
        time.sleep(0.5)  # the client uploads and does not read yet
        got = ResponseReader(s).read(timeout=30)
        sender.join(10)
    assert got.body == body
    # drain() returned only at the low-water mark each time: the buffer never ran away.
    assert max(peak) <= 16 * 1024 + 65536, max(peak)


def test_streaming_body_read_times_out(serve: Any) -> None:
    from reactor import BrokenConnectionError
    from reactor.testing import FakeClock

    clock = FakeClock()
    errors: list[BaseException] = []

    @streaming
    async def handler(w: ResponseWriter, r: Request) -> None:
        try:
            await r.body.read()
        except BrokenConnectionError as exc:
            errors.append(exc)

    srv = serve(handler, ServerConfig(body_timeout=10.0), clock=clock)
    with srv.connect() as s:
        s.sendall(raw_request("POST", "/", [("Content-Length", "100")]) + b"only some")
        time.sleep(0.1)
        clock.advance(11.0)
        assert is_closed(s, 3)  # the server cut the connection off
        assert wait_for(lambda: len(errors) == 1)  # and the handler's read failed


def test_keep_alive_after_a_drained_response_gets_the_idle_timeout(serve: Any) -> None:
    from reactor.testing import FakeClock

    clock = FakeClock()

    def handler(w: ResponseWriter, r: Request) -> None:
        w.write(b"b" * (16 * 1024 * 1024) if r.path == "/big" else b"small")

    cfg = ServerConfig(write_timeout=2.0, idle_timeout=30.0)
    srv = serve(handler, cfg, clock=clock)
    with srv.connect() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        # The big response is over the high-water mark: the connection drains it (DRAINING)
        # and then waits for the next request under the idle timeout, not the write timeout.
        s.sendall(raw_request(target="/big"))
        time.sleep(0.3)  # not reading yet: the kernel buffers fill, the rest waits
        reader = ResponseReader(s)
        assert len(reader.read(timeout=20).body) == 16 * 1024 * 1024
        clock.advance(5.0)  # past the write timeout, well within the idle timeout
        time.sleep(0.1)
        s.sendall(raw_request(target="/small"))
        assert reader.read().body == b"small"


def test_a_write_after_the_client_reset_is_not_logged_as_a_server_error(
    serve: Any, caplog: Any
) -> None:
    """Issue 11: an async handler writing after its client reset the connection got ERROR
    "handler raised" and a traceback. The client going away is not a server error: one INFO
    line, no traceback."""
    reset = threading.Event()
    done = threading.Event()

    async def handler(w: ResponseWriter, r: Request) -> None:
        try:
            while not reset.is_set():
                await srv.loop.sleep(0.01)
            await srv.loop.sleep(0.2)  # the server has seen the reset by now
            w.write(b"x" * 100_000)
            w.flush()
            await w.drain()
        finally:
            done.set()

    srv = serve(handler)
    with caplog.at_level(logging.DEBUG, logger="reactor"):
        s = srv.connect()
        s.sendall(raw_request())
        time.sleep(0.1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # RST
        reset.set()
        assert done.wait(5)
        assert wait_for(lambda: "went away" in caplog.text, 3)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("size", [16 * 1024 - 1, 16 * 1024, 1 << 20])
def test_large_bodies_beside_their_head_arrive_whole_to_a_slow_reader(
    serve: Any, size: int
) -> None:
    """Bodies from 16 KiB go out with the head in one sendmsg (no joined copy); what the
    kernel does not take waits in the writer. Either way a slow reader gets every byte, in
    order, and the connection serves the next request."""
    body = bytes(range(256)) * (size // 256) + b"z" * (size % 256)

    def handler(w: ResponseWriter, r: Request) -> None:
        if r.path == "/declared":
            w.headers.set("Content-Length", str(len(body)))
        w.write(body)

    srv = serve(handler)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10.0)
    s.connect(srv.address)
    with s:
        s.sendall(raw_request("GET", "/declared") + raw_request("GET", "/held"))
        time.sleep(0.2)  # let the server's output back up
        reader = ResponseReader(s)
        for _ in range(2):
            response = reader.read(timeout=10.0)
            assert response.status == 200 and bytes(response.body) == body
