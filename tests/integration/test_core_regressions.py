"""Regressions on real sockets for the six problems a review of the rebuilt core found (fixed
together in one commit): a CLOSED hook that closes the socket, a header deadline firing into a
running handler, writes after the client closed, an unawaited sendfile() overtaken by the next
pipelined response, reading that did not resume after a drain, and a 100 Continue after the
final head."""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from typing import Any

import pytest

from reactor import (
    BrokenConnectionError,
    HookState,
    Request,
    ResponseWriter,
    ServerConfig,
    StreamingBody,
    streaming,
)
from reactor.loop import Future
from reactor.testing import FakeClock, raw_request

from .wire import ResponseReader, is_closed, recv_until, wait_for

MiB = 1024 * 1024


def connection_count(srv: Any) -> int:
    return int(srv.call(lambda: srv.server.connection_count))


def test_closed_hook_that_closes_the_socket_leaves_the_server_serving(serve: Any) -> None:
    """The hook closes the socket at CLOSED; the connection must have left the loop first, or
    the closed fd stays registered (and a later socket may reuse its number)."""
    seen: list[int] = []

    def hook(sock: socket.socket, state: HookState) -> None:
        if state is HookState.CLOSED:
            seen.append(sock.fileno())
            sock.close()

    def ok(w: ResponseWriter, r: Request) -> None:
        w.write(b"ok")

    srv = serve(ok, on_state=hook)
    for _ in range(4):
        with srv.connect(timeout=3) as s:
            s.sendall(raw_request(headers=[("Connection", "close")]))
            response = ResponseReader(s).read(timeout=3)
            assert (response.status, response.body) == (200, b"ok")
            assert is_closed(s, 3), "the server did not close a Connection: close connection"
    assert wait_for(lambda: connection_count(srv) == 0, 3)
    assert len(seen) == 4
    # And a keep-alive connection after them is served too.
    with srv.connect(timeout=3) as s:
        s.sendall(raw_request())
        assert ResponseReader(s).read(timeout=3).status == 200


