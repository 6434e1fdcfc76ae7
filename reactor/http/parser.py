"""The incremental HTTP/1.1 request parser (RFC 9112, RFC 9110). Sans-IO.

Owns: finding the end of a request head without rescanning, parsing and validating the request
line and header fields, and deciding the body framing once (RFC 9112 section 6.3); chunked
bodies are decoded by reactor/http/chunked.py (re-exported here). It reads from a buffer it
is given and returns offsets; it never touches a socket, a selector or the loop
(tests/http/test_sans_io.py checks the imports). Tests:
tests/http/test_parser.py, test_parser_hypothesis.py, test_h11_differential.py.

Errors are ProtocolError / LimitExceeded carrying the status to answer with.
"""

from __future__ import annotations

import re
from ipaddress import IPv6Address
from typing import Final, NoReturn

from ..errors import LimitExceeded, ProtocolError
from .chunked import ChunkedDecoder, show
from .headers import Headers
from .limits import Limits

__all__ = [
    "BODY_CHUNKED",
    "BODY_LENGTH",
    "BODY_NONE",
    "ChunkedDecoder",
    "RequestHead",
    "RequestParser",
]

# Body framing, decided once per request.
BODY_NONE: Final = 0
BODY_LENGTH: Final = 1
BODY_CHUNKED: Final = 2

# RFC 9110 5.6.2: token = 1*tchar.
_TCHAR = rb"!#$%&'*+\-.^_`|~0-9A-Za-z"
_METHOD_RE = re.compile(rb"[" + _TCHAR + rb"]+")
# request-line = method SP request-target SP HTTP-version (RFC 9112 3). The target is
# visible ASCII (no spaces, no controls, no obs-text), like h11's.
_REQUEST_LINE_RE = re.compile(rb"([^ ]+) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])")
_VERSION_LIKE_RE = re.compile(rb"[^ ]+ [^ ]+ HTTP/[0-9]+\.[0-9]+")
# field-line = field-name ":" OWS field-value OWS (RFC 9112 5); field-value characters are
# VCHAR, obs-text, SP and HTAB (RFC 9110 5.5). The grammar on the latin-1 decoded head,
# applied to the whole header section at once: one C-level pass validates every line, a
# second extracts the (name, value) pairs.
_FIELD_NAME = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_FIELD_VALUE = r"(?:[\x21-\x7e\x80-\xff](?:[ \t\x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?"
_FIELDS_VALID = re.compile(
    r"(?:" + _FIELD_NAME + r":[ \t]*" + _FIELD_VALUE + r"[ \t]*\r?\n)*"
).fullmatch
_FIELDS_FINDALL = re.compile(
    r"(" + _FIELD_NAME + r"):[ \t]*(" + _FIELD_VALUE + r")[ \t]*\r?\n"
).findall
# The method is a token here; a line that fails only that is told apart for the message.
_REQUEST_LINE_STR_RE = re.compile(
    r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])"
)
_REQUEST_LINE_LOOSE_RE = re.compile(r"([^ ]+) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])")
_DIGITS_RE = re.compile(r"[0-9]+")
# The tchars from a position on (a method in progress).
_TCHARS = re.compile(rb"[" + _TCHAR + rb"]*").match
_OWS = " \t"
_EMPTY_LINES_RE = re.compile(rb"(?:\r?\n)*")
# authority = host [ ":" port ] without userinfo (RFC 9110 4.2.4: userinfo is an error in an
# http(s) URI); host = IP-literal / IPv4address / reg-name (RFC 3986 3.2.2). The inside of an
# IP-literal is checked apart (an IPv6 address or IPvFuture).
_AUTHORITY_RE = re.compile(
    r"(\[[0-9A-Za-z\-._~!$&'()*+,;=:]*\]|(?:[0-9A-Za-z\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)"
    r"(?::([0-9]*))?"
)
_IPV_FUTURE_RE = re.compile(r"[vV][0-9A-Fa-f]+\.[0-9A-Za-z\-._~!$&'()*+,;=:]+")
# absolute-form = scheme "://" authority, then the path, query and fragment (the request line
# already allows only visible ASCII in the target).
_ABSOLUTE_RE = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*)://([^/?#]*)(.*)")


