"""The hijack examples in docs/examples, each driven by a real client over 127.0.0.1.

websocket_echo: the ``websockets`` client library (text, binary, 1 MiB, ping, close handshake)
and a raw socket (a frame in the same write as the upgrade request). connect_proxy: curl, a
raw socket sending the CONNECT head and the tunnel bytes in one write, a bulk echo through the
tunnel with half-close, backpressure, refusals. thread_handoff: a line session served by a
thread while the loop answers other requests. And each example's ``main()`` as a process.

The async examples run each hijacked session inside their handler, so wrapping the handler
tells when every session has ended: each test waits for that before stopping the server, which
proves the example closed its sockets (and keeps the loop from being closed under them).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import ClientConnection, connect

from docs.examples import connect_proxy, thread_handoff, websocket_echo
from reactor import Request, ResponseWriter
from reactor.testing import RunningServer, serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024


# -- helpers ----------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


def recv_exactly(sock: socket.socket, n: int, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    buf = bytearray()
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        if not data:
            raise ConnectionError(f"EOF after {len(buf)} of {n} bytes: {bytes(buf)!r}")
        buf += data
    return bytes(buf)


def recv_until(sock: socket.socket, marker: bytes, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    buf = b""
    while marker not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"EOF before {marker!r}: {buf!r}")
        buf += data
    return buf


def recv_to_eof(sock: socket.socket, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    parts = []
    while data := sock.recv(MiB):
        parts.append(data)
    return b"".join(parts)


class Sessions:
    """Counts the example's handler calls still running (its hijacked sessions)."""

    def __init__(self) -> None:
        self.active = 0
        self.started = 0


@contextmanager
def serve_example(make_handler: Callable[..., Any], **kwargs: Any) -> Iterator[Any]:
    """Serve ``make_handler(loop, **kwargs)`` on the test server's own loop; on exit, require
    every session to have ended before the server stops."""
    sessions = Sessions()
    inner: list[Any] = []

    async def handler(w: ResponseWriter, r: Request) -> None:
        sessions.active += 1
        sessions.started += 1
        try:
            await inner[0](w, r)
        finally:
            sessions.active -= 1

    with serve_in_thread(handler) as srv:
        inner.append(make_handler(srv.loop, **kwargs))
        srv.sessions = sessions  # type: ignore[attr-defined]
        yield srv
        wait_until(lambda: sessions.active == 0, "every session to end")


def ws_connect(srv: RunningServer) -> ClientConnection:
    # proxy=None: never go through a proxy from the environment; max_size: allow 1 MiB + 1.
    return connect(f"ws://127.0.0.1:{srv.port}/", proxy=None, max_size=4 * MiB, open_timeout=5)


# -- websocket_echo ---------------------------------------------------------------------------


@pytest.fixture
def ws_server() -> Iterator[Any]:
    with serve_example(websocket_echo.make_handler) as srv:
        yield srv


def test_websocket_echoes_text_and_binary(ws_server: Any) -> None:
    with ws_connect(ws_server) as ws:
        ws.send("héllo, wörld")
        assert ws.recv(timeout=5) == "héllo, wörld"
        ws.send(b"\x00\x01\xfe\xff")
        assert ws.recv(timeout=5) == b"\x00\x01\xfe\xff"
        ws.send("")
        assert ws.recv(timeout=5) == ""
        for i in range(20):
            ws.send(f"message {i}")
        assert [ws.recv(timeout=5) for _ in range(20)] == [f"message {i}" for i in range(20)]


def test_websocket_echoes_1_mib_messages(ws_server: Any) -> None:
    binary = hashlib.sha256(b"seed").digest() * (MiB // 32)
    text = "aé€" * (MiB // 6) + "abcd"  # multi-byte characters split across reads
    assert len(binary) == MiB and len(text.encode()) == MiB
    with ws_connect(ws_server) as ws:
        ws.send(binary)
        assert ws.recv(timeout=10) == binary
        ws.send(text)
        assert ws.recv(timeout=10) == text
        ws.send([binary[: MiB // 2], binary[MiB // 2 :]])  # a fragmented message
        assert ws.recv(timeout=10) == binary


def test_websocket_answers_pings(ws_server: Any) -> None:
    with ws_connect(ws_server) as ws:
        assert ws.ping(b"are you there").wait(5)
        ws.send("after the ping")
        assert ws.recv(timeout=5) == "after the ping"


def test_websocket_close_handshake_is_clean(ws_server: Any) -> None:
    with ws_connect(ws_server) as ws:
        ws.send("bye")
        assert ws.recv(timeout=5) == "bye"
        ws.close(1000, "done")
        rcvd = ws.protocol.close_rcvd
        assert rcvd is not None and (rcvd.code, rcvd.reason) == (1000, "done")
        assert ws.close_code == 1000
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=1)
    wait_until(lambda: ws_server.sessions.active == 0, "the session to end")


def upgrade_request(port: int) -> bytes:
    return (
        f"GET /chat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = b"\x11\x22\x33\x44"
    assert len(payload) < 126
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


def test_websocket_frame_in_the_same_write_as_the_upgrade(ws_server: Any) -> None:
    with socket.create_connection(ws_server.address, timeout=5) as s:
        s.sendall(upgrade_request(ws_server.port) + masked_frame(0x1, b"early bird"))
        head = recv_until(s, b"\r\n\r\n")
        head, _, rest = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        # RFC 6455 1.3's own example key and accept value.
        assert b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
        frame = rest + recv_exactly(s, 12 - len(rest))
        assert frame == b"\x81\x0aearly bird"  # unmasked text frame from the server
        s.sendall(masked_frame(0x8, b"\x03\xe8"))  # close 1000
        assert recv_exactly(s, 4) == b"\x88\x02\x03\xe8"
        assert s.recv(1) == b""  # the server closes TCP after the handshake


def test_websocket_peer_hangup_ends_the_session(ws_server: Any) -> None:
    with socket.create_connection(ws_server.address, timeout=5) as s:
        s.sendall(upgrade_request(ws_server.port))
        recv_until(s, b"\r\n\r\n")
        wait_until(lambda: ws_server.sessions.active == 1, "the session to start")
    wait_until(lambda: ws_server.sessions.active == 0, "the session to end")


def test_websocket_plain_request_gets_426(ws_server: Any) -> None:
    conn = http.client.HTTPConnection(*ws_server.address, timeout=5)
    conn.request("GET", "/")
    resp = conn.getresponse()
    assert (resp.status, resp.getheader("Upgrade")) == (426, "websocket")
    assert resp.read() == b"this is a WebSocket echo endpoint\n"
    conn.close()