def test_header_deadline_does_not_fire_into_a_running_handler_while_output_waits(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A large response is queued (the client does not read); a pipelined request's async
    handler runs while the head after it is partial. Passing read_header_timeout must not
    abort the connection under the handler: both responses arrive whole."""
    clock = FakeClock()
    size = 16 * MiB
    waiting: list[Future[None]] = []

    async def handler(w: ResponseWriter, r: Request) -> None:
        if r.path == "/big":
            w.write(b"B" * size)
            return
        fut: Future[None] = srv.loop.create_future()
        waiting.append(fut)
        await fut
        w.write(b"slow-done")

    config = ServerConfig(
        write_high_water=64 * MiB,
        write_low_water=0,
        read_header_timeout=5.0,
        write_timeout=1000.0,
        idle_timeout=1000.0,
    )
    srv = serve(handler, config, clock=clock)
    with srv.connect(timeout=5) as s, caplog.at_level(logging.ERROR):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(raw_request(target="/big"))
        time.sleep(0.3)  # the kernel buffers fill up; the rest of /big waits in the server
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n")  # a partial head arms the deadline
        time.sleep(0.2)
        s.sendall(b"\r\nGET /next HTTP/1.1\r\n")  # /slow runs; a partial third head is held
        assert wait_for(lambda: srv.call(lambda: len(waiting)) == 1, 3)
        clock.advance(6.0)  # past read_header_timeout
        time.sleep(0.3)
        assert connection_count(srv) == 1, "the connection was closed at the header deadline"
        srv.loop.call_soon_threadsafe(waiting[0].set_result, None)
        reader = ResponseReader(s)
        first = reader.read(timeout=20)
        assert first.status == 200
        assert len(first.body) == size and first.body == b"B" * size
        second = reader.read(timeout=5)
        assert (second.status, second.body) == (200, b"slow-done")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def test_write_after_client_closed_raises_at_the_first_write(serve: Any) -> None:
    """The client resets the connection before the handler wrote anything; once the server saw
    it, the next small write raises BrokenConnectionError (it used to be held, unsent, until
    response_buffer bytes had been written)."""
    outcome: list[tuple[str, int]] = []
    done = threading.Event()

    async def handler(w: ResponseWriter, r: Request) -> None:
        await r.wait_disconnected()
        writes = 0
        try:
            for _ in range(100):
                w.write(b"e" * 100)
                writes += 1
            outcome.append(("no error", writes))
        except BrokenConnectionError:
            outcome.append(("BrokenConnectionError", writes))
        finally:
            done.set()

    srv = serve(handler)
    s = srv.connect()
    s.sendall(raw_request())
    time.sleep(0.1)
    # Close with a reset (SO_LINGER 0): the server's next read fails and it closes the
    # connection, with the handler's response still open and nothing of it sent.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    assert done.wait(5), "the handler never saw the disconnect"
    assert outcome == [("BrokenConnectionError", 0)]
    assert wait_for(lambda: connection_count(srv) == 0, 3)


def test_unawaited_sendfile_body_comes_before_the_next_pipelined_response(
    serve: Any, tmp_path: Any
) -> None:
    size = 8 * MiB
    path = tmp_path / "big.bin"
    path.write_bytes(b"F" * size)

    async def handler(w: ResponseWriter, r: Request) -> None:
        if r.path == "/file":
            # Not awaited: the handler returns with the file queued (the server closes the fd).
            w.sendfile(os.open(path, os.O_RDONLY), close=True)
        else:
            w.write(b"SMALL-RESPONSE")

    srv = serve(handler)
    with srv.connect(timeout=5) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(raw_request(target="/file") + raw_request(target="/small"))
        time.sleep(0.5)  # the file cannot all go out; the second request is dispatched
        data = bytearray()
        deadline = time.monotonic() + 20
        while not data.endswith(b"SMALL-RESPONSE") and time.monotonic() < deadline:
            try:
                chunk = s.recv(MiB)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
    head, sep, _ = bytes(data[:4096]).partition(b"\r\n\r\n")
    assert sep and head.startswith(b"HTTP/1.1 200 "), bytes(data[:200])
    assert b"\r\nContent-Length: %d" % size in head
    start = len(head) + 4
    second_head = data.find(b"HTTP/1.1 ", start)
    assert second_head == start + size, (
        f"the second response's head is at body byte {second_head - start}, not after the "
        f"{size} bytes of the file"
    )
    assert data[start : start + size] == b"F" * size
    assert data[start + size :].startswith(b"HTTP/1.1 200 ")
    assert data.endswith(b"\r\n\r\nSMALL-RESPONSE")


def test_pipelined_upload_larger_than_read_ahead_is_read_after_a_drain(serve: Any) -> None:
    """A big response makes the connection drain while a pipelined POST's body (over
    max_read_ahead) arrives; reading stops at the read-ahead limit and must resume after the
    drain. The clock never moves, so no timeout can answer for the server."""
    clock = FakeClock()
    upload = b"u" * MiB
    config = ServerConfig()
    assert len(upload) > config.limits.max_read_ahead

    def handler(w: ResponseWriter, r: Request) -> None:
        if r.path == "/big":
            w.write(b"B" * (8 * MiB))
        else:
            w.write(b"got %d" % len(r.body.read()))

    srv = serve(handler, config, clock=clock)
    with srv.connect(timeout=10) as s:
        s.sendall(raw_request(target="/big"))
        time.sleep(0.3)  # the client does not read yet: the server's output backs up

        def send() -> None:
            try:
                s.sendall(raw_request("POST", "/up", [("Content-Length", str(len(upload)))]))
                s.sendall(upload)
            except OSError:
                pass

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        time.sleep(0.5)
        reader = ResponseReader(s)
        first = reader.read(timeout=10)
        assert first.status == 200 and len(first.body) == 8 * MiB
        second = reader.read(timeout=5)
        sender.join(5)
        assert (second.status, second.body) == (200, b"got %d" % len(upload))


def test_no_100_continue_after_the_final_head(serve: Any) -> None:
    """A streaming handler sends its head before it asks for the body: the client must not
    get a 100 Continue after the final response's head."""

    @streaming
    async def handler(w: ResponseWriter, r: Request) -> None:
        w.write_header(200)
        w.headers.set("Content-Length", "2")
        w.flush()  # the final head goes out
        body = r.body
        assert isinstance(body, StreamingBody)
        await body.read()  # only now is the body asked for
        w.write(b"ok")

    srv = serve(handler)
    with srv.connect(timeout=5) as s:
        s.sendall(raw_request("POST", "/", [("Content-Length", "3"), ("Expect", "100-continue")]))
        data = recv_until(s, b"\r\n\r\n", 5)
        assert data.startswith(b"HTTP/1.1 200 "), data
        s.sendall(b"abc")
        if not data.endswith(b"ok"):
            data += recv_until(s, b"ok", 5)
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"100 Continue" not in data, data
        assert body == b"ok", data