class RequestHead:
    """A parsed request head: the line, the fields, and the framing decided from them.

    Where the target points is decided here too, for every target form (RFC 9112 3.2), so no
    later stage parses the target again:

    - ``path`` (str): the target up to its query; ``"*"`` for asterisk-form, the target itself
      for CONNECT's authority-form, and for absolute-form the URL's path (``"/"`` if empty).
    - ``query`` (str): what follows the first ``"?"`` up to any ``"#"``; ``""`` if none.
    - ``host`` (str): the Host header's value for origin- and asterisk-form, the target's
      authority for absolute-form (RFC 9112 3.2.2: it overrides Host) and the target for
      authority-form; ``""`` if there is none (HTTP/1.0 without Host).

    None of them is percent-decoded.
    """

    __slots__ = (
        "body_framing",
        "content_length",
        "expect",
        "headers",
        "host",
        "keep_alive",
        "method",
        "path",
        "query",
        "target",
        "upgrade",
        "version",
    )

    def __init__(
        self,
        method: str,
        target: str,
        version: str,
        headers: Headers,
        body_framing: int,
        content_length: int,
        keep_alive: bool,
        expect: str | None,
        upgrade: bool,
        path: str,
        query: str,
        host: str,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body_framing = body_framing
        self.content_length = content_length
        self.keep_alive = keep_alive
        self.expect = expect
        self.upgrade = upgrade
        self.path = path
        self.query = query
        self.host = host

    def __repr__(self) -> str:
        return f"<RequestHead {self.method} {self.target} {self.version}>"


def _tokens(value: str) -> list[str]:
    # Strip OWS only (RFC 9110 5.6.1): str.strip() would also eat latin-1 \x85 and \xa0,
    # turning "chunked\xa0" into "chunked" where another parser sees an unknown coding.
    return [token.lower() for part in value.split(",") if (token := part.strip(_OWS))]


class RequestParser:
    """Finds and parses one request head at a time from a growing buffer.

    ``parse(buf, start)`` looks for a complete head beginning at ``start``. It returns
    ``(head, end)`` where ``end`` is the offset just after the head, or ``None`` when more
    bytes are needed. It remembers how far it searched, so feeding a head one byte at a time
    costs linear time; ``reset()`` (or a successful parse) forgets it for the next head. Every
    search is bounded by the limits, so bytes past them are never examined.

    Empty lines before the request line are skipped (RFC 9112 2.2) and count toward
    ``max_head_bytes``, so a peer cannot make the server hold an endless run of them.

    ``head_class``: what heads are made as, RequestHead or a subclass of it (the server's
    Request is one: the parsed head then is the request, with nothing copied).
    """

    __slots__ = (
        "_cache",
        "_head_class",
        "_head_start",
        "_limits",
        "_line_done",
        "_method_checked",
        "_origin",
        "_scan",
    )

    def __init__(
        self, limits: Limits | None = None, head_class: type[RequestHead] = RequestHead
    ) -> None:
        self._limits = limits = limits if limits is not None else Limits()
        self._cache = _cache_for(limits)
        self._head_class = head_class
        self.reset()

    def reset(self) -> None:
        self._origin = -1  # the ``start`` the memo below belongs to
        self._head_start = -1  # where the request line begins, once the empty lines are past
        self._scan = 0  # everything before this offset has been searched
        self._line_done = False  # whether the request line's LF has been seen
        # How far the method's bytes were checked to be tchars (-1: the method is complete).
        self._method_checked = 0

    def parse(self, buf: bytes | bytearray, start: int = 0) -> tuple[RequestHead, int] | None:
        limits = self._limits
        if self._origin != start:
            # Fast path: a whole head at ``start`` whose bytes were parsed lately (a keep-alive
            # client repeats its head): its end is the first "\n\r\n", and a cache hit means
            # it passed every check under these limits (_parse_new keeps only heads with no
            # empty line and not ending in LF, so no "\n\n" comes first), so nothing else is
            # looked at. Else, when it begins with its request line, no "\n\n" (an empty
            # line with a bare LF) comes first and everything held is within the head
            # limit, it is parsed here; a failed try costs one search of bytes the general
            # path below must examine anyway.
            end_of_buf = len(buf)
            crlf = buf.find(b"\n\r\n", start) if end_of_buf - start <= limits.max_head_bytes else -1
            if crlf >= 0:
                block = bytes(buf[start:crlf])
                entry = self._cache.get(block)
                if entry is None:
                    first = buf[start]
                    if first != 13 and first != 10 and buf.find(b"\n\n", start, crlf + 2) < 0:
                        nl = buf.find(b"\n", start, crlf + 1)
                        if nl - start - 1 > limits.max_request_line:
                            raise LimitExceeded(
                                f"request line exceeds {limits.max_request_line} bytes",
                                status=414,
                            )
                        entry = self._parse_new(block)
            else:
                entry = None
            if entry is not None:
                after = crlf + 3
            else:
                if start >= end_of_buf:
                    return None
                self.reset()
                self._origin = start
                self._scan = start
                found = self._parse_memo(buf, start)
                if found is None:
                    return None
                entry, after = found
        else:
            found = self._parse_memo(buf, start)
            if found is None:
                return None
            entry, after = found
        # A new head with a Headers over a list of its own, from the cache entry, built
        # without __init__ calls (here, not in a function: once per request): a handler may
        # change them, the cache entry stays as it is.
        head: RequestHead = _new(self._head_class)
        (
            head.method,
            head.target,
            head.version,
            fields,
            head.body_framing,
            head.content_length,
            head.keep_alive,
            head.expect,
            head.upgrade,
            head.path,
            head.query,
            head.host,
        ) = entry
        head.headers = headers = _new(Headers)
        headers.fields = list(fields)
        headers._index = None
        return head, after

    def _parse_memo(self, buf: bytes | bytearray, start: int) -> tuple[_Entry, int] | None:
        """The general path: search on from where the last call stopped (the memo)."""
        limits = self._limits
        end_of_buf = len(buf)
        max_head = limits.max_head_bytes
        head_start = self._head_start
        if head_start < 0:
            # RFC 9112 2.2: a server SHOULD ignore at least one empty line (CRLF) received
            # before the request-line.
            empty = _EMPTY_LINES_RE.match(buf, self._scan)
            assert empty is not None  # the pattern matches the empty string
            pos = empty.end()
            if pos - start > max_head:
                raise LimitExceeded(f"request head exceeds {max_head} bytes", status=431)
            if pos < end_of_buf and buf[pos] == 13:
                if pos + 1 < end_of_buf:  # the regex stopped, so no LF follows
                    raise ProtocolError("bare CR before the request line")
                self._scan = pos
                return None
            self._scan = pos
            if pos >= end_of_buf:
                return None
            head_start = self._head_start = pos
        scan_from = self._scan
        max_line = limits.max_request_line
        if not self._line_done:
            # A request line may be max_line bytes plus its CRLF; look no further than that.
            nl = buf.find(b"\n", scan_from, min(end_of_buf, head_start + max_line + 2))
            if nl < 0:
                line_len = end_of_buf - head_start
                if buf[end_of_buf - 1] == 13:
                    line_len -= 1
                if line_len > max_line:
                    raise LimitExceeded(f"request line exceeds {max_line} bytes", status=414)
                if self._method_checked >= 0:
                    self._check_method(buf, head_start, end_of_buf)
            else:
                line_len = nl - head_start - (1 if buf[nl - 1] == 13 else 0)
                if line_len > max_line:
                    raise LimitExceeded(f"request line exceeds {max_line} bytes", status=414)
                self._line_done = True
                # The line is whole: judge it now, not when the head ends (a client that
                # sends garbage, a TLS ClientHello to the plain port, is answered at once
                # instead of at the header timeout; nginx, Go and llhttp do the same). A
                # whole head never comes here: parse() checks it in _parse_new.
                _check_request_line(bytes(buf[head_start : head_start + line_len]))
        # The head ends at the first empty line: "\n\r\n" or "\n\n" (a bare LF line ending is
        # accepted, RFC 9112 2.2 MAY). Search only the bytes not searched before, and only as
        # far as a head within the limit could end.
        window = min(end_of_buf, start + max_head)
        crlf = buf.find(b"\n\r\n", scan_from, window)
        # "\n\n" may overlap the start of a "\n\r\n" only by ending before it: search up to
        # crlf + 2 so that "...\n\n\r\n" ends at the first empty line.
        lf = buf.find(b"\n\n", scan_from, crlf + 2 if crlf >= 0 else window)
        if lf >= 0:
            head_end, after = lf, lf + 2
        elif crlf >= 0:
            head_end, after = crlf, crlf + 3
        else:
            if end_of_buf - start >= max_head:
                # Any empty line still to come would end the head past the limit.
                raise LimitExceeded(f"request head exceeds {max_head} bytes", status=431)
            self._scan = max(head_start, end_of_buf - 2)
            return None
        self.reset()
        block = bytes(buf[head_start:head_end])
        entry = self._cache.get(block)
        if entry is None:
            entry = self._parse_new(block)
        return entry, after

    def _check_method(self, buf: bytes | bytearray, head_start: int, end: int) -> None:
        """The request line has not ended: its method so far must be tchars (RFC 9110
        5.6.2), each byte looked at once however the line is split. A byte that cannot be
        part of a method (a TLS record's 0x16, a NUL, a CR before any SP) is a 400 now."""
        checked = max(self._method_checked, head_start)
        tchars = _TCHARS(buf, checked, end)
        stop = tchars.end() if tchars is not None else checked  # it matches the empty string
        if stop < end:
            if buf[stop] != 32 or stop == head_start:
                raise ProtocolError(f"invalid method {show(bytes(buf[head_start : stop + 1]))}")
            self._method_checked = -1  # the method is whole: the rest waits for the LF
            return
        self._method_checked = stop

    def _parse_new(self, block: bytes) -> _Entry:
        """Parse and check a head not in the cache (raising for a bad one) and remember it
        when it is small enough: the entry holds only immutable values."""
        limits = self._limits
        # latin-1 maps every byte to one character, so the text has the same offsets and
        # the grammar is checked on it exactly as on the bytes.
        text = block.decode("latin-1")
        nl = text.find("\n")
        if nl < 0:
            line, rest = text, ""
        else:
            line, rest = text[:nl], text[nl + 1 :]
        if line[-1:] == "\r":
            line = line[:-1]
        if len(line) > limits.max_request_line:
            raise LimitExceeded(f"request line exceeds {limits.max_request_line} bytes", status=414)
        match = _REQUEST_LINE_STR_RE.fullmatch(line)
        if match is None:
            _request_line_error(line)
        method, target, major, minor = match.groups()
        if major != "1" or (minor != "1" and minor != "0"):
            raise ProtocolError(f"unsupported HTTP version {major}.{minor}", status=505)
        version = "HTTP/1.1" if minor == "1" else "HTTP/1.0"
        if target[0] == "/" and method != "CONNECT":
            # origin-form, the hot path: a fragment (never sent by a conforming client) is
            # dropped, then the path ends at the first "?".
            if "#" in target:
                path, _, query = target.partition("#")[0].partition("?")
            else:
                path, _, query = target.partition("?")
            authority = None
        else:
            path, query, authority = _split_target(method, target)

        if rest:
            if rest[-1] != "\n":
                rest += "\n"
            if _FIELDS_VALID(rest) is None:
                _field_error(rest)
            items: list[tuple[str, str]] = _FIELDS_FINDALL(rest)
        else:
            items = []
        count = len(items)
        if count > limits.max_header_count:
            raise LimitExceeded(
                f"{count} header fields exceed the limit of {limits.max_header_count}", status=431
            )
        content_length: int | None = None
        transfer_encoding: list[str] | None = None
        hosts = 0
        host = ""
        lengths = 0
        connection_tokens: list[str] = []
        expect: str | None = None
        upgrade = False
        for name, value in items:
            lname = name.lower()
            if lname not in _FRAMING_FIELDS:
                continue
            if lname == "host":
                hosts += 1
                host = value
            elif lname == "content-length":
                lengths += 1 if "," not in value else 2
                # RFC 9110 8.6: a list of identical values may be taken as one value.
                for part in value.split(","):
                    part = part.strip(_OWS)
                    if not _DIGITS_RE.fullmatch(part):
                        raise ProtocolError(f"invalid Content-Length {value!r}")
                    # Leading zeros are allowed; past 18 significant digits the value is
                    # over any body limit (and int() of thousands of digits is refused).
                    digits = part.lstrip("0") or "0"
                    if len(digits) > 18:
                        raise LimitExceeded(f"Content-Length {part} is too large", status=413)
                    length = int(digits)
                    if content_length is not None and content_length != length:
                        raise ProtocolError(
                            f"conflicting Content-Length values {content_length} and {length}"
                        )
                    content_length = length
            elif lname == "transfer-encoding":
                if transfer_encoding is None:
                    transfer_encoding = []
                transfer_encoding.extend(_tokens(value))
            elif lname == "connection":
                connection_tokens.extend(_tokens(value))
            elif lname == "expect":
                expect = value.lower()
            else:  # upgrade
                upgrade = True

        if version == "HTTP/1.1" and hosts != 1:
            raise ProtocolError(
                "missing required Host header" if hosts == 0 else f"{hosts} Host headers, want one"
            )
        if hosts > 1:
            raise ProtocolError(f"{hosts} Host headers, want at most one")

        framing = BODY_NONE
        length = 0
        if transfer_encoding is not None:
            if version == "HTTP/1.0":
                raise ProtocolError("Transfer-Encoding in an HTTP/1.0 request")
            if content_length is not None:
                raise ProtocolError("both Transfer-Encoding and Content-Length")
            if not transfer_encoding:
                raise ProtocolError("empty Transfer-Encoding")
            if transfer_encoding != ["chunked"]:
                if "chunked" in transfer_encoding:
                    codings = ", ".join(transfer_encoding)
                    raise ProtocolError(f"Transfer-Encoding {codings!r} must end in one chunked")
                raise ProtocolError(
                    f"unsupported Transfer-Encoding {', '.join(transfer_encoding)!r}", status=501
                )
            framing = BODY_CHUNKED
        elif content_length is not None:
            if limits.max_body_size and content_length > limits.max_body_size:
                raise LimitExceeded(
                    f"Content-Length {content_length} exceeds the body limit of "
                    f"{limits.max_body_size} bytes",
                    status=413,
                )
            if content_length:
                framing = BODY_LENGTH
                length = content_length

        if lengths > 1:
            # A list of identical values, or repeated identical fields: the application sees
            # the one value, in one field where the first was (as h11 does).
            items = _one_content_length(items, str(content_length))
        if authority is not None:
            host = authority

        if version == "HTTP/1.1":
            keep_alive = "close" not in connection_tokens
        else:
            keep_alive = "keep-alive" in connection_tokens and "close" not in connection_tokens
        entry: _Entry = (
            method,
            target,
            version,
            tuple(items),
            framing,
            length,
            keep_alive,
            expect,
            upgrade and "upgrade" in connection_tokens,
            path,
            query,
            host,
        )
        if len(block) <= _CACHE_BLOCK_MAX and block[-1:] != b"\n":
            cache = self._cache
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            cache[block] = entry
        return entry


_FRAMING_FIELDS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "expect", "upgrade"}
)

