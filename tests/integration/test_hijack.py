"""Hijack on real sockets: HIJACK-SPEC behaviours B1-B19 (those that apply to HTTP/1.1).

Each test names the behaviour it checks. Handlers that block (reading the hijacked socket in
blocking mode) run on the loop thread; that is allowed for a hijacker and keeps tests simple.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import pytest

from reactor import (
    HijackedError,
    HookState,
    NotSupportedError,
    Request,
    ResponseWriter,
    ServerConfig,
    hijack,
    streaming,
)
from reactor.buffers import Reader, Writer
from reactor.testing import FakeClock, raw_request

from .wire import ResponseReader, is_closed, recv_all, recv_until, wait_for


def test_b1_hands_over_the_accepted_socket(serve: Any) -> None:
    seen: dict[str, Any] = {}

    def handler(w: ResponseWriter, r: Request) -> None:
        fileno = w._channel._sock.fileno()  # type: ignore[union-attr]
        sock, _pair = w.hijack()
        seen["same_fd"] = sock.fileno() == fileno
        seen["type"] = type(sock)
        sock.setblocking(True)
        sock.sendall(
            b"HTTP/1.0 200 OK\r\nX-Addr: %s\r\nContent-Length: 0\r\n\r\n"
            % str(sock.getpeername()[1]).encode()
        )
        sock.close()

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request())
        data = recv_all(s)
        port = s.getsockname()[1]
    assert data == b"HTTP/1.0 200 OK\r\nX-Addr: %d\r\nContent-Length: 0\r\n\r\n" % port
    assert seen == {"same_fd": True, "type": socket.socket}


def test_pair_is_the_connections_own_reader_and_writer(serve: Any) -> None:
    seen: dict[str, Any] = {}

    def handler(w: ResponseWriter, r: Request) -> None:
        conn = w._channel
        assert conn is not None
        reader, writer = conn._reader, conn._writer
        sock, pair = w.hijack()
        seen["reader"] = pair.reader is reader
        seen["writer"] = pair.writer is writer
        seen["types"] = (type(pair.reader), type(pair.writer))
        sock.close()

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request())
        recv_all(s)
    assert seen == {"reader": True, "writer": True, "types": (Reader, Writer)}


def test_b2_bytes_sent_while_async_handler_runs_are_not_lost(serve: Any) -> None:
    got: list[bytes] = []
    started = threading.Event()

    async def handler(w: ResponseWriter, r: Request) -> None:
        started.set()
        await srv.loop.sleep(0.1)
        sock, pair = w.hijack()
        got.append(pair.reader.peek(3))
        sock.setblocking(True)
        got.append(pair.reader.read(3))
        got.append(pair.reader.read())
        sock.close()

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request())
        assert started.wait(2)
        s.sendall(b"foo")
        s.shutdown(socket.SHUT_WR)
        recv_all(s)
    assert got == [b"foo", b"foo", b""]


def test_b2_bytes_sent_while_sync_handler_runs_are_not_lost(serve: Any) -> None:
    got: list[bytes] = []
    started = threading.Event()
    sent = threading.Event()

    def handler(w: ResponseWriter, r: Request) -> None:
        started.set()
        sent.wait(2)
        sock, pair = w.hijack()
        sock.setblocking(True)
        got.append(pair.reader.read())
        sock.close()

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request())
        assert started.wait(2)
        s.sendall(b"foo")
        s.shutdown(socket.SHUT_WR)
        sent.set()
        recv_all(s)
    assert got == [b"foo"]


@pytest.mark.parametrize("size", [8 * 1024, 100 * 1024, 1024 * 1024])
def test_b3_bytes_after_the_head_reach_the_hijacker_in_order(serve: Any, size: int) -> None:
    got: list[bytes] = []
    payload = bytes(i % 251 for i in range(size))

    def handler(w: ResponseWriter, r: Request) -> None:
        sock, pair = w.hijack()
        sock.settimeout(10)
        got.append(pair.reader.read())
        sock.close()

    srv = serve(handler)
    with srv.connect() as s:
        sender = threading.Thread(
            target=lambda: (s.sendall(raw_request() + payload), s.shutdown(socket.SHUT_WR))
        )
        sender.start()
        recv_all(s, 10)
        sender.join(10)
    assert len(got) == 1 and len(got[0]) == size and got[0] == payload


def test_b4_pipelined_requests_after_a_hijack_belong_to_the_hijacker(serve: Any) -> None:
    ran: list[str] = []
    got: list[bytes] = []
    second = raw_request(target="/other")

    def handler(w: ResponseWriter, r: Request) -> None:
        ran.append(r.path)
        if r.path == "/hijack":
            sock, pair = w.hijack()
            sock.setblocking(True)
            got.append(pair.reader.read(len(second)))
            sock.sendall(b"done")
            sock.close()
        else:
            w.write(b"should not run")

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request(target="/hijack") + second)
        assert recv_all(s) == b"done"
    assert ran == ["/hijack"]
    assert got == [second]


def test_b4_hijack_on_second_keep_alive_request(serve: Any) -> None:
    addrs: list[Any] = []

    def handler(w: ResponseWriter, r: Request) -> None:
        addrs.append(r.remote_addr)
        if r.path == "/hijack":
            sock, _pair = w.hijack()
            sock.setblocking(True)
            sock.sendall(b"raw")
            sock.close()
        else:
            w.write(b"plain")

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request(target="/plain"))
        assert ResponseReader(s).read().body == b"plain"
        s.sendall(raw_request(target="/hijack"))
        assert recv_all(s) == b"raw"
    assert len(addrs) == 2 and addrs[0] == addrs[1]


def test_b5_hijack_after_partial_body_read_hands_over_the_rest(serve: Any) -> None:
    got: dict[str, Any] = {}

    def handler(w: ResponseWriter, r: Request) -> None:
        got["first"] = r.body.read(4)
        sock, pair = w.hijack()
        sock.setblocking(True)
        got["rest"] = pair.reader.read(10)
        with pytest.raises(HijackedError):
            r.body.read()
        got["body_after"] = "raised"
        sock.close()

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789TAIL")
        recv_all(s)
    assert got == {"first": b"0123", "rest": b"456789TAIL", "body_after": "raised"}


def test_b6_101_head_is_flushed_with_connection_upgrade(serve: Any) -> None:
    def handler(w: ResponseWriter, r: Request) -> None:
        w.headers.set("Upgrade", "x")
        w.headers.set("Connection", "Upgrade")
        w.write_header(101)
        sock, _pair = w.hijack()
        sock.setblocking(True)
        sock.sendall(b"HIJACKED")
        sock.close()

    srv = serve(handler)
    with srv.connect() as s:
        # The client asks to close: a 101 still keeps Connection: Upgrade (Go issue 36381).
        s.sendall(raw_request(headers=[("Connection", "close, Upgrade"), ("Upgrade", "x")]))
        data = recv_all(s)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"\r\nUpgrade: x" in head and b"\r\nConnection: Upgrade" in head
    assert b"close" not in head.lower()
    assert rest == b"HIJACKED"


def test_b6_written_status_flushed_unflushed_body_dropped(serve: Any) -> None:
    def handler(w: ResponseWriter, r: Request) -> None:
        w.write(b"abc")
        sock, _pair = w.hijack()
        sock.setblocking(True)
        sock.sendall(b"RAW")
        sock.close()

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request())
        data = recv_all(s)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert rest == b"RAW"


def test_b6_flush_then_hijack_continues_the_chunked_body(serve: Any) -> None:
    def handler(w: ResponseWriter, r: Request) -> None:
        w.write(b"Hello, ")
        w.flush()
        sock, _pair = w.hijack()
        sock.setblocking(True)
        sock.sendall(b"6\r\nworld!\r\n0\r\n\r\n")
        sock.close()

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request())
        assert ResponseReader(s).read().body == b"Hello, world!"


def test_b7_writer_and_socket_writes_keep_their_order(serve: Any) -> None:
    def handler(w: ResponseWriter, r: Request) -> None:
        sock, pair = w.hijack()
        sock.setblocking(True)
        pair.writer.write(b"[hijack-to-bufw]")
        assert pair.writer.buffered() == len(b"[hijack-to-bufw]")
        pair.writer.flush()
        sock.sendall(b"[hijack-to-conn]")
        sock.close()

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request())
        assert recv_all(s) == b"[hijack-to-bufw][hijack-to-conn]"


def test_b8_b9_b10_misuse_errors(serve: Any, caplog: Any) -> None:
    results: dict[str, Any] = {}
    stash: list[ResponseWriter] = []

    def handler(w: ResponseWriter, r: Request) -> None:
        if r.path == "/stash":
            stash.append(w)
            w.write(b"normal")
            return
        sock, _pair = w.hijack()
        caplog.clear()
        with pytest.raises(HijackedError):
            w.write(b"")
        results["zero_write_logs"] = len(caplog.records)
        with pytest.raises(HijackedError):
            w.write(b"x")
        results["write_logs"] = [rec.getMessage() for rec in caplog.records]
        caplog.clear()
        with pytest.raises(HijackedError):
            w.write_header(500)
        results["header_logs"] = len(caplog.records)
        with pytest.raises(HijackedError):
            w.flush()
        with pytest.raises(HijackedError):
            w.hijack()  # B9: a second hijack fails ...
        sock.setblocking(True)
        sock.sendall(b"ok")  # ... and the first still works
        sock.close()

    srv = serve(handler)
    with caplog.at_level(logging.WARNING, logger="reactor.server"):
        with srv.connect() as s:
            s.sendall(raw_request())
            assert recv_all(s) == b"ok"  # nothing of the misuse reached the wire
        with srv.connect() as s:
            s.sendall(raw_request(target="/stash"))
            assert ResponseReader(s).read().body == b"normal"
            # B10: hijack after the handler returned is a clear error.
            with pytest.raises(RuntimeError, match="after the handler finished"):
                stash[0].hijack()
    assert results["zero_write_logs"] == 0
    assert len(results["write_logs"]) == 1
    assert "response.write on hijacked connection from handler" in results["write_logs"][0]
    assert results["header_logs"] == 1


def test_b11_state_hooks_new_active_hijacked_never_closed(serve: Any, caplog: Any) -> None:
    events: list[tuple[int, HookState | str]] = []
    lock = threading.Lock()

    def on_state(sock: socket.socket, state: HookState) -> None:
        with lock:
            events.append((sock.fileno(), state))

    def handler(w: ResponseWriter, r: Request) -> None:
        sock, _pair = w.hijack()
        fd = sock.fileno()
        events.append((fd, "returned"))
        sock.setblocking(True)
        sock.sendall(b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nHello.")
        sock.close()
        if r.path == "/panic":
            raise RuntimeError("panic after hijack")

    srv = serve(handler, on_state=on_state)
    with caplog.at_level(logging.ERROR, logger="reactor.server"):
        for path in ("/hijack", "/panic"):
            events.clear()
            with srv.connect() as s:
                s.sendall(raw_request(target=path))
                assert recv_all(s) == b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nHello."
            time.sleep(0.2)
            states = [state for _fd, state in events]
            assert states == [HookState.NEW, HookState.ACTIVE, HookState.HIJACKED, "returned"]
    assert "panic after hijack" in caplog.text


def test_b11_other_state_sequences(serve: Any) -> None:
    events: list[HookState] = []
    srv = serve(lambda w, r: w.write(b"x"), on_state=lambda s, st: events.append(st))
    with srv.connect() as s:
        s.sendall(raw_request() + raw_request(headers=[("Connection", "close")]))
        recv_all(s)
    assert wait_for(lambda: HookState.CLOSED in events)
    assert events == [
        HookState.NEW,
        HookState.ACTIVE,
        HookState.IDLE,
        HookState.ACTIVE,
        HookState.CLOSED,
    ]
    events.clear()
    srv.connect().close()
    assert wait_for(lambda: events == [HookState.NEW, HookState.CLOSED])
    events.clear()
    with srv.connect() as s:
        s.sendall(b"bogus\r\n\r\n")
        recv_all(s)
    assert wait_for(lambda: events == [HookState.NEW, HookState.ACTIVE, HookState.CLOSED])


def test_b13_hijack_then_client_close_is_not_notified(serve: Any) -> None:
    events: list[str] = []
    got: list[bytes] = []

    def handler(w: ResponseWriter, r: Request) -> None:
        r.on_disconnect(lambda: events.append("notified"))
        sock, pair = w.hijack()
        sock.setblocking(True)
        sock.sendall(b"go")
        got.append(pair.reader.read())  # the hijacker sees EOF itself
        sock.close()

    srv = serve(handler)
    s = srv.connect()
    s.sendall(raw_request())
    assert recv_until(s, b"go")
    s.close()
    assert wait_for(lambda: got == [b""])
    time.sleep(0.1)
    assert events == []


def test_b14_timeouts_no_longer_apply(serve: Any) -> None:
    clock = FakeClock()
    handed: list[tuple[socket.socket, Any]] = []
    cfg = ServerConfig(
        read_header_timeout=0.2, idle_timeout=0.2, write_timeout=0.2, body_timeout=0.2
    )

    def handler(w: ResponseWriter, r: Request) -> None:
        handed.append(w.hijack())

    srv = serve(handler, cfg, clock=clock)
    with srv.connect() as s:
        s.sendall(raw_request())
        assert wait_for(lambda: bool(handed))
        clock.advance(100.0)
        time.sleep(0.6)
        sock, pair = handed[0]
        sock.setblocking(True)
        pair.writer.write(b"late")
        pair.writer.flush()
        assert recv_until(s, b"late") == b"late"
        sock.close()


def test_b15_no_100_continue_after_hijack(serve: Any) -> None:
    got: list[bytes] = []

    @streaming
    async def handler(w: ResponseWriter, r: Request) -> None:
        sock, pair = w.hijack()
        sock.setblocking(True)
        sock.sendall(b"H")
        got.append(pair.reader.read(5))
        sock.close()

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request("POST", "/", [("Expect", "100-continue"), ("Content-Length", "5")]))
        assert recv_until(s, b"H") == b"H"
        s.sendall(b"hello")
        assert recv_all(s) == b""
    assert got == [b"hello"]


def test_b16_server_never_finishes_or_closes_a_hijacked_socket(serve: Any) -> None:
    parked: list[Any] = []

    def handler(w: ResponseWriter, r: Request) -> None:
        parked.append(w.hijack())

    srv = serve(handler)
    for headers, version in (([("Connection", "close")], "HTTP/1.1"), ([], "HTTP/1.0")):
        with srv.connect() as s:
            s.sendall(raw_request(headers=headers, version=version))
            assert not is_closed(s, 0.3)  # no bytes, no EOF
            sock, pair = parked.pop()
            pair.writer.write(b"bye")
            pair.writer.flush()
            assert recv_until(s, b"bye") == b"bye"
            sock.close()


@pytest.mark.parametrize("how", ["shutdown", "close"])
def test_b17_shutdown_ignores_hijacked_connections(serve: Any, how: str) -> None:
    parked: list[Any] = []
    ran: list[str] = []

    def handler(w: ResponseWriter, r: Request) -> None:
        parked.append(w.hijack())

    srv = serve(handler)
    srv.call(lambda: srv.server.add_shutdown_callback(lambda: ran.append("cb")))
    s = srv.connect()
    s.sendall(raw_request())
    assert wait_for(lambda: bool(parked))
    done: list[float] = []
    start = time.monotonic()

    def begin() -> None:
        if how == "shutdown":
            srv.server.shutdown(2.0).add_done_callback(
                lambda _f: done.append(time.monotonic() - start)
            )
        else:
            srv.server.close()
            done.append(time.monotonic() - start)

    srv.call(begin)
    assert wait_for(lambda: bool(done), 3)
    assert done[0] < 0.5
    if how == "shutdown":
        assert ran == ["cb"]
    sock, pair = parked[0]
    sock.setblocking(True)
    s.sendall(b"ping")
    assert pair.reader.read(4) == b"ping"
    pair.writer.write(b"pong")
    pair.writer.flush()
    assert recv_until(s, b"pong") == b"pong"
    sock.close()
    s.close()


def test_b18_hijack_through_wrappers(serve: Any) -> None:
    results: list[str] = []

    class Wrapped:
        def __init__(self, inner: ResponseWriter) -> None:
            self._inner = inner

        def unwrap(self) -> ResponseWriter:
            return self._inner

    class Opaque:
        pass

    def handler(w: ResponseWriter, r: Request) -> None:
        with pytest.raises(NotSupportedError):
            hijack(Opaque())
        sock, _pair = hijack(Wrapped(w))
        results.append("hijacked")
        sock.setblocking(True)
        sock.sendall(b"via wrapper")
        sock.close()

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request())
        assert recv_all(s) == b"via wrapper"
    assert results == ["hijacked"]


def test_b19_pair_keeps_working_after_the_handler_returns(serve: Any) -> None:
    parked: list[Any] = []

    def handler(w: ResponseWriter, r: Request) -> None:
        w.headers.set("Upgrade", "echo")
        w.headers.set("Connection", "Upgrade")
        w.write_header(101)
        parked.append(w.hijack())

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request(headers=[("Connection", "Upgrade"), ("Upgrade", "echo")]))
        head = recv_until(s, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        assert wait_for(lambda: bool(parked))
        s.sendall(b"echo 01234")
        sock, pair = parked[0]
        sock.setblocking(True)
        data = pair.reader.read(10)
        pair.writer.write(data)
        pair.writer.flush()
        sock.close()
        assert recv_all(s) == b"echo 01234"
    assert srv.call(lambda: srv.server.connection_count) == 0


def test_async_handler_hijack(serve: Any) -> None:
    async def handler(w: ResponseWriter, r: Request) -> None:
        await srv.loop.sleep(0.01)
        sock, pair = w.hijack()
        pair.writer.write(b"async hijack")
        sock.setblocking(True)
        pair.writer.flush()
        sock.close()

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request())
        assert recv_all(s) == b"async hijack"


def test_hijack_never_blocks_the_loop_on_a_client_that_does_not_read(serve: Any) -> None:
    """Issue 11, item 4: a 101 + hijack on a connection whose client has not read an earlier
    large response. hijack() sends what the kernel takes and hands the rest over in the
    pair's writer instead of flushing in blocking mode (which stopped the whole server for up
    to the write timeout): another client is answered at once meanwhile, and the first one,
    once it reads, gets the earlier response, the 101 and then the hijacker's bytes, in order."""
    big = b"x" * (4 << 20)
    handed: dict[str, int] = {}

    def finish(sock: socket.socket, writer: Writer) -> None:
        sock.setblocking(True)  # a thread of its own may wait for the client
        writer.write(b"tunnel")
        writer.flush()
        sock.close()

    def handler(w: ResponseWriter, r: Request) -> None:
        if r.path == "/big":
            w.headers.set("Content-Length", str(len(big)))
            w.write(big)
        elif r.path == "/upgrade":
            w.headers.set("Upgrade", "echo")
            w.headers.set("Connection", "Upgrade")
            w.write_header(101)
            sock, pair = w.hijack()
            handed["left"] = pair.writer.buffered()
            threading.Thread(target=finish, args=(sock, pair.writer), daemon=True).start()
        else:
            w.write(b"ok")

    # The high-water mark above the big body: the upgrade request runs while it is unsent.
    config = ServerConfig(write_high_water=16 << 20, write_low_water=0, write_timeout=20.0)
    srv = serve(handler, config)
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.settimeout(10.0)
    slow.connect(srv.address)
    with slow:
        slow.sendall(raw_request("GET", "/big") + raw_request("GET", "/upgrade"))
        assert wait_for(lambda: "left" in handed, timeout=5.0)
        assert handed["left"] > 0  # the kernel could not take it all: handed over
        started = time.monotonic()
        with srv.connect() as other:
            other.sendall(raw_request("GET", "/", headers=[("Connection", "close")]))
            assert recv_all(other).endswith(b"ok")
        assert time.monotonic() - started < 3.0  # the loop was not stuck in a flush
        received = recv_all(slow, timeout=10.0)
    head, _, rest = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert rest[: len(big)] == big
    after = rest[len(big) :]
    assert after.startswith(b"HTTP/1.1 101 ")
    assert after.endswith(b"\r\n\r\ntunnel")
