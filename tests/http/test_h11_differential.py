"""A differential test with h11 as the oracle.

For a corpus of valid and invalid request heads, reactor's parser and h11's server side must
agree on accept or reject, and on accepted heads on the method, target, version, header
fields and body framing. Where we differ on purpose, DIFFERENCES says so and why, and the test
checks that the difference is still exactly the documented one.

Deliberate differences kept out of the comparison itself:
- Status codes are not compared: h11's ``error_status_hint`` is 400 for almost everything,
  while we answer 505 (version), 501 (unknown coding), 413, 414 and 431 (limits).
- h11 lower-cases the Transfer-Encoding value it keeps; we keep it as received, so that field
  is compared through the framing instead of value by value. Content-Length is compared value
  by value: both turn a list or repeated fields of one value into one field with that value.
"""

from __future__ import annotations

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reactor.errors import ProtocolError
from reactor.http import BODY_CHUNKED, BODY_LENGTH, BODY_NONE, Limits, RequestParser

# The body limit is off so that only protocol validity is compared (h11 has no body limit).
LIMITS = Limits(max_body_size=0)
NORMALISED = {b"transfer-encoding"}


def R(line: bytes, *fields: bytes) -> bytes:
    return line + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


H = b"Host: example.com"

CASES: dict[str, bytes] = {
    # -- valid ------------------------------------------------------------------------
    "simple": R(b"GET / HTTP/1.1", H),
    "query": R(b"GET /a/b?c=d&e=%20 HTTP/1.1", H),
    "http10-no-host": R(b"GET / HTTP/1.0"),
    "http10-host": R(b"GET /x HTTP/1.0", H),
    "absolute-form": R(b"GET http://example.com/x?y HTTP/1.1", H),
    "absolute-form-other-host": R(b"GET http://a.example/x HTTP/1.1", b"Host: b.example"),
    "absolute-form-ipv6": R(b"GET http://[::1]:8080/x HTTP/1.1", H),
    "connect": R(b"CONNECT example.com:443 HTTP/1.1", H),
    "options-asterisk": R(b"OPTIONS * HTTP/1.1", H),
    "odd-method": R(b"M-SEARCH.x~ /x HTTP/1.1", H),
    "fields": R(b"GET / HTTP/1.1", H, b"Accept: */*", b"X-Empty:", b"x-a:  b c  "),
    "obs-text": R(b"GET / HTTP/1.1", H, b"X: caf\xe9"),
    "repeated": R(b"GET / HTTP/1.1", H, b"X: 1", b"x: 2", b"X: 3"),
    "content-length": R(b"POST / HTTP/1.1", H, b"Content-Length: 3"),
    "content-length-zero": R(b"POST / HTTP/1.1", H, b"Content-Length: 0"),
    "content-length-list": R(b"POST / HTTP/1.1", H, b"Content-Length: 3, 3"),
    "content-length-twice": R(b"POST / HTTP/1.1", H, b"Content-Length: 3", b"Content-Length: 3"),
    "chunked": R(b"POST / HTTP/1.1", H, b"Transfer-Encoding: chunked"),
    "chunked-caps": R(b"POST / HTTP/1.1", H, b"Transfer-Encoding: CHUNKED"),
    "bare-lf": b"GET / HTTP/1.1\nHost: a\nX: y\n\n",
    "connection-close": R(b"GET / HTTP/1.1", H, b"Connection: close"),
    # -- invalid ----------------------------------------------------------------------
    "no-host-11": R(b"GET / HTTP/1.1"),
    "two-hosts": R(b"GET / HTTP/1.1", H, H),
    "two-hosts-10": R(b"GET / HTTP/1.0", H, H),
    "lower-version": R(b"GET / http/1.1", H),
    "no-version": R(b"GET /", H),
    "double-space": R(b"GET  / HTTP/1.1", H),
    "leading-space": R(b" GET / HTTP/1.1", H),
    "bad-method": R(b"G@T / HTTP/1.1", H),
    "space-in-target": R(b"GET /a b HTTP/1.1", H),
    "non-ascii-target": R(b"GET /\x80 HTTP/1.1", H),
    "space-before-colon": R(b"GET / HTTP/1.1", b"Host : a"),
    "space-in-name": R(b"GET / HTTP/1.1", H, b"X Y: z"),
    "no-colon": R(b"GET / HTTP/1.1", H, b"NoColon"),
    "empty-name": R(b"GET / HTTP/1.1", H, b": x"),
    "nul-in-value": R(b"GET / HTTP/1.1", H, b"X: a\x00b"),
    "cr-in-value": R(b"GET / HTTP/1.1", H, b"X: a\rb"),
    "bad-content-length": R(b"POST / HTTP/1.1", H, b"Content-Length: abc"),
    "negative-content-length": R(b"POST / HTTP/1.1", H, b"Content-Length: -1"),
    "conflicting-lengths": R(b"POST / HTTP/1.1", H, b"Content-Length: 1", b"Content-Length: 2"),
    "conflicting-list": R(b"POST / HTTP/1.1", H, b"Content-Length: 1, 2"),
    "gzip": R(b"POST / HTTP/1.1", H, b"Transfer-Encoding: gzip"),
    "gzip-chunked": R(b"POST / HTTP/1.1", H, b"Transfer-Encoding: gzip, chunked"),
    "chunked-twice": R(b"POST / HTTP/1.1", H, b"Transfer-Encoding: chunked, chunked"),
    "empty-te": R(b"POST / HTTP/1.1", H, b"Transfer-Encoding:"),
    # -- deliberate differences (see DIFFERENCES) ---------------------------------------
    "leading-crlf": b"\r\n" + R(b"GET / HTTP/1.1", H),
    "http2-version": R(b"GET / HTTP/2.0", H),
    "http12-version": R(b"GET / HTTP/1.2", H),
    "asterisk-get": R(b"GET * HTTP/1.1", H),
    "authority-get": R(b"GET example.com:80 HTTP/1.1", H),
    "connect-origin": R(b"CONNECT / HTTP/1.1", H),
    "cl-and-te": R(b"POST / HTTP/1.1", H, b"Content-Length: 3", b"Transfer-Encoding: chunked"),
    "te-http10": R(b"POST / HTTP/1.0", b"Transfer-Encoding: chunked"),
    "obs-fold": R(b"GET / HTTP/1.1", H, b"X: a", b"  b"),
    "ctl-in-value": R(b"GET / HTTP/1.1", H, b"X: a\x01b"),
    "del-in-value": R(b"GET / HTTP/1.1", H, b"X: a\x7fb"),
    "huge-content-length": R(b"POST / HTTP/1.1", H, b"Content-Length: " + b"9" * 19),
    "equal-lengths-spelled-differently": R(
        b"POST / HTTP/1.1", H, b"Content-Length: 03", b"Content-Length: 3"
    ),
    "absolute-bad-authority": R(b"PUT s://]ufd/: HTTP/1.1", H),
    "absolute-bad-ipv6": R(b"GET http://[::1/x HTTP/1.1", H),
    "absolute-userinfo": R(b"GET http://user@example.com/ HTTP/1.1", H),
    "absolute-empty-host": R(b"GET http:///x HTTP/1.1", H),
    "connect-bad-authority": R(b"CONNECT ]ufd:80 HTTP/1.1", H),
}

