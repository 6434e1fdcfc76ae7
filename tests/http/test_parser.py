"""RequestParser and ChunkedDecoder fed bytes: every case whole, one byte at a time, and with
trailing bytes after the message (h11's tests/test_io.py style), plus each limit and its
status, and the linearity of bytewise feeding (a deterministic count of examined bytes).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from reactor.errors import LimitExceeded, ProtocolError
from reactor.http import (
    BODY_CHUNKED,
    BODY_LENGTH,
    BODY_NONE,
    ChunkedDecoder,
    Limits,
    RequestHead,
    RequestParser,
)

TRAILING = b"GET /next HTTP/1.1\r\nHost: n\r\n"


def _summary(head: RequestHead) -> tuple[Any, ...]:
    return (
        head.method,
        head.target,
        head.path,
        head.query,
        head.host,
        head.version,
        list(head.headers),
        head.body_framing,
        head.content_length,
        head.keep_alive,
        head.expect,
        head.upgrade,
    )


def _whole(data: bytes, limits: Limits | None) -> tuple[RequestHead, int] | None:
    return RequestParser(limits).parse(data, 0)


def _bytewise(data: bytes, limits: Limits | None) -> tuple[RequestHead, int] | None:
    parser = RequestParser(limits)
    buf = bytearray()
    for i in range(len(data)):
        buf.append(data[i])
        result = parser.parse(buf, 0)
        if result is not None:
            assert i == len(data) - 1, "the head ended before its last byte"
            return result
    return None


def _trailing(data: bytes, limits: Limits | None) -> tuple[RequestHead, int] | None:
    # A consumed prefix before ``start`` and the next request after the head.
    prefix = b"XYZ"
    result = RequestParser(limits).parse(prefix + data + TRAILING, len(prefix))
    if result is None:
        return None
    head, end = result
    return head, end - len(prefix)


WAYS = [_whole, _bytewise, _trailing]


def parse_ok(data: bytes, limits: Limits | None = None) -> RequestHead:
    """Parse ``data`` (one complete head) three ways; all must agree. Returns the head."""
    summaries = []
    head = None
    for way in WAYS:
        result = way(data, limits)
        assert result is not None, f"{way.__name__}: head not complete"
        head, end = result
        assert end == len(data), way.__name__
        summaries.append(_summary(head))
    assert summaries[0] == summaries[1] == summaries[2]
    assert head is not None
    return head


def parse_error(data: bytes, status: int = 400, limits: Limits | None = None) -> str:
    """``data`` must be rejected with ``status`` whichever way it is fed."""
    message = ""
    for way in WAYS:
        with pytest.raises(ProtocolError) as info:
            way(data, limits)
        assert info.value.status == status, f"{way.__name__}: {info.value}"
        message = str(info.value)
    return message


def request(line: bytes, *fields: bytes, end: bytes = b"\r\n") -> bytes:
    return line + end + b"".join(f + end for f in fields) + end


# -- the request line ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "method", "target"),
    [
        (b"GET / HTTP/1.1", "GET", "/"),
        (b"GET /a/b?c=d&e=%20f HTTP/1.1", "GET", "/a/b?c=d&e=%20f"),
        (b"POST /x HTTP/1.1", "POST", "/x"),
        (b"M-SEARCH * HTTP/1.1", None, None),  # asterisk-form is OPTIONS only: see below
        (b"OPTIONS * HTTP/1.1", "OPTIONS", "*"),
        (b"GET http://example.com/a?b HTTP/1.1", "GET", "http://example.com/a?b"),
        (b"GET https://example.com HTTP/1.1", "GET", "https://example.com"),
        (b"CONNECT example.com:443 HTTP/1.1", "CONNECT", "example.com:443"),
        (b"CONNECT [::1]:8080 HTTP/1.1", "CONNECT", "[::1]:8080"),
        (b"PURGE /cache HTTP/1.1", "PURGE", "/cache"),
        (b"x!#$%&'*+-.^_`|~9 / HTTP/1.1", "x!#$%&'*+-.^_`|~9", "/"),
    ],
)
def test_request_line_forms(line: bytes, method: str | None, target: str | None) -> None:
    data = request(line, b"Host: example.com")
    if method is None:
        parse_error(data)
        return
    head = parse_ok(data)
    assert (head.method, head.target, head.version) == (method, target, "HTTP/1.1")


@pytest.mark.parametrize(
    ("line", "status"),
    [
        (b"GET / HTTP/2.0", 505),
        (b"GET / HTTP/1.2", 505),
        (b"GET / HTTP/0.9", 505),
        (b"GET / HTTP/10.1", 505),
        (b"GET / HTTP/1.10", 505),
        (b"GET / http/1.1", 400),
        (b"GET / HTTP/1", 400),
        (b"GET /", 400),
        (b"GET", 400),
        (b"GET  / HTTP/1.1", 400),
        (b" GET / HTTP/1.1", 400),
        (b"GET / HTTP/1.1 ", 400),
        (b"GET /a b HTTP/1.1", 400),
        (b"GET\t/ HTTP/1.1", 400),
        (b"G(T / HTTP/1.1", 400),
        (b"G\xc3\x89T / HTTP/1.1", 400),
        (b"GET /\x7f HTTP/1.1", 400),
        (b"GET /\xff HTTP/1.1", 400),
        (b"GET /\x00 HTTP/1.1", 400),
        (b"GET * HTTP/1.1", 400),
        (b"GET example.com:80 HTTP/1.1", 400),
        (b"GET example.com/a HTTP/1.1", 400),
        (b"GET 1http://a/ HTTP/1.1", 400),
        (b"CONNECT /path HTTP/1.1", 400),
        (b"CONNECT example.com HTTP/1.1", 400),
        (b"CONNECT http://example.com:443 HTTP/1.1", 400),
        (b"CONNECT user@example.com:443 HTTP/1.1", 400),
        (b"GET /a\rb HTTP/1.1", 400),
    ],
)
def test_bad_request_lines(line: bytes, status: int) -> None:
    parse_error(request(line, b"Host: a"), status)


# -- where the target points: path, query and host, decided by the parser ------------------


@pytest.mark.parametrize(
    ("line", "fields", "path", "query", "host"),
    [
        # origin-form: split at the first "?", any fragment dropped
        (b"GET / HTTP/1.1", (b"Host: h.example",), "/", "", "h.example"),
        (b"GET /a/b?c=d&e=%20 HTTP/1.1", (b"Host: h.example",), "/a/b", "c=d&e=%20", "h.example"),
        (b"GET /p?q#f HTTP/1.1", (b"Host: h",), "/p", "q", "h"),
        (b"GET /p#f?x HTTP/1.1", (b"Host: h",), "/p", "", "h"),
        (b"GET /p? HTTP/1.1", (b"Host: h",), "/p", "", "h"),
        (b"GET /p?a?b HTTP/1.1", (b"Host: h",), "/p", "a?b", "h"),
        (b"GET //x/y HTTP/1.1", (b"Host: h",), "//x/y", "", "h"),  # a path, not an authority
        (b"GET /x HTTP/1.1", (b"Host: h:8080",), "/x", "", "h:8080"),
        (b"GET /x HTTP/1.0", (), "/x", "", ""),
        # asterisk-form
        (b"OPTIONS * HTTP/1.1", (b"Host: h",), "*", "", "h"),
        # authority-form: the target is the host
        (
            b"CONNECT example.com:443 HTTP/1.1",
            (b"Host: h",),
            "example.com:443",
            "",
            "example.com:443",
        ),
        (b"CONNECT [::1]:8080 HTTP/1.1", (b"Host: h",), "[::1]:8080", "", "[::1]:8080"),
        # absolute-form: the target's authority is the host, whatever Host says (RFC 9112 3.2.2)
        (b"GET http://a.example/x HTTP/1.1", (b"Host: b.example",), "/x", "", "a.example"),
        (b"GET http://a.example HTTP/1.1", (b"Host: b",), "/", "", "a.example"),
        (b"GET http://a.example?q HTTP/1.1", (b"Host: b",), "/", "q", "a.example"),
        (b"GET http://a.example#f HTTP/1.1", (b"Host: b",), "/", "", "a.example"),
        (
            b"GET http://a.example:8080/x/y?q=1&r#frag HTTP/1.1",
            (b"Host: b",),
            "/x/y",
            "q=1&r",
            "a.example:8080",
        ),
        (b"GET HTTPS://[::1]:8443/ HTTP/1.1", (b"Host: b",), "/", "", "[::1]:8443"),
        (b"GET http://[v1.fe80::a+en1]/ HTTP/1.1", (b"Host: b",), "/", "", "[v1.fe80::a+en1]"),
        (b"GET http://%61.example:/x HTTP/1.1", (b"Host: b",), "/x", "", "%61.example:"),
        (b"GET http://a.example//x HTTP/1.1", (b"Host: b",), "//x", "", "a.example"),
        (b"GET s://a/b HTTP/1.1", (b"Host: b",), "/b", "", "a"),
        (b"GET file:///etc/x HTTP/1.1", (b"Host: b",), "/etc/x", "", ""),
        (b"GET http://a.example/x HTTP/1.0", (), "/x", "", "a.example"),
        (b"GET http://a:065535 HTTP/1.1", (b"Host: b",), "/", "", "a:065535"),
        (b"CONNECT a:0 HTTP/1.1", (b"Host: b",), "a:0", "", "a:0"),
    ],
)
def test_path_query_and_host(
    line: bytes, fields: tuple[bytes, ...], path: str, query: str, host: str
) -> None:
    head = parse_ok(request(line, *fields))
    assert (head.path, head.query, head.host) == (path, query, host)


@pytest.mark.parametrize(
    "target",
    [
        b"s://]ufd/:",  # issue 10 bug 1: urlsplit raised ValueError in Request()
        b"http://[::1/x",
        b"http://a]b/",
        b"http://[::1]x/",
        b"http://[::1::2]/",
        b"http://[1.2.3.4]/",
        b"http://[v1]/",
        b"http://[]/",
        b"http://a:b/",
        b"http://a:80:80/",
        b"http:///x",
        b"http://",
        b"http://:80/",
        b"https://?q",
        b"http://user@a.example/",
        b"http://a%zz/",
        b"http://a\\b/",
        b"http://a{b}/",
        b"http://a|b/",
        b"http://a:65536/",
        b"http://a:" + b"9" * 5000 + b"/",
    ],
)
def test_invalid_absolute_form_authority_400(target: bytes) -> None:
    parse_error(request(b"PUT " + target + b" HTTP/1.1", b"Host: a"))


@pytest.mark.parametrize(
    "target",
    [
        b"]ufd:80",
        b"a:" + b"1" * 5000,
        b"[::1:80",
        b"a]b:80",
        b":80",
        b"a:80:80",
        b"a%zz:1",
        b"[::1]x:80",
        b"a{b}:1",
        b"a:65536",  # past the last TCP port (found by test_parser_hypothesis)
        b"a:99999",
    ],
)
def test_invalid_connect_authority_400(target: bytes) -> None:
    parse_error(request(b"CONNECT " + target + b" HTTP/1.1", b"Host: a"))


def test_http_10_needs_no_host_and_is_not_keep_alive() -> None:
    head = parse_ok(request(b"GET / HTTP/1.0"))
    assert head.version == "HTTP/1.0"
    assert not head.keep_alive
    assert parse_ok(request(b"GET / HTTP/1.0", b"Connection: Keep-Alive")).keep_alive
    assert not parse_ok(request(b"GET / HTTP/1.0", b"Connection: keep-alive, close")).keep_alive
    parse_error(request(b"GET / HTTP/1.0", b"Host: a", b"Host: b"))


def test_keep_alive_and_upgrade_on_11() -> None:
    assert parse_ok(request(b"GET / HTTP/1.1", b"Host: a")).keep_alive
    assert not parse_ok(request(b"GET / HTTP/1.1", b"Host: a", b"Connection: x, Close")).keep_alive
    head = parse_ok(
        request(b"GET / HTTP/1.1", b"Host: a", b"Connection: Upgrade", b"Upgrade: websocket")
    )
    assert head.upgrade
    # Upgrade without the Connection token is not an upgrade request (RFC 9110 7.8).
    assert not parse_ok(request(b"GET / HTTP/1.1", b"Host: a", b"Upgrade: websocket")).upgrade
    head = parse_ok(request(b"POST / HTTP/1.1", b"Host: a", b"Expect: 100-Continue"))
    assert head.expect == "100-continue"


@pytest.mark.parametrize(
    "fields",
    [
        (),
        (b"Host: a", b"Host: a"),
        (b"Host: a", b"host: b"),
    ],
)
def test_exactly_one_host_on_11(fields: tuple[bytes, ...]) -> None:
    parse_error(request(b"GET / HTTP/1.1", *fields))


# -- header fields -------------------------------------------------------------------------


def test_headers_keep_order_case_and_strip_ows() -> None:
    head = parse_ok(
        request(
            b"GET / HTTP/1.1",
            b"Host: a",
            b"X-Thing:   spaced  value \t",
            b"x-thing:second",
            b"Empty:",
            b"Empty-Spaces:    ",
            b"Obs-Text: caf\xe9",
            b"Tabs:\tin\tside\t",
        )
    )
    assert list(head.headers) == [
        ("Host", "a"),
        ("X-Thing", "spaced  value"),
        ("x-thing", "second"),
        ("Empty", ""),
        ("Empty-Spaces", ""),
        ("Obs-Text", "caf\xe9"),
        ("Tabs", "in\tside"),
    ]
    assert head.headers.get_all("X-THING") == ["spaced  value", "second"]


@pytest.mark.parametrize(
    ("field", "why"),
    [
        (b"Bad Name: x", "space in name"),
        (b"Bad\tName: x", "tab in name"),
        (b"Name : x", "whitespace before the colon"),
        (b"Name\t: x", "whitespace before the colon"),
        (b": x", "empty name"),
        (b"NoColon", "no colon"),
        (b"N(ame): x", "separator in name"),
        (b"N\xe9: x", "non-ASCII name"),
        (b"X: a\x00b", "NUL in value"),
        (b"X: a\x01b", "control in value"),
        (b"X: a\x7fb", "DEL in value"),
        (b"X: a\rb", "bare CR in value"),
        (b"X: a\x0bb", "VT in value"),
        (b"X: a\x0cb", "FF in value"),
    ],
)
def test_bad_fields(field: bytes, why: str) -> None:
    parse_error(request(b"GET / HTTP/1.1", b"Host: a", field))


def test_whitespace_before_colon_is_named() -> None:
    assert "before the colon" in parse_error(request(b"GET / HTTP/1.1", b"Host : a"))


@pytest.mark.parametrize("fold", [b" folded", b"\tfolded", b"  "])
def test_obs_fold_rejected(fold: bytes) -> None:
    message = parse_error(request(b"GET / HTTP/1.1", b"Host: a", b"X: a", fold))
    assert "folding" in message


def test_obs_fold_right_after_request_line_rejected() -> None:
    parse_error(request(b"GET / HTTP/1.1", b" Host: a"))


# -- line endings and empty lines ----------------------------------------------------------


def test_bare_lf_line_endings_accepted() -> None:
    head = parse_ok(request(b"GET / HTTP/1.1", b"Host: a", b"X: y", end=b"\n"))
    assert list(head.headers) == [("Host", "a"), ("X", "y")]


def test_mixed_line_endings_end_at_the_first_empty_line() -> None:
    # "...\n\n" ends the head; the "\r\n" after it is an empty line before the next request.
    data = b"GET / HTTP/1.1\r\nHost: a\n\n"
    assert parse_ok(data).headers.get("host") == "a"
    parser = RequestParser()
    buf = data + b"\r\n" + TRAILING + b"\r\n"
    result = parser.parse(buf, 0)
    assert result is not None
    assert result[1] == len(data)
    nxt = parser.parse(buf, result[1])
    assert nxt is not None
    assert nxt[0].target == "/next"
    assert nxt[1] == len(buf)
    head = parse_ok(b"GET / HTTP/1.1\nHost: a\r\n\r\n")
    assert head.headers.get("host") == "a"


def test_leading_empty_lines_are_skipped() -> None:
    for prefix in (b"\r\n", b"\n", b"\r\n\r\n\n"):
        data = prefix + request(b"GET / HTTP/1.1", b"Host: a")
        assert parse_ok(data).target == "/"


@pytest.mark.parametrize(
    "data",
    [
        b"\rGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\r\rGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\rHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\r\n\r\n",
        # "\r\r\n" is not an empty line: the head goes on, and the line is then refused.
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n\r\n",
    ],
)
def test_bare_cr_rejected(data: bytes) -> None:
    parse_error(data)


def test_incomplete_heads_need_more() -> None:
    parser = RequestParser()
    for partial in (
        b"",
        b"\r",
        b"\r\n",
        b"GET",
        b"GET / HTTP/1.1\r\n",
        b"GET / HTTP/1.1\r\nH: a\r",
    ):
        assert parser.parse(partial, 0) is None
        parser.reset()


def test_successive_pipelined_heads() -> None:
    one = request(b"GET /1 HTTP/1.1", b"Host: a")
    two = request(b"GET /2 HTTP/1.1", b"Host: a")
    buf = one + two
    parser = RequestParser()
    first = parser.parse(buf, 0)
    assert first is not None and first[1] == len(one)
    second = parser.parse(buf, first[1])
    assert second is not None
    assert (second[0].target, second[1]) == ("/2", len(buf))


def test_start_moving_resets_the_memo() -> None:
    # The buffer is compacted between calls: the same bytes now start at 0.
    parser = RequestParser()
    data = request(b"GET / HTTP/1.1", b"Host: a")
    assert parser.parse(b"xx" + data[:10], 2) is None
    result = parser.parse(data, 0)
    assert result is not None and result[1] == len(data)


# -- body framing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "framing", "length"),
    [
        ((), BODY_NONE, 0),
        ((b"Content-Length: 0",), BODY_NONE, 0),
        ((b"Content-Length: 10",), BODY_LENGTH, 10),
        ((b"Content-Length: 007",), BODY_LENGTH, 7),
        ((b"Content-Length: 5, 5",), BODY_LENGTH, 5),
        ((b"Content-Length: 5", b"content-length: 5"), BODY_LENGTH, 5),
        ((b"Content-Length: 5", b"content-length: 005"), BODY_LENGTH, 5),
        ((b"Content-Length: " + b"0" * 40 + b"3",), BODY_LENGTH, 3),
        ((b"Transfer-Encoding: chunked",), BODY_CHUNKED, 0),
        ((b"Transfer-Encoding: Chunked",), BODY_CHUNKED, 0),
        ((b"Transfer-Encoding: , chunked ,",), BODY_CHUNKED, 0),
    ],
)
def test_framing(fields: tuple[bytes, ...], framing: int, length: int) -> None:
    head = parse_ok(request(b"POST / HTTP/1.1", b"Host: a", *fields))
    assert (head.body_framing, head.content_length) == (framing, length)


@pytest.mark.parametrize(
    ("fields", "seen"),
    [
        # RFC 9110 8.6: a list of identical values, or repeated identical fields, is taken as
        # one value; the application sees that one value in one field, where the first was.
        ((b"Content-Length: 5, 5",), [("Content-Length", "5")]),
        ((b"Content-Length: 5 ,\t5 , 5",), [("Content-Length", "5")]),
        ((b"Content-Length: 5", b"content-length: 5"), [("Content-Length", "5")]),
        (
            (b"content-length: 5", b"X: y", b"Content-Length: 005"),
            [("content-length", "5"), ("X", "y")],
        ),
        (
            (b"X: 1", b"Content-Length: 05, 5", b"X: 2"),
            [("X", "1"), ("Content-Length", "5"), ("X", "2")],
        ),
        # one field with one value stays as received
        ((b"Content-Length: 007",), [("Content-Length", "007")]),
        ((b"Content-Length: 5",), [("Content-Length", "5")]),
    ],
)
def test_content_length_list_reaches_the_application_as_one_value(
    fields: tuple[bytes, ...], seen: list[tuple[str, str]]
) -> None:
    head = parse_ok(request(b"POST / HTTP/1.1", b"Host: a", *fields))
    assert list(head.headers) == [("Host", "a"), *seen]
    assert head.headers.get_all("content-length") == [head.headers["Content-Length"]]
    assert int(head.headers["Content-Length"]) == head.content_length


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ((b"Content-Length: 5", b"Transfer-Encoding: chunked"), 400),
        ((b"Transfer-Encoding: chunked", b"Content-Length: 0"), 400),
        ((b"Content-Length: 5", b"Content-Length: 6"), 400),
        ((b"Content-Length: 5, 6",), 400),
        ((b"Content-Length: 5,",), 400),
        ((b"Content-Length: -5",), 400),
        ((b"Content-Length: +5",), 400),
        ((b"Content-Length: 0x5",), 400),
        ((b"Content-Length: 5.0",), 400),
        ((b"Content-Length: 5 5",), 400),
        ((b"Content-Length:",), 400),
        ((b"Content-Length: \xa05",), 400),
        ((b"Content-Length: 5\x85",), 400),
        ((b"Content-Length: \xd9\xa5",), 400),  # not ASCII digits
        ((b"Content-Length: \xb2",), 400),  # a superscript: str.isdigit() is true of it
        ((b"Content-Length: 1\xb9",), 400),
        ((b"Content-Length: " + b"9" * 19,), 413),
        ((b"Content-Length: " + b"9" * 5000,), 413),
        ((b"Transfer-Encoding: gzip",), 501),
        ((b"Transfer-Encoding: identity",), 501),
        ((b"Transfer-Encoding: chunked\x85",), 501),
        ((b"Transfer-Encoding: chunked\xa0",), 501),
        ((b"Transfer-Encoding: chunked, gzip",), 400),
        ((b"Transfer-Encoding: gzip, chunked",), 400),
        ((b"Transfer-Encoding: chunked, chunked",), 400),
        ((b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"), 400),
        ((b"Transfer-Encoding:",), 400),
    ],
)
def test_bad_framing(fields: tuple[bytes, ...], status: int) -> None:
    parse_error(request(b"POST / HTTP/1.1", b"Host: a", *fields), status)


def test_transfer_encoding_on_http_10_rejected() -> None:
    parse_error(request(b"POST / HTTP/1.0", b"Transfer-Encoding: chunked"))


# -- limits ----------------------------------------------------------------------------------


def _padded(total: int, line: bytes = b"GET / HTTP/1.1") -> bytes:
    """A head of exactly ``total`` bytes."""
    base = request(line, b"Host: a", b"X: ")
    return request(line, b"Host: a", b"X: " + b"a" * (total - len(base)))


def test_head_bytes_limit_431() -> None:
    limits = Limits(max_head_bytes=200)
    assert len(_padded(200)) == 200
    parse_ok(_padded(200), limits)
    assert "200" in parse_error(_padded(201), 431, limits)
    # Detected before the head ends: bytes that cannot be a head in the limit.
    parser = RequestParser(limits)
    with pytest.raises(LimitExceeded) as info:
        parser.parse(_padded(400)[:300], 0)
    assert info.value.status == 431


def test_leading_empty_lines_count_toward_the_head_limit() -> None:
    limits = Limits(max_head_bytes=200)
    parser = RequestParser(limits)
    with pytest.raises(LimitExceeded) as info:
        parser.parse(b"\r\n" * 101, 0)
    assert info.value.status == 431
    parse_error(b"\r\n" * 10 + _padded(200), 431, limits)
    parse_ok(b"\r\n" * 10 + _padded(180), limits)


def test_header_count_limit_431() -> None:
    limits = Limits(max_header_count=3)
    parse_ok(request(b"GET / HTTP/1.1", b"Host: a", b"A: 1", b"B: 2"), limits)
    message = parse_error(
        request(b"GET / HTTP/1.1", b"Host: a", b"A: 1", b"B: 2", b"C: 3"), 431, limits
    )
    assert "3" in message
    assert isinstance(_error(request(b"GET / HTTP/1.1", *[b"A: 1"] * 4), limits), LimitExceeded)


def _error(data: bytes, limits: Limits | None = None) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        RequestParser(limits).parse(data, 0)
    return info.value


def test_request_line_limit_414() -> None:
    limits = Limits(max_request_line=32)
    line = b"GET /" + b"a" * 18 + b" HTTP/1.1"
    assert len(line) == 32
    parse_ok(request(line, b"Host: a"), limits)
    parse_ok(request(line, b"Host: a", end=b"\n"), limits)
    assert "32" in parse_error(request(line.replace(b"/", b"/b", 1), b"Host: a"), 414, limits)
    # Detected before the line ends, without waiting for the rest of the head.
    parser = RequestParser(limits)
    assert parser.parse(line + b"\r", 0) is None  # 32 bytes and maybe a CRLF
    with pytest.raises(LimitExceeded) as info:
        parser.parse(b"GET /" + b"a" * 40, 0)
    assert info.value.status == 414


def test_body_limit_413_via_content_length() -> None:
    limits = Limits(max_body_size=100)
    head = parse_ok(request(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 100"), limits)
    assert head.content_length == 100
    parse_error(request(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 101"), 413, limits)
    # 0 disables the body limit.
    head = parse_ok(
        request(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 999999999999"),
        Limits(max_body_size=0),
    )
    assert head.content_length == 999999999999


def test_body_limit_413_via_chunked() -> None:
    limits = Limits(max_body_size=100)
    assert decode_ok(b"64\r\n" + b"a" * 100 + b"\r\n0\r\n\r\n", limits)[0] == b"a" * 100
    body = b"32\r\n" + b"a" * 50 + b"\r\n33\r\n" + b"b" * 51 + b"\r\n0\r\n\r\n"
    decode_error(body, 413, limits)
    # Refused at the size line, before the data arrives.
    decoder = ChunkedDecoder(limits)
    with pytest.raises(LimitExceeded) as info:
        decoder.feed(b"65\r\n", 0, 4)
    assert info.value.status == 413


def test_limits_are_frozen_and_validated() -> None:
    limits = Limits()
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.max_head_bytes = 1  # type: ignore[misc]
    for name in ("max_head_bytes", "max_request_line", "max_header_count", "max_chunk_line"):
        with pytest.raises(ValueError, match=name):
            Limits(**{name: 0})
    with pytest.raises(ValueError, match="max_body_size"):
        Limits(max_body_size=-1)
    assert Limits(max_body_size=0).max_body_size == 0


# -- linearity -------------------------------------------------------------------------------


class CountingBuffer(bytearray):
    """A bytearray that counts the bytes its ``find`` calls may examine."""

    examined = 0

    def find(self, sub: Any, start: Any = None, end: Any = None) -> int:
        lo = 0 if start is None else start
        hi = len(self) if end is None else min(end, len(self))
        CountingBuffer.examined += max(0, hi - lo)
        return super().find(sub, start, end)


def _examined_bytewise(size: int) -> int:
    head = _padded(size)
    assert len(head) == size
    parser = RequestParser(Limits(max_head_bytes=128 * 1024))
    buf = CountingBuffer()
    CountingBuffer.examined = 0
    result = None
    for i in range(len(head)):
        buf.append(head[i])
        result = parser.parse(buf, 0)
    assert result is not None and result[1] == size
    return CountingBuffer.examined


def test_bytewise_head_is_linear() -> None:
    small = _examined_bytewise(8 * 1024)
    large = _examined_bytewise(60 * 1024)
    # Each call searches only the new byte and the two before it, a few times over.
    assert large <= 12 * 60 * 1024
    assert large / small < 60 / 8 * 1.2


def test_bytewise_leading_empty_lines_are_linear() -> None:
    parser = RequestParser(Limits(max_head_bytes=128 * 1024))
    data = b"\r\n" * 30000 + request(b"GET / HTTP/1.1", b"Host: a")
    buf = CountingBuffer()
    CountingBuffer.examined = 0
    for i in range(len(data)):
        buf.append(data[i])
        result = parser.parse(buf, 0)
    assert result is not None and result[1] == len(data)
    assert CountingBuffer.examined <= 12 * len(data)


def test_no_search_past_the_limits() -> None:
    # A megabyte buffer without a head end: the search stops at the limit.
    parser = RequestParser(Limits(max_head_bytes=1024, max_request_line=512))
    buf = CountingBuffer(b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * (1 << 20))
    CountingBuffer.examined = 0
    with pytest.raises(LimitExceeded):
        parser.parse(buf, 0)
    assert CountingBuffer.examined <= 3 * 1024


# -- chunked bodies --------------------------------------------------------------------------


def _decode_whole(data: bytes, limits: Limits | None) -> tuple[bytes, list[tuple[str, str]], int]:
    decoder = ChunkedDecoder(limits)
    out: list[bytes] = []
    pos = decoder.feed(data, 0, len(data), out)
    assert decoder.done
    return b"".join(out), decoder.trailers, pos


def _decode_bytewise(
    data: bytes, limits: Limits | None
) -> tuple[bytes, list[tuple[str, str]], int]:
    decoder = ChunkedDecoder(limits)
    out: list[bytes] = []
    buf = bytearray()
    pos = 0
    for i in range(len(data)):
        assert not decoder.done
        buf.append(data[i])
        pos = decoder.feed(buf, pos, len(buf), out)
    assert decoder.done
    return b"".join(out), decoder.trailers, pos


def _decode_trailing(
    data: bytes, limits: Limits | None
) -> tuple[bytes, list[tuple[str, str]], int]:
    decoder = ChunkedDecoder(limits)
    out: list[bytes] = []
    buf = b"XY" + data + TRAILING
    pos = decoder.feed(buf, 2, len(buf), out)
    assert decoder.done
    # Fed again, the decoder takes nothing more: the rest is the next request.
    assert decoder.feed(buf, pos, len(buf), out) == pos
    return b"".join(out), decoder.trailers, pos - 2


def _decode_counting(
    data: bytes, limits: Limits | None
) -> tuple[bytes, list[tuple[str, str]], int]:
    # out=None: the scanner that only tells whether the whole body is here.
    decoder = ChunkedDecoder(limits)
    buf = bytearray()
    pos = 0
    for i in range(0, len(data), 3):
        buf += data[i : i + 3]
        pos = decoder.feed(buf, pos, len(buf))
    assert decoder.done
    return b"", decoder.trailers, pos


def decode_ok(
    data: bytes, limits: Limits | None = None
) -> tuple[bytes, list[tuple[str, str]], int]:
    results = [way(data, limits) for way in (_decode_whole, _decode_bytewise, _decode_trailing)]
    assert results[0] == results[1] == results[2]
    body, trailers, pos = results[0]
    assert pos == len(data)
    counted = _decode_counting(data, limits)
    assert counted[1:] == (trailers, pos)
    return body, trailers, ChunkedDecoder(limits).feed(data, 0, len(data))


def decode_error(data: bytes, status: int = 400, limits: Limits | None = None) -> None:
    for way in (_decode_whole, _decode_bytewise, _decode_trailing):
        with pytest.raises(ProtocolError) as info:
            way(data, limits)
        assert info.value.status == status, way.__name__


@pytest.mark.parametrize(
    ("data", "body", "trailers"),
    [
        (b"0\r\n\r\n", b"", []),
        (b"5\r\nhello\r\n0\r\n\r\n", b"hello", []),
        (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world", []),
        (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789", []),
        (b"a\r\n0123456789\r\n0\r\n\r\n", b"0123456789", []),
        (b"0005\r\nhello\r\n000\r\n\r\n", b"hello", []),
        (b"5;ext\r\nhello\r\n0\r\n\r\n", b"hello", []),
        (b'5 ; a=b ;c = "q\\"d"\r\nhello\r\n0;last\r\n\r\n', b"hello", []),
        (b"5\t;x\r\nhello\r\n0\r\n\r\n", b"hello", []),
        (b"5\r\nhel\r\n\r\n0\r\n\r\n", b"hel\r\n", []),
        (
            b"3\r\nabc\r\n0\r\nExpires: never\r\nX-Sum:  abc \r\n\r\n",
            b"abc",
            [("Expires", "never"), ("X-Sum", "abc")],
        ),
    ],
)
def test_chunked_bodies(data: bytes, body: bytes, trailers: list[tuple[str, str]]) -> None:
    got_body, got_trailers, _ = decode_ok(data)
    assert got_body == body
    assert got_trailers == trailers


@pytest.mark.parametrize(
    "data",
    [
        b"\r\n",
        b"x\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"\xb5\r\nhello\r\n0\r\n\r\n",  # not hex digits, whatever str thinks
        b"5\xb2\r\nhello\r\n0\r\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"5 5\r\nhello\r\n0\r\n\r\n",
        b"1" + b"0" * 16 + b"\r\n",  # 17 hex digits: the size line is bounded
        b"5\r\nhelloX\r\n0\r\n\r\n",
        b"5\r\nhello\rX0\r\n\r\n",
        b"5\r\nhelloXY",
        b"5;\r\nhello\r\n0\r\n\r\n",
        b"5;a=\r\nhello\r\n0\r\n\r\n",
        b"5;a b\r\nhello\r\n0\r\n\r\n",
        b'5;a="unterminated\r\nhello\r\n0\r\n\r\n',
        b"5;a=b\x00\r\nhello\r\n0\r\n\r\n",
        b"5\rX\r\nhello\r\n0\r\n\r\n",
        b"0\r\nBad Trailer: x\r\n\r\n",
        b"0\r\nX: a\x00\r\n\r\n",
        b"0\r\n folded\r\n\r\n",
        b"0\r\nNoColon\r\n\r\n",
    ],
)
def test_bad_chunked_bodies(data: bytes) -> None:
    decode_error(data)


def test_chunk_line_limit() -> None:
    limits = Limits(max_chunk_line=16)
    decode_ok(b"5;abcdefghijklm\r\nhello\r\n0\r\n\r\n", limits)  # 15 bytes + CR
    decode_error(b"5;abcdefghijklmn\r\nhello\r\n0\r\n\r\n", 400, limits)
    decoder = ChunkedDecoder(limits)
    with pytest.raises(ProtocolError):
        decoder.feed(b"5;" + b"a" * 100, 0, 102)
    decode_error(b"0\r\nX: " + b"a" * 20 + b"\r\n\r\n", 400, limits)


def test_trailer_count_limit_431() -> None:
    limits = Limits(max_header_count=2)
    decode_ok(b"0\r\nA: 1\r\nB: 2\r\n\r\n", limits)
    decode_error(b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431, limits)


def test_max_out_bounds_each_feed() -> None:
    data = b"a\r\n0123456789\r\n5\r\nabcde\r\n0\r\n\r\n"
    decoder = ChunkedDecoder()
    pos = 0
    pieces = []
    while not decoder.done:
        out: list[bytes] = []
        pos = decoder.feed(data, pos, len(data), out, 4)
        got = b"".join(out)
        assert len(got) <= 4
        pieces.append(got)
    assert b"".join(pieces) == b"0123456789abcde"
    assert pos == len(data)
    assert decoder.decoded == 15


def test_decoder_waits_for_the_crlf_after_data() -> None:
    decoder = ChunkedDecoder()
    out: list[bytes] = []
    assert decoder.feed(b"3\r\nabc\r", 0, 7, out) == 6
    assert not decoder.done
    with pytest.raises(ProtocolError):
        decoder.feed(b"3\r\nabc\rX", 6, 8, out)


# Every CRLF of the chunked framing (RFC 9112 7.1) is exactly CRLF: a bare LF after the size
# line, the data, the last chunk, a trailer field or the final empty line is a 400, never read
# as a line end (lenient chunk framing is a request-smuggling vector: a proxy that reads it
# otherwise sees other messages).
BARE_LF_CHUNKED = [
    b"a\r\n0123456789\n0\r\n\r\n",  # after chunk data (issue 10 bug 3)
    b"5\r\nhello\n0\r\n\r\n",
    b"5\nhello\r\n0\r\n\r\n",  # after the size line
    b"5;ext\nhello\r\n0\r\n\r\n",  # after a size line with an extension
    b"0\n\r\n",  # after the last chunk
    b"0;x=y\n\r\n",
    b"0\r\n\n",  # the final empty line
    b"0\r\nX: y\n\r\n",  # after a trailer field
    b"0\r\nX: y\r\n\n",
    b"5\nhello\n0\n\n",  # all of them
]


def _decode_split(data: bytes, cut: int, count_only: bool) -> None:
    decoder = ChunkedDecoder()
    out = None if count_only else []
    buf = bytearray(data[:cut])
    pos = decoder.feed(buf, 0, len(buf), out)
    buf += data[cut:]
    pos = decoder.feed(buf, pos, len(buf), out)
    assert decoder.done


@pytest.mark.parametrize("data", BARE_LF_CHUNKED)
def test_bare_lf_in_chunked_framing_rejected(data: bytes) -> None:
    decode_error(data)
    for cut in range(len(data) + 1):
        for count_only in (False, True):
            with pytest.raises(ProtocolError) as info:
                _decode_split(data + TRAILING, cut, count_only)
            assert info.value.status == 400, (cut, count_only)


def test_crlf_chunked_framing_accepted_at_every_split() -> None:
    data = b"5;a=b\r\nhello\r\n1\r\n\n\r\n0\r\nX: y\r\n\r\n"
    for cut in range(len(data) + 1):
        for count_only in (False, True):
            _decode_split(data, cut, count_only)


# -- hostile chunk framing (issue 11: overhead, chunk count, trickled size lines) -------------

# The extension of the attack: 16 KiB of data in 64 MiB of extensions.
_EXT = b";e=" + b"a" * 4000


def _fed_until_error(data: bytes, limits: Limits, step: int, count_only: bool) -> int:
    """Feed ``data`` ``step`` bytes at a time; return how many bytes had been fed when the
    decoder refused it (ProtocolError with status 400)."""
    decoder = ChunkedDecoder(limits)
    buf = bytearray()
    pos = 0
    out: list[bytes] | None = None if count_only else []
    for i in range(0, len(data), step):
        buf += data[i : i + step]
        try:
            pos = decoder.feed(buf, pos, len(buf), out)
        except ProtocolError as exc:
            assert exc.status == 400, exc
            return len(buf)
        assert not decoder.done
    raise AssertionError("the body was accepted")


@pytest.mark.parametrize("count_only", [False, True])
def test_extension_bytes_are_bounded_relative_to_the_data(count_only: bool) -> None:
    # One data byte per 4 KiB of extension, 16 Ki times over: refused once the framing
    # exceeds the allowance (16 bytes a chunk and 2 per data byte) by 16 KiB, not after 64 MiB.
    chunk = b"1" + _EXT + b"\r\nx\r\n"
    data = chunk * 64  # enough to cross the bound many times over
    fed = _fed_until_error(data, Limits(), 1024, count_only)
    assert fed <= 16 * 1024 + 2 * len(chunk)


def test_extension_within_the_allowance_is_accepted() -> None:
    # Data pays for framing: 4 KiB chunks may carry 4 KiB lines of extensions.
    chunk = b"1000" + _EXT[:4000] + b"\r\n" + b"d" * 4096 + b"\r\n"
    body, _, _ = decode_ok(chunk * 8 + b"0\r\n\r\n")
    assert body == b"d" * 4096 * 8


def test_excess_limit_is_configurable() -> None:
    # 32 bytes of framing (the line, its CRLF, the CRLF after the data) against 16 + 2 * 1
    # allowed: 14 over each.
    chunk = b"1;abcdefghijklmnopqrstuvwxyz\r\nx\r\n"
    decode_ok(chunk * 7 + b"0\r\n\r\n", Limits(max_chunk_excess=100))
    decode_error(chunk * 8 + b"0\r\n\r\n", 400, Limits(max_chunk_excess=100))
    decode_ok(chunk * 1000 + b"0\r\n\r\n", Limits(max_chunk_excess=0))  # 0: no limit


def test_framing_bytes_are_bounded_in_absolute_terms() -> None:
    # Chunks whose data pays for their extensions, so only the absolute bound applies.
    chunk = b"800" + _EXT[:2000] + b"\r\n" + b"d" * 2048 + b"\r\n"
    per_chunk = len(chunk) - 2048
    limits = Limits(max_chunk_overhead=10 * per_chunk)
    decode_ok(chunk * 9 + b"0\r\n\r\n", limits)
    decode_error(chunk * 11 + b"0\r\n\r\n", 400, limits)
    # The default: at most 1 MiB of framing, whatever the data.
    step = 64 * 1024
    fed = _fed_until_error(chunk * 1024, Limits(), step, False)
    assert fed <= (1024 * 1024 // per_chunk + 1) * len(chunk) + step
    decode_ok(chunk * 20 + b"0\r\n\r\n", Limits(max_chunk_overhead=0))  # 0: no limit


def test_trailer_bytes_count_as_framing() -> None:
    body = b"1\r\nx\r\n0\r\n" + b"X-A: " + b"a" * 90 + b"\r\n\r\n"
    decode_ok(body, Limits(max_chunk_overhead=200))
    decode_error(body, 400, Limits(max_chunk_overhead=100))


def test_chunk_count_limit() -> None:
    limits = Limits(max_chunk_count=10)
    decode_ok(b"1\r\nx\r\n" * 10 + b"0\r\n\r\n", limits)
    decode_error(b"1\r\nx\r\n" * 11 + b"0\r\n\r\n", 400, limits)
    decode_ok(b"1\r\nx\r\n" * 100 + b"0\r\n\r\n", Limits(max_chunk_count=0))  # 0: no limit


@pytest.mark.parametrize("count_only", [False, True])
def test_a_million_one_byte_chunks_are_refused_early(count_only: bool) -> None:
    # The body: 6 MB, within the body limit, one chunk per data byte.
    data = b"1\r\nx\r\n" * 1_000_000 + b"0\r\n\r\n"
    decoder = ChunkedDecoder(Limits())
    out: list[bytes] | None = None if count_only else []
    with pytest.raises(LimitExceeded) as info:
        decoder.feed(data, 0, len(data), out)
    assert info.value.status == 400
    assert str(Limits().max_chunk_count) in str(info.value)


def test_new_limits_are_validated() -> None:
    for name in ("max_chunk_count", "max_chunk_overhead", "max_chunk_excess"):
        with pytest.raises(ValueError, match=name):
            Limits(**{name: -1})
        assert getattr(Limits(**{name: 0}), name) == 0


def test_a_long_size_line_fed_bytewise_is_searched_once() -> None:
    # A 4 KiB extension trickled a byte per call: each call searches only the new byte
    # (as the head parser does), not the whole line again.
    data = b"5" + _EXT[:4000] + b"\r\nhello\r\n0\r\n" + b"X: " + b"t" * 4000 + b"\r\n\r\n"
    decoder = ChunkedDecoder(Limits())
    buf = CountingBuffer()
    CountingBuffer.examined = 0
    pos = 0
    out: list[Any] = []
    for i in range(len(data)):
        buf.append(data[i])
        pos = decoder.feed(buf, pos, len(buf), out)
    assert decoder.done and b"".join(out) == b"hello"
    assert CountingBuffer.examined <= 4 * len(data)


# -- garbage refused as it arrives (issue 11, item 7) -------------------------------------------

# Heads that are not whole yet but already cannot become valid: the method's bytes are checked
# as they come, the request line as soon as its LF is here (nginx, Go and llhttp do the same),
# instead of waiting for the end of the head (or the header timeout).
EARLY_GARBAGE = [
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),  # a TLS ClientHello's start
    (b"\x00", 400),
    (b"G\x01", 400),
    (b"GET\r", 400),
    (b"\r\n\r\n\xff", 400),  # after the empty lines a request line may start with
    (b" GET", 400),
    (b"GET\t/", 400),
    (b"GET /\x01 HTTP/1.1\r\n", 400),
    (b"GET / HTTP/1.1 x\r\n", 400),
    (b"GET  / HTTP/1.1\r\nHost: a\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: a\r\n", 505),
    (b"GET / HTTP/1.1\n", None),  # a valid line (bare LF ends it, RFC 9112 2.2): wait
    (b"M-SEARCH * HTTP/1.1\r\nHost: a", None),  # valid so far: the target is judged later
    (b"x!#$%&'*+-.^_`|~9", None),
]


@pytest.mark.parametrize(("data", "status"), EARLY_GARBAGE)
def test_garbage_is_refused_before_the_head_ends(data: bytes, status: int | None) -> None:
    # Whole, then a byte at a time: refused with the status by the last byte at the latest.
    for way in ("whole", "bytewise"):
        parser = RequestParser()
        buf = bytearray()
        chunks = [data] if way == "whole" else [data[i : i + 1] for i in range(len(data))]
        try:
            for chunk in chunks:
                buf += chunk
                assert parser.parse(buf, 0) is None
        except ProtocolError as exc:
            assert status is not None, (way, exc)
            assert exc.status == status, (way, exc)
        else:
            assert status is None, f"{way}: {data!r} was not refused"


def test_a_long_method_trickled_is_checked_as_it_comes() -> None:
    # A valid method up to the request-line limit, a byte at a time, then a bad byte.
    parser = RequestParser()
    buf = bytearray()
    for _ in range(8000):
        buf += b"A"
        assert parser.parse(buf, 0) is None
    buf += b"\x00"
    with pytest.raises(ProtocolError) as info:
        parser.parse(buf, 0)
    assert info.value.status == 400
