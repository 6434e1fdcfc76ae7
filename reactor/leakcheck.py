"""``reactor leakcheck``: prove, with objgraph and tracemalloc, that connections are collected.

Owns the leak harness: an in-process server on 127.0.0.1:0 (a fresh SelectorLoop and Server per
scenario), client sockets driven from the same thread (non-blocking, pumping the loop with
``run_once`` while they wait), the named scenarios, the checks and the report. It must not
touch the network beyond loopback, install anything, or leave the cyclic GC disabled.

For each scenario, after a short warm-up (first-use caches), the cyclic GC is collected and
disabled, then: objgraph counts reactor's per-connection objects (Connection, Request, Body,
ResponseWriter, Task/Future, armed timer and callback handles, parser, decoder, buffers,
sockets) and the loop's registrations and armed timers; the traffic runs; the loop is pumped
until idle; the counts must be back at the baseline (parked hijacks may keep only the socket and
the pair while they are parked); ``gc.collect()`` (saving what it finds) must find nothing;
tracemalloc gives the retained bytes per connection and the top growth sites;
``objgraph.growth()`` lists the types that grew (a type that grew by one or more objects per
request is a leak too). A leak gets one leaked object explained: the back-reference chain from a
root (a module, the loop, the server) down to it, in words; for cyclic garbage, the cycle.

Also drives a user's handler (``APP`` as ``module:callable``, or ``--wsgi module:app`` through
``reactor.wsgi.WSGIHandler`` when that module exists). Exit status: 0 clean, 1 leak (or a
scenario that failed), 2 usage errors. Tests: tests/leaks/test_leakcheck.py.
"""

from __future__ import annotations

import argparse
import collections
import gc
import importlib
import json
import logging
import math
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import tracemalloc
import types
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, NoReturn, TextIO

import objgraph  # type: ignore[import-untyped]

from .apploader import AppLoadError, load_app
from .buffers import BufferPair, Reader, Writer
from .config import Limits, ServerConfig
from .connection import Connection
from .http.headers import Headers
from .http.parser import ChunkedDecoder, RequestHead, RequestParser
from .loop.futures import Future, Task
from .loop.handles import Handle, TimerHandle
from .loop.selector import SelectorLoop
from .request import Body, Request, StreamingBody
from .response import ResponseWriter
from .server import Handler, Server, streaming
from .testing import FakeClock

__all__ = [
    "SCENARIOS",
    "LeakcheckError",
    "Report",
    "Scenario",
    "ScenarioResult",
    "add_arguments",
    "build_parser",
    "main",
    "run",
    "run_from_args",
]

# The per-connection objects whose counts must return to the baseline, most telling first
# (the first leaked one in this order is the one whose chain is explained).
TRACKED_TYPES: tuple[type, ...] = (
    Request,
    ResponseWriter,
    Connection,
    Body,
    StreamingBody,
    Task,
    Future,
    TimerHandle,
    Handle,
    RequestHead,
    Headers,
    RequestParser,
    ChunkedDecoder,
    BufferPair,
    Reader,
    Writer,
    Server,
    socket.socket,
)
_TRACKED = frozenset(TRACKED_TYPES)

# Seconds any one client wait may take before the scenario is declared stuck.
_WAIT = 10.0
# Per-connection request counts of the multi-request scenarios.
_PER_CONN = 10
_PIPELINE = 10
_PARK_BATCH = 64
_BIG = b"x" * (2 << 20)  # bigger than loopback socket buffers: the response is cut mid-way


def _type_name(tp: type) -> str:
    return f"{tp.__module__}.{tp.__qualname__}"


class LeakcheckError(Exception):
    """A scenario could not run as written (a wait timed out, a response was wrong)."""


# -- counting ------------------------------------------------------------------------------


def _is_tracked(obj: object) -> bool:
    tp = type(obj)
    if tp not in _TRACKED:
        return False
    if tp is TimerHandle or tp is Handle:
        # Lazy cancellation: a cancelled handle can sit in the timer heap until it reaches
        # the top, holding nothing (its callback and arguments are dropped). Only armed
        # handles count.
        return obj.callback is not None  # type: ignore[attr-defined]
    return True


def count_objects() -> dict[str, int]:
    """Live per-connection objects by type (objgraph.typestats over gc.get_objects())."""
    stats: dict[str, int] = objgraph.typestats(shortnames=False, filter=_is_tracked)
    return {name: stats.get(name, 0) for name in map(_type_name, TRACKED_TYPES)}


@dataclass
class _Baseline:
    counts: dict[str, int]
    fds: int
    timers: int
    ids: set[int]
    peak: dict[str, int]
    fd_numbers: set[int]


# -- the built-in handler ------------------------------------------------------------------


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
async def _streaming_echo(w: ResponseWriter, r: Request) -> None:
    body = r.body
    assert isinstance(body, StreamingBody)
    w.write(await body.read())


# -- the client side -----------------------------------------------------------------------


