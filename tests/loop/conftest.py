"""Fixtures for the loop conformance tests.

``loop`` yields a fresh loop per test and closes it afterwards, parametrised over the backends
(``selectors``, ``asyncio``, ``uvloop``) so that the same tests run against each.
``clocked_loop`` is the same on a FakeClock (``clock``). ``selector_loop`` is for tests of
SelectorLoop internals. ``kinds`` names the future types of the loop under test: reactor's own
on the native loop, asyncio's on the asyncio backends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from reactor.loop import (
    CancelledError,
    Future,
    InvalidStateError,
    Loop,
    SelectorLoop,
    Task,
    new_loop,
)
from reactor.testing import FakeClock

BACKENDS: dict[str, Callable[..., Loop]] = {
    "selectors": lambda **kw: new_loop("selectors", **kw),
    "asyncio": lambda **kw: new_loop("asyncio", **kw),
    "uvloop": lambda **kw: new_loop("uvloop", **kw),
}


@dataclass(frozen=True)
class Kinds:
    """The types a backend's futures and tasks are, and what they raise."""

    future: type
    task: type
    cancelled: type[BaseException]
    invalid_state: type[BaseException]


NATIVE = Kinds(Future, Task, CancelledError, InvalidStateError)
ASYNCIO = Kinds(asyncio.Future, asyncio.Task, asyncio.CancelledError, asyncio.InvalidStateError)


def kinds_of(lp: Loop) -> Kinds:
    return NATIVE if isinstance(lp, SelectorLoop) else ASYNCIO


def _close(lp: Loop) -> None:
    if lp.is_running():
        lp.stop()
    lp.close()


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def loop(backend: str) -> Iterator[Loop]:
    lp = BACKENDS[backend]()
    try:
        yield lp
    finally:
        _close(lp)


@pytest.fixture
def kinds(loop: Loop) -> Kinds:
    return kinds_of(loop)


@pytest.fixture
def selector_loop() -> Iterator[SelectorLoop]:
    lp = SelectorLoop()
    try:
        yield lp
    finally:
        lp.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clocked_loop(backend: str, clock: FakeClock) -> Iterator[Loop]:
    lp = BACKENDS[backend](clock=clock)
    clock.loop = lp
    try:
        yield lp
    finally:
        _close(lp)
