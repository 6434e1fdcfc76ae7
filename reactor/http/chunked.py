"""The incremental chunked-body decoder (RFC 9112 section 7.1). Sans-IO.

Owns ChunkedDecoder: chunk sizes and extensions, CRLF after every framing line (a bare LF is
a 400), the trailer section and the limits on it. Split from parser.py, which re-exports it.
Tests: tests/http/test_parser.py, test_parser_hypothesis.py.
"""

from __future__ import annotations

import re
from typing import Final, NoReturn

from ..errors import LimitExceeded, ProtocolError
from .limits import Limits

__all__ = ["ChunkedDecoder", "show"]

# RFC 9110 5.6.2: token = 1*tchar.
_TCHAR = rb"!#$%&'*+\-.^_`|~0-9A-Za-z"
_CHUNK_SIZE_RE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(;.*)?")
_CHUNK_EXT_RE = re.compile(
    rb"(?:[ \t]*;[ \t]*["
    + _TCHAR
    + rb"]+(?:[ \t]*=[ \t]*(?:["
    + _TCHAR
    + rb"]+|\"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*\"))?)*[ \t]*"
)
# chunk-size [ chunk-ext ] (RFC 9112 7.1, 7.1.1) in one pattern, matched in place on the
# buffer (pattern.fullmatch(buf, pos, endpos): no copy of the line).
_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})" + _CHUNK_EXT_RE.pattern).fullmatch
# The same line with its CRLF, matched at the line's start: finds and checks it in one step.
_CHUNK_HEAD = re.compile(rb"([0-9A-Fa-f]{1,16})" + _CHUNK_EXT_RE.pattern + rb"\r\n").match
# A trailer field-line has the grammar of a header field-line (RFC 9112 7.1.2, 5).
_TRAILER_FIELD_RE = re.compile(
    rb"([" + _TCHAR + rb"]+):[ \t]*((?:[\x21-\x7e\x80-\xff](?:[ \t]*[\x21-\x7e\x80-\xff])*)?)[ \t]*"
)


def show(raw: bytes, limit: int = 60) -> str:
    """``raw`` for an error message: escaped, at most ``limit`` bytes of it."""
    text = repr(raw[:limit])[2:-1]
    return text + ("..." if len(raw) > limit else "")


# Chunked decoding states.
_SIZE: Final = 0
_DATA: Final = 1
_DATA_END: Final = 2
_TRAILER: Final = 3
_DONE: Final = 4

# A bound no body reaches: what a disabled limit (0) is compared with.
_UNBOUNDED: Final = 1 << 62