def _request(
    method: str = "GET",
    path: str = "/",
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    *,
    chunked: bool = False,
    length: bool = True,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: leakcheck"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        half = len(body) // 2
        parts = [p for p in (body[:half], body[half:]) if p]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    else:
        if length and (body or method in ("POST", "PUT")):
            lines.append(f"Content-Length: {len(body)}")
        payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


class Client:
    """Client sockets on the loop's own thread: every wait pumps the server's loop."""

    def __init__(self, loop: SelectorLoop, address: tuple[str, int]) -> None:
        self.loop = loop
        self.address = address

    def pump(self, timeout: float = 0.0) -> None:
        self.loop.run_once(timeout)

    def wait(self, what: str, done: Callable[[], bool], timeout: float = _WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise LeakcheckError(f"timed out waiting for {what}")
            self.pump(0.002)

    def connect(self, address: tuple[str, int] | None = None) -> ClientConn:
        # On loopback the handshake completes in the kernel (the listener's backlog), before
        # the server accepts: a blocking connect cannot wait for our own loop.
        sock = socket.create_connection(address or self.address, timeout=_WAIT)
        sock.setblocking(False)
        return ClientConn(self, sock)


class ClientConn:
    """One client connection: sends, and reads responses with its own buffer."""

    __slots__ = ("buf", "client", "eof", "sock")

    def __init__(self, client: Client, sock: socket.socket) -> None:
        self.client = client
        self.sock = sock
        self.buf = bytearray()
        self.eof = False

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + _WAIT
        while view:
            try:
                n = self.sock.send(view)
            except BlockingIOError:
                n = 0
            view = view[n:]
            if view:
                if time.monotonic() > deadline:
                    raise LeakcheckError("timed out sending a request")
                self.client.pump(0.002)

    def _fill(self) -> bool:
        """Receive once (pumping the loop while nothing came); False at EOF."""
        if self.eof:
            return False
        deadline = time.monotonic() + _WAIT
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LeakcheckError("timed out waiting for the server") from None
                self.client.pump(0.002)
                continue
            except ConnectionError:
                data = b""
            if not data:
                self.eof = True
                return False
            self.buf += data
            return True

    def read_until(self, marker: bytes) -> bytes:
        while True:
            end = self.buf.find(marker)
            if end >= 0:
                end += len(marker)
                out = bytes(self.buf[:end])
                del self.buf[:end]
                return out
            if not self._fill():
                raise LeakcheckError(f"connection closed before {marker!r}: {bytes(self.buf)!r}")

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise LeakcheckError(f"connection closed {n - len(self.buf)} bytes short")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_some(self) -> bytes:
        if not self.buf:
            self._fill()
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def read_to_eof(self) -> bytes:
        while self._fill():
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def read_response(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        """Status, headers (lower-case names) and body of the next final response."""
        while True:
            head = self.read_until(b"\r\n\r\n").decode("latin-1")
            lines = head.split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            if not 100 <= status < 200 or status == 101:
                break
        if head_only or status == 101 or status in (204, 304):
            return status, headers, b""
        if "chunked" in headers.get("transfer-encoding", ""):
            parts: list[bytes] = []
            while True:
                size = int(self.read_until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    self.read_until(b"\r\n")  # no trailers from reactor's built-ins
                    return status, headers, b"".join(parts)
                parts.append(self.read_exact(size + 2)[:-2])
        if "content-length" in headers:
            return status, headers, self.read_exact(int(headers["content-length"]))
        return status, headers, self.read_to_eof()

    def expect(self, status: int, body: bytes | None = None) -> dict[str, str]:
        got, headers, data = self.read_response()
        if got != status or (body is not None and data != body):
            raise LeakcheckError(f"expected {status} {body!r}, got {got} {data[:80]!r}")
        return headers

    def reset(self) -> None:
        """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


# -- scenarios -------------------------------------------------------------------------------


class Harness:
    """What a scenario drives: the loop, the server, the client, the app; and checkpoints."""

    def __init__(
        self,
        loop: SelectorLoop,
        server: Server,
        app: Any,
        clock: FakeClock | None,
        target: _Target,
    ) -> None:
        self.loop = loop
        self.server = server
        self.app = app
        self.clock = clock
        self.target = target
        host, port = server.addresses[0][:2]
        self.client = Client(loop, (host, port))
        self.baseline: _Baseline | None = None
        self.checkpoint_leaks: list[str] = []

    def idle(self) -> bool:
        base_fds = self.baseline.fds if self.baseline else 1
        base_timers = self.baseline.timers if self.baseline else 0
        return (
            self.server.connection_count == 0
            and self.loop.registered_fds() <= base_fds
            and self.loop.pending_timers() <= base_timers
        )

    def settle(self, timeout: float = 1.0) -> None:
        """Pump until no connection or registration is left (at most ``timeout``), then
        until no new timer is armed (briefly: a connection's timer goes when it closes, so a
        timer still armed then is a leak, not something to wait for)."""
        deadline = time.monotonic() + timeout
        while not self.closed() and time.monotonic() < deadline:
            self.loop.run_once(0.002)
        deadline = time.monotonic() + min(timeout, 0.1)
        while not self.idle() and time.monotonic() < deadline:
            self.loop.run_once(0.002)
        for _ in range(3):
            self.loop.run_once(0)

    def closed(self) -> bool:
        base_fds = self.baseline.fds if self.baseline else 1
        return self.server.connection_count == 0 and self.loop.registered_fds() <= base_fds

    def wait_closed(self) -> None:
        """Wait until the server let go of every connection (timers are checked at the end:
        a handler's own timer may rightly outlive its connection, or be the leak)."""
        self.client.wait("the server to close the connection", self.closed)

    def checkpoint(self, allowed: dict[type, int], label: str) -> None:
        """Counts now against the baseline, with ``allowed`` extra objects by type."""
        if self.baseline is None:
            return  # warm-up
        self.settle(1.0)
        now = count_objects()
        extra = {_type_name(tp): n for tp, n in allowed.items()}
        for name, n in now.items():
            over = n - self.baseline.counts[name] - extra.get(name, 0)
            if over > 0:
                self.checkpoint_leaks.append(f"{label}: {over} {name} beyond the allowance")
        if self.server.connection_count:
            self.checkpoint_leaks.append(
                f"{label}: the server still tracks {self.server.connection_count} connections"
            )
        if self.loop.registered_fds() > self.baseline.fds:
            self.checkpoint_leaks.append(f"{label}: fds still registered with the loop")
        if self.loop.pending_timers() > self.baseline.timers:
            self.checkpoint_leaks.append(f"{label}: timers still armed")


_Run = Callable[[Harness, int], int]


@dataclass(frozen=True)
class Scenario:
    """A named traffic pattern: ``run(harness, requests)`` returns the connections used."""

    name: str
    help: str
    run: _Run
    config: ServerConfig | None = None
    fake_clock: bool = False
    streaming: bool = False


def _batches(total: int, size: int) -> list[int]:
    total = max(total, 1)
    full, rest = divmod(total, size)
    return [size] * full + ([rest] if rest else [])


def _sequential(make: Callable[[], bytes], status: int, body: bytes | None) -> _Run:
    def run(h: Harness, n: int) -> int:
        batches = _batches(n, _PER_CONN)
        for count in batches:
            c = h.client.connect()
            for _ in range(count):
                c.send(make())
                c.expect(status, body)
            c.close()
            h.wait_closed()
        return len(batches)

    return run


def _pipelined(h: Harness, n: int) -> int:
    batches = _batches(n, _PIPELINE)
    for count in batches:
        c = h.client.connect()
        c.send(b"".join(_request("GET", "/") for _ in range(count)))
        for _ in range(count):
            c.expect(200, b"ok")
        c.close()
        h.wait_closed()
    return len(batches)


_POST_BODY = bytes(range(256)) * 8


def _expect_continue(h: Harness, n: int) -> int:
    batches = _batches(n, _PER_CONN)
    for count in batches:
        c = h.client.connect()
        for _ in range(count):
            c.send(_request("POST", "/echo", [("Expect", "100-continue")], _POST_BODY)[:-2048])
            interim = c.read_until(b"\r\n\r\n")
            if not interim.startswith(b"HTTP/1.1 100"):
                raise LeakcheckError(f"expected 100 Continue, got {interim!r}")
            c.send(_POST_BODY)
            c.expect(200, _POST_BODY)
        c.close()
        h.wait_closed()
    return len(batches)


def _one_per_connection(step: Callable[[Harness, ClientConn], None]) -> _Run:
    def run(h: Harness, n: int) -> int:
        n = max(n, 1)
        for _ in range(n):
            c = h.client.connect()
            step(h, c)
            h.wait_closed()
        return n

    return run


def _pump_a_little(h: Harness) -> None:
    for _ in range(3):
        h.loop.run_once(0.001)


def _reset_in_head(h: Harness, c: ClientConn) -> None:
    c.send(b"GET / HTTP/1.1\r\nHost: leakcheck\r\nX-Partial: ")
    _pump_a_little(h)
    c.reset()


def _reset_in_body(h: Harness, c: ClientConn) -> None:
    c.send(_request("POST", "/echo", [("Content-Length", "4096")], length=False) + b"part")
    _pump_a_little(h)
    c.reset()


def _reset_mid_response(h: Harness, c: ClientConn) -> None:
    c.send(_request("GET", "/big"))
    c.read_until(b"\r\n\r\n")
    c.read_some()
    c.reset()


def _header_timeout(h: Harness, c: ClientConn) -> None:
    assert h.clock is not None
    c.send(b"GET / HTTP/1.1\r\nHost: leakcheck\r\n")
    _pump_a_little(h)
    h.clock.advance(h.server.config.read_header_timeout + 0.5)
    status, _headers, _body = c.read_response()
    if status != 408:
        raise LeakcheckError(f"expected 408 after the header timeout, got {status}")
    c.read_to_eof()
    c.close()


def _error_after_head(h: Harness, c: ClientConn) -> None:
    c.send(_request("GET", "/boom-late"))
    data = c.read_to_eof()
    if not data.startswith(b"HTTP/1.1 200"):
        raise LeakcheckError(f"expected the head before the abort, got {data[:40]!r}")
    c.close()


def _rejected(request: bytes, status: int) -> Callable[[Harness, ClientConn], None]:
    def step(h: Harness, c: ClientConn) -> None:
        c.send(request)
        data = c.read_to_eof()
        if not data.startswith(b"HTTP/1.1 %d" % status):
            raise LeakcheckError(f"expected {status}, got {data[:40]!r}")
        c.close()

    return step


def _hijack_close(h: Harness, c: ClientConn) -> None:
    c.send(_request("GET", "/hijack-close"))
    c.read_to_eof()
    c.close()


def _hijack_leftover(h: Harness, c: ClientConn) -> None:
    follow = _request("GET", "/next") + b"tail"
    c.send(_request("GET", "/hijack-leftover") + follow)
    got = c.read_to_eof()
    if got != b"left:%d" % len(follow):
        raise LeakcheckError(f"the hijacker did not get the leftover bytes: {got!r}")
    c.close()


_UPGRADE = _request("GET", "/hijack-park", [("Connection", "Upgrade"), ("Upgrade", "echo")])


def _echo_parked(h: Harness, clients: list[ClientConn]) -> None:
    """Each parked connection echoes through its pair, then both ends close."""
    parked = h.app.parked
    if len(parked) != len(clients):
        raise LeakcheckError(f"{len(clients)} clients but {len(parked)} parked hijacks")
    for (sock, pair), c in zip(parked, clients, strict=True):
        c.send(b"echo 01234")
        data = b""
        deadline = time.monotonic() + _WAIT
        while len(data) < 10:
            try:
                data += pair.reader.read(10 - len(data))
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LeakcheckError("a parked connection got nothing") from None
                time.sleep(0.0005)
        sock.setblocking(True)
        pair.writer.write(data)
        pair.writer.flush()
        if c.read_exact(10) != b"echo 01234":
            raise LeakcheckError("a parked connection did not echo")
        sock.close()
        c.close()
    parked.clear()


def _parked_keeps(k: int) -> dict[type, int]:
    """What ``k`` parked hijacks may keep: the pair and the socket (and our client socket)."""
    return {Reader: k, Writer: k, BufferPair: k, socket.socket: 2 * k}


def _hijack_park(h: Harness, n: int) -> int:
    batches = _batches(n, _PARK_BATCH)
    for i, count in enumerate(batches):
        clients = []
        for _ in range(count):
            c = h.client.connect()
            c.send(_UPGRADE)
            c.expect(101)
            clients.append(c)
        if i == 0 or i == len(batches) - 1:
            h.checkpoint(_parked_keeps(count), f"with {count} hijacks parked")
        _echo_parked(h, clients)
        del clients
    return sum(batches)


def _more_than(app: BuiltinApp, started: int) -> bool:
    return app.slow_started > started


def _shutdown(h: Harness, n: int) -> int:
    rounds = max(1, math.ceil(n / 3))
    for i in range(rounds):
        server = Server(h.app, loop=h.loop)
        address = server.listen("127.0.0.1", 0)
        parked = h.client.connect(address)
        parked.send(_UPGRADE)
        parked.expect(101)
        idle = h.client.connect(address)
        idle.send(_request("GET", "/"))
        idle.expect(200, b"ok")
        busy = h.client.connect(address)
        started = h.app.slow_started
        busy.send(_request("GET", "/slow"))
        h.client.wait("the slow handler", partial(_more_than, h.app, started))
        done = server.shutdown()
        headers = busy.expect(200, b"slow")
        if headers.get("connection") != "close":
            raise LeakcheckError("the in-flight response did not say Connection: close")
        if busy.read_to_eof() or idle.read_to_eof():
            raise LeakcheckError("bytes after the shutdown")
        h.client.wait("the shutdown to complete", done.done)
        busy.close()
        idle.close()
        server.close()
        del done, busy, idle, server
        if i == 0:
            h.checkpoint(_parked_keeps(1), "after shutdown, one hijack parked")
        _echo_parked(h, [parked])
        del parked
    return rounds * 3


_SMALL_LIMITS = ServerConfig(limits=Limits(max_body_size=1024, max_head_bytes=4096))

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "keepalive",
            f"GET / over keep-alive connections, {_PER_CONN} requests per connection",
            _sequential(lambda: _request("GET", "/"), 200, b"ok"),
        ),
        Scenario(
            "pipelined",
            f"bursts of {_PIPELINE} pipelined GETs sent at once on one connection",
            _pipelined,
        ),
        Scenario(
            "post-length",
            "POST bodies with Content-Length (2 KiB, echoed back), keep-alive",
            _sequential(lambda: _request("POST", "/echo", body=_POST_BODY), 200, _POST_BODY),
        ),
        Scenario(
            "post-chunked",
            "POST bodies with chunked transfer coding (2 KiB in two chunks), keep-alive",
            _sequential(
                lambda: _request("POST", "/echo", body=_POST_BODY, chunked=True), 200, _POST_BODY
            ),
        ),
        Scenario(
            "expect-continue",
            "POST with Expect: 100-continue: the client waits for 100 Continue, then sends",
            _expect_continue,
        ),
        Scenario(
            "reset-in-head",
            "the client resets (RST) half-way through a request head",
            _one_per_connection(_reset_in_head),
        ),
        Scenario(
            "reset-in-body",
            "the client resets half-way through a Content-Length body",
            _one_per_connection(_reset_in_body),
        ),
        Scenario(
            "reset-mid-response",
            "the client resets while a 2 MiB response is still being sent",
            _one_per_connection(_reset_mid_response),
        ),
        Scenario(
            "header-timeout",
            "a head that never ends: read_header_timeout fires (fake clock), 408, close",
            _one_per_connection(_header_timeout),
            config=ServerConfig(read_header_timeout=1.0),
            fake_clock=True,
        ),
        Scenario(
            "error-before-head",
            "the handler raises before writing: 500, the connection stays open",
            _sequential(
                lambda: _request("GET", "/boom"),
                500,
                b"500 Internal Server Error\n",
            ),
        ),
        Scenario(
            "error-after-head",
            "the handler raises after the head went out: the connection is aborted",
            _one_per_connection(_error_after_head),
        ),
        Scenario(
            "status-400",
            "a malformed request (no Host): 400 and close",
            _one_per_connection(_rejected(b"GET / HTTP/1.1\r\n\r\n", 400)),
        ),
        Scenario(
            "status-413",
            "a Content-Length over max_body_size (1 KiB here): 413 and close",
            _one_per_connection(
                _rejected(
                    _request("POST", "/echo", [("Content-Length", "4096")], length=False), 413
                )
            ),
            config=_SMALL_LIMITS,
        ),
        Scenario(
            "status-431",
            "a head over max_head_bytes (4 KiB here): 431 and close",
            _one_per_connection(_rejected(_request("GET", "/", [("X-Big", "y" * 5000)]), 431)),
            config=_SMALL_LIMITS,
        ),
        Scenario(
            "hijack-close",
            "the handler hijacks and closes the socket at once",
            _one_per_connection(_hijack_close),
        ),
        Scenario(
            "hijack-park",
            "the handler answers 101, hijacks and parks (sock, pair); while parked only the "
            "socket and the pair may remain; then each echoes through its pair and closes",
            _hijack_park,
        ),
        Scenario(
            "hijack-leftover",
            "hijack with a pipelined request and extra bytes already read: the hijacker gets "
            "them from pair.reader",
            _one_per_connection(_hijack_leftover),
        ),
        Scenario(
            "async",
            "async def handlers (a task per request, awaiting loop.sleep), keep-alive",
            _sequential(lambda: _request("POST", "/async", body=b"hi"), 200, b"async hi"),
        ),
        Scenario(
            "async-streaming",
            "a streaming async handler awaiting a chunked body as it arrives",
            _sequential(
                lambda: _request("POST", "/", body=_POST_BODY, chunked=True), 200, _POST_BODY
            ),
            streaming=True,
        ),
        Scenario(
            "shutdown",
            "graceful shutdown of a server with a parked hijack, an idle and an in-flight "
            "connection; the parked one still echoes afterwards",
            _shutdown,
        ),
    )
}


# -- the user's app ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """What the APP scenarios send."""

    method: str = "GET"
    path: str = "/"
    body: bytes = b""

    def request(self, close: bool = False) -> bytes:
        headers = [("Connection", "close")] if close else []
        return _request(self.method, self.path, headers, self.body)


def _app_sequential(h: Harness, n: int) -> int:
    batches = _batches(n, _PER_CONN)
    head_only = h.target.method == "HEAD"
    for count in batches:
        c = h.client.connect()
        for _ in range(count):
            c.send(h.target.request())
            _status, headers, _body = c.read_response(head_only)
            if headers.get("connection", "").lower() == "close":
                c.close()
                h.wait_closed()
                c = h.client.connect()
        c.close()
        h.wait_closed()
    return len(batches)


def _app_close(h: Harness, n: int) -> int:
    n = max(n, 1)
    for _ in range(n):
        c = h.client.connect()
        c.send(h.target.request(close=True))
        c.read_response(h.target.method == "HEAD")
        c.read_to_eof()
        c.close()
        h.wait_closed()
    return n


def _app_pipelined(h: Harness, n: int) -> int:
    batches = _batches(n, 5)
    for count in batches:
        c = h.client.connect()
        c.send(h.target.request() * count)
        for _ in range(count):
            c.read_response(h.target.method == "HEAD")
        c.close()
        h.wait_closed()
    return len(batches)


APP_SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "app-keepalive",
            f"the request over keep-alive connections, {_PER_CONN} per connection",
            _app_sequential,
        ),
        Scenario("app-close", "the request with Connection: close, one per connection", _app_close),
        Scenario("app-pipelined", "bursts of 5 pipelined requests", _app_pipelined),
    )
}


