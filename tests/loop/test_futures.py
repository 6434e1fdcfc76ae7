"""Conformance tests for the loop's futures and tasks: results, exceptions, cancellation,
done callbacks, tasks driving coroutines, foreign awaitables, and no reference cycles."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import reactor
import reactor.loop
from reactor.loop import Future, Loop, SelectorLoop, Task
from reactor.testing import FakeClock

from .conftest import Kinds, kinds_of


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def run_until(loop: Loop, fut: Future[Any], passes: int = 50) -> None:
    for _ in range(passes):
        if fut.done():
            return
        loop.run_once(0)
    assert fut.done()


# -- Future ------------------------------------------------------------------------------------


def test_future_result(loop: Loop, kinds: Kinds) -> None:
    fut = loop.create_future()
    assert not fut.done() and not fut.cancelled()
    with pytest.raises(kinds.invalid_state):
        fut.result()
    with pytest.raises(kinds.invalid_state):
        fut.exception()
    fut.set_result(42)
    assert fut.done() and not fut.cancelled()
    assert fut.result() == 42
    assert fut.exception() is None
    with pytest.raises(kinds.invalid_state):
        fut.set_result(1)
    with pytest.raises(kinds.invalid_state):
        fut.set_exception(ValueError())
    assert fut.cancel() is False
    assert fut.result() == 42


def test_future_exception(loop: Loop) -> None:
    fut = loop.create_future()
    error = ValueError("nope")
    fut.set_exception(error)
    assert fut.done()
    assert fut.exception() is error
    with pytest.raises(ValueError, match="nope"):
        fut.result()


def test_future_cancel(loop: Loop, kinds: Kinds) -> None:
    fut = loop.create_future()
    assert fut.cancel() is True
    assert fut.cancelled() and fut.done()
    assert fut.cancel() is False
    with pytest.raises(kinds.cancelled):
        fut.result()
    with pytest.raises(kinds.cancelled):
        fut.exception()
    with pytest.raises(kinds.invalid_state):
        fut.set_result(1)


def test_done_callbacks_run_on_the_loop_in_order(loop: Loop) -> None:
    fut = loop.create_future()
    seen: list[tuple[str, Any]] = []
    fut.add_done_callback(lambda f: seen.append(("a", f.result())))
    fut.add_done_callback(lambda f: seen.append(("b", f.result())))
    fut.set_result("x")
    assert seen == []  # not called synchronously
    loop.run_once(0)
    assert seen == [("a", "x"), ("b", "x")]
    # Added after done: scheduled at once.
    fut.add_done_callback(lambda f: seen.append(("late", f.result())))
    loop.run_once(0)
    assert seen[-1] == ("late", "x")


def test_done_callbacks_on_cancel_and_exception(loop: Loop) -> None:
    cancelled = loop.create_future()
    failed = loop.create_future()
    seen: list[str] = []
    cancelled.add_done_callback(lambda f: seen.append(f"cancelled={f.cancelled()}"))
    failed.add_done_callback(lambda f: seen.append(f"exc={f.exception()!r}"))
    cancelled.cancel()
    failed.set_exception(KeyError("k"))
    loop.run_once(0)
    assert seen == ["cancelled=True", "exc=KeyError('k')"]


def test_remove_done_callback(loop: Loop) -> None:
    fut = loop.create_future()
    seen: list[str] = []

    def cb(f: Future[Any]) -> None:
        seen.append("cb")

    fut.add_done_callback(cb)
    fut.add_done_callback(cb)
    fut.add_done_callback(lambda f: seen.append("other"))
    assert fut.remove_done_callback(cb) == 2
    assert fut.remove_done_callback(cb) == 0
    fut.set_result(None)
    loop.run_once(0)
    assert seen == ["other"]


def test_a_done_future_drops_its_callbacks(loop: Loop, no_gc: None) -> None:
    class Holder:
        def cb(self, f: Future[Any]) -> None:
            pass

    holder = Holder()
    ref = weakref.ref(holder)
    fut = loop.create_future()
    fut.add_done_callback(holder.cb)
    del holder
    fut.set_result(1)
    loop.run_once(0)
    assert ref() is None


# -- Task --------------------------------------------------------------------------------------


def test_task_runs_a_coroutine_awaiting_sleep_and_futures(
    clocked_loop: Loop, clock: FakeClock
) -> None:
    loop = clocked_loop
    steps: list[str] = []
    fut = loop.create_future()

    async def main() -> str:
        steps.append("start")
        slept = await loop.sleep(10, "rested")
        steps.append(f"slept:{slept}")
        value = await fut
        steps.append(f"fut:{value}")
        return "done"

    task = loop.spawn(main())
    assert isinstance(task, kinds_of(loop).task)
    assert steps == []  # starts on the next pass
    loop.run_once(0)
    assert steps == ["start"]
    loop.run_once(0)
    assert steps == ["start"]
    clock.advance(10)
    loop.run_once(0)
    loop.run_once(0)
    assert steps == ["start", "slept:rested"]
    fut.set_result(7)
    run_until(loop, task)
    assert steps == ["start", "slept:rested", "fut:7"]
    assert task.result() == "done"


def test_task_awaits_another_task(loop: Loop) -> None:
    async def child() -> int:
        await loop.sleep(0)
        return 5

    async def parent() -> int:
        return await loop.spawn(child()) * 2

    assert loop.run_until_complete(parent()) == 10


def test_task_exception_propagates(loop: Loop) -> None:
    async def fails() -> None:
        await loop.sleep(0)
        raise ValueError("from-task")

    task = loop.spawn(fails())
    run_until(loop, task)
    assert isinstance(task.exception(), ValueError)
    with pytest.raises(ValueError, match="from-task"):
        task.result()


def test_future_exception_is_raised_inside_the_coroutine(loop: Loop) -> None:
    fut = loop.create_future()
    caught: list[BaseException] = []

    async def waits() -> str:
        try:
            await fut
        except KeyError as exc:
            caught.append(exc)
            return "handled"
        return "not reached"

    task = loop.spawn(waits())
    loop.run_once(0)
    fut.set_exception(KeyError("inner"))
    run_until(loop, task)
    assert task.result() == "handled"
    assert len(caught) == 1 and caught[0].args == ("inner",)


def test_cancelling_a_task_waiting_on_a_future_raises_inside_the_coroutine(
    loop: Loop,
    kinds: Kinds,
) -> None:
    fut = loop.create_future()
    seen: list[str] = []

    async def waits() -> None:
        try:
            await fut
        except kinds.cancelled:
            seen.append("cancelled inside")
            raise

    task = loop.spawn(waits())
    loop.run_once(0)
    assert task.cancel() is True
    run_until(loop, task)
    assert seen == ["cancelled inside"]
    assert task.cancelled()
    assert fut.cancelled()
    with pytest.raises(kinds.cancelled):
        task.result()
    assert task.cancel() is False


def test_cancelled_task_may_catch_and_return(loop: Loop, kinds: Kinds) -> None:
    async def stubborn() -> str:
        try:
            await loop.sleep(3600)
        except kinds.cancelled:
            return "cleaned up"
        return "slept"

    task = loop.spawn(stubborn())
    loop.run_once(0)
    task.cancel()
    run_until(loop, task)
    assert not task.cancelled()
    assert task.result() == "cleaned up"


def test_cancellation_is_asyncio_cancelled_error_on_every_backend(loop: Loop) -> None:
    # Which ``except`` clause catches a cancellation must not depend on --loop: reactor's
    # CancelledError is asyncio's (issue 10, bug 5).
    assert reactor.CancelledError is asyncio.CancelledError
    assert reactor.loop.CancelledError is asyncio.CancelledError
    caught: list[tuple[str, type[BaseException]]] = []

    async def as_asyncio_code_writes_it() -> None:
        try:
            await loop.sleep(3600)
        except asyncio.CancelledError as exc:
            caught.append(("asyncio", type(exc)))
            raise

    async def as_reactor_code_writes_it() -> None:
        try:
            await loop.sleep(3600)
        except reactor.CancelledError as exc:
            caught.append(("reactor", type(exc)))
            raise

    tasks = [loop.spawn(as_asyncio_code_writes_it()), loop.spawn(as_reactor_code_writes_it())]
    loop.run_once(0)
    for task in tasks:
        task.cancel()
    for task in tasks:
        run_until(loop, task)
        assert task.cancelled()
        with pytest.raises(asyncio.CancelledError):
            task.result()
        with pytest.raises(reactor.CancelledError):
            task.exception()
    assert caught == [("asyncio", asyncio.CancelledError), ("reactor", asyncio.CancelledError)]
    fut = loop.create_future()
    fut.cancel()
    with pytest.raises(asyncio.CancelledError):
        fut.result()


REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("REQUEST_ID", default="none")


def in_a_fresh_context(test: Callable[..., None]) -> Callable[..., None]:
    """Run the test in a copy of the current context: a loop that leaks a task's values into
    the context it runs in must fail this test only, not the next one."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        contextvars.copy_context().run(test, *args, **kwargs)

    return wrapper


