"""``reactor leakcheck``'s client: sockets on the server loop's own thread.

Owns LeakcheckError (a scenario could not run as written), the request bytes (the same bytes
as ``reactor.testing.raw_request``; see ``build_request`` for why not through it), the Target
of the APP scenarios, Client (connect, and wait while pumping the loop with
``reactor.testing.run_until``, the helper the tests use) and
ClientConn (non-blocking send, and reading responses: Content-Length, chunked, to EOF, 1xx
skipped; reset with RST). It never waits without pumping the loop: the server runs on the same
thread. Tests: tests/leaks/test_leakcheck.py.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..loop.selector import SelectorLoop
from ..testing import run_until

__all__ = ["WAIT", "Client", "ClientConn", "LeakcheckError", "Target", "build_request"]

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
) -> bytes:
    """One request with ``Host: leakcheck``: a Content-Length for a body and for a POST or PUT
    (unless ``length`` is false: the caller gives its own); ``chunked`` sends the body as two
    chunks. The bytes are those of ``reactor.testing.raw_request``, built here without its
    checks: going through it leaves more of CPython's list free list filled at the end of a
    scenario and shifts the tracemalloc bytes per connection."""
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


@dataclass(frozen=True)
class Target:
    """What the APP scenarios send."""

    method: str = "GET"
    path: str = "/"
    body: bytes = b""

    def request(self, close: bool = False) -> bytes:
        headers = [("Connection", "close")] if close else []
        return build_request(self.method, self.path, headers, self.body)


class Client:
    """Client sockets on the loop's own thread: every wait pumps the server's loop."""

    def __init__(self, loop: SelectorLoop, address: tuple[str, int]) -> None:
        self.loop = loop
        self.address = address

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
        deadline = time.monotonic() + WAIT
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
        deadline = time.monotonic() + WAIT
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