# -- explaining a leak ----------------------------------------------------------------------


def _short_repr(obj: object, limit: int = 70) -> str:
    try:
        text = repr(obj)
    except Exception:
        text = f"<{type(obj).__name__} (repr failed)>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _where(filename: str) -> str:
    """A file name relative to the current directory when it is under it."""
    cwd = os.getcwd() + os.sep
    return filename[len(cwd) :] if filename.startswith(cwd) else filename


def describe(obj: object) -> str:
    """One object, in words."""
    if isinstance(obj, types.ModuleType):
        return f"module {obj.__name__!r}"
    if isinstance(obj, types.FunctionType):
        code = obj.__code__
        return f"function {obj.__qualname__!r} ({_where(code.co_filename)}:{code.co_firstlineno})"
    if isinstance(obj, types.MethodType):
        return f"bound method {obj.__func__.__qualname__!r} of {_short_repr(obj.__self__, 50)}"
    if isinstance(obj, types.CellType):
        return "closure cell"
    if isinstance(obj, types.FrameType):
        code = obj.f_code
        return f"frame of {code.co_qualname!r} ({_where(code.co_filename)}:{obj.f_lineno})"
    if isinstance(obj, TimerHandle):
        state = "armed" if obj.callback is not None else "cancelled"
        loop = obj._loop
        due = f", due in {obj.when - loop.time():.1f} s" if loop is not None else ""
        return f"TimerHandle ({state}{due}, callback {_short_repr(obj.callback, 60)})"
    if isinstance(obj, dict | list | tuple | set | frozenset | collections.deque):
        return f"{type(obj).__name__} of {len(obj)} items"
    return f"{_type_name(type(obj))} {_short_repr(obj)}"


