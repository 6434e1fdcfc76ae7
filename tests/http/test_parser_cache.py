"""The parser's cache of lately parsed heads (reactor/http/parser.py): a repeated head answers
exactly what parsing it afresh would, every time with objects of its own, and the cache stays
bounded and apart per Limits."""

from __future__ import annotations

import pytest

from reactor.errors import LimitExceeded, ProtocolError
from reactor.http import Limits, RequestHead, RequestParser
from reactor.http import parser as parser_module

_ATTRS = RequestHead.__slots__

WRK = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
CURL = (
    b"GET /api/items?page=2 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: curl/8.5.0\r\n"
    b"Accept: */*\r\nContent-Length: 003\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n\r\n"
)
HEADS = [
    WRK,
    CURL,
    b"POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET http://h:81/p?q HTTP/1.1\r\nHost: other\r\n\r\n",
    b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
    b"OPTIONS * HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
    b"GET / HTTP/1.1\nHost: a\n\n",
    b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n\n\r\n",
]
BAD = [
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n Folded: x\r\n\r\n",
    b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
]


def _cold(limits: Limits | None = None) -> RequestParser:
    parser = RequestParser(limits)
    parser._cache.clear()
    return parser


def _as_tuple(head: RequestHead) -> tuple[object, ...]:
    return tuple(getattr(head, a) if a != "headers" else list(head.headers.fields) for a in _ATTRS)


def _outcome(parser: RequestParser, buf: bytes | bytearray, start: int = 0) -> object:
    try:
        parsed = parser.parse(buf, start)
    except (ProtocolError, LimitExceeded) as exc:
        return (type(exc), exc.status, str(exc))
    if parsed is None:
        return None
    head, end = parsed
    return _as_tuple(head), end - start  # where the head ends, from where it began


@pytest.mark.parametrize("raw", HEADS + BAD)
@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_a_repeated_head_parses_as_the_first_time(raw: bytes, kind: type) -> None:
    first = _outcome(_cold(), kind(raw))
    parser = RequestParser()
    for _ in range(3):
        assert _outcome(parser, kind(raw)) == first
        # Not at the start of the buffer, with the next request's first bytes after it.
        assert _outcome(RequestParser(), kind(b"xx" + raw + b"GET"), 2) == first


def test_a_hit_gives_objects_of_its_own() -> None:
    parser = RequestParser()
    one, _ = parser.parse(CURL) or pytest.fail("no head")
    one.headers.add("X-Added", "1")
    one.headers.set("Host", "changed")
    one.headers.fields.append(("X-Raw", "2"))
    one.path = "/mutated"
    two, _ = parser.parse(CURL) or pytest.fail("no head")
    assert two is not one and two.headers is not one.headers
    assert two.headers.fields is not one.headers.fields
    assert two.path == "/api/items"
    assert two.headers.get("Host") == "example.com:8080"
    assert "X-Added" not in two.headers and "X-Raw" not in two.headers
    assert two.headers.get_all("content-length") == ["003"]
    assert (two.content_length, two.expect, two.keep_alive) == (3, "100-continue", True)


def test_cache_is_bounded() -> None:
    parser = _cold()
    for i in range(3 * parser_module._CACHE_MAX):
        parser.parse(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i)
        assert len(parser._cache) <= parser_module._CACHE_MAX
    big = b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * parser_module._CACHE_BLOCK_MAX + b"\r\n\r\n"
    parser._cache.clear()
    head, _ = parser.parse(big) or pytest.fail("no head")
    assert head.headers.get("X") == "a" * parser_module._CACHE_BLOCK_MAX
    assert not parser._cache


@pytest.mark.parametrize(
    ("limits", "raw", "status"),
    [
        (Limits(max_header_count=5), CURL, 431),
        (Limits(max_body_size=2), CURL, 413),
        (Limits(max_request_line=20), CURL, 414),
        (Limits(max_head_bytes=40), CURL, 431),
    ],
)
def test_a_head_cached_under_other_limits_is_checked_again(
    limits: Limits, raw: bytes, status: int
) -> None:
    RequestParser().parse(raw)  # cached under the default limits
    with pytest.raises((ProtocolError, LimitExceeded)) as info:
        RequestParser(limits).parse(raw)
    assert info.value.status == status


def test_a_cached_head_then_the_same_bytes_with_a_bare_lf_empty_line() -> None:
    # The block before the first "\n\r\n" ends in LF here: the head ends at the "\n\n" first.
    parser = RequestParser()
    raw = b"GET / HTTP/1.1\r\nHost: a\r\n\n\r\n"
    head, end = parser.parse(raw) or pytest.fail("no head")
    assert end == len(raw) - 2 and head.headers.fields == [("Host", "a")]
    head, end = parser.parse(raw) or pytest.fail("no head")
    assert end == len(raw) - 2
