"""The handler of ``reactor leakcheck``'s built-in scenarios.

Owns BuiltinApp (routed by path: hello, echo, a 2 MiB body, errors before and after the head,
hijacks that close, park or read the leftover bytes, async and slow handlers) and the
streaming echo of the async-streaming scenario. Used by reactor/leakcheck/measure.py;
tests: tests/leaks/test_leakcheck.py.
"""

from __future__ import annotations

import socket
from collections.abc import Coroutine
from typing import Any

from ..buffers import BufferPair
from ..loop.selector import SelectorLoop
from ..request import Request, StreamingBody
from ..response import ResponseWriter
from ..server import streaming

__all__ = ["BuiltinApp", "streaming_echo"]

_BIG = b"x" * (2 << 20)  # bigger than loopback socket buffers: the response is cut mid-way


class BuiltinApp:
    """The handler of the built-in scenarios, routed by path. A class, not a closure: the
    server holds it and it holds nothing of the server (no cycle through the harness)."""

    def __init__(self) -> None:
        self.loop: SelectorLoop | None = None
        self.parked: list[tuple[socket.socket, BufferPair]] = []
        self.slow_started = 0

    def __call__(self, w: ResponseWriter, r: Request) -> Coroutine[Any, Any, None] | None:
        path = r.path
        if path == "/":
            w.write(b"ok")
        elif path == "/echo":
            w.write(r.body.read())
        elif path == "/big":
            w.write(_BIG)
        elif path == "/boom":
            raise RuntimeError("leakcheck: the handler raised before the head")
        elif path == "/boom-late":
            w.write(b"partial")
            w.flush()
            raise RuntimeError("leakcheck: the handler raised after the head")
        elif path == "/hijack-close":
            sock, _pair = w.hijack()
            sock.close()
        elif path == "/hijack-park":
            w.headers.set("Upgrade", "echo")
            w.headers.set("Connection", "Upgrade")
            w.write_header(101)
            self.parked.append(w.hijack())
        elif path == "/hijack-leftover":
            sock, pair = w.hijack()
            left = pair.reader.read(pair.reader.buffered()) if pair.reader.buffered() else b""
            sock.setblocking(True)
            pair.writer.write(b"left:%d" % len(left))
            pair.writer.flush()
            sock.close()
        elif path == "/async":
            return self._async(w, r)
        elif path == "/slow":
            return self._slow(w, r)
        else:
            w.write_header(404)
        return None

    async def _async(self, w: ResponseWriter, r: Request) -> None:
        assert self.loop is not None
        await self.loop.sleep(0)
        w.write(b"async " + r.body.read())

    async def _slow(self, w: ResponseWriter, r: Request) -> None:
        assert self.loop is not None
        self.slow_started += 1
        await self.loop.sleep(0.01)
        w.write(b"slow")


@streaming
async def streaming_echo(w: ResponseWriter, r: Request) -> None:
    body = r.body
    assert isinstance(body, StreamingBody)
    w.write(await body.read())