def _slot_names(tp: type) -> Iterable[str]:
    for cls in tp.__mro__:
        slots = cls.__dict__.get("__slots__", ())
        yield from (slots,) if isinstance(slots, str) else slots


def _edge(holder: object, held: object) -> str:
    """How ``holder`` refers to ``held``: ``.attr``, ``[key]``, ..."""
    if isinstance(holder, dict):
        for key, value in holder.items():
            if value is held:
                return f"[{key!r}]"
            if key is held:
                return "(a key)"
    elif isinstance(holder, list | tuple | collections.deque):
        for i, value in enumerate(holder):
            if value is held:
                return f"[{i}]"
    elif isinstance(holder, set | frozenset):
        return "(a member)"
    elif isinstance(holder, types.CellType):
        return ".cell_contents"
    elif isinstance(holder, types.FunctionType):
        for name in ("__closure__", "__globals__", "__defaults__", "__kwdefaults__", "__dict__"):
            if getattr(holder, name, None) is held:
                return f".{name}"
    elif isinstance(holder, types.MethodType):
        return ".__self__" if holder.__self__ is held else ".__func__"
    elif isinstance(holder, types.FrameType):
        for name, value in holder.f_locals.items():
            if value is held:
                return f" local {name!r}"
    attrs = getattr(holder, "__dict__", None)
    if attrs is held:
        return ".__dict__"
    if isinstance(attrs, dict):
        # 3.11+ keeps instance attributes inline: the referrer is the object itself.
        for name, value in attrs.items():
            if value is held:
                return f".{name}"
    for name in _slot_names(type(holder)):
        try:
            if getattr(holder, name) is held:
                return f".{name}"
        except AttributeError:
            continue
    return " refers to"


