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
        if not isinstance(self.max_body_size, int) or self.max_body_size < 0:
            raise ValueError(
                f"Limits.max_body_size must be a non-negative integer, got {self.max_body_size!r}"
            )
