"""Conformance tests for the loop: callbacks, timers, readers/writers, wakeups, signals, close.

Tests taking the ``loop`` fixture run against every backend; those taking ``selector_loop`` or
``clocked_loop`` check SelectorLoop itself (its timer heap, its injectable clock).
"""

from __future__ import annotations

import gc
import logging
import os
import selectors
import signal
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from reactor.errors import LoopClosedError
from reactor.loop import Loop, SelectorLoop
from reactor.testing import FakeClock


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


class Payload:
    """An argument object whose lifetime a weakref can watch."""


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def run_in_thread(loop: Loop) -> threading.Thread:
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not loop.is_running() and time.monotonic() < deadline:
        time.sleep(0.001)
    assert loop.is_running()
    return thread


# -- call_soon ---------------------------------------------------------------------------------


def test_call_soon_runs_in_order(loop: Loop) -> None:
    seen: list[int] = []
    for i in range(5):
        loop.call_soon(seen.append, i)
    loop.run_once(0)
    assert seen == [0, 1, 2, 3, 4]


def test_call_soon_from_a_callback_runs_on_the_next_pass(loop: Loop) -> None:
    seen: list[str] = []

    def first() -> None:
        seen.append("first")
        loop.call_soon(seen.append, "queued-by-first")

    loop.call_soon(first)
    loop.call_soon(seen.append, "second")
    loop.run_once(0)
    assert seen == ["first", "second"]
    loop.run_once(0)
    assert seen == ["first", "second", "queued-by-first"]


def test_cancelled_call_soon_does_not_run(loop: Loop) -> None:
    seen: list[int] = []
    handle = loop.call_soon(seen.append, 1)
    loop.call_soon(seen.append, 2)
    handle.cancel()
    assert handle.cancelled
    loop.run_once(0)
    assert seen == [2]


# -- timers ------------------------------------------------------------------------------------


def test_timers_fire_in_time_order_and_ties_in_creation_order(
    clocked_loop: Loop, clock: FakeClock
) -> None:
    seen: list[str] = []
    clocked_loop.call_later(0.3, seen.append, "c")
    clocked_loop.call_later(0.1, seen.append, "a1")
    clocked_loop.call_later(0.2, seen.append, "b")
    clocked_loop.call_later(0.1, seen.append, "a2")
    clocked_loop.call_at(clock.now + 0.1, seen.append, "a3")
    clocked_loop.run_once(0)
    assert seen == []
    clock.advance(0.15)
    clocked_loop.run_once(0)
    assert seen == ["a1", "a2", "a3"]
    clock.advance(1)
    clocked_loop.run_once(0)
    assert seen == ["a1", "a2", "a3", "b", "c"]


def test_real_clock_timers_fire_in_order(loop: Loop) -> None:
    seen: list[str] = []
    loop.call_later(0.02, seen.append, "late")
    loop.call_later(0.0, seen.append, "now")
    loop.call_later(0.01, seen.append, "soon")
    loop.call_later(0.03, loop.stop)
    started = time.monotonic()
    loop.run()
    assert seen == ["now", "soon", "late"]
    assert time.monotonic() - started >= 0.03


def test_fake_clock_timers_fire_without_sleeping(clocked_loop: Loop, clock: FakeClock) -> None:
    seen: list[int] = []
    clocked_loop.call_later(3600, seen.append, 1)
    assert clocked_loop.time() == clock.now
    started = time.monotonic()
    clocked_loop.run_once(0)
    assert seen == []
    clock.advance(3599.5)
    clocked_loop.run_once(0)
    assert seen == []
    clock.advance(0.5)
    clocked_loop.run_once(0)
    assert seen == [1]
    assert time.monotonic() - started < 1


def test_time_follows_the_injected_clock_as_it_moves(clocked_loop: Loop, clock: FakeClock) -> None:
    # time() reads the clock on every call (SelectorLoop binds the clock itself as time).
    assert clocked_loop.time() == clock.now
    clock.advance(12.5)
    assert clocked_loop.time() == clock.now
    clock.now = 5.0
    assert clocked_loop.time() == 5.0


