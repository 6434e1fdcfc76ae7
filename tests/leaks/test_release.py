"""Release: once a handler returns, nothing of the server references its connection, request
or response. Everything is freed by reference counting alone (the cyclic GC is disabled while
each scenario runs), and ``gc.collect()`` afterwards finds nothing.

The same holds for ordinary keep-alive requests: steady-state serving creates no cycles.
"""

from __future__ import annotations

import gc
import socket
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reactor import Request, ResponseWriter, streaming
from reactor.testing import RunningServer, raw_request

from ..integration.wire import ResponseReader, recv_all, recv_until, wait_for


class Tracker:
    """Weak references to the per-request objects of a handler call."""

    def __init__(self) -> None:
        self.refs: list[weakref.ref[Any]] = []
        self.names: list[str] = []
        self.lock = threading.Lock()

    def track(self, w: ResponseWriter, r: Request) -> None:
        conn = w._channel
        assert conn is not None
        # The parser, timer handle and buffers are owned by the connection alone; the loop's
        # side (timers, fds) is checked by ``check_released``.
        objects = {"Connection": conn, "Request": r, "ResponseWriter": w, "Body": r.body}
        with self.lock:
            for name, obj in objects.items():
                self.refs.append(weakref.ref(obj))
                self.names.append(name)

    def alive(self) -> list[str]:
        with self.lock:
            return [n for n, ref in zip(self.names, self.refs, strict=True) if ref() is not None]


