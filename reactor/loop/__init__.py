"""The reactor: the loop interface, its native implementation and the asyncio adapter.

Exports the ``Loop`` protocol, SelectorLoop, its handles, the minimal Future/Task, AsyncioLoop
and CancelledError (which is ``asyncio.CancelledError``; both are looked up on first use, so
that ``import reactor`` does not import asyncio) and ``new_loop``, which builds a loop by
backend name. Tests: tests/loop/.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .base import Loop, take_exception
from .futures import Future, InvalidStateError, Task
from .handles import Handle, TimerHandle
from .selector import SelectorLoop

if TYPE_CHECKING:
    from asyncio import CancelledError

    from .asyncio_loop import AsyncioLoop

__all__ = [
    "BACKENDS",
    "AsyncioLoop",
    "CancelledError",
    "Future",
    "Handle",
    "InvalidStateError",
    "Loop",
    "SelectorLoop",
    "Task",
    "TimerHandle",
    "new_loop",
    "take_exception",
]

BACKENDS = ("selectors", "asyncio", "uvloop")


def new_loop(backend: str = "selectors", *, clock: Callable[[], float] | None = None) -> Loop:
    """A new loop: ``"selectors"`` (SelectorLoop, the default), ``"asyncio"`` (AsyncioLoop on
    a new asyncio loop) or ``"uvloop"`` (AsyncioLoop on a new uvloop loop; needs the
    ``uvloop`` extra). ``close()`` on an asyncio backend closes the asyncio loop too.
    ``clock`` replaces the loop's time source for reactor's timers (tests use FakeClock)."""
    if backend == "selectors":
        return SelectorLoop() if clock is None else SelectorLoop(clock=clock)
    if backend == "asyncio":
        import asyncio

        from .asyncio_loop import AsyncioLoop

        return AsyncioLoop(asyncio.new_event_loop(), clock=clock, close_loop=True)
    if backend == "uvloop":
        try:
            import uvloop
        except ImportError as exc:
            raise ImportError(
                "the uvloop backend needs uvloop, which is not installed: "
                "pip install 'reactor-httpd[uvloop]'"
            ) from exc
        from .asyncio_loop import AsyncioLoop

        return AsyncioLoop(uvloop.new_event_loop(), clock=clock, close_loop=True)
    raise ValueError(
        f"unknown loop backend {backend!r}: choose one of {', '.join(map(repr, BACKENDS))}"
    )


def __getattr__(name: str) -> Any:
    if name == "AsyncioLoop":
        from .asyncio_loop import AsyncioLoop

        return AsyncioLoop
    if name == "CancelledError":
        # asyncio's: the same except clause catches a cancellation on every backend.
        from asyncio import CancelledError

        return CancelledError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
