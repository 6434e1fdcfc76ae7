"""reactor.testing: the helpers people use to test their handlers.

serve_in_thread (a server on 127.0.0.1:0 in a background thread, stopped on exit, on every
backend), request (one exchange through http.client), RunningServer.call (run on the loop
thread), raw_request (the exact bytes), FakeClock (timeouts without sleeping, every backend)
and run_until (a loop turned by hand).
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from reactor import Request, ResponseWriter, SelectorLoop, ServerConfig
from reactor.loop import new_loop
from reactor.testing import (
    FakeClock,
    RunningServer,
    raw_request,
    request,
    run_until,
    serve_in_thread,
)


def echo(w: ResponseWriter, r: Request) -> None:
    """The method, target, one header and the body back."""
    w.headers.set("Content-Type", "text/plain")
    w.headers.set("X-Seen", r.headers.get("X-Test", "-"))
    if r.path == "/missing":
        w.write_header(404)
    w.write(f"{r.method} {r.target} ".encode() + r.body.read())


def recv_response(sock: socket.socket) -> bytes:
    """Read until a whole response with Content-Length is in."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(4096)
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(rest) < length:
        rest += sock.recv(4096)
    return buf


# -- serve_in_thread ---------------------------------------------------------------------------


def test_serve_in_thread_serves_on_a_free_loopback_port_and_stops(loop_backend: str) -> None:
    with serve_in_thread(echo, backend=loop_backend) as srv:
        assert srv.host == "127.0.0.1" and srv.port > 0
        assert srv.url == f"http://127.0.0.1:{srv.port}"
        assert srv.thread.is_alive() and srv.loop.is_running()
        status, headers, body = request(srv, "GET", "/a?b=1")
        assert (status, body) == (200, b"GET /a?b=1 ")
        assert headers["content-type"] == "text/plain"
    # On exit: the listener is closed, the thread has ended, the loop is closed.
    assert not srv.thread.is_alive()
    assert srv.loop.is_closed()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(srv.address, timeout=2).close()


def test_serve_in_thread_stops_the_server_when_the_test_raises() -> None:
    with pytest.raises(ZeroDivisionError), serve_in_thread(echo) as srv:
        1 / 0  # noqa: B018
    assert not srv.thread.is_alive() and srv.loop.is_closed()


def test_serve_in_thread_closes_open_connections_on_exit() -> None:
    with serve_in_thread(echo) as srv:
        sock = srv.connect()
        sock.sendall(raw_request("GET", "/"))  # keep-alive: the server keeps it open
        assert recv_response(sock).startswith(b"HTTP/1.1 200 OK\r\n")
        assert srv.call(lambda: srv.server.connection_count) == 1
    with sock:
        sock.settimeout(5)
        assert sock.recv(100) == b""


def test_serve_in_thread_takes_a_loop_factory() -> None:
    made: list[SelectorLoop] = []

    def factory() -> SelectorLoop:
        made.append(SelectorLoop())
        return made[0]

    with serve_in_thread(echo, backend=factory) as srv:
        assert srv.loop is made[0]
        assert request(srv).status == 200
    assert made[0].is_closed()
    with (
        pytest.raises(TypeError, match="clock="),
        serve_in_thread(echo, backend=factory, clock=FakeClock()),
    ):
        pass


def test_serve_in_thread_passes_the_config_on() -> None:
    config = ServerConfig(server_header="under-test")
    with serve_in_thread(echo, config) as srv:
        assert srv.server.config is config
        assert request(srv).headers["Server"] == "under-test"


# -- RunningServer.call ----------------------------------------------------------------------


def test_call_runs_on_the_loop_thread_and_returns_or_raises() -> None:
    with serve_in_thread(echo) as srv:
        assert srv.call(threading.current_thread) is srv.thread
        assert srv.call(lambda a, b: a + b, 2, 3) == 5
        with pytest.raises(KeyError, match="nope"):
            srv.call({}.__getitem__, "nope")


# -- request ---------------------------------------------------------------------------------