def render_chain(chain: Sequence[object]) -> list[str]:
    """A root-first chain of objects as lines: the root, then one ``edge -> object`` line per
    hop. An object's ``__dict__`` (and a function's closure tuple and cell) is folded into the
    edge: ``module 'm'`` then ``.REQUESTS -> list``; ``function 'f'`` then ``closure
    variable 'r' -> Request``."""
    if not chain:
        return []
    lines = [describe(chain[0])]
    i = 0
    while i + 1 < len(chain):
        holder, held = chain[i], chain[i + 1]
        step = 1
        if (
            isinstance(held, dict)
            and getattr(holder, "__dict__", None) is held
            and i + 2 < len(chain)
        ):
            edge = _edge(held, chain[i + 2])
            edge = f".{edge[2:-2]}" if edge.startswith("['") else edge
            step = 2
        elif (
            isinstance(holder, types.FunctionType)
            and holder.__closure__ is not None
            and held is holder.__closure__
            and i + 3 < len(chain)
            and isinstance(chain[i + 2], types.CellType)
        ):
            index = holder.__closure__.index(chain[i + 2])
            edge = f" closure variable {holder.__code__.co_freevars[index]!r}"
            step = 3
        else:
            edge = _edge(holder, held)
        lines.append(f"  {edge.strip()} -> {describe(chain[i + step])}")
        i += step
    return lines


def _stack_frame_ids() -> list[int]:
    ids = []
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None:
        ids.append(id(frame))
        frame = frame.f_back
    return ids


def _explain_cycle(obj: object, garbage: list[object]) -> list[str]:
    """The cycle that ``obj`` hangs from, found by walking its referrers inside ``garbage``
    until one repeats; then the path from the cycle down to ``obj``."""
    members = {id(o) for o in garbage}
    ignore = {id(garbage), *_stack_frame_ids()}
    path: list[object] = [obj]
    index = {id(obj): 0}
    back = -1
    for _ in range(40):
        referrers = [
            r for r in gc.get_referrers(path[-1]) if id(r) in members and id(r) not in ignore
        ]
        if not referrers:
            break
        seen = next((r for r in referrers if id(r) in index), None)
        if seen is not None:
            back = index[id(seen)]
            break
        index[id(referrers[0])] = len(path)
        path.append(referrers[0])
    lines = ["unreachable, freed only by the cyclic GC:"]
    if back < 0:
        lines.extend(render_chain(path[::-1]))
        return lines
    # Each object refers to the next: path[back] -> path[-1] -> ... -> path[back + 1] -> back.
    cycle = [path[back], *path[:back:-1]]
    start = next((i for i, o in enumerate(cycle) if isinstance(o, types.FunctionType)), 0)
    cycle = cycle[start:] + cycle[:start]
    lines.append("the reference cycle:")
    lines.extend(render_chain([*cycle, cycle[0]]))
    if back > 0:
        # From the cycle member that refers to path[back], down to obj.
        lines.append("from the cycle down to the leaked object:")
        lines.extend(
            render_chain(
                [path[back + 1] if back + 1 < len(path) else path[back], *path[back::-1]][
                    0 if back + 1 < len(path) else 1 :
                ]
            )
        )
    del path, cycle
    return lines


def _is_new(obj: object, baseline: _Baseline) -> bool:
    return id(obj) not in baseline.ids


def _pick(tp_name: str, baseline: _Baseline, pool: Iterable[object] | None = None) -> object:
    objs = gc.get_objects() if pool is None else pool
    for obj in objs:
        if _type_name(type(obj)) == tp_name and _is_new(obj, baseline):
            if isinstance(obj, Handle) and obj.callback is None:
                continue
            return obj
    return None


