"""TLS: ``reactor serve --certfile/--keyfile`` with a self-signed certificate made in the test
by the ``openssl`` tool; real clients (curl, requests, ssl sockets); the handshake runs on the
loop (a stalled handshake does not block other clients, and times out); a hijack on TLS hands
over the SSLSocket."""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from reactor import tls
from reactor.testing import serve_in_thread
from tests.integration.test_cli import curl, reactor_serve


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("cert")
    certfile, keyfile = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(keyfile),
            "-out",
            str(certfile),
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return certfile, keyfile


def client_context(certfile: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certfile))
    return ctx


def test_https_over_the_cli(cert: tuple[Path, Path], tmp_path: Path) -> None:
    certfile, keyfile = cert
    site = tmp_path / "site"
    site.mkdir()
    (site / "hello.txt").write_bytes(b"hello over tls\n")
    (tmp_path / "echo.py").write_text("def app(w, r):\n    w.write(b'echo ' + r.body.read())\n")
    with reactor_serve(
        "--root", str(site), "--certfile", str(certfile), "--keyfile", str(keyfile), cwd=tmp_path
    ) as served:
        (url,) = served.urls
        assert url.startswith("https://127.0.0.1:")
        got = curl("--cacert", str(certfile), url + "hello.txt")
        assert got.returncode == 0, got
        assert got.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
        assert got.stdout.endswith(b"\r\n\r\nhello over tls\n")
        with requests.Session() as s:
            s.trust_env = False
            for _ in range(3):  # keep-alive over one TLS connection
                response = s.get(url + "hello.txt", verify=str(certfile), timeout=5)
                assert response.text == "hello over tls\n"
        # Plain HTTP on the TLS port is not answered as HTTP.
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
            plain.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            try:
                answer = plain.recv(65536)
            except ConnectionResetError:
                answer = b""
            assert not answer.startswith(b"HTTP/1.1 200")
        status, _ = served.stop()
        assert status == 0


@pytest.fixture
def tls_server(cert: tuple[Path, Path]) -> Iterator[object]:
    certfile, keyfile = cert
    ctx = tls.make_context(str(certfile), str(keyfile))

    def handler(w: object, r: object) -> None:
        body = r.body.read()  # type: ignore[attr-defined]
        if r.path == "/hijack":  # type: ignore[attr-defined]
            sock, pair = w.hijack()  # type: ignore[attr-defined]
            assert isinstance(sock, ssl.SSLSocket)
            sock.setblocking(True)
            sock.settimeout(5)
            sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n\r\n")
            line = pair.reader.readline()
            sock.sendall(b"echo: " + line)
            sock.close()
            return
        data = b"big:" + b"x" * 300_000 if r.path == "/big" else b"got " + body  # type: ignore[attr-defined]
        w.headers.set("Content-Length", str(len(data)))  # type: ignore[attr-defined]
        w.write(data)  # type: ignore[attr-defined]

    with serve_in_thread(handler) as running:
        # Serve TLS on a second listener of the same loop's server kind.
        from reactor.server import Server

        server = Server(handler, loop=running.loop, ssl_context=ctx)
        host, port = running.call(server.listen, "127.0.0.1", 0)
        try:
            yield (host, port, certfile)
        finally:
            running.call(server.close)


def connect_tls(addr: tuple[str, int], certfile: Path) -> ssl.SSLSocket:
    raw = socket.create_connection(addr, timeout=5)
    return client_context(certfile).wrap_socket(raw, server_hostname="localhost")