def test_time_defaults_to_the_monotonic_clock(selector_loop: SelectorLoop) -> None:
    before = time.monotonic()
    now = selector_loop.time()
    assert before <= now <= time.monotonic()


def test_queued_callbacks_then_due_timers_run_when_no_fd_is_ready() -> None:
    # A pass with no I/O event still runs the callbacks queued before it, then the due timers
    # (appended behind them, as in asyncio's _run_once); what they queue waits a pass.
    clock = FakeClock()
    lp = SelectorLoop(clock=clock)
    try:
        seen: list[str] = []
        lp.call_later(1, lambda: (seen.append("timer"), lp.call_soon(seen.append, "later")))
        lp.call_soon(seen.append, "soon")
        clock.now += 1
        lp.run_once(0)
        assert seen == ["soon", "timer"]
        lp.run_once(0)
        assert seen == ["soon", "timer", "later"]
        assert lp.pending_timers() == 0
    finally:
        lp.close()


def test_run_once_waits_only_until_the_next_fake_timer(
    clocked_loop: Loop, clock: FakeClock
) -> None:
    # The timer is due now by the fake clock: run_once(None) must not block.
    seen: list[int] = []
    clocked_loop.call_at(clock.now - 1, seen.append, 1)
    clocked_loop.run_once()
    assert seen == [1]


def test_cancelled_timer_does_not_fire(clocked_loop: Loop, clock: FakeClock) -> None:
    seen: list[int] = []
    t1 = clocked_loop.call_later(1, seen.append, 1)
    clocked_loop.call_later(1, seen.append, 2)
    t1.cancel()
    t1.cancel()  # idempotent
    clock.advance(2)
    clocked_loop.run_once(0)
    assert seen == [2]
    assert clocked_loop.pending_timers() == 0


def test_timer_cancelled_by_an_earlier_timer_in_the_same_pass(
    clocked_loop: Loop, clock: FakeClock
) -> None:
    seen: list[str] = []
    later = clocked_loop.call_later(2, seen.append, "later")
    clocked_loop.call_later(1, later.cancel)
    clock.advance(5)
    clocked_loop.run_once(0)
    clocked_loop.run_once(0)
    assert seen == []


def test_cancel_drops_callback_and_args_at_once(loop: Loop, no_gc: None) -> None:
    payload = Payload()
    ref = weakref.ref(payload)
    timer = loop.call_later(3600, lambda p: None, payload)
    del payload
    assert ref() is not None
    timer.cancel()
    assert ref() is None
    assert timer.cancelled

    payload = Payload()
    ref = weakref.ref(payload)
    handle = loop.call_soon(lambda p: None, payload)
    del payload
    handle.cancel()
    assert ref() is None


def test_callback_args_are_freed_after_running(loop: Loop, no_gc: None) -> None:
    payload = Payload()
    ref = weakref.ref(payload)
    handle = loop.call_soon(lambda p: None, payload)
    timer = loop.call_later(0, lambda p: None, payload)
    del payload
    loop.run_once(0)
    loop.run_once(0)
    assert ref() is None
    assert handle.cancelled and timer.cancelled  # a handle that ran holds nothing


def test_pending_timers_counts_armed_timers(loop: Loop) -> None:
    assert loop.pending_timers() == 0
    timers = [loop.call_later(3600, lambda: None) for _ in range(10)]
    assert loop.pending_timers() == 10
    for t in timers[:4]:
        t.cancel()
    assert loop.pending_timers() == 6
    loop.call_later(0, lambda: None)
    assert loop.pending_timers() == 7
    loop.run_once(0)
    assert loop.pending_timers() == 6