# name -> (we accept, h11 accepts, why)
DIFFERENCES: dict[str, tuple[bool, bool, str]] = {
    "leading-crlf": (True, False, "RFC 9112 2.2: a server SHOULD ignore empty lines first"),
    "http2-version": (False, True, "we answer 505 to anything but HTTP/1.0 and HTTP/1.1"),
    "http12-version": (False, True, "we answer 505 to anything but HTTP/1.0 and HTTP/1.1"),
    "asterisk-get": (False, True, "RFC 9112 3.2.4: asterisk-form is for OPTIONS only"),
    "authority-get": (False, True, "RFC 9112 3.2.3: authority-form is for CONNECT only"),
    "connect-origin": (False, True, "RFC 9112 3.2.3: CONNECT takes authority-form only"),
    "cl-and-te": (False, True, "RFC 9112 6.1: a server MAY reject CL+TE; it smells of smuggling"),
    "te-http10": (False, True, "RFC 9112 6.1: TE in HTTP/1.0 means faulty framing"),
    "obs-fold": (False, True, "RFC 9112 5.2: a server MAY reject obs-fold with 400"),
    "ctl-in-value": (False, True, "RFC 9110 5.5: controls are not field-value characters"),
    "del-in-value": (False, True, "RFC 9110 5.5: DEL is not a field-value character"),
    "huge-content-length": (False, True, "over 18 digits we answer 413 whatever the limits"),
    "equal-lengths-spelled-differently": (
        True,
        False,
        "03 and 3 are the same length; h11 compares the spellings",
    ),
    "absolute-bad-authority": (False, True, "RFC 3986 3.2.2: ']' outside an IP-literal"),
    "absolute-bad-ipv6": (False, True, "RFC 3986 3.2.2: an unclosed IP-literal"),
    "absolute-userinfo": (False, True, "RFC 9110 4.2.4: userinfo in an http URI is an error"),
    "absolute-empty-host": (False, True, "RFC 9110 4.2.1: an http URI needs a host"),
    "connect-bad-authority": (False, True, "RFC 9112 3.2.3: uri-host ':' port"),
}


