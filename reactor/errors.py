"""The one exception tree of reactor.

Owns every exception type the package raises on purpose. Imports nothing of reactor, so every
layer (loop, http, connection, server) may import it. Tests: tests/http/test_parser.py (the
status hints), tests/integration/test_hijack.py (the Closed family).

    ReactorError
    +-- ProtocolError               the peer broke HTTP; carries the status to answer with
    |   +-- LimitExceeded           a configured limit was crossed (413, 414, 431)
    +-- ConnectionClosedError       we closed it, or it left the server (Closed, trio's sense)
    |   +-- HijackedError           the response's connection was hijacked
    +-- BrokenConnectionError       the peer or the OS broke it (reset, EOF mid-message)
    +-- LoopClosedError             the loop was closed; it runs nothing more
    +-- NotSupportedError           the response writer (or its wrappers) cannot do that
"""

from __future__ import annotations

__all__ = [
    "BrokenConnectionError",
    "ConnectionClosedError",
    "HijackedError",
    "LimitExceeded",
    "LoopClosedError",
    "NotSupportedError",
    "ProtocolError",
    "ReactorError",
]


class ReactorError(Exception):
    """Base of every error reactor raises on purpose."""


class ProtocolError(ReactorError):
    """The peer sent something HTTP/1.1 does not allow.

    ``status`` is the response status to answer with (h11's ``error_status_hint``); the
    message names the offending value.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class LimitExceeded(ProtocolError):
    """A configured limit was crossed; the message names the value and the limit."""


class ConnectionClosedError(ReactorError):
    """The connection was closed by us, or it no longer belongs to the server."""


class HijackedError(ConnectionClosedError):
    """The response's connection has been hijacked; the server no longer writes it."""

    def __init__(self, message: str = "connection has been hijacked") -> None:
        super().__init__(message)


class BrokenConnectionError(ReactorError):
    """The peer or the OS broke the connection (reset, EOF in the middle of a message)."""


class LoopClosedError(ReactorError):
    """The loop was closed; it accepts no more work."""


class NotSupportedError(ReactorError):
    """No layer of a (wrapped) response writer supports the operation (Go's
    ErrNotSupported, HIJACK-SPEC B18)."""