class ChunkedDecoder:
    """Incremental chunked-body decoder (RFC 9112 7.1).

    Every line end of the framing (after a size line, after the data, after the last chunk,
    after each trailer field and the final empty line) must be CRLF; a bare LF is a 400
    whatever the split of the input.

    ``feed(buf, pos, end, out, max_out)`` consumes from ``buf[pos:end]`` and returns the new
    position; decoded data is appended to ``out`` (pieces to join: slices of ``buf``, bytes or
    bytearray like it) when ``out`` is given, or
    only counted when it is None (the scanner that tells whether a whole body has arrived).
    The caller passes the returned position back with more bytes after it: a line that has
    not ended is kept (not consumed), and the decoder remembers how much of it it searched.
    ``done`` is true once the last chunk and the trailer section were consumed; ``trailers``
    then holds the trailer fields.

    Hostile framing is bounded (each a 400, Limits explains the numbers): the chunk count,
    the framing bytes in all, and the framing bytes beyond what the data pays for (Go's rule
    after CVE-2023-39326). The work is linear in the bytes: one ``bytes.find`` and one regex
    match per line, and a chunk whose data and CRLF are all held is consumed in the same
    step as its size line; nothing is done per data byte in Python.
    """

    __slots__ = (
        "_chunks",
        "_excess",
        "_limits",
        "_overhead",
        "_remaining",
        "_searched",
        "_state",
        "_trailer_count",
        "decoded",
        "trailers",
    )

    def __init__(self, limits: Limits | None = None) -> None:
        self._limits = limits if limits is not None else Limits()
        self._state = _SIZE
        self._remaining = 0
        self._trailer_count = 0
        # Chunks with data so far, framing bytes so far, and framing bytes not paid for by data.
        self._chunks = 0
        self._overhead = 0
        self._excess = 0
        # Bytes of the pending (unterminated) line already searched for its LF.
        self._searched = 0
        self.decoded = 0
        self.trailers: list[tuple[str, str]] = []

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(
        self,
        buf: bytes | bytearray,
        pos: int,
        end: int,
        out: list[bytes | bytearray] | None = None,
        max_out: int = -1,
    ) -> int:
        limits = self._limits
        max_line = limits.max_chunk_line
        # 0 disables a limit; an unreachable bound keeps the per-chunk checks branch-free.
        max_body = limits.max_body_size or _UNBOUNDED
        max_chunks = limits.max_chunk_count or _UNBOUNDED
        max_overhead = limits.max_chunk_overhead or _UNBOUNDED
        max_excess = limits.max_chunk_excess or _UNBOUNDED
        size_line = _SIZE_LINE
        chunk_head = _CHUNK_HEAD
        find = buf.find
        state = self._state
        searched = self._searched
        decoded = self.decoded
        chunks = self._chunks
        overhead = self._overhead
        excess = self._excess
        try:
            while pos < end:
                if state == _SIZE:
                    # A line may hold max_line bytes (its CR included) plus its LF; search no
                    # further than that. The usual line, whole and valid, is one match in
                    # place (no search, no copy); tried only on a line's first look, so a
                    # trickled line is not matched again and again.
                    stop = pos + max_line + 1
                    if end < stop:
                        stop = end
                    m = chunk_head(buf, pos, stop) if not searched else None
                    if m is not None:
                        nl = m.end() - 1
                    else:
                        # Not whole yet, or not valid: find its LF, searching each byte once.
                        nl = find(b"\n", pos + searched, stop)
                        if nl < 0:
                            if end - pos > max_line:
                                raise ProtocolError(f"chunk-size line exceeds {max_line} bytes")
                            searched = end - pos
                            return pos
                        searched = 0
                        # Every line of the framing ends in CRLF: a bare LF is a 400, not a
                        # line end (lenient chunk framing is a request-smuggling vector).
                        if nl == pos or buf[nl - 1] != 13:
                            raise ProtocolError("chunk-size line ends in a bare LF, not CRLF")
                        m = size_line(buf, pos, nl - 1)
                        if m is None:
                            _size_line_error(bytes(buf[pos : nl - 1]))
                    size = int(m[1], 16)
                    # Go counts the line and the CRLF after the data, then lets each chunk
                    # have 16 bytes of framing plus 2 per data byte for free.
                    framing = nl + 3 - pos if size else nl + 1 - pos
                    overhead += framing
                    excess += framing - 16 - 2 * size
                    if excess < 0:
                        excess = 0
                    if excess > max_excess:
                        raise LimitExceeded(
                            f"chunked body has {excess} bytes of framing beyond what its data "
                            f"pays for, over the limit of {max_excess}",
                            status=400,
                        )
                    if overhead > max_overhead:
                        raise LimitExceeded(
                            f"chunked body has over {max_overhead} bytes of framing "
                            f"(size lines, extensions, CRLFs, trailers)",
                            status=400,
                        )
                    decoded += size
                    if decoded > max_body:
                        raise LimitExceeded(
                            f"chunked body exceeds the body limit of {max_body} bytes",
                            status=413,
                        )
                    pos = nl + 1
                    if not size:
                        state = _TRAILER
                        continue
                    chunks += 1
                    if chunks > max_chunks:
                        raise LimitExceeded(
                            f"chunked body has more than {max_chunks} chunks", status=400
                        )
                    after = pos + size
                    if after + 2 <= end and (out is None or max_out < 0):
                        # The whole chunk is held: take it in this step.
                        if buf[after] != 13 or buf[after + 1] != 10:
                            raise ProtocolError("chunk data not followed by CRLF")
                        if out is not None:
                            out.append(buf[pos:after])
                        pos = after + 2
                        continue
                    self._remaining = size
                    state = _DATA
                    continue
                if state == _DATA:
                    remaining = self._remaining
                    take = end - pos if end - pos < remaining else remaining
                    if out is not None:
                        if max_out == 0:
                            return pos
                        if 0 < max_out < take:
                            take = max_out
                        out.append(buf[pos : pos + take])
                        max_out -= take
                    pos += take
                    self._remaining = remaining = remaining - take
                    if remaining == 0:
                        state = _DATA_END
                    continue
                if state == _DATA_END:
                    # Exactly CRLF after the data, never a bare LF; look at those two bytes.
                    if buf[pos] != 13:
                        raise ProtocolError("chunk data not followed by CRLF")
                    if pos + 1 >= end:
                        return pos
                    if buf[pos + 1] != 10:
                        raise ProtocolError("chunk data not followed by CRLF")
                    pos += 2
                    state = _SIZE
                    continue
                if state == _DONE:
                    # Bytes after the body belong to the next request, never to this one.
                    return pos
                # _TRAILER: a field line or the final empty line.
                stop = pos + max_line + 1
                nl = find(b"\n", pos + searched, end if end < stop else stop)
                if nl < 0:
                    if end - pos > max_line:
                        raise ProtocolError(f"trailer field exceeds {max_line} bytes")
                    searched = end - pos
                    return pos
                searched = 0
                if nl == pos or buf[nl - 1] != 13:
                    raise ProtocolError("trailer section line ends in a bare LF, not CRLF")
                overhead += nl + 1 - pos
                excess += nl + 1 - pos
                if excess > max_excess:
                    raise LimitExceeded(
                        f"chunked body has {excess} bytes of framing and trailers beyond what "
                        f"its data pays for, over the limit of {max_excess}",
                        status=400,
                    )
                if overhead > max_overhead:
                    raise LimitExceeded(
                        f"chunked body has over {max_overhead} bytes of framing "
                        f"(size lines, extensions, CRLFs, trailers)",
                        status=400,
                    )
                line = bytes(buf[pos : nl - 1])
                pos = nl + 1
                if not line:
                    state = _DONE
                    return pos
                fm = _TRAILER_FIELD_RE.fullmatch(line)
                if fm is None:
                    raise ProtocolError(f"invalid trailer field {show(line)}")
                self._trailer_count += 1
                if self._trailer_count > limits.max_header_count:
                    raise LimitExceeded(
                        f"more than {limits.max_header_count} trailer fields", status=431
                    )
                self.trailers.append((fm.group(1).decode("ascii"), fm.group(2).decode("latin-1")))
            return pos
        finally:
            self._state = state
            self._searched = searched
            self.decoded = decoded
            self._chunks = chunks
            self._overhead = overhead
            self._excess = excess


def _size_line_error(line: bytes) -> NoReturn:
    """Raise for a chunk-size line the grammar refused, naming what is wrong with it."""
    m = _CHUNK_SIZE_RE.fullmatch(line)
    if m is None:
        raise ProtocolError(f"invalid chunk size line {show(line)}")
    raise ProtocolError(f"invalid chunk extension {show(m.group(2) or b'')}")
