"""Hostile chunked bodies on the wire (issue 11, items 2 and 3): framing that outweighs its
data, and bodies of a million one-byte chunks, are answered 400 with Connection: close before
the handler is called, under the default limits and under limits set by flag-sized values.
The decoder's own tests: tests/http/test_parser.py (hostile chunk framing)."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

from reactor import Limits, Request, ResponseWriter, ServerConfig
from reactor.cli import build_parser, config_from_args

from .test_limits_timeouts import assert_error
from .wire import ResponseReader, recv_all

HEAD = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"


def _send_and_read(address: tuple[str, int], data: bytes) -> bytes:
    """Send ``data`` from a thread (the server may answer and close before it is all sent)
    and return everything the server sent until it closed."""
    with socket.create_connection(address) as sock:

        def send() -> None:
            try:
                sock.sendall(data)
            except OSError:
                pass  # the server answered and closed: the rest is refused

        sender = threading.Thread(target=send)
        sender.start()
        try:
            return recv_all(sock, timeout=30)
        finally:
            sender.join(30)


def _counting_handler() -> tuple[list[int], Any]:
    calls: list[int] = []

    def handler(w: ResponseWriter, r: Request) -> None:
        calls.append(len(r.body.read()))
        w.write(b"ok")

    return calls, handler


def test_extension_heavy_body_is_refused(serve: Any) -> None:
    # The attack: 16 KiB of data carried in 64 MiB of extensions (cut short here:
    # 16 MiB of it is more than the server may take).
    calls, handler = _counting_handler()
    srv = serve(handler)
    chunk = b"1;e=" + b"a" * 4000 + b"\r\nx\r\n"
    data = _send_and_read(srv.address, HEAD + chunk * 4096 + b"0\r\n\r\n")
    assert_error(data, 400)
    assert b"framing" in data
    assert calls == []


def test_a_million_one_byte_chunks_are_refused(serve: Any) -> None:
    calls, handler = _counting_handler()
    srv = serve(handler)
    data = _send_and_read(srv.address, HEAD + b"1\r\nx\r\n" * 1_000_000 + b"0\r\n\r\n")
    assert_error(data, 400)
    assert b"more than 65536 chunks" in data
    assert calls == []


@pytest.mark.parametrize(
    ("limits", "body", "why"),
    [
        (Limits(max_chunk_count=8), b"1\r\nx\r\n" * 9 + b"0\r\n\r\n", b"more than 8 chunks"),
        (
            Limits(max_chunk_excess=40),
            b"1;abcdefghijklmnopqrstuvwxyz0123456789\r\nx\r\n" * 2 + b"0\r\n\r\n",
            b"beyond what its data pays for, over the limit of 40",
        ),
        (
            Limits(max_chunk_overhead=64),
            b"40\r\n" + b"d" * 64 + b"\r\n" + b"0\r\n" + b"X: " + b"t" * 64 + b"\r\n\r\n",
            b"over 64 bytes of framing",
        ),
    ],
)
def test_chunk_limits_from_the_config(serve: Any, limits: Limits, body: bytes, why: bytes) -> None:
    calls, handler = _counting_handler()
    srv = serve(handler, ServerConfig(limits=limits))
    with socket.create_connection(srv.address) as sock:
        # Within the limit, on a keep-alive connection: answered.
        sock.sendall(HEAD + b"1\r\nx\r\n" * 8 + b"0\r\n\r\n")
        response = ResponseReader(sock, "POST").read()
        assert response.status == 200 and response.body == b"ok"
    data = _send_and_read(srv.address, HEAD + body)
    assert_error(data, 400)
    assert why in data, data
    assert calls == [8]


def test_chunk_limit_flags_set_the_limits() -> None:
    parser = build_parser("serve")
    args = parser.parse_args(
        [
            "serve",
            "--max-chunk-count",
            "10",
            "--max-chunk-overhead",
            "1K",
            "--max-chunk-excess",
            "0",
        ]
    )
    limits = config_from_args(args).limits
    assert (limits.max_chunk_count, limits.max_chunk_overhead, limits.max_chunk_excess) == (
        10,
        1024,
        0,
    )


def test_unread_bodies_are_skipped_and_the_connection_reused(serve: Any) -> None:
    # A buffering handler that never reads its body: the held body (chunked, with a trailer,
    # or by length) is discarded after it returns, and the next request on the connection
    # is parsed from the bytes right after it.
    seen: list[str] = []

    def handler(w: ResponseWriter, r: Request) -> None:
        seen.append(r.target)
        w.write(r.target.encode())

    srv = serve(handler)
    chunked = HEAD.replace(b"POST / ", b"POST /chunked ")
    with socket.create_connection(srv.address) as sock:
        sock.sendall(
            chunked
            + b"5;x=y\r\nhello\r\n" * 1000
            + b"0\r\nX-Sum: 1\r\n\r\n"
            + b"POST /length HTTP/1.1\r\nHost: a\r\nContent-Length: 70000\r\n\r\n"
            + b"z" * 70000
            + b"GET /last HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        reader = ResponseReader(sock)
        bodies = [reader.read(method).body for method in ("POST", "POST", "GET")]
    assert bodies == [b"/chunked", b"/length", b"/last"]
    assert seen == ["/chunked", "/length", "/last"]
