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


def test_websocket_protocol_error_is_closed_with_1002(ws_server: Any) -> None:
    with socket.create_connection(ws_server.address, timeout=5) as s:
        s.sendall(upgrade_request(ws_server.port))
        recv_until(s, b"\r\n\r\n")
        s.sendall(b"\x81\x02hi")  # a client frame must be masked (RFC 6455 5.1)
        frame = recv_to_eof(s, 5)  # the close frame, then the server closes TCP
    assert frame[:1] == b"\x88" and frame[2:4] == (1002).to_bytes(2, "big")


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


# -- connect_proxy ----------------------------------------------------------------------------


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"upstream body for {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def http_upstream() -> Iterator[int]:
    """An ordinary HTTP/1.0 server (http.server) on 127.0.0.1:0; yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def tcp_upstream(serve: Callable[[socket.socket], None]) -> Iterator[int]:
    """A one-connection TCP server on 127.0.0.1:0 running ``serve(conn)`` in a thread."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(10)
                serve(conn)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(15)
        listener.close()
    assert not thread.is_alive() and not errors, errors


def echo_until_eof(conn: socket.socket) -> None:
    while data := conn.recv(MiB):
        conn.sendall(data)


@pytest.fixture
def proxy() -> Iterator[Any]:
    with serve_example(connect_proxy.make_handler) as srv:
        yield srv


def open_tunnel(proxy: Any, port: int, first: bytes = b"") -> socket.socket:
    s = socket.create_connection(proxy.address, timeout=5)
    s.sendall(
        f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode() + first
    )
    established = b"HTTP/1.1 200 Connection Established\r\n\r\n"
    assert recv_exactly(s, len(established)) == established
    return s


def test_proxy_carries_curl_to_the_upstream(proxy: Any) -> None:
    with http_upstream() as port:
        url = f"http://127.0.0.1:{port}/through/the/tunnel"
        cmd = ["/usr/bin/curl", "-sS", "--max-time", "10", "-p", "-x", proxy.url, url]
        env = {"PATH": os.environ.get("PATH", ""), "NO_PROXY": "", "no_proxy": ""}
        out = subprocess.run(cmd, capture_output=True, timeout=15, env=env, check=False)
        assert (out.returncode, out.stderr) == (0, b"")
        assert out.stdout == b"upstream body for /through/the/tunnel\n"
        assert proxy.sessions.started == 1  # it went through the proxy


def test_proxy_forwards_bytes_sent_with_the_connect_head(proxy: Any) -> None:
    with http_upstream() as port:
        get = f"GET /early HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        with open_tunnel(proxy, port, first=get) as s:  # the head and the GET in one sendall
            reply = recv_to_eof(s)  # HTTP/1.0: the upstream closes, the proxy passes it on
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK\r\n")
    assert body == b"upstream body for /early\n"


def test_proxy_bulk_echo_both_ways_with_half_close(proxy: Any) -> None:
    payload = hashlib.sha256(b"bulk").digest() * (4 * MiB // 32)
    with tcp_upstream(echo_until_eof) as port, open_tunnel(proxy, port) as s:
        # The client's EOF must reach the upstream (which then closes) and the upstream's
        # EOF must come back: recv_to_eof only returns if both half-closes were passed on.
        sender = threading.Thread(target=lambda: (s.sendall(payload), s.shutdown(socket.SHUT_WR)))
        sender.start()
        echoed = recv_to_eof(s)
        sender.join(10)
    assert len(echoed) == len(payload) and echoed == payload


def test_proxy_applies_backpressure_to_the_client(proxy: Any) -> None:
    """The upstream reads nothing: the proxy must stop reading the client, so the client's
    sends eventually block instead of the proxy buffering everything."""
    release = threading.Event()
    sent = 0

    def stall(conn: socket.socket) -> None:
        release.wait(20)

    chunk = b"x" * MiB
    with tcp_upstream(stall) as port:
        with open_tunnel(proxy, port) as s:
            s.settimeout(0.5)
            try:
                while sent < 256 * MiB:
                    sent += s.send(chunk)
            except TimeoutError:
                pass
        release.set()  # the upstream closes with data unread: the proxy sees the reset
    # Kernel buffers on both legs hold a few MiB at most; 256 MiB would mean no backpressure.
    assert 0 < sent < 64 * MiB


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"CONNECT 192.0.2.1:80 HTTP/1.1\r\nHost: 192.0.2.1:80\r\n\r\n", 403),
        (b"CONNECT example.com:80 HTTP/1.1\r\nHost: example.com:80\r\n\r\n", 400),
        (b"CONNECT 127.0.0.1:0 HTTP/1.1\r\nHost: x\r\n\r\n", 400),  # (past 65535: the parser's 400)
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    ],
)
def test_proxy_refuses(proxy: Any, request_head: bytes, status: int) -> None:
    with socket.create_connection(proxy.address, timeout=5) as s:
        s.sendall(request_head)
        head = recv_until(s, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status)
    assert proxy.sessions.started == 1