# What a head parsed to, every value immutable: (method, target, version, fields,
# body_framing, content_length, keep_alive, expect, upgrade, path, query, host).
_Entry = tuple[
    str, str, str, tuple[tuple[str, str], ...], int, int, bool, str | None, bool, str, str, str
]
# Keep-alive clients send the same head bytes on every request (wrk, a browser fetching a
# page's resources), so the heads parsed lately are remembered by their raw bytes, one cache
# per Limits (what passes depends on them). Bounded: at most _CACHE_MAX heads of at most
# _CACHE_BLOCK_MAX bytes each, emptied when full. Only heads that passed every check are
# kept, so a hit answers exactly what parsing would.
_CACHE_MAX: Final = 128
_CACHE_BLOCK_MAX: Final = 2048
_CACHES: dict[Limits, dict[bytes, _Entry]] = {}
_new = object.__new__


def _cache_for(limits: Limits) -> dict[bytes, _Entry]:
    cache = _CACHES.get(limits)
    if cache is None:
        if len(_CACHES) >= 8:
            _CACHES.clear()
        cache = _CACHES[limits] = {}
    return cache


def _request_line_error(line: str) -> NoReturn:
    """The request line (latin-1 text, no CRLF) did not match the grammar: raise with the
    status and the reason (an invalid method, an unsupported version: 505, or malformed)."""
    loose = _REQUEST_LINE_LOOSE_RE.fullmatch(line)
    if loose is not None:
        raise ProtocolError(f"invalid method {show(loose.group(1).encode('latin-1'))}")
    raw_line = line.encode("latin-1")
    if _VERSION_LIKE_RE.fullmatch(raw_line) and not raw_line.endswith((b"HTTP/1.1", b"HTTP/1.0")):
        raise ProtocolError(f"unsupported HTTP version in {show(raw_line)}", status=505)
    raise ProtocolError(f"malformed request line {show(raw_line)}")


