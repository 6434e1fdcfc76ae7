"""Faults: resets at every stage of an exchange (before the head, in the middle of the head,
of the body, of the response), half-closes at every stage, and TLS garbage both ways (a TLS
ClientHello to the plain port, plain HTTP and random bytes to the TLS port). Each against
each kind of handler where the stage reaches the handler; the server stays up, serves the
well-behaved client within ``ANSWER_WITHIN`` throughout, and is back to its baseline after.
Thresholds and their precedents: bounds.py.
"""

from __future__ import annotations

import os
import secrets
import socket
import ssl
from pathlib import Path

import pytest

from .bounds import (
    ANSWER_WITHIN,
    HEADER_TIMEOUT,
    TIMEOUT_FLAGS,
    TIMER_SLACK,
    leak_allowance,
)
from .conftest import BIG_FILE
from .harness import (
    Prober,
    assert_recovered,
    baseline,
    closed_within,
    connect,
    read_response,
    reset,
    rounds,
    served,
)

#: (the server's arguments, a short path, a path with a large response) per kind of handler.
KINDS = {
    "plain": (("apps:plain",), "/", f"/big/{BIG_FILE}"),
    "async": (("apps:async_",), "/", f"/big/{BIG_FILE}"),
    "static": ((), "/hello.txt", "/big.bin"),
    "wsgi": (("--wsgi", "apps:wsgi"), "/", f"/big/{BIG_FILE}"),
}
#: Connections per stage.
ROUNDS = 25
POST_HEAD = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n"


def _stages(short: str, large: str) -> dict[str, tuple[bytes, int]]:
    """What a client sends before it resets or half-closes, per stage, and how many response
    bytes it reads first."""
    return {
        "before the head": (b"", 0),
        "mid-head": (f"GET {short} HTTP/1.1\r\nHost: t\r\nX-A: ".encode(), 0),
        "mid-body": (POST_HEAD + b"b" * 50000, 0),
        "mid-response": (f"GET {large} HTTP/1.1\r\nHost: t\r\n\r\n".encode(), 65536),
    }


def _read_some(sock: socket.socket, count: int) -> bytes:
    """At least ``count`` bytes (all that was read)."""
    got = b""
    sock.settimeout(5)
    while len(got) < count:
        data = sock.recv(65536)
        assert data, "EOF before the response began"
        got += data
    return got


@pytest.mark.parametrize("kind", list(KINDS))
def test_resets_at_every_stage(site: Path, kind: str) -> None:
    """A client that resets before sending anything, in the middle of its head, of its body,
    and of a large response (after reading its first 64 KiB)."""
    args, short, large = KINDS[kind]
    with served(*args, *TIMEOUT_FLAGS, cwd=site) as server:
        before = baseline(server, short)
        with Prober(server, short) as prober:
            count = 0
            for _ in rounds(1, min_seconds=1.0, max_count=20):
                for data, read_first in _stages(short, large).values():
                    for _ in range(ROUNDS):
                        sock = connect(server.port)
                        sock.sendall(data)
                        _read_some(sock, read_first)
                        reset(sock)
                        count += 1
        prober.check(ANSWER_WITHIN)
        assert_recovered(server, before, leak_allowance(count))


