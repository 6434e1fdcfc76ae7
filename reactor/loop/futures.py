"""A minimal Future and Task so ``async def`` code runs on the native loop.

Owns Future (a result that arrives later, awaited with ``await``) and Task (drives one
coroutine, stepping it when the future it awaits is done). Only reactor futures may be awaited
here: awaiting anything else (an asyncio future, ``asyncio.sleep``) raises a TypeError that
names the object. Tests: tests/loop/test_futures.py.

As on asyncio, whichever backend runs them: a cancellation raises ``asyncio.CancelledError``
(reactor's CancelledError is that class), and each task runs in a context of its own, a copy of
the one it was spawned in (``contextvars.copy_context()`` once per task; each step of the task
runs in it, as asyncio's Task does; plain ``call_soon`` callbacks do not pay for a context).
asyncio is imported on the first cancellation, not before, so that ``import reactor`` does not
import it.

No reference cycles survive a finished task: a done future drops its callbacks, an exception
stored on a task has the task's own frame cut from its traceback, and a finished task drops its
context (what the coroutine set in it may refer to the task).
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Generic, Protocol, TypeVar


class CallSoon(Protocol):
    """What a Future needs of its loop (SelectorLoop is one): to run callbacks soon."""

    def call_soon(self, callback: Callable[..., object], *args: Any) -> object: ...


__all__ = ["Future", "InvalidStateError", "Task", "is_cancellation", "new_cancelled_error"]

T = TypeVar("T")
log = logging.getLogger("reactor.loop")

_PENDING = 0
_DONE = 1
_CANCELLED = 2


def new_cancelled_error() -> BaseException:
    """A new ``asyncio.CancelledError``: reactor's cancellation is asyncio's, so that the same
    ``except`` clause catches it on every backend. asyncio is imported here, on the first
    cancellation, rather than with reactor."""
    from asyncio import CancelledError

    return CancelledError()


def is_cancellation(error: BaseException) -> bool:
    """Whether ``error`` is an ``asyncio.CancelledError``. Without importing asyncio: none can
    exist before the module that defines the class is loaded."""
    exceptions = sys.modules.get("asyncio.exceptions")
    return exceptions is not None and isinstance(error, exceptions.CancelledError)


class InvalidStateError(Exception):
    """The future is not in a state that allows the call (result not ready, already done)."""


class Future(Generic[T]):
    """A result that arrives later. Callbacks run through the loop's ``call_soon``."""

    __slots__ = ("__weakref__", "_callbacks", "_exception", "_loop", "_result", "_state")

    def __init__(self, loop: CallSoon) -> None:
        self._loop = loop
        self._state = _PENDING
        self._result: T | None = None
        self._exception: BaseException | None = None
        self._callbacks: list[Callable[[Future[T]], object]] | None = None

    def done(self) -> bool:
        return self._state != _PENDING

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def result(self) -> T:
        if self._state == _CANCELLED:
            raise new_cancelled_error()
        if self._state == _PENDING:
            raise InvalidStateError("result is not ready")
        exc = self._exception
        if exc is not None:
            # Raise with no local holding the future (or the exception): the traceback keeps
            # this frame, and future -> exception -> traceback -> frame -> future is a cycle.
            del self
            try:
                raise exc
            finally:
                del exc
        return self._result  # type: ignore[return-value]

    def exception(self) -> BaseException | None:
        if self._state == _CANCELLED:
            raise new_cancelled_error()
        if self._state == _PENDING:
            raise InvalidStateError("exception is not set")
        return self._exception

    def take_exception(self) -> BaseException | None:
        """The exception of a done future (None if it has none), which the future then forgets,
        so that the exception's traceback no longer keeps frames alive through it. reactor's
        own; ``reactor.loop.take_exception`` does this for asyncio futures too."""
        if self._state == _PENDING:
            raise InvalidStateError("exception is not set")
        exc = self._exception
        self._exception = None
        return exc

    def add_done_callback(self, callback: Callable[[Future[T]], object]) -> None:
        if self._state != _PENDING:
            self._loop.call_soon(callback, self)
        elif self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    def remove_done_callback(self, callback: Callable[[Future[T]], object]) -> int:
        if not self._callbacks:
            return 0
        before = len(self._callbacks)
        self._callbacks = [cb for cb in self._callbacks if cb != callback]
        return before - len(self._callbacks)

    def set_result(self, result: T) -> None:
        if self._state != _PENDING:
            raise InvalidStateError("future is already done")
        self._result = result
        self._state = _DONE
        self._schedule_callbacks()

    def set_exception(self, exception: BaseException) -> None:
        if self._state != _PENDING:
            raise InvalidStateError("future is already done")
        self._exception = exception
        self._state = _DONE
        self._schedule_callbacks()

    def cancel(self) -> bool:
        if self._state != _PENDING:
            return False
        self._state = _CANCELLED
        self._schedule_callbacks()
        return True

    def _schedule_callbacks(self) -> None:
        callbacks = self._callbacks
        self._callbacks = None
        if callbacks:
            call_soon = self._loop.call_soon
            for cb in callbacks:
                call_soon(cb, self)

    def __await__(self) -> Generator[Any, None, T]:
        if self._state == _PENDING:
            yield self
        exc = self._exception
        if exc is not None:
            # As in result(): the awaiting task resumes this generator with send(None) rather
            # than throwing the exception in at the yield, so that it is raised here, after
            # this frame let go of the future.
            del self
            try:
                raise exc
            finally:
                del exc
        return self.result()

    __iter__ = __await__

    def __repr__(self) -> str:
        state = ("pending", "done", "cancelled")[self._state]
        return f"<Future {state}>"


