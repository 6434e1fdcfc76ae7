"""ResponseWriter.sendfile: file bodies sent by os.sendfile (or read in pieces), in order with
pipelined responses, under backpressure, and failing cleanly when the client goes away."""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

import pytest

from reactor import BrokenConnectionError, Request, ResponseWriter
from reactor.testing import raw_request

from .wire import ResponseReader, recv_until, wait_for


@pytest.fixture
def data_file(tmp_path: Any) -> tuple[str, bytes]:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "blob.bin"
    path.write_bytes(payload)
    return str(path), payload


def test_sync_handler_hands_the_fd_over(serve: Any, data_file: tuple[str, bytes]) -> None:
    path, payload = data_file

    def handler(w: ResponseWriter, r: Request) -> None:
        w.headers.set("Content-Type", "application/octet-stream")
        w.sendfile(os.open(path, os.O_RDONLY), close=True)

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request())
        resp = ResponseReader(s).read(timeout=20)
    assert resp.header("content-length") == str(len(payload))
    assert resp.body == payload


def test_async_handler_awaits_a_region(serve: Any, data_file: tuple[str, bytes]) -> None:
    path, payload = data_file
    done: list[bool] = []

    async def handler(w: ResponseWriter, r: Request) -> None:
        with open(path, "rb") as f:
            await w.sendfile(f, offset=1000, count=500_000)
            done.append(True)

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request())
        resp = ResponseReader(s).read(timeout=20)
    assert resp.body == payload[1000:501_000]
    # The handler resumes after the kernel took the last byte, maybe after the client read it.
    assert wait_for(lambda: done == [True])


def test_pipelined_responses_stay_in_order(serve: Any, data_file: tuple[str, bytes]) -> None:
    path, payload = data_file

    def handler(w: ResponseWriter, r: Request) -> None:
        if r.path == "/file":
            w.sendfile(os.open(path, os.O_RDONLY), close=True)
        else:
            w.write(b"after")

    srv = serve(handler)
    with srv.connect() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(raw_request(target="/file") + raw_request(target="/small"))
        data = recv_until(s, b"\r\n\r\nafter", timeout=20)
    # The file body comes whole, and the next response only after it.
    first_end = data.index(b"\r\n\r\n") + 4
    assert data[first_end : first_end + len(payload)] == payload
    assert data[first_end + len(payload) :].startswith(b"HTTP/1.1 200 OK\r\n")


def test_slow_reader_gets_every_byte(serve: Any, data_file: tuple[str, bytes]) -> None:
    path, payload = data_file

    def handler(w: ResponseWriter, r: Request) -> None:
        w.sendfile(os.open(path, os.O_RDONLY), close=True)

    srv = serve(handler)
    with srv.connect() as s:
        # A small receive window and a reader that dawdles at first: the server's sends are
        # partial and it must wait for writability many times. (Much smaller windows make
        # loopback TCP itself crawl through zero-window probes.)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(raw_request(headers=[("Connection", "close")]))
        got = bytearray()
        s.settimeout(10)
        while True:
            chunk = s.recv(16384)
            if not chunk:
                break
            got += chunk
            if len(got) < 500_000:
                time.sleep(0.002)
    assert bytes(got).endswith(payload)


def test_os_sendfile_is_used_on_plain_sockets(
    serve: Any, data_file: tuple[str, bytes], monkeypatch: Any
) -> None:
    path, payload = data_file
    calls: list[int] = []
    real = os.sendfile

    def counting(out_fd: int, in_fd: int, offset: int, count: int) -> int:
        calls.append(count)
        return real(out_fd, in_fd, offset, count)

    monkeypatch.setattr(os, "sendfile", counting)

    def handler(w: ResponseWriter, r: Request) -> None:
        w.sendfile(os.open(path, os.O_RDONLY), close=True)

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request())
        assert ResponseReader(s).read(timeout=20).body == payload
    assert calls


def test_head_sends_no_body(serve: Any, data_file: tuple[str, bytes]) -> None:
    path, payload = data_file

    def handler(w: ResponseWriter, r: Request) -> None:
        w.sendfile(os.open(path, os.O_RDONLY), close=True)

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request("HEAD", "/") + raw_request("GET", "/"))
        reader = ResponseReader(s)
        head = reader.read("HEAD")
        assert head.header("content-length") == str(len(payload)) and head.body == b""
        assert reader.read("GET", timeout=20).body == payload


def test_client_leaving_mid_file_fails_the_future(serve: Any, data_file: tuple[str, bytes]) -> None:
    path, _payload = data_file
    errors: list[BaseException] = []
    finished = threading.Event()
    big = path + ".big"
    with open(big, "wb") as f:
        f.truncate(64 * 1024 * 1024)  # sparse: 64 MiB the client will not read

    async def handler(w: ResponseWriter, r: Request) -> None:
        fd = os.open(big, os.O_RDONLY)
        try:
            await w.sendfile(fd)
        except BrokenConnectionError as exc:
            errors.append(exc)
        finally:
            os.close(fd)
            finished.set()

    srv = serve(handler)
    s = srv.connect()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(raw_request())
    s.recv(1000)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()
    assert finished.wait(10)
    assert len(errors) == 1
    assert wait_for(lambda: srv.call(lambda: srv.server.connection_count) == 0)


def test_no_body_after_sendfile_and_no_chunked_sendfile(
    serve: Any, data_file: tuple[str, bytes]
) -> None:
    path, _payload = data_file
    seen: list[str] = []

    def handler(w: ResponseWriter, r: Request) -> None:
        if r.path == "/chunked":
            w.write(b"x")
            w.flush()  # chunked framing now
            fd = os.open(path, os.O_RDONLY)
            try:
                w.sendfile(fd)
            except ValueError as exc:
                seen.append(str(exc))
            finally:
                os.close(fd)
            return
        w.sendfile(os.open(path, os.O_RDONLY), count=10, close=True)
        try:
            w.write(b"more")
        except ValueError as exc:
            seen.append(str(exc))

    srv = serve(handler)
    with srv.connect() as s:
        s.sendall(raw_request(target="/chunked") + raw_request(target="/after"))
        reader = ResponseReader(s)
        assert reader.read().body == b"x"
        assert len(reader.read().body) == 10
    # The second handler records its error after the file went out: wait for it.
    assert wait_for(lambda: len(seen) == 2)
    assert "length-framed" in seen[0] and "sendfile" in seen[1]
