"""AsyncioLoop: reactor's loop interface on any asyncio event loop (asyncio's own, uvloop).

Owns the mapping of the ``Loop`` protocol (reactor/loop/base.py) onto an asyncio loop: fd
registrations (one reader and one writer per fd, kept in a table of our own so that a second
reader is refused instead of silently replacing the first), callbacks wrapped so that an
exception is logged on ``reactor.loop`` and the loop goes on, a timer heap of our own (one
asyncio timer is armed for its earliest entry), ``run_once`` on top of ``run_forever``, and
signal handlers that restore the previous handler when removed. Must not know HTTP. Tests:
tests/loop/ (the ``loop``/``clocked_loop`` fixtures run every conformance test on asyncio and
uvloop too) and every integration suite through the ``serve`` fixture.

Futures are asyncio's: ``create_future``, ``spawn`` and ``sleep`` return asyncio futures and
tasks, so an ``async def`` handler is an asyncio task and may await anything asyncio offers,
as well as reactor's own awaitables (which await what ``create_future`` returns).

Why a timer heap of our own: ``TimerHandle`` (``when``, ``cancel()``, ``callback is None``)
is what the connection reads; ties fire in creation order (asyncio's heap does not promise
that); ``pending_timers``/``next_deadline`` need the armed timers, which asyncio does not
expose; and an injected ``clock`` (tests) drives our timers on any asyncio loop, uvloop
included, whose own timers run on libuv's clock.

Differences from SelectorLoop that no test can hide: within one pass asyncio runs the callbacks
queued before the pass ahead of the I/O callbacks (SelectorLoop runs I/O first);
``run_once(timeout)`` waits until one of *our* callbacks (reader, writer, timer,
``call_soon``, signal) is due, or ``timeout`` -- asyncio's own work (a task stepping) runs
meanwhile but does not end the wait; ``next_deadline`` sees our queued callbacks, not
asyncio's.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import select
import signal
import threading
from collections.abc import Callable, Coroutine
from time import monotonic as _monotonic
from types import CoroutineType
from typing import Any, TypeVar, cast

from ..errors import LoopClosedError
from .futures import Future, Task
from .handles import FdEntry, Handle, TimerHandle, TimerHeapMixin, fileno_of

__all__ = ["AsyncioLoop"]

_poll = select.poll
_POLLIN = select.POLLIN
_HANGUP = select.POLLERR | select.POLLHUP

T = TypeVar("T")
log = logging.getLogger("reactor.loop")


def _hangup(fileno: int) -> bool:
    """Whether ``fileno`` reports an error or a hangup. uvloop (libuv) stops watching an fd
    after the event that reports one (a peer's RST), having called the callbacks once: a reader
    that reads once per call would never hear of the reset, or of the rest of the data. While
    the fd is in that state, the dispatcher calls again on the next pass, as a level-triggered
    loop does."""
    poller = _poll()
    poller.register(fileno, _POLLIN)
    try:
        events = poller.poll(0)
    except OSError:
        return False
    return bool(events) and bool(events[0][1] & _HANGUP)


class AsyncioLoop(TimerHeapMixin):
    """The loop interface on ``asyncio_loop`` (a new asyncio loop if None).

    ``close_loop``: whether ``close()`` closes the asyncio loop too (default: only a loop this
    object created). ``clock``: the time source of reactor's timers (``time()``,
    ``call_later``...) instead of ``time.monotonic``, for tests (``FakeClock``); asyncio's own
    timers (``asyncio.sleep``) keep asyncio's clock.
    """

    def __init__(
        self,
        asyncio_loop: asyncio.AbstractEventLoop | None = None,
        *,
        clock: Callable[[], float] | None = None,
        close_loop: bool | None = None,
    ) -> None:
        created = asyncio_loop is None
        self._aloop = asyncio_loop if asyncio_loop is not None else asyncio.new_event_loop()
        self._close_loop = created if close_loop is None else close_loop
        self._clock = clock
        self.time = clock if clock is not None else _monotonic
        self._fds: dict[int, FdEntry] = {}
        self._timers: list[TimerHandle] = []
        self._timer_seq = 0
        self._cancelled_timers = 0
        self._wake_handle: asyncio.Handle | None = None
        self._wake_when: float | None = None
        self._ready_count = 0
        self._waiting = False
        self._closed = False
        self._thread_id: int | None = None
        self._signals: dict[int, Any] = {}
        uv = type(self._aloop).__module__.startswith("uvloop")
        self._read_dispatch = self._on_read_uv if uv else self._on_read
        self._write_dispatch = self._on_write_uv if uv else self._on_write

    @property
    def asyncio_loop(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop underneath."""
        return self._aloop

    def __repr__(self) -> str:
        return f"<AsyncioLoop on {type(self._aloop).__module__}.{type(self._aloop).__name__}>"

    # -- time ---------------------------------------------------------------------------

    # ``time()`` is an attribute set in ``__init__``: ``time.monotonic`` itself (which asyncio's
    # own ``time()`` is; uvloop's is libuv's millisecond clock, which lags it by up to a
    # millisecond and would fire timers early), or the injected clock. A builtin called
    # directly, not a method that calls it: the connection asks once per request.
    time: Callable[[], float]

    # -- dispatch ------------------------------------------------------------------------

    def _deferred(self) -> bool:
        """While ``run_once`` waits for something to happen (its first phase), our callbacks
        do not run: the first one stops the wait, and each puts itself back to run in the
        pass that follows (an fd stays ready: readiness is level-triggered)."""
        if self._waiting:
            self._aloop.stop()
            return True
        return False

    def _run_handle(self, handle: Handle) -> None:
        if self._waiting:  # _deferred(), inlined
            self._aloop.stop()
            self._aloop.call_soon(self._run_handle, handle)
            return
        self._ready_count -= 1
        cb = handle.callback
        if cb is None or self._closed:
            handle.callback = handle.args = None
            return
        args = handle.args
        handle.callback = handle.args = None
        try:
            cb(*args)  # type: ignore[misc]
        except Exception:
            log.exception("error in callback %r", cb)

    def _run_threadsafe(self, handle: Handle) -> None:
        if self._deferred():
            self._aloop.call_soon(self._run_threadsafe, handle)
            return
        self._ready_count += 1  # _run_handle counts it out
        self._run_handle(handle)
        if self._clock is not None:
            # An injected clock may have moved (FakeClock.advance wakes the loop this way).
            self._check_timers()

    # The asyncio loop calls these with the fd's FdEntry (no table lookup per event): the
    # entry of a registration that was removed has no callback any more. The ``_uv`` forms
    # are registered on uvloop (see _hangup).

    def _on_read(self, entry: FdEntry, fileno: int) -> None:
        if self._waiting:  # _deferred(), inlined: once per event
            self._aloop.stop()
            return
        cb = entry.reader
        if cb is None:
            return
        try:
            cb(*entry.reader_args)
        except Exception:
            log.exception("error in reader callback %r", cb)

    def _on_write(self, entry: FdEntry, fileno: int) -> None:
        if self._waiting:
            self._aloop.stop()
            return
        cb = entry.writer
        if cb is None:
            return
        try:
            cb(*entry.writer_args)
        except Exception:
            log.exception("error in writer callback %r", cb)

    def _on_read_uv(self, entry: FdEntry, fileno: int) -> None:
        if self._waiting:
            self._aloop.stop()
            if _hangup(fileno):
                self._aloop.call_soon(self._on_read_uv, entry, fileno)
            return
        cb = entry.reader
        if cb is None:
            return
        try:
            cb(*entry.reader_args)
        except Exception:
            log.exception("error in reader callback %r", cb)
        if entry.reader is not None and _hangup(fileno):
            self._aloop.call_soon(self._on_read_uv, entry, fileno)

    def _on_write_uv(self, entry: FdEntry, fileno: int) -> None:
        if self._waiting:
            self._aloop.stop()
            if _hangup(fileno):
                self._aloop.call_soon(self._on_write_uv, entry, fileno)
            return
        cb = entry.writer
        if cb is None:
            return
        try:
            cb(*entry.writer_args)
        except Exception:
            log.exception("error in writer callback %r", cb)
        if entry.writer is not None and _hangup(fileno):
            self._aloop.call_soon(self._on_write_uv, entry, fileno)

    # -- readers and writers --------------------------------------------------------------

    def add_reader(self, fd: Any, callback: Callable[..., object], *args: Any) -> None:
        """Call ``callback(*args)`` whenever ``fd`` is readable. One reader per fd."""
        self._check_closed()
        fileno = fileno_of(fd)
        entry = self._fds.get(fileno)
        if entry is not None and entry.reader is not None:
            raise RuntimeError(
                f"fd {fileno} already has a reader ({entry.reader!r}); remove it first"
            )
        if entry is None:
            entry = FdEntry()
        self._aloop.add_reader(fileno, self._read_dispatch, entry, fileno)
        self._fds[fileno] = entry
        entry.reader = callback
        entry.reader_args = args

    def remove_reader(self, fd: Any) -> bool:
        """Stop watching ``fd`` for reading. Returns whether a reader was registered."""
        if self._closed:
            return False
        fileno = fileno_of(fd)
        entry = self._fds.get(fileno)
        if entry is None or entry.reader is None:
            return False
        entry.reader = None
        entry.reader_args = ()
        self._aloop.remove_reader(fileno)
        if entry.writer is None:
            del self._fds[fileno]
        return True

    def add_writer(self, fd: Any, callback: Callable[..., object], *args: Any) -> None:
        """Call ``callback(*args)`` whenever ``fd`` is writable. One writer per fd."""
        self._check_closed()
        fileno = fileno_of(fd)
        entry = self._fds.get(fileno)
        if entry is not None and entry.writer is not None:
            raise RuntimeError(
                f"fd {fileno} already has a writer ({entry.writer!r}); remove it first"
            )
        if entry is None:
            entry = FdEntry()
        self._aloop.add_writer(fileno, self._write_dispatch, entry, fileno)
        self._fds[fileno] = entry
        entry.writer = callback
        entry.writer_args = args

    def remove_writer(self, fd: Any) -> bool:
        """Stop watching ``fd`` for writing. Returns whether a writer was registered."""
        if self._closed:
            return False
        fileno = fileno_of(fd)
        entry = self._fds.get(fileno)
        if entry is None or entry.writer is None:
            return False
        entry.writer = None
        entry.writer_args = ()
        self._aloop.remove_writer(fileno)
        if entry.reader is None:
            del self._fds[fileno]
        return True

    def remove_fd(self, fd: Any) -> None:
        """Drop every registration of ``fd`` (call before closing it)."""
        if self._closed:
            return
        try:
            fileno = fileno_of(fd)
        except (ValueError, OSError):
            return
        entry = self._fds.pop(fileno, None)
        if entry is None:
            return
        self._forget(fileno, entry)

    def _forget(self, fileno: int, entry: FdEntry) -> None:
        aloop = self._aloop
        if not aloop.is_closed():
            # An fd closed before it was removed: the selector's modify() fails with EBADF,
            # and forgets the fd all the same.
            if entry.reader is not None:
                with contextlib.suppress(OSError, ValueError):
                    aloop.remove_reader(fileno)
            if entry.writer is not None:
                with contextlib.suppress(OSError, ValueError):
                    aloop.remove_writer(fileno)
        entry.reader = entry.writer = None
        entry.reader_args = entry.writer_args = ()

    def registered_fds(self) -> int:
        """How many fds the loop watches for reactor."""
        return 0 if self._closed else len(self._fds)

    # -- callbacks and timers ---------------------------------------------------------------

    def call_soon(self, callback: Callable[..., object], *args: Any) -> Handle:
        """Run ``callback(*args)`` on the next pass, after the callbacks already queued."""
        handle = Handle(callback, args)
        self._aloop.call_soon(self._run_handle, handle)
        self._ready_count += 1
        return handle

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> Handle:
        """The only entry that other threads may use: queue a callback and wake the loop."""
        if self._closed:
            raise LoopClosedError("the loop is closed")
        handle = Handle(callback, args)
        try:
            self._aloop.call_soon_threadsafe(self._run_threadsafe, handle)
        except RuntimeError as exc:  # the asyncio loop is closed
            raise LoopClosedError(str(exc)) from None
        return handle

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` ``delay`` seconds from now."""
        return self.call_at(self.time() + delay, callback, *args)

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` at loop time ``when``."""
        timer = self._push_timer(when, callback, args)
        if not self._closed and (self._wake_when is None or when < self._wake_when):
            self._arm(when)
        return timer

    def _arm(self, when: float) -> None:
        """Arm the one asyncio timer for loop time ``when``."""
        old = self._wake_handle
        if old is not None:
            old.cancel()
        self._wake_when = when
        delay = when - self.time()
        self._wake_handle = self._aloop.call_later(delay if delay > 0 else 0, self._on_wake)

    def _arm_next(self) -> None:
        timers = self._timers
        while timers and timers[0].callback is None:
            heapq.heappop(timers)
            self._cancelled_timers -= 1
        if timers and not self._closed:
            when = timers[0].when
            if self._wake_when is None or when < self._wake_when:
                self._arm(when)

    def _check_timers(self) -> None:
        timers = self._timers
        if timers and timers[0].when <= self.time():
            self._on_wake()

    def _on_wake(self) -> None:
        """Our asyncio timer fired (or an injected clock moved): run the due timers."""
        handle = self._wake_handle
        if handle is not None:
            handle.cancel()  # a no-op when it is the one running
        self._wake_handle = None
        self._wake_when = None
        if self._closed:
            return
        if self._deferred():
            self._arm_next()  # due: at once, in the pass that follows
            return
        timers = self._timers
        now = self.time()
        due: list[TimerHandle] = []
        while timers and timers[0].when <= now:
            timer = heapq.heappop(timers)
            if timer.callback is None:
                self._cancelled_timers -= 1
                continue
            timer.owner = None
            due.append(timer)
        for timer in due:
            cb = timer.callback
            if cb is None:  # cancelled by an earlier timer of this pass
                continue
            args = timer.args
            timer.callback = timer.args = None
            try:
                cb(*args)  # type: ignore[misc]
            except Exception:
                log.exception("error in callback %r", cb)
        self._arm_next()

    def next_deadline(self) -> float | None:
        """Loop time of the earliest armed timer (now, if our callbacks are queued), else
        None."""
        if self._ready_count > 0:
            return self.time()
        timers = self._timers
        while timers and timers[0].callback is None:
            heapq.heappop(timers)
            self._cancelled_timers -= 1
        return timers[0].when if timers else None

    # -- futures and tasks -----------------------------------------------------------------

    def create_future(self) -> Future[Any]:
        """An asyncio future of this loop (typed as reactor's: the same methods)."""
        return cast("Future[Any]", self._aloop.create_future())

    def spawn(self, coro: Coroutine[Any, Any, T]) -> Task[T]:
        """Run a coroutine as an asyncio task on this loop."""
        if self._closed:
            self._check_closed()
        aloop = self._aloop
        if type(coro) is CoroutineType:
            if aloop.get_task_factory() is None:
                # As create_task() makes it, but named after its coroutine: on 3.11 a task
                # given no name formats a "Task-N" for itself (about 3,000 instructions).
                return cast("Task[T]", asyncio.Task(coro, loop=aloop, name=coro.__qualname__))
        elif not isinstance(coro, Coroutine):
            raise TypeError(f"spawn() needs a coroutine, got {coro!r}")
        return cast("Task[T]", aloop.create_task(coro))

    # -- signals ---------------------------------------------------------------------------

    def add_signal_handler(self, sig: int, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop when ``sig`` arrives. Main thread only; the
        handler that was installed before comes back with ``remove_signal_handler``."""
        self._check_closed()
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("signal handlers can only be installed from the main thread")
        previous = signal.getsignal(sig)
        self._aloop.add_signal_handler(sig, self._on_signal, callback, args)
        self._signals.setdefault(sig, previous)

    def _on_signal(self, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        if self._deferred():
            self._aloop.call_soon(self._on_signal, callback, args)
            return
        try:
            callback(*args)
        except Exception:
            log.exception("error in signal handler %r", callback)

    def remove_signal_handler(self, sig: int) -> bool:
        if sig not in self._signals:
            return False
        previous = self._signals.pop(sig)
        if not self._aloop.is_closed():
            self._aloop.remove_signal_handler(sig)
        signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        return True

    # -- running -------------------------------------------------------------------------

    def _run_forever(self) -> None:
        self._thread_id = threading.get_ident()
        try:
            self._aloop.run_forever()
        finally:
            self._thread_id = None

    def run_once(self, timeout: float | None = None) -> None:
        """One pass: wait for I/O at most ``timeout`` seconds (None: until one of our
        callbacks is due), run what is due, and return.

        asyncio has no such call, so it is two ``run_forever`` calls: the first waits (our
        callbacks that come due in it are put back, and the first of them stops it), the
        second is one pass that does not wait (a ``stop()`` before ``run_forever()`` makes
        asyncio and uvloop run exactly one iteration, with a zero poll timeout)."""
        self._check_closed()
        aloop = self._aloop
        if aloop.is_running():
            raise RuntimeError("the loop is already running")
        if self._ready_count <= 0 and (timeout is None or timeout > 0):
            guard = aloop.call_later(timeout, aloop.stop) if timeout is not None else None
            self._waiting = True
            try:
                self._run_forever()
            finally:
                self._waiting = False
                if guard is not None:
                    guard.cancel()
        aloop.stop()
        self._run_forever()

    def run(self) -> None:
        """Run until ``stop()`` is called."""
        self._check_closed()
        if self._aloop.is_running():
            raise RuntimeError("the loop is already running")
        self._run_forever()

    def stop(self) -> None:
        """Make ``run()`` return after the current pass. Safe from any thread."""
        aloop = self._aloop
        if aloop.is_closed():
            return
        if self._thread_id is None or self._thread_id == threading.get_ident():
            aloop.stop()
        else:
            aloop.call_soon_threadsafe(aloop.stop)

    def is_running(self) -> bool:
        return self._aloop.is_running()

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Forget every registration, timer and queued callback; close the asyncio loop if
        this object owns it. Registered fds are not closed. Idempotent."""
        aloop = self._aloop
        if aloop.is_running() and (self._close_loop or self._thread_id is not None):
            raise RuntimeError("cannot close a running loop")
        if self._closed:
            return
        for sig in list(self._signals):
            self.remove_signal_handler(sig)
        self._closed = True
        for fileno, entry in self._fds.items():
            self._forget(fileno, entry)
        self._fds.clear()
        for timer in self._timers:
            timer.callback = timer.args = None
            timer.owner = None
        self._timers.clear()
        wake = self._wake_handle
        self._wake_handle = None
        if wake is not None:
            wake.cancel()
        if self._close_loop and not aloop.is_closed():
            aloop.close()

    def _check_closed(self) -> None:
        if self._closed:
            raise LoopClosedError("the loop is closed")