class Task(Future[T]):
    """Runs one coroutine on the loop; done when the coroutine returns or raises.

    Each step runs in the task's own context, copied from the one current at creation."""

    __slots__ = ("_context", "_coro", "_must_cancel", "_waiting_on")

    def __init__(self, loop: CallSoon, coro: Coroutine[Any, Any, T]) -> None:
        super().__init__(loop)
        self._coro: Coroutine[Any, Any, T] | None = coro
        self._waiting_on: Future[Any] | None = None
        self._must_cancel = False
        context = contextvars.copy_context()
        self._context: contextvars.Context | None = context
        loop.call_soon(context.run, self._step, None)

    def cancel(self) -> bool:
        if self._state != _PENDING:
            return False
        waiting = self._waiting_on
        if waiting is not None and waiting.cancel():
            return True
        self._must_cancel = True
        return True

    def _step(self, exc: BaseException | None) -> None:
        """One step of the coroutine. Runs in the task's context (``context.run``)."""
        coro = self._coro
        if coro is None or self._state != _PENDING:
            return
        if self._must_cancel:
            self._must_cancel = False
            exc = new_cancelled_error()
        self._waiting_on = None
        try:
            yielded = coro.send(None) if exc is None else coro.throw(exc)
        except StopIteration as stop:
            self._coro = self._context = None
            super().set_result(stop.value)
        except BaseException as error:  # the task owns the coroutine's failure
            self._coro = self._context = None
            if is_cancellation(error):
                super().cancel()
                return
            # Cut this frame out of the traceback: it holds ``self`` and would make a cycle
            # task -> exception -> traceback -> frame -> task. No local may hold that
            # traceback either: frame -> local -> traceback -> frame is a cycle too.
            if error.__traceback__ is not None:
                error.__traceback__ = error.__traceback__.tb_next
            super().set_exception(error)
            if not isinstance(error, Exception):
                raise
        else:
            if isinstance(yielded, Future):
                self._waiting_on = yielded
                yielded.add_done_callback(self._wakeup)
            else:
                foreign = TypeError(_foreign_await_message(coro, yielded))
                context = self._context
                if context is not None:
                    self._loop.call_soon(context.run, self._step, foreign)
        finally:
            del exc

    def _wakeup(self, future: Future[Any]) -> None:
        # Resume, never throw: Future.__await__ raises the future's exception (or
        # CancelledError) itself, without its frame holding the future.
        context = self._context
        if context is not None:
            context.run(self._step, None)

    def __repr__(self) -> str:
        state = ("pending", "done", "cancelled")[self._state]
        return f"<Task {state} {self._coro!r}>"


def _foreign_await_message(coro: Coroutine[Any, Any, Any], yielded: object) -> str:
    """Name what the coroutine awaited: the chain of awaitables down to the one that yielded
    ``yielded`` (``asyncio.sleep(0)`` yields a bare None from inside its own coroutine)."""
    chain: list[str] = []
    obj = getattr(coro, "cr_await", None)
    while obj is not None and len(chain) < 8:
        chain.append(repr(obj))
        inner = getattr(obj, "cr_await", None)
        obj = inner if inner is not None else getattr(obj, "gi_yieldfrom", None)
    awaited = " -> ".join(chain) if chain else "something"
    return (
        f"a coroutine on reactor's native loop awaited {awaited}, which yielded {yielded!r}, "
        "not a reactor Future; await loop.sleep()/loop.create_future() results here, or run "
        "on the asyncio backend to await asyncio objects"
    )
