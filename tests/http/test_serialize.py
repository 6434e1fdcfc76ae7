"""Serialisation: status lines, header blocks (no response splitting), chunks, the Date
value, and the request serialiser the round-trip tests use."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from reactor.http import (
    ChunkedDecoder,
    DateCache,
    RequestParser,
    encode_chunk,
    encode_fields,
    http_date,
    serialize_request,
    status_line,
)
from reactor.http.serialize import LAST_CHUNK, reason_phrase


def test_status_lines() -> None:
    assert status_line(200) == b"HTTP/1.1 200 OK\r\n"
    assert status_line(404) == b"HTTP/1.1 404 Not Found\r\n"
    assert status_line(101) == b"HTTP/1.1 101 Switching Protocols\r\n"
    assert status_line(200, "HTTP/1.0") == b"HTTP/1.0 200 OK\r\n"
    assert status_line(599) == b"HTTP/1.1 599 Unknown\r\n"
    assert status_line(200) is status_line(200)  # encoded once
    assert reason_phrase(431) == "Request Header Fields Too Large"
    for bad in (99, 1000, -200):
        with pytest.raises(ValueError, match=str(bad)):
            status_line(bad)


def test_encode_fields() -> None:
    assert encode_fields([]) == b""
    assert encode_fields([("Content-Type", "text/plain"), ("X", "")]) == (
        b"Content-Type: text/plain\r\nX: \r\n"
    )
    assert encode_fields([("X", "caf\xe9\ttab")]) == b"X: caf\xe9\ttab\r\n"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X", "a\r\nSet-Cookie: evil"),
        ("X", "a\nb"),
        ("X", "a\rb"),
        ("X", "a\x00b"),
        ("X", "a\x01b"),
        ("X", "a\x1fb"),
        ("X", "a\x7fb"),
        ("X", "\u20ac"),
        ("Bad Name", "v"),
        ("Bad:Name", "v"),
        ("X\r\nY", "v"),
        ("", "v"),
        ("N\xe9", "v"),
    ],
)
def test_encode_fields_refuses_splitting_and_bad_characters(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        encode_fields([("Ok", "fine"), (name, value)])


def test_encode_chunk() -> None:
    assert encode_chunk(b"hello") == b"5\r\nhello\r\n"
    assert encode_chunk(b"x" * 255) == b"ff\r\n" + b"x" * 255 + b"\r\n"
    assert encode_chunk(bytearray(b"ab")) == b"2\r\nab\r\n"
    assert encode_chunk(memoryview(b"abc")[1:]) == b"2\r\nbc\r\n"
    # An empty chunk would be the last chunk and end the body early.
    assert encode_chunk(b"") == b""
    assert LAST_CHUNK == b"0\r\n\r\n"
    decoder = ChunkedDecoder()
    out: list[bytes] = []
    wire = encode_chunk(b"one") + encode_chunk(b"") + encode_chunk(b"two") + LAST_CHUNK
    assert decoder.feed(wire, 0, len(wire), out) == len(wire)
    assert decoder.done and b"".join(out) == b"onetwo"


@pytest.mark.parametrize("ts", [0, 784111777, 951782400, 1700000000.75, 4102444799])
def test_http_date_matches_email_utils(ts: float) -> None:
    assert http_date(ts) == formatdate(int(ts), usegmt=True)


def test_http_date_format() -> None:
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"


def test_date_cache() -> None:
    cache = DateCache()
    first = cache.get()
    assert first.endswith(" GMT") and len(first) == 29
    now = time.time()
    assert cache.get() in (http_date(now - 1), http_date(now), http_date(now + 1))


def test_serialize_request() -> None:
    wire = serialize_request("POST", "/x", [("Host", "a")], b"body")
    assert wire == b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody"
    wire = serialize_request("GET", "/", [("Host", "a")], version="HTTP/1.0")
    assert wire == b"GET / HTTP/1.0\r\nHost: a\r\n\r\n"
    wire = serialize_request("POST", "/", [("Host", "a")], chunks=[b"ab", b"", b"c"])
    assert wire == (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"
    )
    # Given framing fields are kept, not doubled.
    wire = serialize_request("POST", "/", [("Host", "a"), ("content-length", "1")], b"z")
    assert wire.count(b"ength") == 1
    result = RequestParser().parse(wire)
    assert result is not None
    assert wire[result[1] :] == b"z"
