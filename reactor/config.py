"""ServerConfig: the one frozen object with every limit, timeout and switch of a server.

Every default names its precedent. Tests: tests/integration/test_timeouts.py,
tests/integration/test_limits.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .http.limits import Limits

__all__ = ["Limits", "ServerConfig"]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    #: What a peer can make the server hold (head, header count, line, body, read-ahead).
    limits: Limits = field(default_factory=Limits)
    #: Seconds from the first byte of a request head to its end; not reset by later bytes, so
    #: a client trickling one byte a second is cut off (Go's ReadHeaderTimeout; nginx's
    #: client_header_timeout is 60 s; 10 s is uvicorn's h11 default-less world made safe).
    read_header_timeout: float = 10.0
    #: Seconds without progress while a buffering handler waits for its body (nginx's
    #: client_body_timeout, 60 s, is also measured between two reads).
    body_timeout: float = 60.0
    #: Seconds a keep-alive connection may wait for its next request (nginx's
    #: keepalive_timeout is 75 s; uvicorn's 5 s; Go's IdleTimeout falls back to ReadTimeout).
    idle_timeout: float = 75.0
    #: Seconds without progress while the kernel does not take our output (nginx's
    #: send_timeout, 60 s): a client that stops reading is cut off.
    write_timeout: float = 60.0
    #: Seconds ``shutdown()`` lets in-flight requests finish before closing them (gunicorn's
    #: graceful_timeout is 30 s).
    shutdown_grace: float = 30.0
    #: Open connections at most; at the limit the server stops accepting until one closes.
    #: 0: no limit (then the fd limit is the limit, and accept backs off on EMFILE).
    max_connections: int = 0
    #: Connections accepted per readable event of a listener (CPython's asyncio accepts up
    #: to the backlog per event; a bound keeps one listener from starving the loop).
    accept_batch: int = 64
    #: Seconds to stop accepting after EMFILE/ENFILE before trying again (Twisted and
    #: CPython's asyncio back off the same way rather than spinning).
    accept_backoff: float = 0.1
    #: listen() backlog (Linux caps it at net.core.somaxconn).
    backlog: int = 1024
    #: Output buffered per connection before ``await w.drain()`` waits, and the level it
    #: waits for (asyncio's transport defaults: 64 KiB high, 16 KiB low).
    write_high_water: int = 64 * 1024
    write_low_water: int = 16 * 1024
    #: Body bytes a response buffers before it commits to chunked framing; below it, a handler
    #: that returns gets an exact Content-Length.
    response_buffer: int = 64 * 1024
    #: Request-body bytes buffered by all connections that wait for a body (buffering
    #: handlers), together; past it, reading pauses on every waiting connection but the one
    #: that held the least, which reads until its body is complete, until the total is back
    #: under it (so the total stays within it plus one body). Each body is capped by
    #: Limits.max_body_size already; this caps many of them at once (nginx spools bodies to
    #: disk instead; we hold them in memory). 0: no server-wide limit.
    max_buffered_bytes: int = 64 * 1024 * 1024
    #: The ``Server`` header (None: not sent).
    server_header: str | None = "reactor"
    #: Log each request in Common Log Format on the "reactor.access" logger.
    access_log: bool = False
    #: Seconds the loop may run no callback before a warning names the code that holds it (a
    #: handler that blocks stops every connection): reactor.loop.StallWatch, started by
    #: ``reactor.run.serve`` (``reactor serve``). 0: no watch. asyncio's debug mode warns
    #: after 0.1 s per callback; 0.5 s keeps the warning for stalls a user would notice.
    stall_warning: float = 0.5
    #: Expect HAProxy's PROXY protocol header (v1 or v2) first on every connection: the
    #: client's address is the one it names; a connection without a valid one gets 400.
    proxy_protocol: bool = False
    #: Seconds a new connection gets to send its PROXY header (the same as the request head's
    #: read_header_timeout: nginx reads the header under its client_header_timeout).
    proxy_protocol_timeout: float = 10.0
    #: Seconds a new TLS connection gets to complete its handshake (with an ``ssl_context``).
    #: Bytes that cannot be TLS fail it at once; this bounds a client that sends the start of
    #: a record and no more, or nothing (nginx's ssl_handshake_timeout, 60 s; Go bounds it by
    #: its read and write timeouts).
    tls_handshake_timeout: float = 10.0

    def __post_init__(self) -> None:
        for name in (
            "read_header_timeout",
            "body_timeout",
            "idle_timeout",
            "write_timeout",
            "shutdown_grace",
            "accept_backoff",
            "proxy_protocol_timeout",
            "tls_handshake_timeout",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"ServerConfig.{name} must be a positive number, got {value!r}")
        for name in ("accept_batch", "backlog", "write_high_water", "response_buffer"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"ServerConfig.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.stall_warning, int | float) or not 0 <= self.stall_warning < 1e9:
            raise ValueError(
                f"ServerConfig.stall_warning must be >= 0 seconds, got {self.stall_warning!r}"
            )
        if not isinstance(self.max_buffered_bytes, int) or self.max_buffered_bytes < 0:
            raise ValueError(
                f"ServerConfig.max_buffered_bytes must be >= 0, got {self.max_buffered_bytes!r}"
            )
        if not isinstance(self.max_connections, int) or self.max_connections < 0:
            raise ValueError(
                f"ServerConfig.max_connections must be >= 0, got {self.max_connections!r}"
            )
        if not 0 <= self.write_low_water <= self.write_high_water:
            raise ValueError(
                f"ServerConfig.write_low_water ({self.write_low_water}) must be between 0 and "
                f"write_high_water ({self.write_high_water})"
            )