# -- running a scenario ----------------------------------------------------------------------


@dataclass
class ScenarioResult:
    name: str
    requests: int = 0
    connections: int = 0
    objects_left: int = 0
    bytes_per_connection: float = 0.0
    ok: bool = True
    seconds: float = 0.0
    leaked: dict[str, int] = field(default_factory=dict)
    cyclic_garbage: int = 0
    fds_left: int = 0
    timers_left: int = 0
    connections_left: int = 0
    growth: list[tuple[str, int, int]] = field(default_factory=list)
    top_sites: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    chain: list[str] = field(default_factory=list)
    errors_logged: int = 0
    error: str | None = None

    @property
    def status(self) -> str:
        if self.error is not None:
            return "ERROR"
        return "OK" if self.ok else "LEAK"


class _CountingHandler(logging.Handler):
    """Takes reactor's log records while a scenario runs: counted, formatted, dropped (a
    capturing handler would keep their arguments alive and show up as growth)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.errors = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self.errors += 1


class _Quiet:
    def __init__(self) -> None:
        self.logger = logging.getLogger("reactor")
        self.handler = _CountingHandler()

    def __enter__(self) -> _CountingHandler:
        self.saved = (self.logger.propagate, self.logger.level, list(self.logger.handlers))
        self.logger.propagate = False
        self.logger.handlers = [self.handler]
        self.logger.setLevel(logging.INFO)
        return self.handler

    def __exit__(self, *exc: object) -> None:
        self.logger.propagate, level, self.logger.handlers = self.saved
        self.logger.setLevel(level)


@dataclass
class _Options:
    handler: Handler | None = None
    target: _Target = field(default_factory=_Target)
    graph: str | None = None
    max_bytes_per_connection: float | None = None
    out: TextIO | None = None


def _frame_filter() -> list[tracemalloc.Filter]:
    return [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, __file__),
        tracemalloc.Filter(False, objgraph.__file__),
    ]


def run_scenario(scenario: Scenario, requests: int, options: _Options) -> ScenarioResult:
    """Run one scenario on a fresh loop and server; check and measure it."""
    result = ScenarioResult(scenario.name)
    clock = FakeClock() if scenario.fake_clock else None
    loop = SelectorLoop(clock=clock) if clock is not None else SelectorLoop()
    if clock is not None:
        clock.loop = loop
    app: Any
    if options.handler is not None:
        app = handler = options.handler
    elif scenario.streaming:
        app = handler = _streaming_echo
    else:
        app = BuiltinApp()
        app.loop = loop
        handler = app
    server = Server(handler, loop=loop, config=scenario.config)
    server.listen("127.0.0.1", 0)
    h = Harness(loop, server, app, clock, options.target)
    started = time.perf_counter()
    was_tracing = tracemalloc.is_tracing()
    quiet = _Quiet()
    try:
        with quiet as counter:
            scenario.run(h, 2)  # warm-up: first-use caches, code paths, Date header
            h.settle()
            _measure(scenario, h, requests, options, result)
            result.errors_logged = counter.errors
    except LeakcheckError as exc:
        result.error = str(exc)
        result.ok = False
    finally:
        gc.enable()
        if tracemalloc.is_tracing() and not was_tracing:
            tracemalloc.stop()
        for sock, _pair in getattr(app, "parked", ()):
            sock.close()
        server.close()
        for _ in range(3):
            loop.run_once(0)
        loop.close()
        # What the scenario left to the collector (explained above) goes now, not later.
        gc.collect()
        result.seconds = round(time.perf_counter() - started, 3)
    return result


def _measure(
    scenario: Scenario, h: Harness, requests: int, options: _Options, result: ScenarioResult
) -> None:
    loop, server = h.loop, h.server
    gc.collect()
    ids = {id(o) for o in gc.get_objects()}
    baseline = _Baseline(
        count_objects(),
        loop.registered_fds(),
        loop.pending_timers(),
        ids,
        {},
        {key.fd for key in loop._selector.get_map().values()},
    )
    h.baseline = baseline
    # Last before the traffic: growth() records the peaks (and collects first).
    objgraph.growth(limit=None, peak_stats=baseline.peak, shortnames=False)
    gc.disable()
    if not tracemalloc.is_tracing():
        tracemalloc.start(1)
    before = tracemalloc.take_snapshot().filter_traces(_frame_filter())

    result.connections = scenario.run(h, requests)
    h.settle()

    after = tracemalloc.take_snapshot().filter_traces(_frame_filter())
    counts = count_objects()
    diff = after.compare_to(before, "lineno")
    # A scenario rounds up to whole connections or rounds (shutdown sends 3 per round).
    result.requests = max(requests, result.connections)
    result.bytes_per_connection = round(
        sum(s.size_diff for s in diff) / max(result.connections, 1), 1
    )
    result.top_sites = [
        f"{_where(s.traceback[0].filename)}:{s.traceback[0].lineno} "
        f"{s.size_diff / max(result.connections, 1):+.1f} B/conn ({s.count_diff:+d} blocks)"
        for s in diff[:5]
        if s.size_diff > 0
    ]
    del before, after, diff

    result.leaked = {
        name: n - baseline.counts[name] for name, n in counts.items() if n > baseline.counts[name]
    }
    result.objects_left = sum(result.leaked.values())
    result.connections_left = server.connection_count
    result.fds_left = max(0, loop.registered_fds() - baseline.fds)
    result.timers_left = max(0, loop.pending_timers() - baseline.timers)
    problems = list(h.checkpoint_leaks)
    if result.leaked:
        problems.append(
            "objects left: " + ", ".join(f"{n} {name}" for name, n in result.leaked.items())
        )
    if result.connections_left:
        problems.append(f"the server still tracks {result.connections_left} connections")
    if result.fds_left:
        problems.append(f"{result.fds_left} fds still registered with the loop")
        problems.extend(_registrations(loop, baseline.fd_numbers))
    if result.timers_left:
        problems.append(f"{result.timers_left} timers still armed")

    # Anything the scenario left to the cyclic GC: collect it, saving it to explain. This
    # comes before any objgraph chain search (those call gc.collect() themselves).
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        result.cyclic_garbage = gc.collect()
        garbage = list(gc.garbage)
        gc.garbage.clear()
    finally:
        gc.set_debug(0)
    chain: list[str] = []
    victim: object = None
    if garbage:
        problems.append(
            f"gc.collect() found {result.cyclic_garbage} objects in reference cycles: "
            + _type_summary(garbage)
        )
        victim = _garbage_culprit(garbage)
        chain = _explain_cycle(victim, garbage)
    else:
        # The most telling leaked type first; else an armed timer the scenario left.
        for name in result.leaked:
            victim = _pick(name, baseline)
            if victim is not None:
                break
        if victim is None and result.timers_left:
            victim = next(
                (t for t in loop._timers if t.callback is not None and _is_new(t, baseline)),
                None,
            )
        if victim is not None:
            chain = _explain_holders(victim, h)

    grown = objgraph.growth(limit=None, peak_stats=baseline.peak, shortnames=False)
    result.growth = [(name, count, delta) for name, count, delta in grown[:10]]
    per_request = [
        (name, delta) for name, _count, delta in grown if delta >= max(result.requests, 10)
    ]
    if per_request:
        problems.append(
            "types that grew by one or more objects per request: "
            + ", ".join(f"{name} +{delta}" for name, delta in per_request)
        )
    if per_request and victim is None:
        victim = _pick(per_request[0][0], baseline)
        if victim is not None:
            chain = _explain_holders(victim, h)

    limit = options.max_bytes_per_connection
    if limit is not None and result.bytes_per_connection > limit:
        problems.append(
            f"{result.bytes_per_connection} bytes retained per connection (limit {limit})"
        )
    result.problems = problems
    result.chain = chain
    result.ok = not problems
    if not result.ok and victim is not None and options.graph:
        chain.extend(_render_graph(victim, h, options.graph, garbage))
        options.graph = None  # one picture per run: the first leak
    del victim, garbage


def _registrations(loop: SelectorLoop, before: set[int]) -> list[str]:
    lines = []
    for key in loop._selector.get_map().values():
        entry = key.data
        if entry is None or key.fd in before:
            continue
        callbacks = [cb for cb in (entry.reader, entry.writer) if cb is not None]
        lines.append(f"  fd {key.fd}: " + ", ".join(_short_repr(cb, 90) for cb in callbacks))
    return lines


def _type_summary(objs: Iterable[object]) -> str:
    counter = collections.Counter(type(o).__name__ for o in objs)
    return ", ".join(f"{n} {name}" for name, n in counter.most_common(6))


def _garbage_culprit(garbage: list[object]) -> object:
    """The object of the garbage to explain: a reactor per-connection object if any (the most
    telling type first), else the first function, else the first object."""
    for tp in TRACKED_TYPES:
        for obj in garbage:
            if type(obj) is tp:
                return obj
    for obj in garbage:
        if isinstance(obj, types.FunctionType):
            return obj
    return garbage[0]


def _roots(h: Harness) -> Callable[[object], bool]:
    loop, server, app = h.loop, h.server, h.app

    def is_root(obj: object) -> bool:
        return obj is loop or obj is server or obj is app or bool(objgraph.is_proper_module(obj))

    return is_root


def _explain_holders(victim: object, h: Harness) -> list[str]:
    ignore = _stack_frame_ids()
    chain: list[object] = objgraph.find_backref_chain(
        victim, _roots(h), max_depth=30, extra_ignore=ignore
    )
    if len(chain) < 2:
        del chain
        return [f"{describe(victim)}: no chain to a module, the loop or the server found"]
    lines = ["held by (root first):", *render_chain(chain)]
    del chain
    return lines


def _render_graph(victim: object, h: Harness, filename: str, garbage: list[object]) -> list[str]:
    """The back-references of ``victim`` as a picture: objgraph.show_chain of its chain to a
    root when there is one, else objgraph.show_backrefs (a cycle). The .dot file is always
    written; PNG/SVG need Graphviz's ``dot``."""
    stem, ext = os.path.splitext(filename)
    dot_file = filename if ext == ".dot" else stem + ".dot"
    ignore = [*_stack_frame_ids(), id(garbage)]
    chain = objgraph.find_backref_chain(victim, _roots(h), max_depth=30, extra_ignore=ignore)
    ignore.append(id(chain))
    try:
        with open(dot_file, "w", encoding="utf-8") as out:
            if len(chain) > 1:
                objgraph.show_chain(chain, output=out, shortnames=False)
            else:
                objgraph.show_backrefs(
                    [victim],
                    max_depth=5,
                    extra_ignore=ignore,
                    too_many=8,
                    filter=lambda o: not isinstance(o, types.FrameType),
                    output=out,
                    shortnames=False,
                )
    except OSError as exc:
        return [f"could not write the graph: {exc}"]
    finally:
        del chain
    if ext == ".dot":
        return [f"back-reference graph written to {dot_file}"]
    dot = shutil.which("dot")
    if dot is None:
        return [
            f"back-reference graph written to {dot_file} (Graphviz's dot was not found; "
            f"render it with: dot -T{ext.lstrip('.') or 'png'} {dot_file} -o {filename})"
        ]
    done = subprocess.run(
        [dot, f"-T{ext.lstrip('.')}", dot_file, "-o", filename],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return [f"dot failed on {dot_file}: {done.stderr.strip()}"]
    return [f"back-reference graph rendered to {filename} (source {dot_file})"]


# -- the run and its report ------------------------------------------------------------------


@dataclass
class Report:
    results: list[ScenarioResult]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "scenarios": [{**asdict(r), "status": r.status} for r in self.results],
        }