def _check_request_line(raw_line: bytes) -> None:
    """Check a request line (no CRLF) that arrived before the end of its head as _parse_new
    will check it: the grammar and the version (the target's form waits for the whole head)."""
    line = raw_line.decode("latin-1")
    match = _REQUEST_LINE_STR_RE.fullmatch(line)
    if match is None:
        _request_line_error(line)
    major, minor = match.group(3, 4)
    if major != "1" or (minor != "1" and minor != "0"):
        raise ProtocolError(f"unsupported HTTP version {major}.{minor}", status=505)


def _field_error(rest: str) -> None:
    """The header section did not match the grammar: raise for the first bad line, with
    the reason a person can act on."""
    for line in rest.split("\n")[:-1]:
        if line[-1:] == "\r":
            line = line[:-1]
        if _FIELDS_VALID(line + "\n") is not None:
            continue
        raw = line.encode("latin-1")
        if raw[:1] in (b" ", b"\t"):
            raise ProtocolError("obsolete line folding in header field")
        name = raw.split(b":", 1)[0]
        if b":" in raw and name.rstrip(b" \t") != name:
            raise ProtocolError(f"whitespace before the colon in header field {show(raw)}")
        raise ProtocolError(f"invalid header field {show(raw)}")
    raise ProtocolError("invalid header section")


