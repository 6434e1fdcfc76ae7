"""``reactor leakcheck``'s client: sockets on the server loop's own thread.

Owns LeakcheckError (a scenario could not run as written), the request bytes (the same bytes
as ``reactor.testing.raw_request``; see ``build_request`` for why not through it), the Target
of the APP scenarios (a script of requests with their host, headers and body, the cookies
carried from one response to the next request, the statuses seen), Client (connect, and
wait while pumping the loop with ``reactor.testing.run_until``, the helper the tests use) and
ClientConn (non-blocking send, and reading responses: Content-Length, chunked, to EOF, 1xx
skipped; reset with RST). It never waits without pumping the loop: the server runs on the same
thread. Tests: tests/leaks/test_leakcheck.py.
"""

from __future__ import annotations

import collections
import socket
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..loop.selector import SelectorLoop
from ..testing import run_until

__all__ = [
    "WAIT",
    "Client",
    "ClientConn",
    "LeakcheckError",
    "Step",
    "Target",
    "build_request",
]

# Seconds any one client wait may take before the scenario is declared stuck.
WAIT = 10.0


class LeakcheckError(Exception):
    """A scenario could not run as written (a wait timed out, a response was wrong)."""


def build_request(
    method: str = "GET",
    path: str = "/",
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    *,
    chunked: bool = False,
    length: bool = True,
    host: str = "leakcheck",
) -> bytes:
    """One request with ``Host: leakcheck`` (or ``host``): a Content-Length for a body and for
    a POST or PUT (unless ``length`` is false: the caller gives its own); ``chunked`` sends
    the body as two chunks. The bytes are those of ``reactor.testing.raw_request``, built
    here without its checks: going through it leaves more of CPython's list free list filled
    at the end of a scenario and shifts the tracemalloc bytes per connection."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
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


# Methods sent without the --data body.
_NO_BODY = frozenset({"GET", "HEAD", "DELETE", "OPTIONS", "TRACE"})


@dataclass(frozen=True)
class Step:
    """One request of the APP scenarios' script (``--path``, ``--path 'POST /login'``)."""

    method: str = "GET"
    path: str = "/"