@pytest.mark.parametrize("kind", list(KINDS))
def test_half_close_at_every_stage(site: Path, kind: str) -> None:
    """A client that sends its half and shuts down writing (SHUT_WR) before the head, in the
    middle of it, in the middle of a body, and in the middle of a large response it then
    reads slowly: the server closes at once where the request can never complete, and
    finishes the response it began (RFC 9112 section 9.6: EOF means no more requests)."""
    args, short, large = KINDS[kind]
    with served(*args, *TIMEOUT_FLAGS, cwd=site) as server:
        before = baseline(server, short)
        with Prober(server, short) as prober:
            stages = _stages(short, large)
            for stage in ("before the head", "mid-head", "mid-body"):
                data, _ = stages[stage]
                for _ in range(ROUNDS):
                    with connect(server.port) as sock:
                        sock.sendall(data)
                        sock.shutdown(socket.SHUT_WR)
                        # Not the header or body timeout: EOF ends a request that cannot end.
                        took = closed_within(sock, HEADER_TIMEOUT)
                        assert took is not None, f"{stage}: not closed within {HEADER_TIMEOUT}s"
            # A response in progress when the client half-closes is finished whole.
            for _ in range(3):
                with connect(server.port) as sock:
                    sock.sendall(f"GET {large} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                    first = _read_some(sock, 65536)
                    sock.shutdown(socket.SHUT_WR)
                    got = len(first)
                    sock.settimeout(10)
                    while data := sock.recv(1 << 20):
                        got += len(data)
                    body = got - first.index(b"\r\n\r\n") - 4
                    assert body == BIG_FILE, (body, BIG_FILE)
        prober.check(ANSWER_WITHIN)
        assert_recovered(server, before, leak_allowance(3 * ROUNDS + 3))


def _client_hello() -> bytes:
    """The first flight of a real TLS client (a ClientHello), from an in-memory handshake."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    assert hello[:1] == b"\x16"  # a handshake record
    return hello


def test_tls_client_hello_to_the_plain_port(site: Path) -> None:
    """ClientHellos sent to the plain-HTTP port are not a request: each is refused at once
    with a 400 (issue 11, item 7: the request line is checked as it comes, as nginx, Go and
    llhttp do; it used to wait for the header timeout), and nobody else waits meanwhile."""
    hello = _client_hello()
    attackers = 30
    with served("apps:plain", *TIMEOUT_FLAGS, cwd=site) as server:
        before = baseline(server)
        with Prober(server) as prober:
            socks = [connect(server.port) for _ in range(attackers)]
            for sock in socks:
                sock.sendall(hello)
            for sock in socks:
                sock.settimeout(HEADER_TIMEOUT + TIMER_SLACK)
                answer = b""
                try:
                    while data := sock.recv(65536):
                        answer += data
                except ConnectionResetError:
                    pass
                assert answer.startswith(b"HTTP/1.1 400 "), answer[:100]
                sock.close()
        prober.check(ANSWER_WITHIN, minimum=1)  # the attack is over in a moment now
        assert_recovered(server, before, leak_allowance(attackers))


def not_tls(size: int) -> bytes:
    """Random bytes no TLS implementation can take for the start of a record: a TLS record
    header has its version's major byte, 3, second, and a first byte with its top bit set is
    an SSLv2 header; either can declare a length longer than what was sent, and the server
    then rightly waits for the rest (the next test)."""
    first = secrets.randbelow(0x80)
    second = secrets.choice([b for b in range(256) if b != 3])
    return bytes([first, second]) + os.urandom(size - 2)


def test_plain_http_and_garbage_to_the_tls_port(site: Path, cert: tuple[Path, Path]) -> None:
    """Plain HTTP, random bytes and a truncated record sent to the HTTPS port fail the
    handshake at once (no handshake timeout needed, where the bytes cannot be TLS), and TLS
    clients are served meanwhile."""
    certfile, keyfile = cert
    context = ssl.create_default_context(cafile=str(certfile))
    garbage = {
        "plain HTTP": lambda: b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
        "random bytes": lambda: not_tls(4096),
        "a record header claiming 16 KiB, then nonsense": lambda: (
            b"\x16\x03\x01\x40\x00" + b"\0" * 16384
        ),
    }
    args = ("apps:plain", *TIMEOUT_FLAGS, "--certfile", str(certfile), "--keyfile", str(keyfile))
    with served(*args, cwd=site) as server:
        before = baseline(server, tls=context)
        with Prober(server, tls=context) as prober:
            count = 0
            for _ in rounds(1, min_seconds=1.0, max_count=10):
                for name, make in garbage.items():
                    for _ in range(ROUNDS):
                        data = make()
                        with connect(server.port) as sock:
                            sock.sendall(data)
                            took = closed_within(sock, TIMER_SLACK)
                            assert took is not None, (
                                f"{name}: not closed within {TIMER_SLACK}s: {data[:8].hex()}"
                            )
                        count += 1
        prober.check(ANSWER_WITHIN)
        assert_recovered(server, before, leak_allowance(count))
        # And the TLS port still serves once the garbage is gone.
        with context.wrap_socket(connect(server.port), server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            status, _, body = read_response(tls)
            assert (status, body) == (200, b"hello\n")


def test_a_tls_handshake_that_stops_is_cut_off(site: Path, cert: tuple[Path, Path]) -> None:
    """The start of a TLS record, or of an SSLv2 hello, whose declared length is never sent,
    and a connection that sends nothing: the server waits for the rest, for
    --tls-handshake-timeout and no longer, and serves TLS clients meanwhile."""
    certfile, keyfile = cert
    context = ssl.create_default_context(cafile=str(certfile))
    timeout = 0.5
    starts = {
        "a TLS record header, 16 KiB declared, 100 bytes sent": b"\x16\x03\x01\x40\x00"
        + b"\1" * 100,
        "an SSLv2 header, 16 KiB declared": b"\xbf\xff\x01\x03\x01" + b"\1" * 100,
        "nothing": b"",
    }
    args = (
        "apps:plain",
        *TIMEOUT_FLAGS,
        "--certfile",
        str(certfile),
        "--keyfile",
        str(keyfile),
        "--tls-handshake-timeout",
        str(timeout),
    )
    with served(*args, cwd=site) as server:
        with Prober(server, tls=context) as prober:
            for name, data in starts.items():
                with connect(server.port) as sock:
                    sock.sendall(data)
                    took = closed_within(sock, timeout + TIMER_SLACK)
                    assert took is not None, f"{name}: not closed after the handshake timeout"
                    assert took >= timeout * 0.8, (
                        f"{name}: closed after {took:.3f}s, not waited for"
                    )
        prober.check(ANSWER_WITHIN)