@in_a_fresh_context
def test_each_task_runs_in_its_own_context_on_every_backend(loop: Loop) -> None:
    # As asyncio's tasks: a task starts in a copy of the context it was spawned in, and what it
    # sets is seen by it alone, across its awaits (issue 10, bug 5).
    seen: list[tuple[str, str]] = []
    first_set = loop.create_future()

    async def first() -> None:
        seen.append(("first starts", REQUEST_ID.get()))
        REQUEST_ID.set("first")
        first_set.set_result(None)
        await loop.sleep(0)
        await loop.sleep(0)
        seen.append(("first after awaits", REQUEST_ID.get()))

    async def second() -> None:
        await first_set
        seen.append(("second after first set", REQUEST_ID.get()))
        REQUEST_ID.set("second")
        await loop.sleep(0)
        seen.append(("second after await", REQUEST_ID.get()))

    token = REQUEST_ID.set("spawner")
    try:
        tasks = [loop.spawn(first()), loop.spawn(second())]
    finally:
        REQUEST_ID.reset(token)
    for task in tasks:
        run_until(loop, task)
        task.result()
    assert REQUEST_ID.get() == "none"
    assert sorted(seen) == sorted(
        [
            ("first starts", "spawner"),
            ("first after awaits", "first"),
            ("second after first set", "spawner"),
            ("second after await", "second"),
        ]
    )