def ours(data: bytes) -> tuple[tuple[str, str, str, list[tuple[bytes, bytes]]], int, int] | None:
    """(method, target, version, fields), framing, length; None when rejected."""
    try:
        result = RequestParser(LIMITS).parse(data, 0)
    except ProtocolError:
        return None
    assert result is not None, "incomplete head in the corpus"
    head, end = result
    assert end == len(data)
    fields = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in head.headers]
    return (head.method, head.target, head.version, fields), head.body_framing, head.content_length


def theirs(data: bytes) -> tuple[h11.Connection, h11.Request] | None:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError:
        return None
    assert isinstance(event, h11.Request), event
    return conn, event


def h11_body(conn: h11.Connection, body: bytes) -> bytes | None:
    """Feed ``body`` to h11 and return the data it read up to the end of the message, or
    None when the message did not end exactly at the end of ``body``."""
    if body:  # receive_data(b"") would tell h11 the peer closed
        conn.receive_data(body)
    got = b""
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Data):
            got += event.data
        elif isinstance(event, h11.EndOfMessage):
            rest, closed = conn.trailing_data
            return got if not rest and not closed else None
        else:
            return None


def compare(data: bytes) -> tuple[bool, bool]:
    mine = ours(data)
    other = theirs(data)
    if mine is None or other is None:
        return mine is not None, other is not None
    (method, target, version, fields), framing, length = mine
    conn, event = other
    assert method.encode() == event.method
    assert target.encode() == event.target
    assert version == "HTTP/" + event.http_version.decode()
    kept = [(n, v) for n, v in fields if n.lower() not in NORMALISED]
    theirs_kept = [(n, v) for n, v in event.headers.raw_items() if n.lower() not in NORMALISED]
    assert kept == theirs_kept
    # Body framing, by behaviour: a body framed our way must be exactly what h11 reads.
    if framing == BODY_CHUNKED:
        assert h11_body(conn, b"3\r\nabc\r\n0\r\n\r\n") == b"abc"
    elif framing == BODY_LENGTH:
        assert h11_body(conn, b"x" * length) == b"x" * length
    else:
        assert framing == BODY_NONE
        assert h11_body(conn, b"") == b""
    return True, True


@pytest.mark.parametrize("name", sorted(CASES))
def test_agrees_with_h11(name: str) -> None:
    we, they = compare(CASES[name])
    if name in DIFFERENCES:
        want_we, want_they, why = DIFFERENCES[name]
        assert (we, they) == (want_we, want_they), why
    else:
        assert we == they, f"we accept: {we}, h11 accepts: {they}"


def test_every_difference_is_in_the_corpus() -> None:
    assert set(DIFFERENCES) <= set(CASES)
    for we, they, _ in DIFFERENCES.values():
        assert we != they


# -- random valid requests -----------------------------------------------------------------

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
VCHAR = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))
tokens = st.text(TCHAR, min_size=1, max_size=10)
values = st.binary(max_size=20).map(lambda b: bytes(c for c in b if c in VCHAR))


@settings(max_examples=200, deadline=None)
@given(
    method=tokens,
    target=st.text("".join(chr(c) for c in range(0x21, 0x7F)), max_size=30),
    version=st.sampled_from([b"1.0", b"1.1"]),
    fields=st.lists(
        st.tuples(
            tokens.filter(
                lambda n: n.lower() not in {"host", "content-length", "transfer-encoding"}
            ),
            values,
        ),
        max_size=8,
    ),
    framing=st.sampled_from(["none", "length", "chunked"]),
)
def test_random_valid_heads_agree(
    method: str,
    target: str,
    version: bytes,
    fields: list[tuple[str, bytes]],
    framing: str,
) -> None:
    lines = [f"{method} /{target} HTTP/".encode() + version, b"Host: h"]
    lines += [n.encode() + b": " + v for n, v in fields]
    if framing == "length":
        lines.append(b"Content-Length: 7")
    elif framing == "chunked" and version == b"1.1":
        lines.append(b"Transfer-Encoding: chunked")
    data = b"\r\n".join(lines) + b"\r\n\r\n"
    assert compare(data) == (True, True)