def cyclic_reactor_garbage() -> list[str]:
    """What ``gc.collect()`` finds of reactor's objects (kept for inspection with
    DEBUG_SAVEALL): anything here was in a reference cycle. Other code's garbage (pytest's,
    asyncio's first-use imports) is not this test's business."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = [repr(o) for o in gc.garbage if type(o).__module__.startswith("reactor")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return found


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def settle(srv: RunningServer) -> None:
    """Let the loop finish what it is doing (two round trips through it)."""
    srv.call(lambda: None)
    srv.call(lambda: None)


def check_released(srv: RunningServer, tracker: Tracker, expect_tracked: int) -> None:
    settle(srv)
    assert len(tracker.refs) >= expect_tracked
    assert wait_for(lambda: tracker.alive() == [], 2), f"still alive: {tracker.alive()}"
    assert srv.call(lambda: srv.server.connection_count) == 0
    # Nothing of the connection is left in the loop: only the listener is registered and
    # no timer is armed.
    assert srv.call(srv.loop.registered_fds) == 1
    assert srv.call(srv.loop.pending_timers) == 0


def hijack_scenario(
    serve: Any, handler: Callable[..., Any], client: Callable[[RunningServer], None]
) -> Tracker:
    tracker = Tracker()
    srv = serve(handler(tracker))
    client(srv)
    check_released(srv, tracker, 1)
    assert cyclic_reactor_garbage() == []
    return tracker


def test_hijack_and_close(serve: Any, no_gc: None) -> None:
    def make(tracker: Tracker) -> Any:
        def handler(w: ResponseWriter, r: Request) -> None:
            tracker.track(w, r)
            sock, _pair = w.hijack()
            sock.close()

        return handler

    def client(srv: RunningServer) -> None:
        with srv.connect() as s:
            s.sendall(raw_request())
            recv_all(s)

    hijack_scenario(serve, make, client)


def test_hijack_and_park_keeps_only_socket_and_pair(serve: Any, no_gc: None) -> None:
    parked: list[Any] = []

    def make(tracker: Tracker) -> Any:
        def handler(w: ResponseWriter, r: Request) -> None:
            tracker.track(w, r)
            w.write_header(101)
            parked.append(w.hijack())

        return handler

    def client(srv: RunningServer) -> None:
        s = srv.connect()
        s.sendall(raw_request(headers=[("Connection", "Upgrade"), ("Upgrade", "x")]))
        recv_until(s, b"\r\n\r\n")
        assert wait_for(lambda: bool(parked))
        settle(srv)
        # Parked: the pair still works after every server object is gone.
        sock, pair = parked[0]
        s.sendall(b"echo 01234")
        sock.setblocking(True)
        pair.writer.write(pair.reader.read(10))
        pair.writer.flush()
        assert recv_until(s, b"01234") == b"echo 01234"
        s.close()

    tracker = hijack_scenario(serve, make, client)
    assert tracker.alive() == []
    sock, pair = parked[0]
    assert gc.get_referents(pair.reader) and all(
        type(o).__name__ not in ("Connection", "Request", "ResponseWriter")
        for o in gc.get_referents(pair.reader) + gc.get_referents(pair.writer)
    )
    sock.close()


def test_hijack_on_second_keep_alive_request(serve: Any, no_gc: None) -> None:
    def make(tracker: Tracker) -> Any:
        def handler(w: ResponseWriter, r: Request) -> None:
            tracker.track(w, r)
            if r.path == "/hijack":
                sock, _pair = w.hijack()
                sock.close()
            else:
                w.write(b"plain")

        return handler

    def client(srv: RunningServer) -> None:
        with srv.connect() as s:
            s.sendall(raw_request(target="/plain"))
            assert ResponseReader(s).read().body == b"plain"
            s.sendall(raw_request(target="/hijack"))
            recv_all(s)

    hijack_scenario(serve, make, client)


def test_hijack_with_pipelined_leftovers(serve: Any, no_gc: None) -> None:
    got: list[bytes] = []

    def make(tracker: Tracker) -> Any:
        def handler(w: ResponseWriter, r: Request) -> None:
            tracker.track(w, r)
            sock, pair = w.hijack()
            got.append(pair.reader.read(pair.reader.buffered()))
            sock.close()

        return handler

    def client(srv: RunningServer) -> None:
        with srv.connect() as s:
            s.sendall(raw_request() + raw_request(target="/next") + b"tail")
            recv_all(s)

    hijack_scenario(serve, make, client)
    assert got == [raw_request(target="/next") + b"tail"]


def test_hijack_after_partial_body_read(serve: Any, no_gc: None) -> None:
    def make(tracker: Tracker) -> Any:
        def handler(w: ResponseWriter, r: Request) -> None:
            tracker.track(w, r)
            r.body.read(3)
            sock, pair = w.hijack()
            assert pair.reader.read(7) == b"3456789"
            sock.close()

        return handler

    def client(srv: RunningServer) -> None:
        with srv.connect() as s:
            s.sendall(raw_request("POST", "/", body=b"0123456789"))
            recv_all(s)

    hijack_scenario(serve, make, client)


def test_handler_raising_after_hijack_does_not_pin(serve: Any, no_gc: None, caplog: Any) -> None:
    def make(tracker: Tracker) -> Any:
        def handler(w: ResponseWriter, r: Request) -> None:
            tracker.track(w, r)
            sock, _pair = w.hijack()
            sock.close()
            raise RuntimeError("after hijack")

        return handler

    def client(srv: RunningServer) -> None:
        with srv.connect() as s:
            s.sendall(raw_request())
            recv_all(s)

    hijack_scenario(serve, make, client)
    # The logged record (pytest keeps it) holds the traceback, not the objects.
    assert "after hijack" in caplog.text


@pytest.mark.parametrize("stream", [False, True])
def test_async_handler_hijack(serve: Any, no_gc: None, stream: bool) -> None:
    def make(tracker: Tracker) -> Any:
        async def handler(w: ResponseWriter, r: Request) -> None:
            tracker.track(w, r)
            await w._channel._loop.sleep(0.01)  # type: ignore[union-attr]
            sock, pair = w.hijack()
            pair.writer.write(b"bye")
            sock.setblocking(True)
            pair.writer.flush()
            sock.close()

        return streaming(handler) if stream else handler

    def client(srv: RunningServer) -> None:
        with srv.connect() as s:
            s.sendall(raw_request())
            assert recv_all(s) == b"bye"

    hijack_scenario(serve, make, client)


def test_async_handler_raising_after_hijack(serve: Any, no_gc: None, caplog: Any) -> None:
    def make(tracker: Tracker) -> Any:
        async def handler(w: ResponseWriter, r: Request) -> None:
            tracker.track(w, r)
            await w._channel._loop.sleep(0)  # type: ignore[union-attr]
            sock, _pair = w.hijack()
            sock.close()
            raise ValueError("async after hijack")

        return handler

    def client(srv: RunningServer) -> None:
        with srv.connect() as s:
            s.sendall(raw_request())
            recv_all(s)

    hijack_scenario(serve, make, client)
    assert "async after hijack" in caplog.text


def test_keep_alive_requests_create_no_cycles(serve: Any, no_gc: None) -> None:
    """Ordinary serving: each request's objects die when its response is done, and the
    connection dies when the client leaves, by reference counting alone."""
    tracker = Tracker()
    per_request: list[list[str]] = []

    def handler(w: ResponseWriter, r: Request) -> None:
        tracker.track(w, r)
        w.write(r.body.read() or b"ok")

    srv = serve(handler)
    with srv.connect() as s:
        reader = ResponseReader(s)
        for i in range(5):
            s.sendall(raw_request("POST", "/", body=b"x" * i) if i else raw_request())
            reader.read()
            settle(srv)
            per_request.append(sorted(set(tracker.alive())))
        s.sendall(raw_request(chunks=[b"abc", b"def"]) + raw_request())
        reader.read()
        reader.read()
    # Everything but the connection itself is gone after each response.
    assert all(alive == ["Connection"] for alive in per_request), per_request
    settle(srv)
    assert wait_for(lambda: tracker.alive() == [], 2), tracker.alive()
    check_released(srv, tracker, 7)
    assert cyclic_reactor_garbage() == []


def test_error_paths_create_no_cycles(serve: Any, no_gc: None, caplog: Any) -> None:
    tracker = Tracker()

    def handler(w: ResponseWriter, r: Request) -> None:
        tracker.track(w, r)
        if r.path == "/boom":
            raise RuntimeError("boom")
        w.write(b"ok")

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request(target="/boom") + raw_request())
        reader = ResponseReader(s)
        assert reader.read().status == 500
        assert reader.read().status == 200
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")  # 400
        recv_all(s)
    s = srv.connect()
    s.sendall(raw_request("POST", "/", [("Content-Length", "100")]) + b"part")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()  # reset in the body
    settle(srv)
    assert wait_for(lambda: srv.call(lambda: srv.server.connection_count) == 0)
    check_released(srv, tracker, 3)
    assert cyclic_reactor_garbage() == []
