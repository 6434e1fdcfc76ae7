"""Response (and request) serialisation for the writer. Sans-IO.

Owns the pre-encoded status lines, the cached ``Date`` value, header block encoding with
CR/LF/NUL checks (no response splitting), chunk framing, the last chunk with a trailer section
and the fields a trailer section must not carry, and a request serialiser used by tests and
``reactor.testing``. Tests: tests/http/test_serialize.py, test_parser_hypothesis.py,
test_trailers.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from http import HTTPStatus

__all__ = [
    "LAST_CHUNK",
    "TRAILER_FORBIDDEN",
    "DateCache",
    "check_trailer_field",
    "encode_chunk",
    "encode_fields",
    "encode_last_chunk",
    "http_date",
    "reason_phrase",
    "serialize_request",
    "status_line",
]

_REASONS: dict[int, str] = {s.value: s.phrase for s in HTTPStatus}
_STATUS_LINES: dict[tuple[int, str], bytes] = {}
# RFC 9110 5.5: a field value is VCHAR, obs-text, SP and HTAB; CR and LF would split the
# message, and a sender MUST NOT generate the other controls either.
_BAD_FIELD_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

LAST_CHUNK = b"0\r\n\r\n"

# RFC 9110 6.5.1: a recipient needs these before the content, so they MUST NOT be sent in a
# trailer section. Grouped as the RFC names them; lower case.
TRAILER_FORBIDDEN = frozenset(
    {
        # message framing and connection control
        "content-length",
        "transfer-encoding",
        "trailer",
        "te",
        "connection",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        # routing
        "host",
        # request modifiers: controls and conditionals
        "expect",
        "max-forwards",
        "range",
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
        "if-range",
        # authentication
        "authorization",
        "proxy-authorization",
        "www-authenticate",
        "proxy-authenticate",
        # response control data (RFC 9110 15, RFC 9111 5)
        "age",
        "cache-control",
        "expires",
        "pragma",
        "vary",
        "location",
        "retry-after",
        # content format
        "content-type",
        "content-encoding",
        "content-range",
    }
)


def reason_phrase(status: int) -> str:
    return _REASONS.get(status, "Unknown")


def status_line(status: int, version: str = "HTTP/1.1") -> bytes:
    """``HTTP/1.1 200 OK\\r\\n``, encoded once per status and version."""
    key = (status, version)
    line = _STATUS_LINES.get(key)
    if line is None:
        if not 100 <= status <= 999:
            raise ValueError(f"invalid status code {status}")
        line = f"{version} {status} {reason_phrase(status)}\r\n".encode("ascii")
        _STATUS_LINES[key] = line
    return line


def encode_fields(fields: Iterable[tuple[str, str]]) -> bytes:
    """Encode header fields; a name that is not a token, or a value with a control character
    (CR, LF, NUL, any CTL but HTAB) or a character outside latin-1, raises ValueError: CR and
    LF would split the response."""
    parts = []
    for name, value in fields:
        if _TOKEN_RE.fullmatch(name) is None:
            raise ValueError(f"invalid header name {name!r}")
        if _BAD_FIELD_RE.search(value):
            raise ValueError(f"invalid character in header {name!r} value {value!r}")
        parts.append(f"{name}: {value}\r\n")
    text = "".join(parts)
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end]
        raise ValueError(f"header field has a character outside latin-1: {bad!r}") from None


def check_trailer_field(name: str, value: str) -> None:
    """ValueError naming the field unless ``name: value`` may go in a trailer section: a field
    of TRAILER_FORBIDDEN, or one encode_fields refuses."""
    if name.lower() in TRAILER_FORBIDDEN:
        raise ValueError(f"field {name!r} is not allowed in a trailer section (RFC 9110 6.5.1)")
    encode_fields(((name, value),))


def encode_last_chunk(trailers: Iterable[tuple[str, str]]) -> bytes:
    """The last chunk with its trailer section (RFC 9112 7.1.2): ``0\\r\\n``, the fields,
    ``\\r\\n``; LAST_CHUNK when there are none. Fields are checked as encode_fields does."""
    fields = encode_fields(trailers)
    return b"0\r\n" + fields + b"\r\n" if fields else LAST_CHUNK


def encode_chunk(data: bytes | bytearray | memoryview) -> bytes:
    """One chunk; empty data encodes to nothing, since a zero-size chunk is the last chunk."""
    size = memoryview(data).nbytes
    if not size:
        return b""
    return b"".join((b"%x\r\n" % size, data, b"\r\n"))


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(timestamp: float) -> str:
    """The IMF-fixdate of RFC 9110 5.6.7, ``Sun, 06 Nov 1994 08:49:37 GMT``.

    Formatted here rather than with email.utils.formatdate: importing email.utils imports
    socket, and this package must not load it (tests/http/test_sans_io.py)."""
    t = time.gmtime(timestamp)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


class DateCache:
    """The IMF-fixdate for ``Date``, formatted at most once a second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def get(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._value = http_date(second)
        return self._value


def serialize_request(
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    *,
    version: str = "HTTP/1.1",
    chunks: Iterable[bytes] | None = None,
) -> bytes:
    """Build a request on the wire. With ``chunks`` the body is sent chunked (add the
    ``Transfer-Encoding: chunked`` field yourself or let this add it)."""
    fields = list(headers)
    names = {n.lower() for n, _ in fields}
    if chunks is not None:
        if "transfer-encoding" not in names:
            fields.append(("Transfer-Encoding", "chunked"))
        payload = b"".join(encode_chunk(c) for c in chunks if c) + LAST_CHUNK
    else:
        if body and "content-length" not in names:
            fields.append(("Content-Length", str(len(body))))
        payload = body
    head = f"{method} {target} {version}\r\n".encode("ascii") + encode_fields(fields) + b"\r\n"
    return head + payload
