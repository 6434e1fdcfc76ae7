"""Hypothesis: valid requests split at random points parse the same as whole ones, and
serialize_request -> RequestParser / ChunkedDecoder gives back method, target, headers and
body (a writer-to-parser round trip)."""

from __future__ import annotations

import itertools
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reactor.errors import ProtocolError
from reactor.http import (
    BODY_CHUNKED,
    BODY_LENGTH,
    BODY_NONE,
    ChunkedDecoder,
    RequestHead,
    RequestParser,
    serialize_request,
)

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
VCHAR = "".join(chr(c) for c in range(0x21, 0x7F)) + "".join(chr(c) for c in range(0x80, 0x100))
FRAMING = {"host", "content-length", "transfer-encoding"}
NEXT = b"GET /next HTTP/1.1\r\nHost: n\r\n\r\n"

tokens = st.text(TCHAR, min_size=1, max_size=12)
methods = st.one_of(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]), tokens)
targets = st.text("".join(chr(c) for c in range(0x21, 0x7F)), max_size=40).map(lambda t: "/" + t)
field_names = tokens.filter(lambda n: n.lower() not in FRAMING)
# A field value: visible characters with single spaces or tabs inside, none at the ends.
field_values = st.lists(st.text(VCHAR, min_size=1, max_size=10), max_size=4).flatmap(
    lambda words: st.lists(st.sampled_from([" ", "\t", " \t "]), min_size=len(words)).map(
        lambda seps: "".join(w + s for w, s in zip(words, seps, strict=False)).strip(" \t")
    )
)
fields = st.lists(st.tuples(field_names, field_values), max_size=12)
bodies = st.binary(max_size=300)
chunk_lists = st.lists(st.binary(min_size=1, max_size=80), max_size=6)


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, str, str, list[tuple[str, str]], bytes, bool]:
    method = draw(methods)
    target = draw(targets)
    headers = [("Host", draw(tokens)), *draw(fields)]
    chunked = draw(st.booleans())
    if chunked:
        chunks = draw(chunk_lists)
        wire = serialize_request(method, target, headers, chunks=chunks)
        body = b"".join(chunks)
    else:
        body = draw(bodies)
        wire = serialize_request(method, target, headers, body)
    return wire, method, target, headers, body, chunked


def _read_message(
    pieces: list[bytes],
) -> tuple[RequestHead, bytes, list[tuple[str, str]], bytes]:
    """Feed ``pieces`` one after another into a growing buffer, the way the connection does:
    parse the head, then decode the body from the bytes after it. Returns what is left."""
    parser = RequestParser()
    buf = bytearray()
    parsed = None
    feed = iter(pieces)
    for piece in feed:
        buf += piece
        parsed = parser.parse(buf, 0)
        if parsed is not None:
            break
    assert parsed is not None, "the head never completed"
    head, pos = parsed
    trailers: list[tuple[str, str]] = []
    out: list[bytes] = []
    if head.body_framing == BODY_CHUNKED:
        decoder = ChunkedDecoder()
        pos = decoder.feed(buf, pos, len(buf), out)
        for piece in feed:
            if decoder.done:
                buf += piece
                continue
            buf += piece
            pos = decoder.feed(buf, pos, len(buf), out)
        assert decoder.done
        trailers = decoder.trailers
    else:
        for piece in feed:
            buf += piece
        if head.body_framing == BODY_LENGTH:
            out.append(bytes(buf[pos : pos + head.content_length]))
            pos += head.content_length
        else:
            assert head.body_framing == BODY_NONE
    return head, b"".join(out), trailers, bytes(buf[pos:])


@settings(max_examples=300, deadline=None)
@given(st.data(), requests())
def test_random_splits_round_trip(
    data: st.DataObject, req: tuple[bytes, str, str, list[tuple[str, str]], bytes, bool]
) -> None:
    wire, method, target, headers, body, chunked = req
    message = wire + NEXT
    points = data.draw(st.lists(st.integers(0, len(message)), max_size=20))
    bounds = [0, *sorted({*points, len(message)})]
    pieces = [message[a:b] for a, b in itertools.pairwise(bounds)]
    head, got_body, trailers, rest = _read_message(pieces)
    assert head.method == method
    assert head.target == target
    assert head.version == "HTTP/1.1"
    assert list(head.headers)[: len(headers)] == headers
    extra = list(head.headers)[len(headers) :]
    if chunked:
        assert extra == [("Transfer-Encoding", "chunked")]
        assert head.body_framing == BODY_CHUNKED
    elif body:
        assert extra == [("Content-Length", str(len(body)))]
        assert head.body_framing == BODY_LENGTH
    else:
        assert extra == []
        assert head.body_framing == BODY_NONE
    assert got_body == body
    assert trailers == []
    # The next request is left untouched, and parses.
    assert rest == NEXT
    following = RequestParser().parse(rest, 0)
    assert following is not None and following[0].target == "/next"


