"""The incremental chunked-body decoder (RFC 9112 section 7.1). Sans-IO.

Owns ChunkedDecoder: chunk sizes and extensions, CRLF after every framing line (a bare LF is
a 400), the trailer section and the limits on it. Split from parser.py, which re-exports it.
Tests: tests/http/test_parser.py, test_parser_hypothesis.py.
"""

from __future__ import annotations

import re
from typing import Final

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


class ChunkedDecoder:
    """Incremental chunked-body decoder (RFC 9112 7.1).

    Every line end of the framing (after a size line, after the data, after the last chunk,
    after each trailer field and the final empty line) must be CRLF; a bare LF is a 400
    whatever the split of the input.

    ``feed(buf, pos, end, out, max_out)`` consumes from ``buf[pos:end]`` and returns the new
    position; decoded data is appended to ``out`` (a list of bytes) when ``out`` is given, or
    only counted when it is None (the scanner that tells whether a whole body has arrived).
    ``done`` is true once the last chunk and the trailer section were consumed; ``trailers``
    then holds the trailer fields.
    """

    __slots__ = ("_limits", "_remaining", "_state", "_trailer_count", "decoded", "trailers")

    def __init__(self, limits: Limits | None = None) -> None:
        self._limits = limits if limits is not None else Limits()
        self._state = _SIZE
        self._remaining = 0
        self._trailer_count = 0
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
        out: list[bytes] | None = None,
        max_out: int = -1,
    ) -> int:
        limits = self._limits
        max_line = limits.max_chunk_line
        while pos < end:
            state = self._state
            if state == _DONE:
                # Bytes after the body belong to the next request, never to this one.
                return pos
            if state == _DATA:
                take = min(self._remaining, end - pos)
                if out is not None:
                    if max_out == 0:
                        return pos
                    if 0 < max_out < take:
                        take = max_out
                    out.append(bytes(buf[pos : pos + take]))
                    max_out -= take
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = _DATA_END
                continue
            if state == _DATA_END:
                # Exactly CRLF after the data, never a bare LF; look at those two bytes only.
                if buf[pos] != 13:
                    raise ProtocolError("chunk data not followed by CRLF")
                if pos + 1 >= end:
                    return pos
                if buf[pos + 1] != 10:
                    raise ProtocolError("chunk data not followed by CRLF")
                pos += 2
                self._state = _SIZE
                continue
            # A line may hold max_line bytes plus its LF; search no further than that.
            nl = buf.find(b"\n", pos, min(end, pos + max_line + 1))
            if nl < 0:
                if end - pos > max_line:
                    what = "chunk-size line" if state == _SIZE else "trailer field"
                    raise ProtocolError(f"{what} exceeds {max_line} bytes")
                return pos
            # Every line of the framing ends in CRLF: a bare LF is a 400, not a line end
            # (lenient chunk framing is a request-smuggling vector).
            if nl == pos or buf[nl - 1] != 13:
                what = "chunk-size line" if state == _SIZE else "trailer section line"
                raise ProtocolError(f"{what} ends in a bare LF, not CRLF")
            line = bytes(buf[pos : nl - 1])
            pos = nl + 1
            if state == _SIZE:
                m = _CHUNK_SIZE_RE.fullmatch(line)
                if m is None:
                    raise ProtocolError(f"invalid chunk size line {show(line)}")
                ext = m.group(2)
                if ext is not None and _CHUNK_EXT_RE.fullmatch(ext) is None:
                    raise ProtocolError(f"invalid chunk extension {show(ext)}")
                size = int(m.group(1), 16)
                self.decoded += size
                if limits.max_body_size and self.decoded > limits.max_body_size:
                    raise LimitExceeded(
                        f"chunked body exceeds the body limit of {limits.max_body_size} bytes",
                        status=413,
                    )
                if size == 0:
                    self._state = _TRAILER
                else:
                    self._remaining = size
                    self._state = _DATA
            else:  # _TRAILER
                if not line:
                    self._state = _DONE
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