def test_request_sends_method_body_and_headers_and_reads_the_whole_response() -> None:
    with serve_in_thread(echo) as srv:
        resp = request(srv, "POST", "/p", b"payload", {"X-Test": "yes"})
        assert resp.status == 200
        assert resp.body == b"POST /p payload"
        assert resp.headers["x-seen"] == "yes"
        assert resp.headers["Content-Length"] == str(len(resp.body))
        # A (host, port) works too, and so do header pairs; a 404 is returned, not raised.
        status, headers, body = request(srv.address, "PUT", "/missing", b"x", [("X-Test", "pairs")])
        assert (status, headers["X-Seen"], body) == (404, "pairs", b"PUT /missing x")
        # The method on RunningServer is the same call.
        assert srv.request("DELETE", "/d").body == b"DELETE /d "


def test_request_times_out_on_a_handler_that_never_answers() -> None:
    async def hang(w: ResponseWriter, r: Request) -> None:
        await srv.loop.sleep(30)

    with serve_in_thread(hang) as srv:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            request(srv, timeout=0.2)
        assert time.monotonic() - started < 5


# -- raw_request -----------------------------------------------------------------------------


def test_raw_request_builds_exact_bytes() -> None:
    assert raw_request() == b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"
    assert raw_request("POST", "/x", [("A", "1")], b"hi") == (
        b"POST /x HTTP/1.1\r\nHost: test\r\nA: 1\r\nContent-Length: 2\r\n\r\nhi"
    )
    assert raw_request(host=None, version="HTTP/1.0") == b"GET / HTTP/1.0\r\n\r\n"
    assert raw_request("GET", "/", [("host", "mine")]) == b"GET / HTTP/1.1\r\nhost: mine\r\n\r\n"
    assert raw_request("PUT", "/c", chunks=[b"ab", b"", b"cde"]) == (
        b"PUT /c HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"
    )


def test_raw_request_bytes_are_served(loop_backend: str) -> None:
    with serve_in_thread(echo, backend=loop_backend) as srv, srv.connect() as sock:
        sock.sendall(raw_request("PUT", "/c", [("X-Test", "raw")], chunks=[b"ab", b"cde"]))
        response = recv_response(sock)
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"X-Seen: raw\r\n" in response
    assert response.endswith(b"\r\n\r\nPUT /c abcde")


# -- FakeClock ---------------------------------------------------------------------------------


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(start=5.0)
    assert clock() == 5.0
    time.sleep(0.01)
    assert clock() == 5.0
    clock.advance(2.5)
    assert clock() == 7.5 and clock.now == 7.5


def test_fake_clock_drives_the_idle_timeout_without_sleeping(loop_backend: str) -> None:
    clock = FakeClock()
    config = ServerConfig(idle_timeout=30.0)
    with serve_in_thread(echo, config, clock=clock, backend=loop_backend) as srv:
        assert clock.loop is srv.loop
        with srv.connect() as sock:
            sock.sendall(raw_request())
            recv_response(sock)
            clock.advance(29.0)  # not yet: the connection stays open
            sock.settimeout(0.2)
            with pytest.raises(TimeoutError):
                sock.recv(1)
            clock.advance(2.0)  # past the idle timeout: the server closes it
            sock.settimeout(5)
            assert sock.recv(1) == b""


def test_fake_clock_fires_timers_of_a_loop_turned_by_hand(loop_backend: str) -> None:
    clock = FakeClock()
    loop = new_loop(loop_backend, clock=clock)
    clock.loop = loop
    fired: list[float] = []
    try:
        loop.call_later(10, lambda: fired.append(loop.time()))
        loop.run_once(0)
        assert fired == [] and loop.next_deadline() == clock() + 10
        clock.advance(10)
        run_until(loop, lambda: bool(fired), timeout=2)
        assert fired == [1010.0]
    finally:
        loop.close()


# -- run_until -------------------------------------------------------------------------------


def test_run_until_turns_the_loop_until_the_condition_holds(loop_backend: str) -> None:
    loop = new_loop(loop_backend)
    a, b = socket.socketpair()
    got: list[bytes] = []
    try:
        loop.add_reader(a, lambda: got.append(a.recv(10)))
        b.send(b"ping")
        run_until(loop, lambda: got == [b"ping"])
        loop.remove_fd(a)
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"still false after 0\.1s"):
            run_until(loop, lambda: False, timeout=0.1, step=0.02)
        assert time.monotonic() - started < 2
    finally:
        loop.close()
        a.close()
        b.close()


def test_running_server_address_brackets_ipv6() -> None:
    thread = threading.Thread()
    srv = RunningServer(server=None, loop=None, host="::1", port=8, thread=thread)  # type: ignore[arg-type]
    assert srv.url == "http://[::1]:8" and srv.address == ("::1", 8)
