"""Callback handles: what the loop queues and what a timer returns.

Owns Handle (a queued callback) and TimerHandle (a callback due at a time). Cancelling drops
the callback and its arguments at once, so a cancelled timer that still sits in the heap keeps
nothing alive (CPython events.TimerHandle does the same). Tests: tests/loop/test_selector_loop.py.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from .futures import Future

_T = TypeVar("_T")

__all__ = [
    "MIN_CANCELLED_FOR_COMPACTION",
    "FdEntry",
    "Handle",
    "TimerHandle",
    "TimerHeapMixin",
    "TimerOwner",
    "fileno_of",
]


class TimerOwner(Protocol):
    """The loop a timer belongs to and tells when it is cancelled (SelectorLoop,
    AsyncioLoop)."""

    def time(self) -> float: ...
    def timer_cancelled(self) -> None: ...


class Handle:
    """A callback queued with ``call_soon``; ``cancel()`` drops it before it runs."""

    __slots__ = ("args", "callback")

    def __init__(self, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.callback: Callable[..., object] | None = callback
        self.args: tuple[Any, ...] | None = args

    def cancel(self) -> None:
        self.callback = None
        self.args = None

    @property
    def cancelled(self) -> bool:
        return self.callback is None

    def __repr__(self) -> str:
        state = "cancelled" if self.callback is None else repr(self.callback)
        return f"<{type(self).__name__} {state}>"


class TimerHandle(Handle):
    """A callback due at ``when`` (loop time). Ordered by ``when``, then by creation.

    ``owner`` is the loop whose heap holds the timer, told when it is cancelled (so that it
    can compact its heap); None once the timer has fired or been cancelled. The loop that pops
    a due timer clears it."""

    __slots__ = ("owner", "seq", "when")

    def __init__(
        self,
        when: float,
        seq: int,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        owner: TimerOwner | None,
    ) -> None:
        # Handle.__init__ inline (no super() call on the path that arms a timer).
        self.callback = callback
        self.args = args
        self.when = when
        self.seq = seq
        self.owner = owner

    def __lt__(self, other: TimerHandle) -> bool:
        when = self.when
        other_when = other.when
        if when == other_when:
            return self.seq < other.seq
        return when < other_when

    def cancel(self) -> None:
        if self.callback is not None:
            self.callback = None
            self.args = None
            owner = self.owner
            self.owner = None
            if owner is not None:
                owner.timer_cancelled()

    def cancel_if_cancelled(self, fut: Future[Any]) -> None:
        """A done callback for the future this timer would complete (``loop.sleep()``): a
        cancelled future needs no timer."""
        if fut.cancelled():
            self.cancel()


# Compact a timer heap when more than this many entries are cancelled and they are more than
# half of it (CPython base_events uses the same two conditions). Both backends use it.
MIN_CANCELLED_FOR_COMPACTION = 100


class FdEntry:
    """The reader and writer callbacks registered for one fd (one registration per fd)."""

    __slots__ = ("reader", "reader_args", "writer", "writer_args")

    def __init__(self) -> None:
        self.reader: Callable[..., object] | None = None
        self.reader_args: tuple[Any, ...] = ()
        self.writer: Callable[..., object] | None = None
        self.writer_args: tuple[Any, ...] = ()


def fileno_of(fd: Any) -> int:
    """The number of an fd given as an int or as an object with ``fileno()``."""
    return fd if isinstance(fd, int) else int(fd.fileno())


class TimerHeapMixin:
    """What both loops share: the timer heap's bookkeeping (cancelled handles stay in the heap,
    their callback already dropped, until they reach its top or until most of it is
    cancelled, when it is compacted in place), ``run_until_complete`` and ``sleep``."""

    _timers: list[TimerHandle]
    _cancelled_timers: int
    _timer_seq: int

    def _push_timer(
        self, when: float, callback: Callable[..., object], args: tuple[Any, ...]
    ) -> TimerHandle:
        """A new timer on the heap (ties keep creation order)."""
        seq = self._timer_seq = self._timer_seq + 1
        timer = TimerHandle(when, seq, callback, args, self)  # type: ignore[arg-type]
        heapq.heappush(self._timers, timer)
        return timer

    if TYPE_CHECKING:

        def spawn(self, coro: Coroutine[Any, Any, Any]) -> Any: ...
        def create_future(self) -> Future[Any]: ...
        def call_later(
            self, delay: float, callback: Callable[..., object], *args: Any
        ) -> TimerHandle: ...
        def run(self) -> None: ...
        def stop(self) -> None: ...

    def run_until_complete(self, future: Future[_T] | Coroutine[Any, Any, _T]) -> _T:
        """Run until ``future`` (or a coroutine, spawned as a task) is done; return its result."""
        fut: Any = self.spawn(future) if isinstance(future, Coroutine) else future
        fut.add_done_callback(self._stop_when_done)
        try:
            self.run()
        finally:
            fut.remove_done_callback(self._stop_when_done)
        if not fut.done():
            raise RuntimeError("the loop stopped before the future completed")
        result: _T = fut.result()
        return result

    def _stop_when_done(self, fut: Any) -> None:
        self.stop()

    def sleep(self, delay: float, result: _T | None = None) -> Future[_T | None]:
        """A future done ``delay`` seconds from now (on the loop's timers and clock):
        ``await loop.sleep(0.1)``."""
        fut = self.create_future()
        timer = self.call_later(delay, _set_result_unless_done, fut, result)
        # A cancelled sleep (its task was cancelled) disarms its timer at once, so that it
        # neither counts in pending_timers() nor holds the future until it would have fired.
        fut.add_done_callback(timer.cancel_if_cancelled)
        return fut

    def timer_cancelled(self) -> None:
        """``TimerHandle.cancel()`` reports here (the handle stays in the heap until it reaches
        the top, or until most of the heap is cancelled and it is compacted)."""
        self._cancelled_timers += 1
        timers = self._timers
        if (
            self._cancelled_timers > MIN_CANCELLED_FOR_COMPACTION
            and self._cancelled_timers * 2 > len(timers)
        ):
            # In place: run_once holds this list in a local for the whole pass, and an I/O
            # callback may cancel timers (and so compact) before the due timers are popped.
            timers[:] = [t for t in timers if t.callback is not None]
            heapq.heapify(timers)
            self._cancelled_timers = 0

    def pending_timers(self) -> int:
        """Timers that are armed and not cancelled."""
        return sum(1 for t in self._timers if t.callback is not None)

    def armed_timers(self) -> list[TimerHandle]:
        """The timers that are armed and not cancelled (for leak diagnosis)."""
        return [t for t in self._timers if t.callback is not None]


def _set_result_unless_done(fut: Future[Any], result: Any) -> None:
    if not fut.done():
        fut.set_result(result)
