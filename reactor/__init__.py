"""reactor: a pure-Python, single-threaded, selectors-based HTTP/1.1 server with Go-style
connection hijacking.

The public API lives here; everything else is internal. See docs/ and README.md.
"""

from typing import TYPE_CHECKING

from .buffers import BufferPair, Reader, Writer
from .config import Limits, ServerConfig
from .errors import (
    BrokenConnectionError,
    ConnectionClosedError,
    HijackedError,
    LimitExceeded,
    LoopClosedError,
    NotSupportedError,
    ProtocolError,
    ReactorError,
)
from .http.headers import Headers
from .http.state import HookState
from .loop import Future, Loop, SelectorLoop, Task, TimerHandle, new_loop
from .request import Body, Request, StreamingBody
from .response import ResponseWriter, hijack
from .run import serve
from .server import Server, streaming
from .stream import IncompleteReadError, LineTooLongError, Stream, StreamClosed

if TYPE_CHECKING:
    from asyncio import CancelledError  # looked up in __getattr__: asyncio on first use


def __getattr__(name: str) -> object:
    # AsyncioLoop imports asyncio: only on first use, so ``import reactor`` stays light.
    if name == "AsyncioLoop":
        from .loop.asyncio_loop import AsyncioLoop

        return AsyncioLoop
    if name == "CancelledError":  # asyncio's (see reactor.loop); asyncio on first use too
        from asyncio import CancelledError

        return CancelledError
    raise AttributeError(f"module 'reactor' has no attribute {name!r}")


__all__ = [
    "AsyncioLoop",
    "Body",
    "BrokenConnectionError",
    "BufferPair",
    "CancelledError",
    "ConnectionClosedError",
    "Future",
    "Headers",
    "HijackedError",
    "HookState",
    "IncompleteReadError",
    "LimitExceeded",
    "Limits",
    "LineTooLongError",
    "Loop",
    "LoopClosedError",
    "NotSupportedError",
    "ProtocolError",
    "ReactorError",
    "Reader",
    "Request",
    "ResponseWriter",
    "SelectorLoop",
    "Server",
    "ServerConfig",
    "Stream",
    "StreamClosed",
    "StreamingBody",
    "Task",
    "TimerHandle",
    "Writer",
    "hijack",
    "new_loop",
    "serve",
    "streaming",
]
