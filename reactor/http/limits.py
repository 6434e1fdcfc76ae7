"""Limits: the one frozen object that bounds what a peer can make the server hold.

Every default names its precedent. Sans-IO: imports nothing of the loop or sockets.
Tests: tests/http/test_parser.py (each limit and its status).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    #: Request line plus headers, in bytes; over it: 431. nginx's large_client_header_buffers
    #: is 4 x 8 KiB and Go's MaxHeaderBytes 1 MiB; h11 uses 16 KiB. 64 KiB is generous for
    #: every real client while bounding what one connection pins.
    max_head_bytes: int = 64 * 1024
    #: Request line, in bytes; over it: 414. nginx's client_header_buffer_size is 1 KiB with
    #: 8 KiB for long lines; 8 KiB matches nginx, Apache's LimitRequestLine and Node.
    max_request_line: int = 8 * 1024
    #: Header fields; over it: 431. Apache's LimitRequestFields is 100; Go tip caps values at 500.
    max_header_count: int = 100
    #: Request body, in bytes; over it: 413. nginx's client_max_body_size is 1 MiB; we allow
    #: 16 MiB since a buffering handler is called with the whole body (0 disables the limit).
    max_body_size: int = 16 * 1024 * 1024
    #: A chunk-size line including extensions, in bytes; over it: 400. h11 bounds it the same way.
    max_chunk_line: int = 4096
    #: Chunks in one chunked body (the last, empty one not counted); over it: 400. Each chunk
    #: costs Python work whatever its size, so a body of one-byte chunks is refused long before
    #: the body limit (a million of them are 6 MB). No server we compare with counts chunks; a
    #: 16 MiB body (the body limit) in 64 Ki chunks averages 256 bytes a chunk, and curl and
    #: requests send files in chunks of 8 KiB or more. 0: no limit.
    max_chunk_count: int = 64 * 1024
    #: Framing bytes of one chunked body (size lines with their extensions, the CRLFs, the
    #: trailer section), whatever the data; over it: 400. Chunks of 256 bytes (see above) need
    #: under 9 bytes of framing each, so 64 Ki of them fit in 1 MiB. 0: no limit.
    max_chunk_overhead: int = 1024 * 1024
    #: Framing bytes beyond what the data pays for, Go's rule since CVE-2023-39326: each chunk
    #: may carry 16 bytes of framing plus 2 per data byte; the rest adds up, and past this many
    #: bytes the body is refused with a 400. Go's bound is 16 KiB. 0: no limit.
    max_chunk_excess: int = 16 * 1024
    #: Unprocessed bytes read ahead of the request being handled (pipelining); past it the
    #: server stops reading until the handler has caught up. Go's bufio reader holds 4 KiB; we
    #: read ahead up to 256 KiB so a burst of pipelined requests is parsed from one buffer.
    max_read_ahead: int = 256 * 1024

    def __post_init__(self) -> None:
        for name in (
            "max_head_bytes",
            "max_request_line",
            "max_header_count",
            "max_chunk_line",
            "max_read_ahead",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive integer, got {value!r}")
        for name in ("max_body_size", "max_chunk_count", "max_chunk_overhead", "max_chunk_excess"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"Limits.{name} must be a non-negative integer, got {value!r}")
