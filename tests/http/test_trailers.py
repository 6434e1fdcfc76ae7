"""Response trailers without sockets: the fields a trailer section must not carry (Trailers,
check_trailer_field), the last chunk with its trailer section read back by our own chunked
decoder, and the protocol keeping an HTTP/1.1 response chunked once it declares a Trailer."""

from __future__ import annotations

import pytest

from reactor.http.headers import Headers, Trailers
from reactor.http.limits import Limits
from reactor.http.parser import ChunkedDecoder
from reactor.http.protocol import (
    FRAMING_CHUNKED,
    FRAMING_CLOSE,
    FRAMING_LENGTH,
    FRAMING_NONE,
    ProtocolContext,
    ServerProtocol,
)
from reactor.http.serialize import (
    LAST_CHUNK,
    TRAILER_FORBIDDEN,
    check_trailer_field,
    encode_last_chunk,
)

DEFAULTS = (b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n", b"Server: test\r\n")


# -- which fields a trailer section may carry ------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["Content-Length", "transfer-encoding", "Host", "Content-Type", "Content-Encoding",
     "Content-Range", "Trailer", "Authorization", "WWW-Authenticate", "Cache-Control",
     "Expect", "Range", "TE", "Connection"],
)  # fmt: skip
def test_forbidden_fields_raise_naming_the_field(name: str) -> None:
    trailers = Trailers()
    for setter in (trailers.set, trailers.add, trailers.__setitem__, trailers.setdefault):
        with pytest.raises(ValueError, match=f"'{name}' is not allowed in a trailer section"):
            setter(name, "1")
    with pytest.raises(ValueError, match=f"'{name}' is not allowed in a trailer section"):
        trailers.extend([("X-Fine", "1"), (name, "1")])  # all checked before any is added
    assert not trailers


def test_forbidden_set_is_lower_case() -> None:
    assert all(name == name.lower() for name in TRAILER_FORBIDDEN)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("X-Sum", "a\r\nInjected: 1", "invalid character in header 'X-Sum'"),
        ("X-Sum", "a\nb", "invalid character"),
        ("X-Sum", "a\x00b", "invalid character"),
        ("X Sum", "1", "invalid header name 'X Sum'"),
        ("X-Sum:", "1", "invalid header name"),
        ("", "1", "invalid header name ''"),
        ("X-Sum", "\u0100", "outside latin-1"),
    ],
)
def test_names_and_values_are_checked_like_headers(name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Trailers().set(name, value)
    with pytest.raises(ValueError, match=message):
        Trailers([(name, value)])


def test_allowed_fields_behave_like_headers() -> None:
    trailers = Trailers()
    trailers["Server-Timing"] = "db;dur=53"
    trailers.add("server-timing", "app;dur=47")
    trailers.set("X-Checksum", "abc")
    assert trailers.get_all("SERVER-TIMING") == ["db;dur=53", "app;dur=47"]
    trailers.set("Server-Timing", "total;dur=100")
    assert trailers.fields == [("X-Checksum", "abc"), ("Server-Timing", "total;dur=100")]
    assert repr(trailers).startswith("Trailers(")
    check_trailer_field("Authentication-Info", 'nextnonce="x"')  # RFC 9110 11.6.3 allows it


# -- the last chunk --------------------------------------------------------------------------


def decode(data: bytes) -> tuple[bytes, list[tuple[str, str]], int]:
    decoder, out = ChunkedDecoder(Limits()), []
    end = decoder.feed(data, 0, len(data), out)
    assert decoder.done
    return b"".join(out), decoder.trailers, end


def test_last_chunk_without_fields_is_the_plain_one() -> None:
    assert encode_last_chunk([]) == LAST_CHUNK == b"0\r\n\r\n"


def test_last_chunk_round_trips_through_the_decoder() -> None:
    fields = [("Server-Timing", "db;dur=53"), ("X-Checksum", "sha256=abc")]
    last = encode_last_chunk(fields)
    assert last == b"0\r\nServer-Timing: db;dur=53\r\nX-Checksum: sha256=abc\r\n\r\n"
    body = b"5\r\nhello\r\n" + last
    # Whole, then with bytes after the message (the next response must not be eaten).
    assert decode(body) == (b"hello", fields, len(body))
    assert decode(body + b"HTTP/1.1 200 OK\r\n") == (b"hello", fields, len(body))


def test_last_chunk_refuses_a_split_value() -> None:
    with pytest.raises(ValueError, match="invalid character"):
        encode_last_chunk([("X-Sum", "1\r\n\r\nHTTP/1.1 200 OK")])


# -- the protocol's framing decision ---------------------------------------------------------


def head_for(
    items: list[tuple[str, str]], version: str = "HTTP/1.1", status: int = 200, final: bool = True
) -> tuple[int, bytes, bool]:
    proto = ServerProtocol(ProtocolContext())
    framing, _, parts = proto.response_head(status, Headers(items), version, 5, final, DEFAULTS)
    return framing, b"".join(parts), proto.keep_alive


def test_declared_trailer_keeps_a_whole_body_chunked() -> None:
    framing, head, keep_alive = head_for([("Trailer", "Server-Timing")])
    assert framing == FRAMING_CHUNKED and keep_alive
    assert b"\r\nTransfer-Encoding: chunked\r\n" in head
    assert b"Content-Length" not in head
    assert b"\r\nTrailer: Server-Timing\r\n" in head
    # Without a Trailer the same whole body is framed by its length.
    framing, head, _ = head_for([("X-Other", "1")])
    assert framing == FRAMING_LENGTH and b"Content-Length: 5\r\n" in head


def test_the_cached_shape_keeps_the_decision() -> None:
    for _ in range(3):  # the first builds the head shape, the others find it cached
        assert head_for([("trailer", "X-Sum")])[0] == FRAMING_CHUNKED
        assert head_for([])[0] == FRAMING_LENGTH


@pytest.mark.parametrize(
    ("items", "version", "status", "final", "want"),
    [
        # HTTP/1.0 has no chunked framing: the length (or the close) frames the body.
        ([("Trailer", "X-Sum")], "HTTP/1.0", 200, True, FRAMING_LENGTH),
        ([("Trailer", "X-Sum")], "HTTP/1.0", 200, False, FRAMING_CLOSE),
        # The handler's Content-Length wins, as in Go.
        ([("Trailer", "X-Sum"), ("Content-Length", "5")], "HTTP/1.1", 200, True, FRAMING_LENGTH),
        ([("Trailer", "X-Sum")], "HTTP/1.1", 204, True, FRAMING_NONE),
        ([("Trailer", "X-Sum")], "HTTP/1.1", 304, True, FRAMING_NONE),
        ([("Trailer", "X-Sum")], "HTTP/1.1", 200, False, FRAMING_CHUNKED),
    ],
)
def test_trailers_only_change_a_whole_http11_body(
    items: list[tuple[str, str]], version: str, status: int, final: bool, want: int
) -> None:
    framing, head, _ = head_for(items, version, status, final)
    assert framing == want
    assert (b"Transfer-Encoding: chunked" in head) is (want == FRAMING_CHUNKED)