@in_a_fresh_context
def test_a_task_spawned_by_a_task_inherits_a_copy_of_its_context(loop: Loop) -> None:
    seen: list[str] = []

    async def child() -> None:
        seen.append(REQUEST_ID.get())
        REQUEST_ID.set("child")

    async def parent() -> None:
        REQUEST_ID.set("parent")
        await loop.spawn(child())
        seen.append(REQUEST_ID.get())

    run_until(loop, loop.spawn(parent()))
    assert seen == ["parent", "parent"]
    assert REQUEST_ID.get() == "none"


class Payload:
    """A value whose lifetime a weakref can watch."""


PAYLOAD: contextvars.ContextVar[Payload | None] = contextvars.ContextVar("PAYLOAD", default=None)


@in_a_fresh_context
def test_a_finished_native_task_drops_its_context(selector_loop: SelectorLoop, no_gc: None) -> None:
    # What a coroutine set in its context may refer to the task (a request that holds its
    # handler's task): the native task lets go of the context when it finishes.
    refs: list[weakref.ref[Payload]] = []

    async def sets() -> None:
        payload = Payload()
        refs.append(weakref.ref(payload))
        PAYLOAD.set(payload)
        await selector_loop.sleep(0)

    task = selector_loop.spawn(sets())
    run_until(selector_loop, task)
    assert PAYLOAD.get() is None  # it was set in the task's context, not in this one
    assert task.done()
    assert refs[0]() is None  # gone while the task is still referenced


def test_cancelling_a_sleeping_task_disarms_its_timer(loop: Loop) -> None:
    async def sleeper() -> None:
        await loop.sleep(3600)

    task = loop.spawn(sleeper())
    loop.run_once(0)
    assert loop.pending_timers() == 1
    task.cancel()
    run_until(loop, task)
    assert task.cancelled()
    loop.run_once(0)
    assert loop.pending_timers() == 0


def test_cancel_before_the_task_starts(loop: Loop) -> None:
    started: list[bool] = []

    async def never() -> None:
        started.append(True)

    task = loop.spawn(never())
    assert task.cancel() is True
    run_until(loop, task)
    assert task.cancelled()
    assert started == []


def test_cancel_while_the_awaited_future_is_done_but_not_yet_delivered(
    loop: Loop,
    kinds: Kinds,
) -> None:
    fut = loop.create_future()
    seen: list[str] = []

    async def waits() -> None:
        try:
            await fut
        except kinds.cancelled:
            seen.append("cancelled")
            raise
        seen.append("resumed")

    task = loop.spawn(waits())
    loop.run_once(0)
    fut.set_result(1)  # the wakeup is queued, not run
    task.cancel()
    run_until(loop, task)
    assert seen == ["cancelled"]
    assert task.cancelled()


@pytest.mark.parametrize("what", ["future", "sleep0"])
def test_awaiting_an_asyncio_object_raises_type_error_naming_it(
    selector_loop: SelectorLoop, what: str
) -> None:
    # The native loop only: on the asyncio backends these are ordinary awaits.
    loop = selector_loop
    caught: list[TypeError] = []
    aio_loop = asyncio.new_event_loop()
    try:
        aio_future = aio_loop.create_future()

        async def main() -> None:
            try:
                if what == "future":
                    await aio_future
                else:
                    await asyncio.sleep(0)
            except TypeError as exc:
                caught.append(exc)
                raise

        task = loop.spawn(main())
        run_until(loop, task)
    finally:
        aio_loop.close()
    assert isinstance(task.exception(), TypeError)
    assert len(caught) == 1
    message = str(caught[0])
    if what == "future":
        assert repr(aio_future) in message
    else:
        assert "<coroutine object sleep at" in message
        assert "yielded None" in message
    assert "not a reactor Future" in message