def _one_content_length(items: list[tuple[str, str]], value: str) -> list[tuple[str, str]]:
    """``items`` with every Content-Length field but the first removed and that one set to
    ``value``."""
    kept: list[tuple[str, str]] = []
    seen = False
    for name, field_value in items:
        if name.lower() == "content-length":
            if seen:
                continue
            seen = True
            field_value = value
        kept.append((name, field_value))
    return kept


def _split_target(method: str, target: str) -> tuple[str, str, str | None]:
    """Check a target that is not origin-form (RFC 9112 3.2) and split it: ``(path, query,
    authority)``, the authority None when the Host header names the host. CONNECT takes
    authority-form only, OPTIONS may take asterisk-form, any method absolute-form. Anything
    else, or an invalid scheme or authority, is a ProtocolError (400)."""
    if method == "CONNECT":
        # RFC 9112 3.2.3: authority-form = uri-host ":" port, the port required.
        m = _AUTHORITY_RE.fullmatch(target)
        if (
            m is None
            or not m.group(1)
            or not m.group(2)
            or not _ip_literal_ok(m.group(1))
            # A TCP port (0-65535): past that no proxy could reach it, and urlsplit() in a
            # handler would raise ValueError on it rather than give the port.
            or not _port_ok(m.group(2))
        ):
            raise ProtocolError(
                f"CONNECT needs an authority-form target, got {show(target.encode('ascii'))}"
            )
        return target, "", target
    if target == "*":
        if method != "OPTIONS":
            raise ProtocolError("asterisk-form target is only allowed with OPTIONS")
        return "*", "", None
    m = _ABSOLUTE_RE.fullmatch(target)
    if m is None:
        raise ProtocolError(f"invalid request target {show(target.encode('ascii'))}")
    scheme, authority, rest = m.groups()
    a = _AUTHORITY_RE.fullmatch(authority)
    if (
        a is None
        or not _ip_literal_ok(a.group(1))
        or not _port_ok(a.group(2))
        # RFC 9110 4.2.1: an http(s) URI with an empty host is invalid.
        or (not a.group(1) and scheme.lower() in ("http", "https"))
    ):
        raise ProtocolError(
            f"invalid authority {show(authority.encode('ascii'))} in the request target"
        )
    path, _, query = rest.partition("#")[0].partition("?")
    return path or "/", query, authority


def _port_ok(port: str | None) -> bool:
    """Whether ``port`` (digits, or None when absent) is at most 65535."""
    if not port:
        return True
    digits = port.lstrip("0")
    return len(digits) <= 5 and (not digits or int(digits) <= 65535)


def _ip_literal_ok(host: str) -> bool:
    """Whether ``host`` is no IP-literal, or a valid one: an IPv6 address or IPvFuture."""
    if host[:1] != "[":
        return True
    inner = host[1:-1]
    if inner[:1] in ("v", "V"):
        return _IPV_FUTURE_RE.fullmatch(inner) is not None
    try:
        IPv6Address(inner)
    except ValueError:
        return False
    return True
