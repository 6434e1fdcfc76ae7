"""Helpers for testing handlers (and reactor itself): a server in a background thread, a
request client, a raw request builder, a fake clock, and a pump for loops driven by hand.

``serve_in_thread`` starts a server on 127.0.0.1:0 on a loop of any backend in a daemon thread
and stops it on exit; ``request`` sends one request with http.client and returns
``(status, headers, body)``; ``raw_request`` builds the bytes of a request (for tests that
write to a socket themselves); ``FakeClock`` drives the loop's timers without sleeping;
``run_until`` turns a loop with ``run_once`` until a condition holds. Must not send anything
but to the address it is given. Documented in docs/embedding.md ("Testing handlers").

``reactor leakcheck``'s client (reactor/leakcheck/client.py) waits with ``run_until`` and
uses ``FakeClock``; its request bytes are those of ``raw_request``.

Tests: tests/test_testing.py and every integration test (they use these helpers).
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from .config import ServerConfig
from .http.serialize import serialize_request
from .loop import Loop, new_loop
from .server import Handler, Server

__all__ = [
    "FakeClock",
    "Response",
    "RunningServer",
    "raw_request",
    "request",
    "run_until",
    "serve_in_thread",
]


class FakeClock:
    """A clock that moves only when told: ``SelectorLoop(clock=clock)`` (or
    ``new_loop(backend, clock=clock)``) and ``clock.loop = loop``, then
    ``clock.advance(seconds)`` (which wakes the loop so due timers run)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.loop: Loop | None = None
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(lambda: None)


@dataclass
class RunningServer:
    server: Server
    loop: Loop
    host: str
    port: int
    thread: threading.Thread

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 10.0) -> Any:
        """Run ``fn(*args)`` on the loop thread and return its result."""
        done = threading.Event()
        box: list[Any] = []

        def run() -> None:
            try:
                box.append((True, fn(*args)))
            except BaseException as exc:
                box.append((False, exc))
            finally:
                done.set()

        self.loop.call_soon_threadsafe(run)
        if not done.wait(timeout):
            raise TimeoutError(f"the loop did not run {fn!r} within {timeout}s")
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection(self.address, timeout=timeout)

    def request(
        self,
        method: str = "GET",
        target: str = "/",
        body: bytes | None = None,
        headers: dict[str, str] | list[tuple[str, str]] | None = None,
        *,
        timeout: float = 10.0,
    ) -> Response:
        """``request(self, ...)``: one request on a new connection."""
        return request(self, method, target, body, headers, timeout=timeout)


@contextmanager
def serve_in_thread(
    handler: Handler,
    config: ServerConfig | None = None,
    *,
    host: str = "127.0.0.1",
    clock: FakeClock | None = None,
    on_state: Any = None,
    backend: str | Callable[[], Loop] = "selectors",
) -> Iterator[RunningServer]:
    """Start a server on ``host``:0 in a background thread; stop and join it on exit.

    ``backend``: a name for ``reactor.new_loop`` (``"selectors"``, ``"asyncio"``,
    ``"uvloop"``) or a function that returns a new loop (the server closes it at the end).
    ``clock``: a FakeClock for the loop's timers (with a name only)."""
    if callable(backend):
        if clock is not None:
            raise TypeError("clock= goes with a backend name; build the loop with it yourself")
        loop = backend()
    else:
        loop = new_loop(backend, clock=clock)
    if clock is not None:
        clock.loop = loop
    server = Server(handler, loop=loop, config=config, on_state=on_state)
    bound_host, port = server.listen(host, 0)
    thread = threading.Thread(target=loop.run, name="reactor-test-loop", daemon=True)
    thread.start()
    running = RunningServer(server, loop, bound_host, port, thread)
    try:
        yield running
    finally:
        try:
            running.call(server.close)
        finally:
            loop.stop()
            thread.join(10)
            if not thread.is_alive():
                loop.close()


def raw_request(
    method: str = "GET",
    target: str = "/",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    *,
    host: str | None = "test",
    version: str = "HTTP/1.1",
    chunks: list[bytes] | None = None,
) -> bytes:
    """The bytes of one request, with a Host header unless ``host`` is None."""
    fields = list(headers or [])
    if host is not None and not any(n.lower() == "host" for n, _ in fields):
        fields.insert(0, ("Host", host))
    return serialize_request(method, target, fields, body, version=version, chunks=chunks)


class Response(NamedTuple):
    """What ``request`` returns: ``status, headers, body = request(srv, "GET", "/")``.
    ``headers`` is case-insensitive (``headers["content-type"]``; ``get_all`` for repeats)."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes


def request(
    server: RunningServer | tuple[str, int],
    method: str = "GET",
    target: str = "/",
    body: bytes | None = None,
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    *,
    timeout: float = 10.0,
) -> Response:
    """Send one request on a new connection (http.client) and read the whole response.

    ``server``: a RunningServer or a ``(host, port)``. A ``body`` gets its Content-Length
    from http.client. Blocking: call it from the test's thread, never from the loop's."""
    host, port = server.address if isinstance(server, RunningServer) else server
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        fields = dict(headers) if headers is not None else {}
        conn.request(method, target, body=body, headers=fields)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, resp.headers, data)
    finally:
        conn.close()


def run_until(
    loop: Loop, condition: Callable[[], bool], timeout: float = 5.0, step: float = 0.05
) -> None:
    """Turn ``loop`` with ``run_once(step)`` until ``condition()`` is true; TimeoutError after
    ``timeout`` seconds of real time. For tests that drive a loop on their own thread."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{condition!r} still false after {timeout}s")
        loop.run_once(step)
