"""AsyncioLoop and new_loop: what only the asyncio backends do (await asyncio objects, run on a
loop the host owns and already runs), choosing a backend by name, and a reset peer seen by a
reader that reads once per call on every backend (uvloop stops polling an fd after an error
event; the adapter calls the reader again).

The conformance tests themselves (test_selector_loop.py, test_futures.py) run on every backend.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
import urllib.request
from typing import Any

import pytest

from reactor import Request, ResponseWriter
from reactor.loop import Loop, SelectorLoop, new_loop
from reactor.loop.asyncio_loop import AsyncioLoop
from reactor.testing import serve_in_thread

ASYNCIO_BACKENDS = ["asyncio", "uvloop"]


def test_new_loop_builds_each_backend() -> None:
    import uvloop

    selector = new_loop()
    aio = new_loop("asyncio")
    uv = new_loop("uvloop")
    try:
        assert isinstance(selector, SelectorLoop)
        assert isinstance(aio, AsyncioLoop) and type(aio.asyncio_loop).__module__.startswith(
            "asyncio"
        )
        assert isinstance(uv, AsyncioLoop) and isinstance(uv.asyncio_loop, uvloop.Loop)
    finally:
        for lp in (selector, aio, uv):
            lp.close()
    # new_loop's asyncio loops belong to the adapter: closing it closes them.
    assert aio.asyncio_loop.is_closed() and uv.asyncio_loop.is_closed()


def test_new_loop_refuses_an_unknown_backend() -> None:
    with pytest.raises(ValueError, match=r"'trio'.*'selectors', 'asyncio', 'uvloop'"):
        new_loop("trio")


def test_uvloop_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'reactor-httpd\[uvloop\]'"):
        new_loop("uvloop")


@pytest.mark.parametrize("backend", ASYNCIO_BACKENDS)
def test_a_task_awaits_asyncio_objects_and_reactor_ones(backend: str) -> None:
    lp = new_loop(backend)
    try:
        aio = lp.asyncio_loop  # type: ignore[attr-defined]
        aio_future = aio.create_future()
        aio.call_later(0.01, aio_future.set_result, "from asyncio")

        async def main() -> list[Any]:
            got: list[Any] = []
            await asyncio.sleep(0)
            got.append(await asyncio.sleep(0.01, "asyncio.sleep"))
            got.append(await aio_future)
            got.append(await lp.sleep(0.01, "loop.sleep"))
            fut = lp.create_future()
            lp.call_soon(fut.set_result, "create_future")
            got.append(await fut)
            got.append(await asyncio.wait_for(lp.sleep(0, "wait_for"), 1))
            return got

        assert lp.run_until_complete(main()) == [
            "asyncio.sleep",
            "from asyncio",
            "loop.sleep",
            "create_future",
            "wait_for",
        ]
    finally:
        lp.close()


@pytest.mark.parametrize("backend", ASYNCIO_BACKENDS)
def test_an_async_handler_awaits_asyncio_on_the_asyncio_backends(backend: str) -> None:
    async def handler(w: ResponseWriter, r: Request) -> None:
        await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        loop.call_soon(fut.set_result, b"asyncio future")
        body = await fut
        w.write(body + b" in " + type(asyncio.current_task()).__name__.encode())

    with serve_in_thread(handler, backend=backend) as srv:
        resp = urllib.request.urlopen(srv.url + "/", timeout=5)
        with resp:
            assert resp.read() == b"asyncio future in Task"


def test_an_async_handler_on_the_native_loop_gets_a_type_error_naming_the_awaitable() -> None:
    async def handler(w: ResponseWriter, r: Request) -> None:
        try:
            await asyncio.sleep(0)
        except TypeError as exc:
            w.write(str(exc).encode())

    with serve_in_thread(handler, backend="selectors") as srv:
        resp = urllib.request.urlopen(srv.url + "/", timeout=5)
        with resp:
            text = resp.read().decode()
    assert "<coroutine object sleep at" in text and "not a reactor Future" in text


def test_mounted_on_a_running_asyncio_application() -> None:
    """A host that already runs asyncio wraps its loop; close() leaves the host's loop open."""

    async def host() -> tuple[list[str], bool]:
        lp = AsyncioLoop(asyncio.get_running_loop())
        seen: list[str] = []
        a, b = socket.socketpair()
        a.setblocking(False)
        try:
            lp.add_reader(a, lambda: seen.append(a.recv(10).decode()))
            lp.call_later(0.01, b.send, b"ping")
            await lp.sleep(0.05)
            lp.remove_reader(a)
            assert lp.is_running()
            lp.close()
            return seen, asyncio.get_running_loop().is_closed()
        finally:
            a.close()
            b.close()

    seen, host_loop_closed = asyncio.run(host())
    assert seen == ["ping"]
    assert not host_loop_closed


def test_close_leaves_a_loop_it_was_given_open() -> None:
    aio = asyncio.new_event_loop()
    try:
        lp = AsyncioLoop(aio)
        lp.call_later(10, lambda: None)
        lp.close()
        assert lp.is_closed() and not aio.is_closed()
        assert lp.pending_timers() == 0
        AsyncioLoop(aio, close_loop=True).close()
        assert aio.is_closed()
    finally:
        aio.close()


def test_a_reader_sees_a_reset_after_the_data(loop: Loop) -> None:
    """The peer sends data then resets; a reader that reads once per call gets the data and
    then the reset, on every backend."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server_side, _ = listener.accept()
    listener.close()
    server_side.setblocking(False)
    got: list[object] = []
    try:
        client.sendall(b"part")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        client.close()
        time.sleep(0.05)  # the data and the RST are both there before the first poll

        def on_readable() -> None:
            try:
                data = server_side.recv(2)  # once per call, less than is there
            except ConnectionResetError as exc:
                got.append(type(exc))
                loop.remove_fd(server_side)
                return
            got.append(data)

        loop.add_reader(server_side, on_readable)
        deadline = time.monotonic() + 5
        while ConnectionResetError not in got and time.monotonic() < deadline:
            loop.run_once(0.5)
    finally:
        loop.remove_fd(server_side)
        server_side.close()
    assert got == [b"pa", b"rt", ConnectionResetError]


@pytest.mark.parametrize("backend", ASYNCIO_BACKENDS)
def test_time_is_the_clock_itself(backend: str) -> None:
    """``time`` is ``time.monotonic`` (or the injected clock) itself: no method in between."""
    lp = new_loop(backend)
    try:
        assert lp.time is time.monotonic
    finally:
        lp.close()
    ticks = iter([5.0, 7.5])
    clocked = new_loop(backend, clock=lambda: next(ticks))
    try:
        assert (clocked.time(), clocked.time()) == (5.0, 7.5)
    finally:
        clocked.close()


@pytest.mark.parametrize("backend", ASYNCIO_BACKENDS)
def test_a_reader_replaced_between_events_is_the_one_called(backend: str) -> None:
    """Readers reach the adapter with their fd's entry: a reader removed and another added on
    the same fd (a writer keeping the entry alive) is the one called, once per event."""
    lp = new_loop(backend)
    a, b = socket.socketpair()
    a.setblocking(False)
    seen: list[str] = []
    try:
        lp.add_writer(a, lambda: None)
        lp.add_reader(a, seen.append, "first")
        lp.remove_reader(a)
        lp.add_reader(a, lambda: seen.append(a.recv(10).decode()))
        assert lp.registered_fds() == 1
        b.send(b"x")
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            lp.run_once(0.5)
        assert seen == ["x"]
    finally:
        lp.remove_fd(a)
        lp.close()
        a.close()
        b.close()
