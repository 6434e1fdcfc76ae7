"""Limits and timeouts on the wire: each limit answers its status with Connection: close and
a one-line reason; each timeout is driven by an injected clock (no sleeping for it)."""

from __future__ import annotations

import logging
import os
import socket
import ssl
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from reactor import Limits, Request, ResponseWriter, ServerConfig
from reactor.testing import FakeClock, raw_request

from .wire import ResponseReader, is_closed, recv_all, recv_until, wait_for


def echo(w: ResponseWriter, r: Request) -> None:
    w.write(r.body.read())


def assert_error(data: bytes, status: int) -> None:
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), data[:200]
    assert b"\r\nConnection: close" in head
    assert b"Content-Type: text/plain; charset=utf-8" in head
    assert body.count(b"\n") == 1 and body.startswith(b"%d " % status)
    assert b"Traceback" not in body


BAD_REQUESTS = [
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
    (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n  folded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
    (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0x5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
]


@pytest.mark.parametrize(("request_bytes", "status"), BAD_REQUESTS)
def test_bad_request_gets_status_and_close(serve: Any, request_bytes: bytes, status: int) -> None:
    srv = serve(echo)
    with srv.connect() as s:
        s.sendall(request_bytes)
        data = recv_all(s)
    assert_error(data, status)
    # The loop survived: a new connection is served.
    with srv.connect() as s:
        s.sendall(raw_request())
        assert ResponseReader(s).read().status == 200


def test_limits_statuses(serve: Any) -> None:
    limits = Limits(
        max_head_bytes=2048, max_request_line=256, max_header_count=10, max_body_size=100
    )
    srv = serve(echo, ServerConfig(limits=limits))
    cases = [
        (b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 3000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: 1\r\n" * 11 + b"\r\n", 431),
        (raw_request("POST", "/", body=b"x" * 101), 413),
        (raw_request("POST", "/", chunks=[b"x" * 60, b"y" * 60]), 413),
    ]
    for data, status in cases:
        with srv.connect() as s:
            s.sendall(data)
            assert_error(recv_all(s), status)


def test_unending_head_without_newline_gets_414_not_a_hang(serve: Any) -> None:
    srv = serve(echo, ServerConfig(limits=Limits(max_request_line=100)))
    with srv.connect() as s:
        s.sendall(b"GET /" + b"a" * 200)
        assert_error(recv_all(s), 414)


def test_read_header_timeout_cuts_off_trickling_client(serve: Any) -> None:
    clock = FakeClock()
    srv = serve(echo, ServerConfig(read_header_timeout=5.0), clock=clock)
    with srv.connect() as s:
        head = raw_request()
        # One byte per simulated second: the timeout runs from the first byte and is not
        # reset by later bytes.
        for i in range(4):
            s.sendall(head[i : i + 1])
            time.sleep(0.02)
            clock.advance(1.0)
        assert not is_closed(s, 0.1)
        s.sendall(head[4:5])
        time.sleep(0.02)
        clock.advance(1.5)
        data = recv_all(s, 3)
    assert_error(data, 408)


def test_new_connection_that_sends_nothing_is_closed_at_header_timeout(serve: Any) -> None:
    clock = FakeClock()
    srv = serve(echo, ServerConfig(read_header_timeout=5.0), clock=clock)
    with srv.connect() as s:
        time.sleep(0.05)
        clock.advance(4.9)
        assert not is_closed(s, 0.1)
        clock.advance(0.2)
        assert recv_all(s, 3) == b""


def test_idle_timeout_closes_keep_alive_connection(serve: Any) -> None:
    clock = FakeClock()
    srv = serve(echo, ServerConfig(idle_timeout=30.0, read_header_timeout=5.0), clock=clock)
    with srv.connect() as s:
        s.sendall(raw_request())
        ResponseReader(s).read()
        clock.advance(29.0)  # past the header timeout, within the idle timeout
        assert not is_closed(s, 0.1)
        s.sendall(raw_request())
        ResponseReader(s).read()
        clock.advance(29.0)
        assert not is_closed(s, 0.1)
        clock.advance(2.0)
        assert recv_all(s, 3) == b""
    assert wait_for(lambda: srv.call(lambda: srv.server.connection_count) == 0)


def test_body_timeout(serve: Any) -> None:
    clock = FakeClock()
    srv = serve(echo, ServerConfig(body_timeout=10.0), clock=clock)
    with srv.connect() as s:
        s.sendall(raw_request("POST", "/", [("Content-Length", "10")]) + b"abc")
        time.sleep(0.05)
        clock.advance(8.0)
        s.sendall(b"def")  # progress moves the deadline
        time.sleep(0.05)
        clock.advance(8.0)
        assert not is_closed(s, 0.1)
        clock.advance(3.0)
        assert_error(recv_all(s, 3), 408)


def test_write_timeout_cuts_off_client_that_stops_reading(serve: Any) -> None:
    clock = FakeClock()

    def big(w: ResponseWriter, r: Request) -> None:
        w.write(b"x" * (16 * 1024 * 1024))

    srv = serve(big, ServerConfig(write_timeout=20.0), clock=clock)
    s = srv.connect()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(raw_request())
    time.sleep(0.2)  # the kernel buffers fill up; the server waits for writability
    assert srv.call(lambda: srv.server.connection_count) == 1
    clock.advance(21.0)
    assert wait_for(lambda: srv.call(lambda: srv.server.connection_count) == 0, 3)
    s.close()


def test_max_connections_pauses_accept(serve: Any) -> None:
    srv = serve(echo, ServerConfig(max_connections=2))
    a, b = srv.connect(), srv.connect()
    for s in (a, b):
        s.sendall(raw_request())
        ResponseReader(s).read()
    c = srv.connect()  # sits in the backlog
    c.sendall(raw_request())
    c.settimeout(0.3)
    with pytest.raises(TimeoutError):
        c.recv(1)
    a.close()
    assert ResponseReader(c).read().status == 200
    b.close()
    c.close()


EMFILE_SCRIPT = textwrap.dedent(
    """
    import resource, socket, sys, threading, time, logging
    logging.basicConfig(level=logging.WARNING)
    from reactor import Server, SelectorLoop, ServerConfig

    def hello(w, r):
        w.write(b"hi")

    loop = SelectorLoop()
    server = Server(hello, loop=loop, config=ServerConfig(accept_backoff=0.05))
    host, port = server.listen("127.0.0.1", 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Fill the fd table: what remains is just under the limit.
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    hog = []
    try:
        while True:
            hog.append(open("/dev/null"))
    except OSError:
        pass
    calls = {"n": 0}
    real = server._on_acceptable
    def counting(listener, tcp):
        calls["n"] += 1
        real(listener, tcp)
    loop.remove_reader(server._listeners[0])
    loop.add_reader(server._listeners[0], counting, server._listeners[0], True)
    server._on_acceptable = counting
    t = threading.Thread(target=loop.run, daemon=True)
    t.start()
    # Clients connect from another process' point of view: use a child-free trick, connect
    # from here after freeing two fds for the client sockets only.
    hog.pop().close(); hog.pop().close()
    c = socket.create_connection((host, port))
    time.sleep(0.5)
    spins = calls["n"]
    # Free fds: the pending connection is accepted and served.
    for f in hog[:10]:
        f.close()
    c.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
    c.settimeout(5)
    data = c.recv(1000)
    print("SPINS", spins)
    print("OK" if data.endswith(b"hi") else "BAD %r" % data)
    loop.stop()
    """
)


def test_emfile_backs_off_instead_of_spinning(tmp_path: Any) -> None:
    script = tmp_path / "emfile.py"
    script.write_text(EMFILE_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert "OK" in proc.stdout, proc.stdout + proc.stderr
    spins = int(proc.stdout.split("SPINS")[1].split()[0])
    # 0.5 s at a 0.05 s back-off is about 10 attempts; a spinning accept makes thousands.
    assert spins < 50, spins


def test_running_out_of_fds_is_logged_once_per_interval_with_a_count(caplog: Any) -> None:
    """Issue 11: accept failing with EMFILE logged a warning per failure, ten a second (one
    per accept_backoff) for as long as the fds ran short. Now: one line at once, then one per
    10 s saying how many failures there were."""
    import errno

    from reactor import SelectorLoop, Server
    from reactor.testing import FakeClock

    class FullTable:
        def accept(self) -> Any:
            raise OSError(errno.EMFILE, "Too many open files")

    clock = FakeClock()
    loop = SelectorLoop(clock=clock)
    server = Server(lambda w, r: None, loop=loop, config=ServerConfig(accept_backoff=0.1))
    try:
        with caplog.at_level(logging.WARNING, logger="reactor.server"):
            for _ in range(201):  # 20 s of retries, one per back-off
                server._on_acceptable(FullTable(), True)  # type: ignore[arg-type]
                clock.advance(0.1)
        lines = [r.getMessage() for r in caplog.records if "accept failed" in r.getMessage()]
        assert len(lines) == 3, lines  # at 0 s, 10 s and 20 s
        assert "Too many open files" in lines[0] and "times" not in lines[0]
        assert "(100 times in the last 10s)" in lines[1], lines[1]
    finally:
        server.close()
        loop.close()


def test_graceful_shutdown_lets_in_flight_finish(serve: Any) -> None:
    callbacks: list[str] = []

    async def slow(w: ResponseWriter, r: Request) -> None:
        if r.path == "/slow":
            await srv.loop.sleep(0.3)
        w.write(b"finished")

    srv = serve(slow)
    srv.call(lambda: srv.server.add_shutdown_callback(lambda: callbacks.append("ran")))
    idle = srv.connect()
    idle.sendall(raw_request())
    assert ResponseReader(idle).read().body == b"finished"  # now idle between requests
    fresh = srv.connect()  # accepted, its request not sent yet
    busy = srv.connect()
    busy.sendall(raw_request(target="/slow"))
    time.sleep(0.05)
    result: list[float] = []
    start = time.monotonic()

    def begin() -> None:
        srv.server.shutdown(5.0).add_done_callback(
            lambda _f: result.append(time.monotonic() - start)
        )

    srv.call(begin)
    assert callbacks == ["ran"]
    assert is_closed(idle, 2)  # the idle keep-alive connection is closed at once
    # A connection that had no request yet is spared: its request (which may have been in
    # flight) is answered, with Connection: close.
    fresh.sendall(raw_request())
    fresh_data = recv_all(fresh, 3)
    assert fresh_data.endswith(b"finished") and b"Connection: close" in fresh_data
    data = recv_all(busy, 3)
    assert data.endswith(b"finished")
    assert b"Connection: close" in data
    assert wait_for(lambda: bool(result), 3)
    assert result[0] < 2.0
    # No longer accepting.
    with pytest.raises(OSError):
        socket.create_connection(srv.address, timeout=1).recv(1)
    idle.close()
    fresh.close()
    busy.close()


def test_shutdown_grace_expires(serve: Any, caplog: Any) -> None:
    async def stuck(w: ResponseWriter, r: Request) -> None:
        await srv.loop.sleep(30)

    srv = serve(stuck)
    s = srv.connect()
    s.sendall(raw_request())
    time.sleep(0.05)
    result: list[bool] = []
    with caplog.at_level(logging.INFO, logger="reactor.server"):
        srv.call(lambda: srv.server.shutdown(0.2).add_done_callback(lambda f: result.append(True)))
        assert wait_for(lambda: bool(result), 3)
    assert recv_all(s, 2) == b""
    s.close()


def test_loop_survives_many_bad_clients(serve: Any) -> None:
    srv = serve(echo)
    for _i in range(30):
        with srv.connect() as s:
            s.sendall(os.urandom(64) + b"\r\n\r\n")
            recv_all(s, 2)
    with srv.connect() as s:
        s.sendall(raw_request("POST", "/", body=b"alive"))
        assert recv_until(s, b"alive")


def _client_hello() -> bytes:
    """The first flight of a real TLS client: what it sends to a plain-HTTP port by mistake."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    assert hello[:1] == b"\x16"  # a TLS handshake record
    return hello


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (None, 400),  # a TLS ClientHello
        (b"\x00\x01\x02", 400),
        (b"GET /\x01 HTTP/1.1\r\n", 400),  # the request line is whole, the head is not
        (b"GET / HTTP/3.0\r\nHost: a\r\n", 505),
    ],
)
def test_garbage_is_answered_at_once_not_at_the_header_timeout(
    serve: Any, data: bytes | None, status: int
) -> None:
    # The clock never moves, so the header timeout cannot be what answers.
    clock = FakeClock()
    calls: list[str] = []

    def handler(w: ResponseWriter, r: Request) -> None:
        calls.append(r.target)

    srv = serve(handler, clock=clock)
    with srv.connect() as s:
        s.sendall(_client_hello() if data is None else data)
        answer = recv_all(s, 5)
    assert_error(answer, status)
    assert calls == []
