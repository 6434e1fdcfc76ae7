"""Shared fixtures: a server in a background thread on 127.0.0.1:0, stopped by the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from reactor.testing import RunningServer, serve_in_thread


@pytest.fixture
def serve() -> Iterator[Callable[..., RunningServer]]:
    """``serve(handler, config=None, clock=None, on_state=None)`` starts a server; every
    server started is stopped when the test ends."""
    with ExitStack() as stack:

        def start(handler: Any, config: Any = None, **kwargs: Any) -> RunningServer:
            return stack.enter_context(serve_in_thread(handler, config, **kwargs))

        yield start