def test_proxy_answers_502_when_the_upstream_refuses(proxy: Any) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: the connect is refused
    with socket.create_connection(proxy.address, timeout=5) as s:
        s.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = recv_until(s, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 502 ")


# -- thread_handoff ---------------------------------------------------------------------------

UPGRADE_LINES = b"GET /lines HTTP/1.1\r\nHost: x\r\nUpgrade: lines\r\nConnection: Upgrade\r\n\r\n"


def session_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "serve_lines" in t.name]


@pytest.fixture
def handoff() -> Iterator[RunningServer]:
    with serve_in_thread(thread_handoff.handler) as srv:
        yield srv
        wait_until(lambda: not session_threads(), "the session threads to end")


def upgrade_to_lines(srv: RunningServer, first: bytes = b"") -> tuple[socket.socket, bytes]:
    s = srv.connect()
    s.sendall(UPGRADE_LINES + first)
    head, _, rest = recv_until(s, b"\r\n\r\n").partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"\r\nUpgrade: lines\r\n" in head + b"\r\n"
    return s, rest


def test_handoff_serves_lines_from_a_thread(handoff: RunningServer) -> None:
    s, rest = upgrade_to_lines(handoff, first=b"sent with the upgrade\nand a second\n")
    with s:
        expected = b"SENT WITH THE UPGRADE\nAND A SECOND\n"
        assert rest + recv_exactly(s, len(expected) - len(rest)) == expected
        s.sendall(b"hello ")  # a line in two writes
        time.sleep(0.02)
        s.sendall(b"thread\n")
        assert recv_exactly(s, 13) == b"HELLO THREAD\n"
        s.sendall(b"QUIT\n")
        assert recv_to_eof(s, 5) == b"BYE\n"


def test_handoff_leaves_the_loop_free(handoff: RunningServer) -> None:
    """Two sessions sit in blocking reads in their threads; the loop still answers at once."""
    a, _ = upgrade_to_lines(handoff)
    b, _ = upgrade_to_lines(handoff)
    with a, b:
        wait_until(lambda: len(session_threads()) == 2, "two session threads")
        for _ in range(5):
            started = time.monotonic()
            conn = http.client.HTTPConnection(*handoff.address, timeout=5)
            conn.request("GET", "/")
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, b"hello from the loop\n")
            conn.close()
            assert time.monotonic() - started < 1.0
        b.sendall(b"still there?\n")
        assert recv_exactly(b, 13) == b"STILL THERE?\n"
        a.sendall(b"yes\n")
        assert recv_exactly(a, 4) == b"YES\n"
    # The clients closed without QUIT: each thread reads EOF and ends.
    wait_until(lambda: not session_threads(), "the session threads to end")


# -- the examples as programs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "status"),
    [("websocket_echo.py", 426), ("connect_proxy.py", 405), ("thread_handoff.py", 200)],
)
def test_example_runs_as_a_program(script: str, status: int) -> None:
    path = ROOT / "docs" / "examples" / script
    proc = subprocess.Popen(
        [sys.executable, str(path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()  # bounded by the test timeout
        address = line.rsplit("//", 1)[1].rstrip("/\n")
        host, _, port = address.rpartition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.request("GET", "/")
        assert conn.getresponse().status == status
        conn.close()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=10)
        assert (proc.returncode, stderr) == (0, b"")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