@settings(max_examples=200, deadline=None)
@given(chunk_lists, st.lists(st.tuples(field_names, field_values), max_size=4), st.data())
def test_chunked_bodies_with_trailers_split_anywhere(
    chunks: list[bytes], trailers: list[tuple[str, str]], data: st.DataObject
) -> None:
    wire = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n"
    wire += b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in trailers) + b"\r\n"
    message = wire + NEXT
    points = data.draw(st.lists(st.integers(0, len(message)), max_size=30))
    bounds = [0, *sorted({*points, len(message)})]
    decoder = ChunkedDecoder()
    out: list[bytes] = []
    buf = bytearray()
    pos = 0
    for a, b in itertools.pairwise(bounds):
        buf += message[a:b]
        pos = decoder.feed(buf, pos, len(buf), out)
    assert decoder.done
    assert pos == len(wire)
    assert b"".join(out) == b"".join(chunks)
    assert decoder.trailers == trailers
    assert decoder.decoded == sum(map(len, chunks))


@settings(max_examples=200, deadline=None)
@given(requests())
def test_whole_equals_bytewise(
    req: tuple[bytes, str, str, list[tuple[str, str]], bytes, bool],
) -> None:
    wire = req[0]
    whole = _read_message([wire])
    bytewise = _read_message([wire[i : i + 1] for i in range(len(wire))])
    assert whole[1:] == bytewise[1:]
    assert list(whole[0].headers) == list(bytewise[0].headers)
    assert (whole[0].method, whole[0].target, whole[0].body_framing) == (
        bytewise[0].method,
        bytewise[0].target,
        bytewise[0].body_framing,
    )


@settings(max_examples=300, deadline=None)
@given(chunk_lists, st.lists(st.tuples(field_names, field_values), max_size=3), st.data())
def test_a_bare_lf_anywhere_in_the_chunked_framing_is_rejected(
    chunks: list[bytes], trailers: list[tuple[str, str]], data: st.DataObject
) -> None:
    # Build the body keeping where each framing CRLF is (not the CRLFs inside chunk data).
    parts: list[bytes] = []
    framing_crlfs: list[int] = []

    def add(piece: bytes, crlf: bool = True) -> None:
        parts.append(piece)
        if crlf:
            framing_crlfs.append(len(parts))
            parts.append(b"\r\n")

    for c in chunks:
        ext = data.draw(st.sampled_from([b"", b";a", b";a=b"]))
        add(b"%x%s" % (len(c), ext))
        add(c)
    add(b"0")
    for n, v in trailers:
        add(f"{n}: {v}".encode("latin-1"))
    add(b"")
    parts[data.draw(st.sampled_from(framing_crlfs))] = b"\n"
    message = b"".join(parts) + NEXT
    points = data.draw(st.lists(st.integers(0, len(message)), max_size=10))
    out = data.draw(st.sampled_from([None, []]))
    bounds = [0, *sorted({*points, len(message)})]
    decoder = ChunkedDecoder()
    buf = bytearray()
    pos = 0
    with pytest.raises(ProtocolError) as info:
        for a, b in itertools.pairwise(bounds):
            buf += message[a:b]
            pos = decoder.feed(buf, pos, len(buf), out)
    assert info.value.status == 400


@settings(max_examples=500, deadline=None)
@given(
    method=st.sampled_from(["GET", "PUT", "CONNECT", "OPTIONS"]),
    scheme=st.sampled_from(["http", "HTTPS", "s", "a+b.c-d", "1x", ""]),
    authority=st.one_of(
        st.text("ab19:[]@%.vV-_~!$&'()*+,;={}|\\/?#", max_size=16),
        st.builds("a:{}".format, st.integers(0, 10**7)),
    ),
    rest=st.text("".join(chr(c) for c in range(0x21, 0x7F)), max_size=16),
)
def test_targets_split_as_urlsplit_does_or_are_a_400(
    method: str, scheme: str, authority: str, rest: str
) -> None:
    """Any target: the parser either rejects it with a ProtocolError (never another error) or
    splits it as urllib does, so a later stage needs no urlsplit (which raises ValueError)."""
    target = f"{scheme}://{authority}{rest}" if scheme else authority + rest
    if not target:
        return
    data = f"{method} {target} HTTP/1.1\r\nHost: h\r\n\r\n".encode("ascii")
    try:
        result = RequestParser().parse(data, 0)
    except ProtocolError as exc:
        assert exc.status == 400
        return
    assert result is not None
    head = result[0]
    if method == "CONNECT":
        assert (head.path, head.query, head.host) == (target, "", target)
        assert urlsplit("//" + target).port is not None
    elif target[0] == "/":
        assert head.host == "h"
        assert (head.path, head.query) == tuple(target.partition("#")[0].partition("?")[::2])
    elif target == "*":
        assert (head.path, head.query, head.host) == ("*", "", "h")
    else:
        parts = urlsplit(target)  # must not raise
        assert (head.path, head.query, head.host) == (parts.path or "/", parts.query, parts.netloc)
        assert parts.port is None or parts.port >= 0  # in range: .port would raise otherwise
