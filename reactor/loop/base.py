"""The loop interface: the ``Loop`` protocol every backend implements, and helpers shared by
the code that runs on any backend.

Owns the contract of ../shared/DESIGN.md section 3 as a ``typing.Protocol`` (SelectorLoop and
AsyncioLoop both satisfy it; the server, the connection and the stream are written against it)
and ``take_exception``, which reads a finished task's exception on either backend. Must not
import asyncio. Tests: tests/loop/ (every test taking the ``loop`` fixture runs on each backend).

Futures: ``create_future``, ``spawn`` and ``sleep`` return reactor's own Future/Task on the
native loop and asyncio's on AsyncioLoop. Both have the same methods (``done``, ``cancelled``,
``result``, ``exception``, ``set_result``, ``set_exception``, ``cancel``,
``add_done_callback``, ``remove_done_callback``, ``await``), which is all reactor's code uses,
so they are typed as reactor's.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from .futures import Future, Task
from .handles import Handle, TimerHandle

__all__ = ["Loop", "take_exception"]

T = TypeVar("T")


class Loop(Protocol):
    """What reactor needs from a loop. Callbacks run only inside ``run``/``run_once``, one at a
    time, on the loop's thread; ``call_soon_threadsafe`` and ``stop`` may be called from any
    thread. A callback that raises is logged (logger ``reactor.loop``) and the loop goes on."""

    def time(self) -> float:
        """The loop's clock, in seconds; timers are in this time."""
        ...

    # readers and writers: one reader and one writer per fd.
    def add_reader(self, fd: Any, callback: Callable[..., object], *args: Any) -> None: ...
    def remove_reader(self, fd: Any) -> bool: ...
    def add_writer(self, fd: Any, callback: Callable[..., object], *args: Any) -> None: ...
    def remove_writer(self, fd: Any) -> bool: ...
    def remove_fd(self, fd: Any) -> None: ...
    def registered_fds(self) -> int: ...

    # callbacks and timers
    def call_soon(self, callback: Callable[..., object], *args: Any) -> Handle: ...
    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> Handle: ...
    def call_later(
        self, delay: float, callback: Callable[..., object], *args: Any
    ) -> TimerHandle: ...
    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> TimerHandle: ...
    def pending_timers(self) -> int: ...
    def next_deadline(self) -> float | None: ...

    # futures and tasks
    def create_future(self) -> Future[Any]: ...
    def spawn(self, coro: Coroutine[Any, Any, T]) -> Task[T]: ...
    def sleep(self, delay: float, result: T | None = None) -> Future[T | None]: ...

    # signals (main thread only)
    def add_signal_handler(self, sig: int, callback: Callable[..., object], *args: Any) -> None: ...
    def remove_signal_handler(self, sig: int) -> bool: ...

    # running
    def run_once(self, timeout: float | None = None) -> None: ...
    def run(self) -> None: ...
    def run_until_complete(self, future: Future[T] | Coroutine[Any, Any, T]) -> T: ...
    def stop(self) -> None: ...
    def is_running(self) -> bool: ...
    def is_closed(self) -> bool: ...
    def close(self) -> None: ...


def take_exception(task: Future[Any]) -> BaseException | None:
    """The exception a finished task (or future) raised, None if it returned or was cancelled,
    and the task lets go of it where it can (a reactor Future drops it; an asyncio one marks it
    retrieved, so that nothing logs "exception was never retrieved")."""
    if task.cancelled():
        return None
    if isinstance(task, Future):
        error = task._exception
        task._exception = None
        return error
    return task.exception()