class Target:
    """What the APP scenarios send: the script of requests, cycled (one ``--path`` each), with
    ``host``, the extra ``headers`` and the ``body`` (for methods that take one); the cookies
    the responses set are sent with the next requests (a login flow), and the statuses are
    counted (``expect_status``: any other one is a LeakcheckError)."""

    def __init__(
        self,
        steps: Sequence[Step] = (Step(),),
        host: str = "localhost",
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        expect_status: int | None = None,
        keep_cookies: bool = True,
    ) -> None:
        self.steps = tuple(steps) or (Step(),)
        self.host = host
        self.headers = tuple(headers)
        self.body = body
        self.expect_status = expect_status
        self.keep_cookies = keep_cookies
        self.cookies: dict[str, str] = {}
        self.statuses: collections.Counter[int] = collections.Counter()
        self._next = 0

    def request(self, close: bool = False) -> tuple[bytes, Step]:
        """The next request of the script (bytes) and its step."""
        step = self.steps[self._next % len(self.steps)]
        self._next += 1
        headers = list(self.headers)
        if self.cookies:
            headers.append(("Cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items())))
        if close:
            headers.append(("Connection", "close"))
        body = b"" if step.method in _NO_BODY else self.body
        return build_request(step.method, step.path, headers, body, host=self.host), step

    def answered(self, step: Step, status: int, headers: dict[str, str]) -> None:
        """A response came: count its status, keep its cookies, check ``expect_status``."""
        self.statuses[status] += 1
        cookies = headers.get("set-cookie", "") if self.keep_cookies else ""
        for line in cookies.split("\n"):
            pair, _, attrs = line.partition(";")
            name, eq, value = pair.partition("=")
            name = name.strip()
            if not eq or not name:
                continue
            if not value.strip() or "max-age=0" in attrs.lower().replace(" ", ""):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value.strip()
        if self.expect_status is not None and status != self.expect_status:
            raise LeakcheckError(
                f"{step.method} {step.path} answered {status}, expected {self.expect_status}"
                + (" (is --host right?)" if status == 400 else "")
            )

    def reset(self) -> None:
        """Back to the script's first request, without cookies (a scenario's start)."""
        self._next = 0
        self.cookies.clear()


class Client:
    """Client sockets on the loop's own thread: every wait pumps the server's loop."""

    def __init__(self, loop: SelectorLoop, address: tuple[str, int]) -> None:
        self.loop = loop
        self.address = address
        #: Connections made and responses read: the progress line's count.
        self.connections = 0
        self.responses = 0
        #: Called after each connection and response while a progress line is shown.
        self.tick: Callable[[], None] | None = None
        #: The connections not closed yet (closed by ``close_all`` when a scenario stops).
        self.open: set[ClientConn] = set()

    def close_all(self) -> None:
        for conn in list(self.open):
            conn.close()

    def pump(self, timeout: float = 0.0) -> None:
        self.loop.run_once(timeout)

    def wait(self, what: str, done: Callable[[], bool], timeout: float = WAIT) -> None:
        """Pump the loop until ``done()``; LeakcheckError after ``timeout`` seconds."""
        try:
            run_until(self.loop, done, timeout, step=0.002)
        except TimeoutError:
            raise LeakcheckError(f"timed out waiting for {what}") from None

    def connect(self, address: tuple[str, int] | None = None) -> ClientConn:
        # On loopback the handshake completes in the kernel (the listener's backlog), before
        # the server accepts: a blocking connect cannot wait for our own loop.
        sock = socket.create_connection(address or self.address, timeout=WAIT)
        sock.setblocking(False)
        self.connections += 1
        if self.tick is not None:
            self.tick()
        conn = ClientConn(self, sock)
        self.open.add(conn)
        return conn


class ClientConn:
    """One client connection: sends, and reads responses with its own buffer."""

    __slots__ = ("__weakref__", "buf", "client", "eof", "sock")

    def __init__(self, client: Client, sock: socket.socket) -> None:
        self.client = client
        self.sock = sock
        self.buf = bytearray()
        self.eof = False

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + WAIT
        while view:
            n = self._send_some(view)
            view = view[n:]
            if view:
                if time.monotonic() > deadline:
                    raise LeakcheckError("timed out sending a request")
                self.client.pump(0.002)

    # The loop is pumped (and the handler runs) outside the ``except BlockingIOError``
    # blocks: inside one, every exception an application raises would be chained to ours
    # ("During handling of the above exception...") in its traceback.

    def _send_some(self, view: memoryview) -> int:
        try:
            return self.sock.send(view)
        except BlockingIOError:
            return 0

    def _recv_some(self) -> bytes | None:
        """What recv gives (b"" at EOF or reset), or None when nothing is there yet."""
        try:
            return self.sock.recv(65536)
        except BlockingIOError:
            return None
        except ConnectionError:
            return b""

    def _fill(self) -> bool:
        """Receive once (pumping the loop while nothing came); False at EOF."""
        if self.eof:
            return False
        deadline = time.monotonic() + WAIT
        while True:
            data = self._recv_some()
            if data is None:
                if time.monotonic() > deadline:
                    raise LeakcheckError("timed out waiting for the server")
                self.client.pump(0.002)
                continue
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
                    name = name.strip().lower()
                    if name == "set-cookie" and name in headers:
                        value = headers[name] + "\n" + value.strip()  # one per line
                    headers[name] = value.strip()
            if not 100 <= status < 200 or status == 101:
                break
        self.client.responses += 1
        if self.client.tick is not None:
            self.client.tick()
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
        self.close()

    def close(self) -> None:
        self.sock.close()
        self.client.open.discard(self)
