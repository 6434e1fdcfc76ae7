"""Fixtures for the loop conformance tests.

``loop`` yields a fresh loop per test and closes it afterwards. It is parametrised over the
backends so that the same tests run against each; only SelectorLoop exists so far (the asyncio
adapter will be added as a second param). ``selector_loop`` is for tests of SelectorLoop
internals. ``clock`` and ``clocked_loop`` give a loop on a FakeClock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from reactor.loop import SelectorLoop
from reactor.testing import FakeClock

BACKENDS: dict[str, Callable[[], SelectorLoop]] = {
    "selector": SelectorLoop,
}


@pytest.fixture(params=sorted(BACKENDS))
def loop(request: pytest.FixtureRequest) -> Iterator[SelectorLoop]:
    lp = BACKENDS[request.param]()
    try:
        yield lp
    finally:
        if lp.is_running():
            lp.stop()
        lp.close()


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
def clocked_loop(clock: FakeClock) -> Iterator[SelectorLoop]:
    lp = SelectorLoop(clock=clock)
    clock.loop = lp
    try:
        yield lp
    finally:
        lp.close()