def format_line(r: ScenarioResult) -> str:
    return (
        f"{r.name:<20} {r.requests:>7} requests {r.objects_left:>6} objects left "
        f"{r.bytes_per_connection:>9.1f} B/conn  {r.status}"
    )


def format_details(r: ScenarioResult) -> list[str]:
    lines = []
    if r.error is not None:
        lines.append(f"  error: {r.error}")
    lines.extend(f"  {p}" for p in r.problems)
    if r.chain:
        lines.extend(f"    {line}" for line in r.chain)
    if not r.ok and r.growth:
        lines.append(
            "  objgraph.growth(): "
            + ", ".join(f"{name} +{delta}" for name, _count, delta in r.growth[:6])
        )
    if not r.ok and r.top_sites:
        lines.append("  top tracemalloc growth sites:")
        lines.extend(f"    {site}" for site in r.top_sites[:3])
    return lines


def format_table(report: Report) -> list[str]:
    lines = [
        "| scenario | requests | connections | objects left | cyclic garbage | "
        "B/conn retained | seconds | result |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report.results:
        lines.append(
            f"| {r.name} | {r.requests} | {r.connections} | {r.objects_left} | "
            f"{r.cyclic_garbage} | {r.bytes_per_connection:.1f} | {r.seconds:.2f} | {r.status} |"
        )
    failed = sum(not r.ok for r in report.results)
    lines.append("")
    lines.append(
        f"{len(report.results)} scenarios, {failed} failed: "
        + ("no leaks" if report.ok else "LEAKS FOUND")
    )
    return lines


def run(
    scenarios: Sequence[Scenario],
    requests: int,
    options: _Options | None = None,
    progress: Callable[[ScenarioResult], None] | None = None,
) -> Report:
    """Run ``scenarios`` in order; ``progress`` gets each result as it is done."""
    options = options or _Options()
    results = []
    for scenario in scenarios:
        result = run_scenario(scenario, requests, options)
        results.append(result)
        if progress is not None:
            progress(result)
    return Report(results)


# -- command line ------------------------------------------------------------------------------


def _epilog() -> str:
    lines = ["built-in scenarios (reactor's own handlers):"]
    lines.extend(f"  {s.name:<20} {s.help}" for s in SCENARIOS.values())
    lines.append("")
    lines.append("APP scenarios (with APP or --wsgi):")
    lines.extend(f"  {s.name:<20} {s.help}" for s in APP_SCENARIOS.values())
    lines.append("")
    lines.append(
        "Each scenario runs with the cyclic GC disabled. It leaks when reactor's per-connection\n"
        "objects (Connection, Request, ResponseWriter, Task, armed timers, buffers, sockets...)\n"
        "do not return to their baseline, when a selector registration, an armed timer or a\n"
        "tracked connection is left, when gc.collect() finds reference cycles afterwards, or\n"
        "when some type grew by one object per request or more. A leak prints the chain of\n"
        "references that holds one leaked object. Exit status: 0 clean, 1 leak, 2 usage."
    )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The leakcheck options, for ``reactor leakcheck`` and for this module's own parser."""
    parser.add_argument(
        "app",
        nargs="?",
        metavar="APP",
        help="your handler as module:callable (handler(w, r)); without it, the built-in suite",
    )
    parser.add_argument("--wsgi", metavar="MODULE:APP", help="a WSGI application instead")
    parser.add_argument("--path", default="/", help="APP mode: request target (default /)")
    parser.add_argument("--method", default="GET", help="APP mode: request method (default GET)")
    parser.add_argument("--body-file", metavar="F", help="APP mode: send the bytes of F as body")
    parser.add_argument(
        "--requests",
        type=_positive,
        default=200,
        metavar="N",
        help="requests per scenario (default 200; `make leakcheck` runs 100000)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        metavar="NAME",
        help="run only this scenario (repeatable); see the list below",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    parser.add_argument(
        "--graph",
        metavar="FILE",
        help="render the back-references of the first leaked object (FILE.png/.svg with "
        "Graphviz's dot, else FILE.dot)",
    )
    parser.add_argument(
        "--summary",
        metavar="FILE",
        help="also write the summary table (Markdown) to FILE",
    )
    parser.add_argument(
        "--max-bytes-per-conn",
        type=float,
        metavar="B",
        help="also fail when a scenario retains more than B tracemalloc bytes per connection",
    )


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive integer: {text!r}")
    return int(text)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser(prog: str = "reactor leakcheck") -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="Prove, with objgraph and tracemalloc, that reactor frees every connection, "
        "request and response (hijacked ones included), or find what your handler leaks.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return parser


def _usage_error(message: str) -> int:
    print(f"reactor leakcheck: error: {message}", file=sys.stderr)
    return 2


def _load(spec: str) -> Any:
    """APP as ``reactor serve`` loads it (reactor.apploader.load_app); ValueError with its
    reason."""

    try:
        return load_app(spec)
    except AppLoadError as exc:
        raise ValueError(str(exc)) from None


def run_from_args(args: argparse.Namespace) -> int:
    """Run what parsed ``args`` ask for; print the report; return the exit status."""
    options = _Options(graph=args.graph, max_bytes_per_connection=args.max_bytes_per_conn)
    if args.app and args.wsgi:
        return _usage_error("give APP or --wsgi, not both")
    if args.app or args.wsgi:
        try:
            loaded = _load(args.app or args.wsgi)
        except ValueError as exc:
            return _usage_error(str(exc))
        if args.wsgi:
            try:
                wsgi = importlib.import_module("reactor.wsgi")
            except ImportError:
                return _usage_error("WSGI adapter not available yet (reactor.wsgi is missing)")
            adapter = getattr(wsgi, "WSGIHandler", None)
            if adapter is None:
                return _usage_error("WSGI adapter not available yet (no reactor.wsgi.WSGIHandler)")
            loaded = adapter(loaded)
        body = b""
        if args.body_file:
            try:
                with open(args.body_file, "rb") as f:
                    body = f.read()
            except OSError as exc:
                return _usage_error(f"cannot read --body-file: {exc}")
        path = args.path if args.path.startswith("/") else "/" + args.path
        options.handler = loaded
        options.target = _Target(args.method.upper(), path, body)
        catalogue = APP_SCENARIOS
    else:
        catalogue = SCENARIOS
    names = args.scenario or list(catalogue)
    unknown = [n for n in names if n not in catalogue]
    if unknown:
        return _usage_error(
            f"unknown scenario {', '.join(unknown)}; choose from {', '.join(catalogue)}"
        )
    scenarios = [catalogue[n] for n in dict.fromkeys(names)]
    lines_to = sys.stderr if args.json else sys.stdout

    def progress(result: ScenarioResult) -> None:
        print(format_line(result), file=lines_to, flush=True)
        for line in format_details(result):
            print(line, file=lines_to, flush=True)

    report = run(scenarios, args.requests, options, progress)
    table = format_table(report)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print()
        print("\n".join(table))
    if args.summary:
        try:
            with open(args.summary, "w", encoding="utf-8") as out:
                out.write("\n".join(table) + "\n")
        except OSError as exc:
            print(f"reactor leakcheck: cannot write --summary: {exc}", file=sys.stderr)
            return 1
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    """``reactor leakcheck [APP] [options]``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    return run_from_args(args)


if __name__ == "__main__":
    sys.exit(main())
