"""SelectorLoop: the reactor. One thread, one selector, one place that runs callbacks.

Owns fd registrations (one per fd, reader and writer in one selector key), timers (a heap with
lazy cancellation and compaction), the ready queue, the thread-safe wakeup (a deque plus one
byte on a socketpair) and opt-in signal handling. Must not know HTTP. Tests:
tests/loop/test_selector_loop.py.

Callbacks run only from ``run_once``: I/O callbacks for the fds the selector reported, then the
callbacks queued before the pass or by those I/O callbacks, then the timers that are due
(queued behind them, as in asyncio); what any of these queue waits for the next pass. A
callback that raises is logged with its traceback and the loop goes on. ``time`` is the clock
itself, bound on the instance.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import select
import selectors
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ..errors import LoopClosedError
from .futures import Future, Task
from .handles import FdEntry, Handle, TimerHandle, TimerHeapMixin, fileno_of

__all__ = ["MAXIMUM_SELECT_TIMEOUT", "SelectorLoop", "epoll_internals"]

T = TypeVar("T")
log = logging.getLogger("reactor.loop")

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
# epoll masks that wake a reader (anything but "writable only") and a writer.
_NOT_EPOLLOUT = ~getattr(select, "EPOLLOUT", 4)
_NOT_EPOLLIN = ~getattr(select, "EPOLLIN", 1)
# The longest poll: epoll and poll take the timeout in milliseconds in a C int (about 24.8
# days), so a timer further away would raise OverflowError. Waking once a day early costs
# nothing: run_once then computes the wait again. The same cap as asyncio's base_events.
MAXIMUM_SELECT_TIMEOUT = 24 * 3600


def epoll_internals(selector: selectors.BaseSelector) -> tuple[Any, dict[int, Any] | None]:
    """The epoll object of a stdlib ``selectors.EpollSelector`` and its map of fd to key, both
    private attributes of that class (None, None for any other selector, a subclass included):
    the one place that reads them."""
    if type(selector) is not getattr(selectors, "EpollSelector", None):
        return None, None
    epoll = getattr(selector, "_selector", None)
    fd_to_key = getattr(selector, "_fd_to_key", None)
    if epoll is None or not isinstance(fd_to_key, dict):
        return None, None
    return epoll, fd_to_key


class SelectorLoop(TimerHeapMixin):
    """The native loop on ``selectors.DefaultSelector`` (epoll on Linux).

    ``clock`` is the time source (``time.monotonic`` by default); tests inject a fake one so
    that timeouts are tested without sleeping.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        selector: selectors.BaseSelector | None = None,
    ) -> None:
        self._clock = clock
        # time() is the clock itself, bound on the instance: the connection reads it once per
        # request, and a call of the clock costs less than a method that calls it. The method
        # below stays for the class's interface and documents it.
        self.time = clock  # type: ignore[method-assign]
        self._selector = selector if selector is not None else selectors.DefaultSelector()
        # On epoll, run_once polls the selector's epoll object itself.
        epoll, fd_to_key = epoll_internals(self._selector)
        self._epoll: Any = epoll
        self._fd_to_key: Any = fd_to_key
        self._ready: deque[Handle] = deque()
        self._timers: list[TimerHandle] = []
        self._timer_seq = 0
        self._cancelled_timers = 0
        self._stopping = False
        self._running = False
        self._closed = False
        self._thread_id: int | None = None
        self._signals: dict[int, Any] = {}
        # The waker: call_soon_threadsafe and signal handlers write one byte here so that a
        # select() in progress returns. Both ends non-blocking: a full pipe means a wakeup is
        # already pending, which is all we need.
        self._waker_r, self._waker_w = socket.socketpair()
        self._waker_r.setblocking(False)
        self._waker_w.setblocking(False)
        self._selector.register(self._waker_r.fileno(), _READ, None)

    # -- time ---------------------------------------------------------------------------

    def time(self) -> float:
        """The loop's clock (monotonic seconds, or the injected clock)."""
        return self._clock()

    # -- readers and writers --------------------------------------------------------------

    def add_reader(self, fd: Any, callback: Callable[..., object], *args: Any) -> None:
        """Call ``callback(*args)`` whenever ``fd`` is readable. One reader per fd."""
        if self._closed:
            raise LoopClosedError("the loop is closed")
        fileno = fileno_of(fd)
        key = self._key(fileno)
        if key is None:
            entry = FdEntry()
            entry.reader = callback
            entry.reader_args = args
            self._selector.register(fileno, _READ, entry)
            return
        entry = key.data
        if entry is None:
            raise ValueError(f"fd {fileno} is the loop's own waker")
        if entry.reader is not None:
            raise RuntimeError(
                f"fd {fileno} already has a reader ({entry.reader!r}); remove it first"
            )
        entry.reader = callback
        entry.reader_args = args
        self._selector.modify(fileno, key.events | _READ, entry)

    def remove_reader(self, fd: Any) -> bool:
        """Stop watching ``fd`` for reading. Returns whether a reader was registered."""
        if self._closed:
            return False
        fileno = fileno_of(fd)
        key = self._key(fileno)
        if key is None:
            return False
        entry = key.data
        if entry is None or entry.reader is None:
            return False
        entry.reader = None
        entry.reader_args = ()
        if entry.writer is None:
            self._selector.unregister(fileno)
        else:
            self._selector.modify(fileno, _WRITE, entry)
        return True

    def add_writer(self, fd: Any, callback: Callable[..., object], *args: Any) -> None:
        """Call ``callback(*args)`` whenever ``fd`` is writable. One writer per fd."""
        if self._closed:
            raise LoopClosedError("the loop is closed")
        fileno = fileno_of(fd)
        key = self._key(fileno)
        if key is None:
            entry = FdEntry()
            entry.writer = callback
            entry.writer_args = args
            self._selector.register(fileno, _WRITE, entry)
            return
        entry = key.data
        if entry is None:
            raise ValueError(f"fd {fileno} is the loop's own waker")
        if entry.writer is not None:
            raise RuntimeError(
                f"fd {fileno} already has a writer ({entry.writer!r}); remove it first"
            )
        entry.writer = callback
        entry.writer_args = args
        self._selector.modify(fileno, key.events | _WRITE, entry)

    def remove_writer(self, fd: Any) -> bool:
        """Stop watching ``fd`` for writing. Returns whether a writer was registered."""
        if self._closed:
            return False
        fileno = fileno_of(fd)
        key = self._key(fileno)
        if key is None:
            return False
        entry = key.data
        if entry is None or entry.writer is None:
            return False
        entry.writer = None
        entry.writer_args = ()
        if entry.reader is None:
            self._selector.unregister(fileno)
        else:
            self._selector.modify(fileno, _READ, entry)
        return True

    def remove_fd(self, fd: Any) -> None:
        """Drop every registration of ``fd`` (call before closing it: epoll forgets a closed
        fd only when every duplicate of it is closed, so unregister first)."""
        if self._closed:
            return
        fileno = fileno_of(fd)
        key = self._key(fileno)
        if key is None:
            return
        entry = key.data
        if entry is None:  # the loop's own waker is not the caller's to remove
            return
        self._selector.unregister(fileno)
        entry.reader = entry.writer = None
        entry.reader_args = entry.writer_args = ()

    def _key(self, fileno: int) -> Any:
        """The selector's key of ``fileno``, or None if it is not registered (a closed
        socket's -1 included). On epoll, a look-up in the selector's own map: its get_key()
        goes through four Python calls and raises KeyError for every new fd."""
        fd_to_key = self._fd_to_key
        if fd_to_key is not None:
            return fd_to_key.get(fileno)
        if fileno < 0:
            return None
        return self._selector.get_map().get(fileno)

    def registrations(self) -> dict[int, FdEntry | None]:
        """Every fd the loop watches, by number, with its entry (the waker's is None)."""
        if self._closed:
            return {}
        return {key.fd: key.data for key in self._selector.get_map().values()}

    def registered_fds(self) -> int:
        """How many fds (not counting the waker) the loop watches."""
        if self._closed:
            return 0
        return len(self._selector.get_map()) - 1

    # -- callbacks and timers ---------------------------------------------------------------

    def call_soon(self, callback: Callable[..., object], *args: Any) -> Handle:
        """Run ``callback(*args)`` on the next pass, after the callbacks already queued."""
        handle = Handle(callback, args)
        self._ready.append(handle)
        return handle

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> Handle:
        """The only entry that other threads may use: queue a callback and wake the loop."""
        if self._closed:
            raise LoopClosedError("the loop is closed")
        handle = Handle(callback, args)
        self._ready.append(handle)  # deque.append is atomic
        self._wake()
        return handle

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` ``delay`` seconds from now."""
        return self.call_at(self._clock() + delay, callback, *args)

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` at loop time ``when``."""
        # TimerHeapMixin._push_timer inline: the connection arms its timer here.
        seq = self._timer_seq = self._timer_seq + 1
        timer = TimerHandle(when, seq, callback, args, self)
        heapq.heappush(self._timers, timer)
        return timer

    def next_deadline(self) -> float | None:
        """Loop time of the earliest armed timer (now, if callbacks are ready), else None.
        A host that drives the loop with ``run_once`` sleeps until then."""
        if self._ready:
            return self._clock()
        timers = self._timers
        while timers and timers[0].callback is None:
            heapq.heappop(timers)
            self._cancelled_timers -= 1
        return timers[0].when if timers else None

    # -- futures and tasks -----------------------------------------------------------------

    def create_future(self) -> Future[Any]:
        return Future(self)

    def spawn(self, coro: Coroutine[Any, Any, T]) -> Task[T]:
        """Run a coroutine as a task on this loop; it starts on the next pass."""
        self._check_closed()
        if not isinstance(coro, Coroutine):
            raise TypeError(f"spawn() needs a coroutine, got {coro!r}")
        return Task(self, coro)

    # -- signals ---------------------------------------------------------------------------

    def add_signal_handler(self, sig: int, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop when ``sig`` arrives. Opt-in; main thread only.

        The Python-level handler only queues the callback and writes the waker, so select()
        returns at once (PEP 475 retries select() after EINTR, but runs this handler first).
        """
        self._check_closed()
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("signal handlers can only be installed from the main thread")

        def on_signal(signum: int, frame: object) -> None:
            self._ready.append(Handle(callback, args))
            self._wake()

        previous = signal.signal(sig, on_signal)
        self._signals.setdefault(sig, previous)

    def remove_signal_handler(self, sig: int) -> bool:
        if sig not in self._signals:
            return False
        signal.signal(sig, self._signals.pop(sig))
        return True

    # -- running -------------------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full: a wakeup is pending; closed: nothing to do
            self._waker_w.send(b"\0")

    def _drain_waker(self) -> None:
        try:
            while self._waker_r.recv(4096):
                pass
        except OSError:
            pass

    def run_once(self, timeout: float | None = None) -> None:
        """One pass: wait for I/O at most ``timeout`` seconds (None: until the next timer or
        forever), run the I/O callbacks, the callbacks queued so far, then the due timers.
        One poll waits at most a day (MAXIMUM_SELECT_TIMEOUT); a longer wait returns early,
        having run nothing, as asyncio's does."""
        # The per-request path: every attribute is read once into a local, nothing is built
        # per pass but the poll's own list, and empty timers or an empty ready queue cost one
        # truth test each (the shape of CPython's BaseEventLoop._run_once).
        if self._closed:
            raise LoopClosedError("the loop is closed")
        ready = self._ready
        timers = self._timers
        # stop() needs no check here: from a callback, run() sees it after this pass; from
        # another thread it writes the waker. Checking it would make a host that drives the
        # loop with run_once spin after a stray stop().
        if ready:
            timeout = 0
        else:
            if timers:
                while timers and timers[0].callback is None:
                    heapq.heappop(timers)
                    self._cancelled_timers -= 1
                if timers:
                    wait = timers[0].when - self._clock()
                    if wait < 0.0:
                        wait = 0.0
                    if timeout is None or wait < timeout:
                        timeout = wait
            if timeout is not None and timeout > MAXIMUM_SELECT_TIMEOUT:
                timeout = MAXIMUM_SELECT_TIMEOUT
        epoll = self._epoll
        if epoll is not None:
            # The selector's own epoll object, polled directly: selectors' select() builds a
            # (key, mask) tuple per event and converts masks in Python, which showed in
            # profiles of the per-request path. Registrations still go through the selector,
            # whose fd map gives each event its entry. Masks as in selectors.EpollSelector: an
            # error or hang-up (EPOLLERR, EPOLLHUP) wakes both the reader and the writer.
            fd_to_key = self._fd_to_key
            try:
                events = epoll.poll(-1 if timeout is None else timeout, len(fd_to_key) or 1)
            except InterruptedError:
                events = ()
            for fd, mask in events:
                try:
                    entry = fd_to_key[fd].data
                except KeyError:  # unregistered by an earlier callback of this pass
                    continue
                if entry is None:
                    self._drain_waker()
                    continue
                # Read the callbacks at dispatch time: an earlier callback in this pass may
                # have removed them (and the fd may even be closed); a removed entry is cleared.
                if mask & _NOT_EPOLLOUT:
                    cb = entry.reader
                    if cb is not None:
                        try:
                            cb(*entry.reader_args)
                        except Exception:
                            log.exception("error in reader callback %r", cb)
                if mask & _NOT_EPOLLIN:
                    cb = entry.writer
                    if cb is not None:
                        try:
                            cb(*entry.writer_args)
                        except Exception:
                            log.exception("error in writer callback %r", cb)
        else:
            self._dispatch_selector(timeout)
        if timers:
            now = self._clock()
            while timers and timers[0].when <= now:
                timer = heapq.heappop(timers)
                if timer.callback is None:
                    self._cancelled_timers -= 1
                    continue
                timer.owner = None
                ready.append(timer)
        if ready:
            popleft = ready.popleft
            for _ in range(len(ready)):
                handle = popleft()
                cb = handle.callback
                if cb is None:
                    continue
                args = handle.args
                handle.callback = handle.args = None
                try:
                    cb(*args)  # type: ignore[misc]
                except Exception:
                    log.exception("error in callback %r", cb)

    def _dispatch_selector(self, timeout: float | None) -> None:
        events = self._selector.select(timeout)
        for key, mask in events:
            entry = key.data
            if entry is None:
                self._drain_waker()
                continue
            # Read the callbacks at dispatch time: an earlier callback in this pass may have
            # removed them (and the fd may even be closed); a removed entry is cleared.
            if mask & _READ:
                cb = entry.reader
                if cb is not None:
                    try:
                        cb(*entry.reader_args)
                    except Exception:
                        log.exception("error in reader callback %r", cb)
            if mask & _WRITE:
                cb = entry.writer
                if cb is not None:
                    try:
                        cb(*entry.writer_args)
                    except Exception:
                        log.exception("error in writer callback %r", cb)

    def run(self) -> None:
        """Run until ``stop()`` is called."""
        self._check_closed()
        if self._running:
            raise RuntimeError("the loop is already running")
        self._running = True
        self._thread_id = threading.get_ident()
        run_once = self.run_once
        try:
            while not self._stopping:
                run_once()
            # Run what stop() left queued, once, so that it takes effect.
            self.run_once(0)
        finally:
            self._stopping = False
            self._running = False
            self._thread_id = None

    def stop(self) -> None:
        """Make ``run()`` return after the current pass. Safe from any thread."""
        self._stopping = True
        self._wake()

    def is_running(self) -> bool:
        return self._running

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Release the selector and the waker. Registered fds are not closed (they are their
        owners'). Idempotent."""
        if self._running:
            raise RuntimeError("cannot close a running loop")
        if self._closed:
            return
        self._closed = True
        for sig in list(self._signals):
            self.remove_signal_handler(sig)
        self._ready.clear()
        for timer in self._timers:
            timer.callback = timer.args = None
        self._timers.clear()
        self._selector.close()
        self._waker_r.close()
        self._waker_w.close()

    def _check_closed(self) -> None:
        if self._closed:
            raise LoopClosedError("the loop is closed")
