"""Deadline: one lazily re-armed timer per object, for per-connection timeouts.

A connection has one deadline at a time (header, body, idle, write or linger: a "kind", an
int the owner defines; 0 means none). Moving the deadline later, which every keep-alive
request does, is an attribute store: the one timer stays where it is and, when it fires
early, re-arms itself for the current deadline. Moving it earlier replaces the timer. Heap
pushes and cancellations per request were the alternative; they cost more and fill the loop's
heap with cancelled entries.

A mixin with no slots of its own: the class using it declares ``_loop``, ``_timer``,
``_deadline`` and ``_timeout_kind`` (reactor/connection.py), so an idle connection pays for no
extra object. The owner implements ``_deadline_passed(kind)``. Tests: the timeout tests in
tests/integration/test_limits_timeouts.py, on an injected clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .loop.base import Loop
    from .loop.handles import TimerHandle

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

    def _deadline_passed(self, kind: int) -> None:
        raise NotImplementedError