def test_heap_is_compacted_when_most_timers_are_cancelled(selector_loop: SelectorLoop) -> None:
    timers = [selector_loop.call_later(3600 + i, lambda: None) for i in range(1000)]
    assert len(selector_loop._timers) == 1000
    for t in timers[:900]:
        t.cancel()
    assert len(selector_loop._timers) < 500
    assert selector_loop.pending_timers() == 100
    # The survivors still fire in order.
    assert selector_loop.next_deadline() == timers[900].when
    cancelled_in_heap = sum(1 for t in selector_loop._timers if t.callback is None)
    assert selector_loop._cancelled_timers == cancelled_in_heap


def test_few_cancelled_timers_are_not_compacted(selector_loop: SelectorLoop) -> None:
    timers = [selector_loop.call_later(3600, lambda: None) for _ in range(50)]
    for t in timers[:40]:
        t.cancel()
    # Below the minimum count, cancelled entries stay until they reach the top of the heap.
    assert len(selector_loop._timers) == 50
    assert selector_loop.pending_timers() == 10


def test_compaction_during_an_io_callback_keeps_timers_consistent(
    clocked_loop: Loop, clock: FakeClock, pair: tuple[socket.socket, socket.socket]
) -> None:
    # An I/O callback that cancels most timers compacts the heap in the middle of a pass; the
    # timers due in that pass must still fire once, and the cancelled count stay exact.
    a, b = pair
    fired: list[int] = []
    due = [clocked_loop.call_later(1, fired.append, i) for i in range(10)]
    doomed = [clocked_loop.call_later(3600, fired.append, -1) for _ in range(300)]

    def on_readable() -> None:
        a.recv(100)
        for t in doomed:
            t.cancel()

    clocked_loop.add_reader(a, on_readable)
    b.send(b"x")
    clock.advance(2)
    clocked_loop.run_once(1)
    clocked_loop.run_once(0)
    assert fired == list(range(10))
    assert all(t.cancelled for t in due)
    in_heap = clocked_loop._timers
    assert clocked_loop._cancelled_timers == sum(1 for t in in_heap if t.callback is None)
    assert clocked_loop.pending_timers() == 0
    assert clocked_loop.next_deadline() is None


def test_next_deadline(clocked_loop: Loop, clock: FakeClock) -> None:
    assert clocked_loop.next_deadline() is None
    t1 = clocked_loop.call_later(5, lambda: None)
    clocked_loop.call_later(10, lambda: None)
    assert clocked_loop.next_deadline() == clock.now + 5
    t1.cancel()
    assert clocked_loop.next_deadline() == clock.now + 10
    handle = clocked_loop.call_soon(lambda: None)
    assert clocked_loop.next_deadline() == clock.now  # ready work: due now
    handle.cancel()
    clocked_loop.run_once(0)
    assert clocked_loop.next_deadline() == clock.now + 10


def test_run_once_with_nothing_to_do_returns_after_the_timeout(loop: Loop) -> None:
    started = time.monotonic()
    loop.run_once(0.05)
    elapsed = time.monotonic() - started
    assert 0.04 <= elapsed < 2


def test_run_once_timeout_is_cut_short_by_a_timer(loop: Loop) -> None:
    seen: list[int] = []
    loop.call_later(0.02, seen.append, 1)
    started = time.monotonic()
    while not seen and time.monotonic() - started < 2:
        loop.run_once(5)
    assert seen == [1]
    assert time.monotonic() - started < 2


def test_run_once_does_not_spin_after_stop_outside_run(loop: Loop) -> None:
    # A host that drives the loop with run_once: a stray stop() must not make every later
    # run_once return at once.
    loop.stop()
    loop.run_once(0)  # consumes the wakeup stop() sent
    started = time.monotonic()
    loop.run_once(0.05)
    assert time.monotonic() - started >= 0.04


# A timer further away than about 24.8 days: epoll and poll take the timeout in milliseconds in
# a C int, so a poll timeout computed from it overflowed (issue 10, bug 4).
FAR_AWAY = 3_000_000.0  # seconds, about 35 days (``--idle-timeout 3000000``)