def read_all(sock: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            data = sock.recv(65536)
        except ssl.SSLEOFError:
            break
        if not data:
            break
        out += data
    return out


def test_large_response_and_post_body(tls_server: tuple[str, int, Path]) -> None:
    host, port, certfile = tls_server
    with connect_tls((host, port), certfile) as sock:
        body = b"y" * 100_000
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n"
            + body
            + b"GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        out = read_all(sock)
    assert out.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert b"got " + body in out
    assert out.endswith(b"big:" + b"x" * 300_000)


def test_stalled_handshake_does_not_block_others_and_times_out(
    tls_server: tuple[str, int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port, certfile = tls_server
    stalled = socket.create_connection((host, port), timeout=5)
    try:
        stalled.sendall(b"\x16\x03\x01")  # the first bytes of a ClientHello, then nothing
        started = time.monotonic()
        with connect_tls((host, port), certfile) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            assert read_all(sock).endswith(b"got ")
        assert time.monotonic() - started < 2
    finally:
        stalled.close()


def test_handshake_timeout(cert: tuple[Path, Path]) -> None:
    """ServerConfig.tls_handshake_timeout (--tls-handshake-timeout) closes a connection that
    sends nothing."""
    certfile, keyfile = cert
    ctx = tls.make_context(str(certfile), str(keyfile))
    from reactor.config import ServerConfig
    from reactor.server import Server

    config = ServerConfig(tls_handshake_timeout=0.3)
    with serve_in_thread(lambda w, r: None) as running:
        server = Server(lambda w, r: None, loop=running.loop, ssl_context=ctx, config=config)
        host, port = running.call(server.listen, "127.0.0.1", 0)
        try:
            with socket.create_connection((host, port), timeout=5) as silent:
                started = time.monotonic()
                assert silent.recv(1) == b""  # closed by the server
                assert 0.2 < time.monotonic() - started < 3
        finally:
            running.call(server.close)


def test_handshakes_count_toward_max_connections_and_close_at_shutdown(
    cert: tuple[Path, Path],
) -> None:
    """A socket still in its TLS handshake holds an fd: max_connections counts it, and
    close() closes it (it is in no connection table yet)."""
    certfile, keyfile = cert
    ctx = tls.make_context(str(certfile), str(keyfile))
    from reactor.config import ServerConfig
    from reactor.server import Server

    with serve_in_thread(lambda w, r: None) as running:
        server = Server(
            lambda w, r: None,
            loop=running.loop,
            ssl_context=ctx,
            config=ServerConfig(max_connections=1),
        )
        host, port = running.call(server.listen, "127.0.0.1", 0)
        try:
            silent = socket.create_connection((host, port), timeout=5)  # never handshakes
            deadline = time.monotonic() + 5
            while running.call(server._open) != 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert running.call(server._open) == 1
            assert running.call(lambda: server._accepting) is False  # at the limit
            running.call(server.close)
            assert silent.recv(1) == b""  # the pending handshake was closed
            assert running.call(server._open) == 0
            silent.close()
        finally:
            running.call(server.close)


def test_hijack_hands_over_the_ssl_socket(tls_server: tuple[str, int, Path]) -> None:
    host, port, certfile = tls_server
    with connect_tls((host, port), certfile) as sock:
        sock.sendall(b"GET /hijack HTTP/1.1\r\nHost: t\r\nUpgrade: echo\r\n\r\nhello\n")
        out = read_all(sock)
    assert out == b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n\r\necho: hello\n"


def test_concurrent_tls_clients(tls_server: tuple[str, int, Path]) -> None:
    host, port, certfile = tls_server
    results: list[bytes] = []

    def one(i: int) -> None:
        with connect_tls((host, port), certfile) as sock:
            head = "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nConnection: close\r\n\r\n"
            sock.sendall(f"{head}{i % 10}".encode())
            results.append(read_all(sock))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 20
    assert all(r.startswith(b"HTTP/1.1 200 OK\r\n") for r in results)


def _reset(addr: tuple[str, int], data: bytes) -> None:
    """Connect, send ``data``, and reset the connection (SO_LINGER 0) before the server
    accepts it."""
    sock = socket.create_connection(addr, timeout=5)
    if data:
        sock.sendall(data)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_resets_before_accept_do_not_break_the_accept_batch(
    cert: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Clients that reset before the server accepts them (with and without a ClientHello's
    bytes in flight) cost a DEBUG line each: no ERROR, no traceback, and the clients accepted
    in the same batch are served."""
    certfile, keyfile = cert
    ctx = tls.make_context(str(certfile), str(keyfile))
    caplog.set_level(logging.DEBUG, logger="reactor")
    from reactor.server import Server

    def handler(w: Any, r: Any) -> None:
        w.write(b"served")

    with serve_in_thread(handler) as running:
        server = Server(handler, loop=running.loop, ssl_context=ctx)
        host, port = running.call(server.listen, "127.0.0.1", 0)
        try:
            # Hold the loop so that every connection below waits in the listen queue and
            # is taken in one accept batch.
            release = threading.Event()
            running.loop.call_soon_threadsafe(release.wait, 10)
            for data in (b"", b"\x16\x03\x01\x00\x05hello", b"", b"\x16\x03\x01"):
                _reset((host, port), data)
            raw = socket.create_connection((host, port), timeout=5)
            time.sleep(0.1)  # the resets reach the server's kernel
            release.set()
            with client_context(certfile).wrap_socket(raw, server_hostname="localhost") as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                assert read_all(sock).endswith(b"\r\n\r\nserved")
            # The server closes its side after the response: wait for it, do not race it.
            deadline = time.monotonic() + 5
            while running.call(server._open) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert running.call(server._open) == 0
        finally:
            running.call(server.close)
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == [], [r.getMessage() for r in errors]
    # A reset client fails at setup (DEBUG here) or, if the kernel let its socket through
    # setup, in the handshake (INFO): never above INFO (checked above).
    failed = [r for r in caplog.records if "before the TLS handshake" in r.getMessage()]
    assert 1 <= len(failed) <= 4, [r.getMessage() for r in caplog.records]
    assert all(r.levelno == logging.DEBUG for r in failed)
