"""``reactor leakcheck``'s built-in scenarios: the traffic patterns run against reactor's own
handler.

Owns Scenario (a name, a help line, a run function, and the server config, fake clock or
streaming handler it needs) and SCENARIOS: keep-alive, pipelined, posted bodies, 100-continue,
client resets, the header timeout, handler errors, rejections, hijacks, async handlers and
graceful shutdown. Tests: tests/leaks/test_leakcheck.py.
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from ..buffers import BufferPair, Reader, Writer
from ..config import Limits, ServerConfig
from ..server import Server
from .app import BuiltinApp
from .client import WAIT, ClientConn, LeakcheckError, build_request
from .harness import Harness

__all__ = ["PER_CONN", "SCENARIOS", "Scenario", "split_batches"]

# Per-connection request counts of the multi-request scenarios.
PER_CONN = 10
_PIPELINE = 10
_PARK_BATCH = 64


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


def split_batches(total: int, size: int) -> list[int]:
    """``total`` (at least 1) as batches of ``size``, the last one smaller if need be."""
    total = max(total, 1)
    full, rest = divmod(total, size)
    return [size] * full + ([rest] if rest else [])


def _sequential(make: Callable[[], bytes], status: int, body: bytes | None) -> _Run:
    def run(h: Harness, n: int) -> int:
        batches = split_batches(n, PER_CONN)
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
    batches = split_batches(n, _PIPELINE)
    for count in batches:
        c = h.client.connect()
        c.send(b"".join(build_request("GET", "/") for _ in range(count)))
        for _ in range(count):
            c.expect(200, b"ok")
        c.close()
        h.wait_closed()
    return len(batches)


_POST_BODY = bytes(range(256)) * 8


def _expect_continue(h: Harness, n: int) -> int:
    batches = split_batches(n, PER_CONN)
    for count in batches:
        c = h.client.connect()
        for _ in range(count):
            c.send(build_request("POST", "/echo", [("Expect", "100-continue")], _POST_BODY)[:-2048])
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
    c.send(build_request("POST", "/echo", [("Content-Length", "4096")], length=False) + b"part")
    _pump_a_little(h)
    c.reset()


def _reset_mid_response(h: Harness, c: ClientConn) -> None:
    c.send(build_request("GET", "/big"))
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
    c.send(build_request("GET", "/boom-late"))
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
    c.send(build_request("GET", "/hijack-close"))
    c.read_to_eof()
    c.close()


def _hijack_leftover(h: Harness, c: ClientConn) -> None:
    follow = build_request("GET", "/next") + b"tail"
    c.send(build_request("GET", "/hijack-leftover") + follow)
    got = c.read_to_eof()
    if got != b"left:%d" % len(follow):
        raise LeakcheckError(f"the hijacker did not get the leftover bytes: {got!r}")
    c.close()


_UPGRADE = build_request("GET", "/hijack-park", [("Connection", "Upgrade"), ("Upgrade", "echo")])


def _echo_parked(h: Harness, clients: list[ClientConn]) -> None:
    """Each parked connection echoes through its pair, then both ends close."""
    parked = h.app.parked
    if len(parked) != len(clients):
        raise LeakcheckError(f"{len(clients)} clients but {len(parked)} parked hijacks")
    for (sock, pair), c in zip(parked, clients, strict=True):
        c.send(b"echo 01234")
        data = b""
        deadline = time.monotonic() + WAIT
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
    batches = split_batches(n, _PARK_BATCH)
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
        idle.send(build_request("GET", "/"))
        idle.expect(200, b"ok")
        busy = h.client.connect(address)
        started = h.app.slow_started
        busy.send(build_request("GET", "/slow"))
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
            f"GET / over keep-alive connections, {PER_CONN} requests per connection",
            _sequential(lambda: build_request("GET", "/"), 200, b"ok"),
        ),
        Scenario(
            "pipelined",
            f"bursts of {_PIPELINE} pipelined GETs sent at once on one connection",
            _pipelined,
        ),
        Scenario(
            "post-length",
            "POST bodies with Content-Length (2 KiB, echoed back), keep-alive",
            _sequential(lambda: build_request("POST", "/echo", body=_POST_BODY), 200, _POST_BODY),
        ),
        Scenario(
            "post-chunked",
            "POST bodies with chunked transfer coding (2 KiB in two chunks), keep-alive",
            _sequential(
                lambda: build_request("POST", "/echo", body=_POST_BODY, chunked=True),
                200,
                _POST_BODY,
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
                lambda: build_request("GET", "/boom"),
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
                    build_request("POST", "/echo", [("Content-Length", "4096")], length=False), 413
                )
            ),
            config=_SMALL_LIMITS,
        ),
        Scenario(
            "status-431",
            "a head over max_head_bytes (4 KiB here): 431 and close",
            _one_per_connection(_rejected(build_request("GET", "/", [("X-Big", "y" * 5000)]), 431)),
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
            _sequential(lambda: build_request("POST", "/async", body=b"hi"), 200, b"async hi"),
        ),
        Scenario(
            "async-streaming",
            "a streaming async handler awaiting a chunked body as it arrives",
            _sequential(
                lambda: build_request("POST", "/", body=_POST_BODY, chunked=True), 200, _POST_BODY
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