def test_run_once_with_a_timer_weeks_away_does_not_overflow(
    loop: Loop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    seen: list[bytes] = []
    loop.call_later(FAR_AWAY, seen.append, b"timer")
    loop.add_reader(a, lambda: seen.append(a.recv(16)))
    b.send(b"x")
    loop.run_once()  # waits until the next timer: weeks away
    assert seen == [b"x"]
    b.send(b"y")
    loop.run_once(FAR_AWAY)
    assert seen == [b"x", b"y"]
    assert loop.pending_timers() == 1
    loop.remove_fd(a)


SELECTORS = [
    name
    for name in ("EpollSelector", "PollSelector", "SelectSelector", "DefaultSelector")
    if hasattr(selectors, name)
]


@pytest.mark.parametrize("selector_name", SELECTORS)
def test_far_timer_poll_timeout_is_capped_on_every_selector(
    selector_name: str, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    lp = SelectorLoop(selector=getattr(selectors, selector_name)())
    try:
        seen: list[bytes] = []
        lp.call_later(FAR_AWAY, seen.append, b"timer")
        lp.add_reader(a, lambda: seen.append(a.recv(16)))
        b.send(b"x")
        lp.run_once()
        b.send(b"y")
        lp.run_once(FAR_AWAY)
        assert seen == [b"x", b"y"]
        lp.remove_fd(a)
    finally:
        lp.close()


class RecordingSelector(selectors.SelectSelector):
    """Records the timeouts the loop polls with."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float | None] = []

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        self.timeouts.append(timeout)
        return super().select(0)


def test_poll_timeout_is_capped_at_one_day_as_in_asyncio() -> None:
    selector = RecordingSelector()
    lp = SelectorLoop(selector=selector)
    try:
        lp.call_later(FAR_AWAY, lambda: None)
        lp.run_once()
        lp.run_once(FAR_AWAY)
        lp.run_once(0.5)
        assert selector.timeouts == [24 * 3600, 24 * 3600, 0.5]
    finally:
        lp.close()


# -- readers and writers -----------------------------------------------------------------------


def test_reader_fires_when_readable(loop: Loop, pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    got: list[bytes] = []
    loop.add_reader(a, lambda tag: got.append(tag + a.recv(100)), b"r:")
    loop.run_once(0)
    assert got == []
    b.send(b"hello")
    loop.run_once(1)
    assert got == [b"r:hello"]
    assert loop.registered_fds() == 1


def test_reader_accepts_a_raw_fd(loop: Loop, pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    got: list[bytes] = []
    loop.add_reader(a.fileno(), lambda: got.append(a.recv(100)))
    b.send(b"x")
    loop.run_once(1)
    assert got == [b"x"]
    assert loop.remove_reader(a.fileno())


def test_writer_fires_when_writable(loop: Loop, pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    fired: list[int] = []
    loop.add_writer(a, fired.append, 7)
    loop.run_once(1)
    assert fired == [7]


def test_remove_reader_stops_callbacks(
    loop: Loop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    fired: list[int] = []
    loop.add_reader(a, fired.append, 1)
    assert loop.remove_reader(a) is True
    assert loop.remove_reader(a) is False
    b.send(b"x")
    loop.run_once(0.02)
    assert fired == []
    assert loop.registered_fds() == 0


def test_remove_writer_stops_callbacks(
    loop: Loop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = pair
    fired: list[int] = []
    loop.add_writer(a, fired.append, 1)
    assert loop.remove_writer(a) is True
    assert loop.remove_writer(a) is False
    loop.run_once(0.02)
    assert fired == []
    assert loop.registered_fds() == 0


def test_reader_and_writer_on_one_fd_are_independent(
    loop: Loop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    fired: list[str] = []
    loop.add_reader(a, lambda: fired.append("r:" + a.recv(100).decode()))
    loop.add_writer(a, fired.append, "w")
    assert loop.registered_fds() == 1
    b.send(b"1")
    loop.run_once(1)
    assert sorted(fired) == ["r:1", "w"]

    # Removing the writer keeps the reader.
    fired.clear()
    assert loop.remove_writer(a)
    b.send(b"2")
    loop.run_once(1)
    assert fired == ["r:2"]

    # Removing the reader keeps the writer.
    fired.clear()
    loop.add_writer(a, fired.append, "w")
    assert loop.remove_reader(a)
    b.send(b"3")
    loop.run_once(1)
    assert fired == ["w"]
    assert a.recv(100) == b"3"
    assert loop.registered_fds() == 1


def test_second_reader_or_writer_is_refused(
    loop: Loop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    fired: list[str] = []
    loop.add_reader(a, fired.append, "first")
    with pytest.raises(RuntimeError, match="already has a reader"):
        loop.add_reader(a, fired.append, "second")
    loop.add_writer(a, lambda: None)
    with pytest.raises(RuntimeError, match="already has a writer"):
        loop.add_writer(a, lambda: None)
    # The first reader is still the one called.
    b.send(b"x")
    loop.run_once(1)
    assert "first" in fired and "second" not in fired


def test_remove_fd_drops_reader_and_writer(
    loop: Loop, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    fired: list[str] = []
    loop.add_reader(a, fired.append, "r")
    loop.add_writer(a, fired.append, "w")
    loop.remove_fd(a)
    loop.remove_fd(a)  # idempotent
    b.send(b"x")
    loop.run_once(0.02)
    assert fired == []
    assert loop.registered_fds() == 0
    assert loop.remove_reader(a) is False
    assert loop.remove_writer(a) is False
    # The fd can be registered again.
    loop.add_reader(a, fired.append, "again")
    loop.run_once(1)
    assert fired == ["again"]


def test_reader_removed_by_an_earlier_callback_in_the_same_pass_is_not_called(
    loop: Loop,
) -> None:
    pairs = [socket.socketpair() for _ in range(2)]
    try:
        (a1, b1), (a2, b2) = pairs
        fired: list[str] = []

        def make(me: socket.socket, other: socket.socket, name: str) -> Any:
            def cb() -> None:
                fired.append(name)
                loop.remove_fd(other)
                loop.remove_fd(me)

            return cb

        loop.add_reader(a1, make(a1, a2, "1"))
        loop.add_reader(a2, make(a2, a1, "2"))
        b1.send(b"x")
        b2.send(b"x")
        loop.run_once(1)
        assert len(fired) == 1
    finally:
        for s1, s2 in pairs:
            s1.close()
            s2.close()


def test_waker_fd_cannot_be_taken_over(selector_loop: SelectorLoop) -> None:
    waker = selector_loop._waker_r.fileno()
    with pytest.raises(ValueError, match="waker"):
        selector_loop.add_reader(waker, lambda: None)
    with pytest.raises(ValueError, match="waker"):
        selector_loop.add_writer(waker, lambda: None)
    assert selector_loop.remove_reader(waker) is False
    selector_loop.remove_fd(waker)
    # The waker still works: a thread-safe call wakes a blocking run_once.
    seen: list[int] = []
    caller = threading.Timer(0.02, selector_loop.call_soon_threadsafe, (seen.append, 1))
    caller.start()
    started = time.monotonic()
    selector_loop.run_once(5)
    selector_loop.run_once(0)
    caller.join(5)
    assert seen == [1]
    assert time.monotonic() - started < 2


# -- errors in callbacks -----------------------------------------------------------------------


def test_exception_in_callback_is_logged_and_the_loop_goes_on(
    loop: Loop, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def boom() -> None:
        raise ValueError("boom-in-callback")

    loop.call_soon(boom)
    loop.call_soon(seen.append, "after")
    loop.call_later(0, boom)
    with caplog.at_level(logging.ERROR, logger="reactor.loop"):
        loop.run_once(0)
        loop.run_once(0)
    assert seen == ["after"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    for record in errors:
        assert record.exc_info is not None
        assert isinstance(record.exc_info[1], ValueError)
    assert "boom-in-callback" in caplog.text  # the traceback is in the log


def test_exception_in_reader_is_logged_and_the_loop_goes_on(
    loop: Loop, pair: tuple[socket.socket, socket.socket], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = pair
    seen: list[str] = []

    def bad_reader() -> None:
        a.recv(100)
        raise RuntimeError("reader-broke")

    loop.add_reader(a, bad_reader)
    loop.add_writer(a, seen.append, "writer")
    loop.call_soon(seen.append, "soon")
    b.send(b"x")
    with caplog.at_level(logging.ERROR, logger="reactor.loop"):
        loop.run_once(1)
    # SelectorLoop runs a pass's I/O callbacks before the callbacks queued before it; asyncio
    # runs those queued callbacks first (documented in reactor/loop/asyncio_loop.py).
    if isinstance(loop, SelectorLoop):
        assert seen == ["writer", "soon"]
    else:
        assert seen == ["soon", "writer"]
    assert "reader-broke" in caplog.text
    assert caplog.records[0].exc_info is not None


# -- run, stop, threads ------------------------------------------------------------------------


def test_stop_from_a_callback_ends_run(loop: Loop) -> None:
    seen: list[int] = []
    loop.call_soon(seen.append, 1)
    loop.call_soon(loop.stop)
    loop.run()
    assert seen == [1]
    assert not loop.is_running()
    # run() can be called again.
    loop.call_soon(loop.stop)
    loop.run()


def test_run_is_not_reentrant(loop: Loop) -> None:
    errors: list[BaseException] = []

    def nested() -> None:
        try:
            loop.run()
        except RuntimeError as exc:
            errors.append(exc)
        loop.stop()

    loop.call_soon(nested)
    loop.run()
    assert len(errors) == 1


def test_call_soon_threadsafe_wakes_a_blocked_run(loop: Loop) -> None:
    seen: list[str] = []
    done = threading.Event()

    def on_loop() -> None:
        seen.append(threading.current_thread().name)
        done.set()

    thread = run_in_thread(loop)
    try:
        time.sleep(0.05)  # let the loop block in select()
        started = time.monotonic()
        loop.call_soon_threadsafe(on_loop)
        assert done.wait(5)
        assert time.monotonic() - started < 2
        assert seen == [thread.name]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    assert not thread.is_alive()


def test_stop_from_another_thread(loop: Loop) -> None:
    thread = run_in_thread(loop)
    time.sleep(0.05)
    started = time.monotonic()
    loop.stop()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 2
    assert not loop.is_running()


def test_many_threadsafe_calls_all_run(loop: Loop) -> None:
    count = [0]
    n = 2000

    def bump() -> None:
        count[0] += 1
        if count[0] == n:
            loop.stop()

    thread = run_in_thread(loop)
    workers = [
        threading.Thread(target=lambda: [loop.call_soon_threadsafe(bump) for _ in range(n // 4)])
        for _ in range(4)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(5)
    thread.join(5)
    assert not thread.is_alive()
    assert count[0] == n


def test_fake_clock_advance_wakes_a_blocked_run(clocked_loop: Loop, clock: FakeClock) -> None:
    fired = threading.Event()
    clocked_loop.call_later(600, fired.set)
    thread = run_in_thread(clocked_loop)
    try:
        time.sleep(0.05)
        assert not fired.is_set()
        clock.advance(600)
        assert fired.wait(5)
    finally:
        clocked_loop.stop()
        thread.join(5)
    assert not thread.is_alive()


# -- signals -----------------------------------------------------------------------------------


def test_signal_handler_runs_on_the_loop_and_remove_restores(loop: Loop) -> None:
    def previous_handler(signum: int, frame: object) -> None:
        raise AssertionError("previous handler must not run while the loop's is installed")

    original = signal.signal(signal.SIGUSR1, previous_handler)
    try:
        got: list[tuple[str, str]] = []
        in_handler: list[bool] = []

        def on_usr1(tag: str) -> None:
            got.append((tag, threading.current_thread().name))
            in_handler.append(loop.is_running())
            loop.stop()

        loop.add_signal_handler(signal.SIGUSR1, on_usr1, "usr1")
        assert signal.getsignal(signal.SIGUSR1) is not previous_handler
        loop.call_later(0.02, os.kill, os.getpid(), signal.SIGUSR1)
        watchdog = loop.call_later(5, loop.stop)
        loop.run()
        watchdog.cancel()
        assert got == [("usr1", threading.current_thread().name)]
        assert in_handler == [True]  # it ran from the loop, not inside the OS handler

        assert loop.remove_signal_handler(signal.SIGUSR1) is True
        assert loop.remove_signal_handler(signal.SIGUSR1) is False
        assert signal.getsignal(signal.SIGUSR1) is previous_handler
    finally:
        signal.signal(signal.SIGUSR1, original)


def test_signal_wakes_a_loop_blocked_in_select(loop: Loop) -> None:
    original = signal.getsignal(signal.SIGUSR2)
    got: list[int] = []
    try:
        loop.add_signal_handler(signal.SIGUSR2, got.append, 2)
        killer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR2))
        killer.start()
        started = time.monotonic()
        while not got and time.monotonic() - started < 5:
            loop.run_once(10)
        killer.join()
        assert got == [2]
        assert time.monotonic() - started < 5
    finally:
        loop.remove_signal_handler(signal.SIGUSR2)
        assert signal.getsignal(signal.SIGUSR2) == original


def test_re_adding_a_signal_handler_still_restores_the_original(loop: Loop) -> None:
    original = signal.getsignal(signal.SIGUSR1)
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    loop.add_signal_handler(signal.SIGUSR1, lambda: None)
    loop.remove_signal_handler(signal.SIGUSR1)
    assert signal.getsignal(signal.SIGUSR1) == original


def test_close_removes_signal_handlers() -> None:
    original = signal.getsignal(signal.SIGUSR1)
    lp = SelectorLoop()
    lp.add_signal_handler(signal.SIGUSR1, lambda: None)
    assert signal.getsignal(signal.SIGUSR1) != original
    lp.close()
    assert signal.getsignal(signal.SIGUSR1) == original


def test_signal_handler_only_from_the_main_thread(loop: Loop) -> None:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            loop.add_signal_handler(signal.SIGUSR1, lambda: None)
        except RuntimeError as exc:
            errors.append(exc)

    t = threading.Thread(target=target)
    t.start()
    t.join(5)
    assert len(errors) == 1


# -- close -------------------------------------------------------------------------------------


def test_close_is_idempotent_and_running_after_close_raises(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, _ = pair
    lp = SelectorLoop()
    lp.add_reader(a, lambda: None)
    lp.call_later(10, lambda: None)
    assert not lp.is_closed()
    lp.close()
    lp.close()
    assert lp.is_closed()
    assert lp.registered_fds() == 0
    assert lp.pending_timers() == 0
    with pytest.raises(LoopClosedError):
        lp.run()
    with pytest.raises(LoopClosedError):
        lp.run_once(0)
    with pytest.raises(LoopClosedError):
        lp.add_reader(a, lambda: None)
    with pytest.raises(LoopClosedError):
        lp.add_writer(a, lambda: None)
    with pytest.raises(LoopClosedError):
        lp.call_soon_threadsafe(lambda: None)
    # Removing after close is harmless: owners tear down in any order.
    assert lp.remove_reader(a) is False
    assert lp.remove_writer(a) is False
    lp.remove_fd(a)
    # The socket was not closed by the loop.
    assert a.fileno() != -1


def test_close_frees_queued_callbacks_and_timers(no_gc: None) -> None:
    lp = SelectorLoop()
    payload = Payload()
    ref = weakref.ref(payload)
    lp.call_soon(lambda p: None, payload)
    lp.call_later(10, lambda p: None, payload)
    del payload
    lp.close()
    assert ref() is None


def test_close_while_running_is_refused(loop: Loop) -> None:
    errors: list[BaseException] = []

    def try_close() -> None:
        try:
            loop.close()
        except RuntimeError as exc:
            errors.append(exc)
        loop.stop()

    loop.call_soon(try_close)
    loop.run()
    assert len(errors) == 1
    assert not loop.is_closed()
