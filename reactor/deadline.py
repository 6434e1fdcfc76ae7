"""Deadline: a server connection's timeouts: one lazily re-armed timer, and the policy of
which deadline applies in which state and what happens when it passes.

A connection has one deadline at a time (header, body, idle, write or linger: a "kind", an
int the owner defines; 0 means none). Moving the deadline later, which every keep-alive
request does, is an attribute store: the one timer stays where it is and, when it fires
early, re-arms itself for the current deadline. Moving it earlier replaces the timer. Heap
pushes and cancellations per request were the alternative; they cost more and fill the loop's
heap with cancelled entries.

The policy: a new connection and a head in progress get the header timeout (measured from the
first byte, not extended by later ones: Go's ReadHeaderTimeout); a buffering handler's body
the body timeout (between reads); a keep-alive connection between requests the idle timeout;
output the kernel does not take the write timeout, which, while pending, wins over the
others; a streaming read the body timeout; the handler itself none.

A mixin with no slots of its own: reactor/connection.py's Connection declares ``_timer``,
``_deadline`` and ``_timeout_kind`` and supplies the rest (declared below for the type
checker), so an idle connection pays for no extra object. Tests: the timeout tests in
tests/integration/test_limits_timeouts.py and test_core_errors.py, on an injected clock.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .errors import BrokenConnectionError
from .http.state import (
    CLOSED,
    HANDLING,
    HIJACKED,
    IDLE,
    NEW,
    READING_BODY,
    READING_HEAD,
    ConnState,
)

if TYPE_CHECKING:
    from .buffers import Reader
    from .channel import Waiters
    from .config import ServerConfig
    from .http.protocol import ServerProtocol
    from .loop.base import Loop
    from .loop.handles import TimerHandle

log = logging.getLogger("reactor.server")


__all__ = [
    "BODY_TIMEOUT",
    "HEADER_TIMEOUT",
    "IDLE_TIMEOUT",
    "LINGER_TIMEOUT",
    "NO_DEADLINE",
    "WRITE_TIMEOUT",
    "Deadline",
]

NO_DEADLINE = 0
# The kinds of deadline a server connection has (reactor/connection.py's timeout policy).
HEADER_TIMEOUT = 1
BODY_TIMEOUT = 2
IDLE_TIMEOUT = 3
WRITE_TIMEOUT = 4
LINGER_TIMEOUT = 5


class Deadline:
    """The timer side of an object with one deadline at a time."""

    if not TYPE_CHECKING:  # no slots of its own (mypy would refuse the assignments below)
        __slots__ = ()

    _loop: Loop
    _timer: TimerHandle | None
    _deadline: float
    _timeout_kind: int
    if TYPE_CHECKING:  # what the connection supplies
        _proto: ServerProtocol
        _reader: Reader
        _writing: bool
        _waiters: Waiters | None

        @property
        def config(self) -> ServerConfig:
            raise NotImplementedError

        @property
        def remote_addr(self) -> Any:
            raise NotImplementedError

        def _error_and_close(self, status: int, text: str) -> None: ...
        def _close(self) -> None: ...
        def _abort(self) -> None: ...
        def _internal_error(self, exc: BaseException) -> None: ...

    def _arm(self, kind: int, seconds: float) -> None:
        """The deadline is now ``seconds`` away, for ``kind``."""
        self._timeout_kind = kind
        deadline = self._loop.time() + seconds
        self._deadline = deadline
        timer = self._timer
        if timer is None or timer.callback is None:
            self._timer = self._loop.call_at(deadline, Deadline._on_timer, self)
        elif timer.when > deadline:
            timer.cancel()
            self._timer = self._loop.call_at(deadline, Deadline._on_timer, self)

    def _cancel_timer(self) -> None:
        """No deadline, and no timer in the loop (closing, hijack)."""
        timer = self._timer
        self._timer = None
        self._timeout_kind = NO_DEADLINE
        if timer is not None:
            timer.cancel()

    def _on_timer(self) -> None:
        self._timer = None
        kind = self._timeout_kind
        if kind == NO_DEADLINE:
            return
        if self._loop.time() < self._deadline:  # moved later meanwhile: wait for it
            self._timer = self._loop.call_at(self._deadline, Deadline._on_timer, self)
            return
        self._timeout_kind = NO_DEADLINE
        self._deadline_passed(kind)

    # -- the policy ----------------------------------------------------------------------

    def _output_drained(self) -> None:
        """The write timeout no longer applies: the state's own deadline does."""
        state = self._proto.state
        if state is IDLE:
            self._arm_wait_timeout()
        elif state is HANDLING:
            self._disarm()
        elif state is READING_HEAD:
            self._arm(HEADER_TIMEOUT, self.config.read_header_timeout)
        elif state is READING_BODY:
            self._arm(BODY_TIMEOUT, self.config.body_timeout)

    def _arm_wait_timeout(self) -> None:
        """Between requests: the idle timeout, or the header timeout if the next request has
        begun. While output waits for the kernel the write timeout governs instead."""
        if self._writing:
            return
        if self._reader.buffered():
            self._arm(HEADER_TIMEOUT, self.config.read_header_timeout)
        else:
            self._arm(IDLE_TIMEOUT, self.config.idle_timeout)

    def _disarm(self) -> None:
        if not self._writing:  # pending output keeps its write timeout
            self._timeout_kind = NO_DEADLINE

    def _deadline_passed(self, kind: int) -> None:
        state = self._proto.state
        if state is CLOSED or state is HIJACKED:
            return
        try:
            self._timed_out(kind, state)
        except Exception as exc:
            self._internal_error(exc)

    def _timed_out(self, kind: int, state: ConnState) -> None:
        if kind == HEADER_TIMEOUT:
            if state is HANDLING:
                return  # a response is under way; the next head's deadline starts after it
            if self._reader.buffered() and (state is READING_HEAD or state is IDLE or state is NEW):
                log.info("read header timeout from %s", self.remote_addr)
                self._error_and_close(408, "408 Request Timeout: request head not received in time")
            else:
                self._close()
        elif kind == BODY_TIMEOUT and state is HANDLING:
            waiters = self._waiters
            if waiters is None or waiters.body is None:
                return  # no streaming read waits: the handler has the body it asked for
            # A streaming handler waited too long for body bytes: its read fails.
            log.info("body timeout from %s (streaming handler)", self.remote_addr)
            waiter, waiters.body = waiters.body, None
            if not waiter.done():
                waiter.set_exception(
                    BrokenConnectionError("the request body did not arrive in time")
                )
            self._abort()
        elif kind == BODY_TIMEOUT and state is READING_BODY:
            log.info("body timeout from %s", self.remote_addr)
            self._error_and_close(408, "408 Request Timeout: request body not received in time")
        elif kind == WRITE_TIMEOUT:
            log.info("write timeout to %s: the client stopped reading", self.remote_addr)
            self._abort()
        else:  # idle, linger (or a body timeout that no longer applies)
            self._close()
