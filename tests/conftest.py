"""Shared fixtures: a server in a background thread on 127.0.0.1:0, stopped by the test.

``serve`` is parametrised over the loop backends (``loop_backend``: selectors, asyncio,
uvloop), so every test that starts a server through it runs once on each backend; the test id
names the backend (``test_x[asyncio]``). A FakeClock passed as ``clock=`` drives reactor's
timers on every backend (AsyncioLoop takes an injected clock too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from reactor.loop import BACKENDS, new_loop
from reactor.testing import RunningServer, serve_in_thread

# Build and close one loop of each backend now: the first asyncio/uvloop loop imports modules
# and creates classes (garbage with cycles), which must not happen inside a test that runs
# with the cyclic GC disabled and asserts that gc.collect() finds nothing.
for _backend in BACKENDS:
    new_loop(_backend).close()
del _backend


@pytest.fixture(params=BACKENDS)
def loop_backend(request: pytest.FixtureRequest) -> str:
    """The name of the loop backend (``reactor.new_loop``) the test's servers run on."""
    name: str = request.param
    return name


@pytest.fixture
def serve(loop_backend: str) -> Iterator[Callable[..., RunningServer]]:
    """``serve(handler, config=None, clock=None, on_state=None)`` starts a server on the
    test's backend; every server started is stopped when the test ends."""
    with ExitStack() as stack:

        def start(handler: Any, config: Any = None, **kwargs: Any) -> RunningServer:
            kwargs.setdefault("backend", loop_backend)
            return stack.enter_context(serve_in_thread(handler, config, **kwargs))

        yield start