def test_spawn_refuses_what_is_not_a_coroutine(loop: Loop) -> None:
    def plain() -> int:
        return 1

    with pytest.raises(TypeError, match="coroutine"):
        loop.spawn(plain())  # type: ignore[arg-type]


def test_run_until_complete(loop: Loop) -> None:
    async def main() -> int:
        await loop.sleep(0.01)
        return 3

    assert loop.run_until_complete(main()) == 3
    assert not loop.is_running()

    fut = loop.create_future()
    loop.call_later(0.01, fut.set_result, "value")
    assert loop.run_until_complete(fut) == "value"

    async def fails() -> None:
        raise OSError("bad")

    with pytest.raises(OSError, match="bad"):
        loop.run_until_complete(fails())


def test_run_until_complete_leaves_no_stop_behind(loop: Loop) -> None:
    # If run() ends early (another stop()), the future must not stop a later run() when it
    # finishes.
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError, match="stopped before"):
        loop.run_until_complete(fut)
    seen: list[str] = []
    loop.call_soon(fut.set_result, 1)
    loop.call_later(0.02, seen.append, "still running")
    loop.call_later(0.03, loop.stop)
    loop.run()
    assert seen == ["still running"]


def test_finished_task_that_raised_leaves_no_cycle(loop: Loop, no_gc: None) -> None:
    async def fails() -> None:
        await loop.sleep(0)
        raise ValueError("cycle?")

    task = loop.spawn(fails())
    run_until(loop, task)
    assert isinstance(task.exception(), ValueError)
    ref = weakref.ref(task)
    del task
    assert ref() is None


def test_task_that_raised_from_an_awaited_future_leaves_no_cycle(loop: Loop, no_gc: None) -> None:
    # The future is awaited inline, as a body read is: the coroutine keeps no local to it.
    futures: list[Future[None]] = [loop.create_future()]

    async def waits() -> None:
        await futures.pop()

    fut = futures[0]
    task = loop.spawn(waits())
    loop.run_once(0)
    fut.set_exception(ValueError("via future"))
    run_until(loop, task)
    with pytest.raises(ValueError):
        task.result()  # raising the stored exception again adds no cycle either
    task_ref = weakref.ref(task)
    fut_ref = weakref.ref(fut)
    del task, fut
    assert task_ref() is None
    assert fut_ref() is None


def test_finished_task_that_returned_leaves_no_cycle(loop: Loop, no_gc: None) -> None:
    async def ok() -> int:
        await loop.sleep(0)
        return 1

    task = loop.spawn(ok())
    run_until(loop, task)
    ref = weakref.ref(task)
    del task
    assert ref() is None


def test_cancelled_task_leaves_no_cycle(loop: Loop, no_gc: None) -> None:
    async def sleeper() -> None:
        await loop.sleep(3600)

    task = loop.spawn(sleeper())
    loop.run_once(0)
    task.cancel()
    run_until(loop, task)
    loop.run_once(0)
    ref = weakref.ref(task)
    del task
    assert ref() is None


def test_parent_task_awaiting_a_failed_child_leaves_no_cycle(loop: Loop, no_gc: None) -> None:
    # The parent awaits the child inline. (A coroutine that keeps the failed child in a local
    # is a cycle no loop can avoid: its frame is in the exception's traceback.)
    refs: list[weakref.ref[Task[None]]] = []

    def tracked(task: Task[None]) -> Task[None]:
        refs.append(weakref.ref(task))
        return task

    async def child() -> None:
        await loop.sleep(0)
        raise KeyError("child failed")

    async def parent() -> None:
        await tracked(loop.spawn(child()))

    parent_task = tracked(loop.spawn(parent()))
    run_until(loop, parent_task)
    error = parent_task.exception()
    assert isinstance(error, KeyError) and error.args == ("child failed",)
    del parent_task, error
    assert [r() for r in refs] == [None, None]


def test_result_called_on_a_failed_future_leaves_no_cycle(loop: Loop, no_gc: None) -> None:
    fut = loop.create_future()
    fut.set_exception(ValueError("stored"))
    for _ in range(3):
        with pytest.raises(ValueError):
            fut.result()
    ref = weakref.ref(fut)
    del fut
    assert ref() is None
